"""The documentation's promises: every file it points to exists, no internal spec leaks.

Two checks over the text a user reads (README files, the pages in ``docs/``, the
notebooks' markdown cells, the docstrings of ``fa``):

1. every relative file or folder it refers to, as a markdown link ``[..](path)`` or
   as a backticked repository path such as ``fa/trainer.py``, exists;
2. no tracked text file names the project's internal specification or its folder.

Both read local files only (no network) and run in well under a second.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Top-level folders whose paths, written in backticks, are read as repository paths.
REPO_DIRS = ("fa", "notebooks", "figures", "docs", "benchmarks", "tests")
#: Folders that hold what a run writes (at any depth, e.g. ``benchmarks/results/``):
#: references into them need not exist.
OUTPUT_DIRS = ("build", "results")
#: Folders never searched for tracked files when git is not available.
SKIP_DIRS = {".git", ".venv", "build", "results", "__pycache__", ".pytest_cache",
             ".ipynb_checkpoints"}
#: The names that must not appear (split so that this file does not contain them).
FORBIDDEN = ("PAPER" + ".md", ".." + "/shared")

FENCE = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1[ \t]*$", re.M | re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
BACKTICKS = re.compile(r"(`+)(.+?)\1", re.S)
REPO_PATH = re.compile(r"(?<![\w./~$-])((?:%s)/[^\s`'\"(),;:]*)" % "|".join(REPO_DIRS))
URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")       # http:, https:, mailto:, ...
GLOB = re.compile(r"[*?\[\]{}|<>]")


def references(text: str, *, markdown: bool = True) -> list[tuple[str, bool]]:
    """The file references in ``text``: ``(path, relative_to_the_file)`` pairs.

    Markdown links are relative to the file that contains them (as on GitHub); a
    backticked path (or a path in a fenced code block) is relative to the
    repository root. URLs, pure anchors and glob patterns are left out.
    """
    found = []
    if markdown:
        for block in FENCE.finditer(text):
            found += [(m.group(1), False) for m in REPO_PATH.finditer(block.group(0))]
        text = FENCE.sub("", text)
        for m in LINK.finditer(text):
            target = m.group(1).split("#", 1)[0].split("?", 1)[0]
            if target and not URL.match(m.group(1)):
                found.append((target, True))
    for span in BACKTICKS.finditer(text):
        found += [(m.group(1), False) for m in REPO_PATH.finditer(span.group(2))]
    return [(path.rstrip("."), rel) for path, rel in found if not GLOB.search(path)]


def missing(source: Path, text: str, *, markdown: bool = True) -> list[str]:
    """The references of ``text`` (read from ``source``) that do not exist."""
    out = []
    for path, relative in references(text, markdown=markdown):
        if path.startswith("/"):
            target = ROOT / path.lstrip("/")      # GitHub: "/x" is the repository root
        else:
            target = (source.parent if relative else ROOT) / path
        target = Path(*_normalise(target.parts))
        try:
            inside = target.relative_to(ROOT)
        except ValueError:
            out.append(f"{source.relative_to(ROOT)}: {path} (outside the repository)")
            continue
        if set(inside.parts) & set(OUTPUT_DIRS):
            continue
        if not target.exists():
            out.append(f"{source.relative_to(ROOT)}: {path}")
    return out


def _normalise(parts):
    """Resolve ``..`` and ``.`` without touching the file system (no symlinks followed)."""
    out = []
    for part in parts:
        if part == "..":
            if len(out) > 1:
                out.pop()
        elif part != ".":
            out.append(part)
    return out


def tracked_files() -> list[Path]:
    """The files git tracks (untracked new files included), or every file when git is absent."""
    try:
        listing = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT, capture_output=True, check=True, timeout=30).stdout
        return sorted(ROOT / name for name in listing.decode().split("\0") if name)
    except (OSError, subprocess.SubprocessError):
        return sorted(p for p in ROOT.rglob("*") if p.is_file() and not any(
            part in SKIP_DIRS or part.endswith(".egg-info") for part in p.relative_to(ROOT).parts))


def docstrings(source: str) -> list[str]:
    """The docstrings of a module and of every class and function in it."""
    tree = ast.parse(source)
    nodes = [tree] + [n for n in ast.walk(tree)
                      if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
    return [doc for doc in map(ast.get_docstring, nodes) if doc]


def documentation() -> list[tuple[Path, str, bool]]:
    """Everything a user reads: ``(file, text, is_markdown)``."""
    out = []
    for path in tracked_files():
        if not path.exists():                    # deleted but not yet committed
            continue
        rel = path.relative_to(ROOT)
        if path.suffix == ".md" and rel.parts[0] not in OUTPUT_DIRS:
            out.append((path, path.read_text(encoding="utf-8"), True))
        elif path.suffix == ".ipynb" and rel.parts[0] == "notebooks":
            cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
            out += [(path, "".join(c["source"]), True)
                    for c in cells if c["cell_type"] == "markdown"]
        elif path.suffix == ".py" and rel.parts[0] == "fa":
            out += [(path, doc, False) for doc in docstrings(path.read_text(encoding="utf-8"))]
    return out


def test_every_referenced_file_exists():
    sources = documentation()
    assert any(p.name == "README.md" and p.parent == ROOT for p, _, _ in sources)
    problems = sorted({m for path, text, md in sources for m in missing(path, text, markdown=md)})
    assert not problems, ("references to files that do not exist:\n  "
                          + "\n  ".join(problems))


def test_no_tracked_text_file_names_the_internal_spec():
    hits = []
    for path in tracked_files():
        if not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data:                         # binary: figures, PDFs
            continue
        text = data.decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if any(word in line for word in FORBIDDEN):
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:100]}")
    assert not hits, f"{len(hits)} lines name the internal spec:\n  " + "\n  ".join(hits)


# The checkers themselves: they find what they should and skip what they should.

@pytest.mark.parametrize("text, expected", [
    ("see [the model](docs/model.md#loss) and ![f](figures/mnist.png)",
     [("docs/model.md", True), ("figures/mnist.png", True)]),
    ("run `python benchmarks/bench_trainer.py --clock cpu` or read ``fa/deep.py``.",
     [("benchmarks/bench_trainer.py", False), ("fa/deep.py", False)]),
    ("```\n.venv/bin/papermill notebooks/01_convergence.ipynb out.ipynb\n```",
     [("notebooks/01_convergence.ipynb", False)]),
    ("[paper](https://arxiv.org/abs/2106.06044), [top](#top), `figures/*.png|pdf`, "
     "`.venv/bin/python`, `fa.deep`, `results_dir/cache`", []),
])
def test_references_are_extracted(text, expected):
    assert references(text) == expected


def test_missing_files_are_reported_and_outputs_ignored():
    readme = ROOT / "docs" / "page.md"
    text = ("[ok](../README.md) [gone](../nowhere.md) `fa/no_such_module.py` `tests/` "
            "[run](../build/notebooks/x.ipynb) `results/cache/`")
    assert missing(readme, text) == ["docs/page.md: ../nowhere.md",
                                     "docs/page.md: fa/no_such_module.py"]


def test_docstrings_are_read_from_every_definition():
    source = '"""Module `fa/a.py`."""\nclass C:\n    """`fa/b.py`"""\n    def f(self):\n' \
             '        """`fa/c.py`"""\n'
    assert [references(d, markdown=False) for d in docstrings(source)] == \
        [[("fa/a.py", False)], [("fa/b.py", False)], [("fa/c.py", False)]]
