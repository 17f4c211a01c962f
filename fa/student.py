"""Student copies of the notebooks: the same notebooks without their solutions.

Usage::

    python -m fa.student                  # build/student/<notebook>.ipynb, every notebook
    python -m fa.student --output DIR     # elsewhere

One source notebook gives both versions. An exercise is a cell tagged ``exercise`` that
defines a function whose body stops with ``raise NotImplementedError("Student exercise
...")``, followed by a cell tagged ``solution`` that defines the same function in full.
The full notebook runs straight through (the solution replaces the stub before any cell
calls it); the student copy stops at the first call of an unsolved exercise, with its
message.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

from . import paths

#: The tag of the cells the student copy leaves out.
SOLUTION = "solution"


def student_copy(nb: dict) -> dict:
    """``nb`` (a notebook as JSON) without its solution cells and without outputs.

    Parameters
    ----------
    nb : dict
        A notebook, as ``json.load`` reads an ``.ipynb`` file.

    Returns
    -------
    dict
        A new notebook (``nb`` is left as it is).

    Raises
    ------
    ValueError
        If a solution cell does not follow a cell tagged ``exercise``: the student
        would lose code with nothing left in its place.
    """
    cells, previous = [], {}
    for cell in nb["cells"]:
        if SOLUTION in cell.get("metadata", {}).get("tags", []):
            if "exercise" not in previous.get("metadata", {}).get("tags", []):
                raise ValueError(f"The {SOLUTION!r} cell {''.join(cell['source'])[:60]!r} must "
                                 "follow a cell tagged 'exercise' (the stub the student fills in).")
        else:
            cell = dict(cell)
            if cell["cell_type"] == "code":
                cell.update(outputs=[], execution_count=None)
            cells.append(cell)
        previous = cell
    return {**nb, "cells": cells}


def write(output: Path | None = None) -> list[Path]:
    """Write the student copy of every notebook that has exercises.

    Parameters
    ----------
    output : Path, optional
        Folder to write to; default ``student/`` in the output folder (``build/`` of
        a checkout, see :func:`fa.paths.output_root`).

    Returns
    -------
    list of Path
        The notebooks written.
    """
    output = Path(output or paths.output_root() / "student")
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sorted(paths.NOTEBOOKS_DIR.glob("*.ipynb")):
        nb = json.loads(source.read_text(encoding="utf-8"))
        if not any(SOLUTION in c.get("metadata", {}).get("tags", []) for c in nb["cells"]):
            continue
        copy = student_copy(nb)
        for cell in copy["cells"]:
            if cell["cell_type"] == "markdown":
                cell["source"] = _relinked("".join(cell["source"]), output)
        written.append(output / source.name)
        written[-1].write_text(json.dumps(copy, indent=1, ensure_ascii=False) + "\n",
                               encoding="utf-8")
    return written


def _relinked(text: str, output: Path) -> str:
    """``text`` with its links to files beside the notebooks (``](../docs/model.md)``)
    pointing there from ``output``, where the copy lies; a link to nothing stays."""
    def relink(match):
        target = (paths.NOTEBOOKS_DIR / match[1]).resolve()
        if not target.exists():
            return match[0]
        return f"]({Path(os.path.relpath(target, output.resolve())).as_posix()}{match[2] or ''})"

    return re.sub(r"\]\((\.\./[^)#\s]+)(#[^)\s]*)?\)", relink, text)


def main(argv: list[str] | None = None) -> None:
    """The command line: write the student copies and print where."""
    parser = argparse.ArgumentParser(prog="python -m fa.student", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", metavar="DIR", type=Path,
                        help="folder for the student copies (default: build/student/)")
    args = parser.parse_args(argv)
    try:
        written = write(args.output)
    except paths.InsidePackage as err:
        parser.error(str(err))
    for path in written:
        print(path)


if __name__ == "__main__":
    main()
