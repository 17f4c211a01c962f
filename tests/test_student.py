"""The student copies (``python -m fa.student``): solutions out, exercises in."""

import json
import re

import pytest

from fa import paths, student

WITH_EXERCISES = [p for p in sorted(paths.NOTEBOOKS_DIR.glob("*.ipynb"))
                  if "solution" in p.read_text()]


def tags(cell):
    return cell["metadata"].get("tags", [])


def test_the_course_notebook_has_exercises():
    assert paths.NOTEBOOKS_DIR / "00_feedback_alignment_by_hand.ipynb" in WITH_EXERCISES


@pytest.mark.parametrize("path", WITH_EXERCISES, ids=lambda p: p.stem)
def test_each_exercise_is_a_stub_followed_by_its_solution(path):
    cells = json.loads(path.read_text())["cells"]
    exercises = [i for i, c in enumerate(cells) if "exercise" in tags(c)]
    assert exercises
    for i in exercises:
        stub, solution = "".join(cells[i]["source"]), "".join(cells[i + 1]["source"])
        assert "solution" in tags(cells[i + 1])
        assert re.search(r'raise NotImplementedError\("Student exercise \d+: ', stub)
        defined = re.findall(r"^def (\w+)", stub, flags=re.M)
        assert defined and defined == re.findall(r"^def (\w+)", solution, flags=re.M), \
            "the solution defines the functions the stub defines, and nothing else"
        assert "NotImplementedError" not in solution


@pytest.mark.parametrize("path", WITH_EXERCISES, ids=lambda p: p.stem)
def test_the_student_copy_drops_the_solutions_and_nothing_else(path):
    nb = json.loads(path.read_text())
    copy = student.student_copy(nb)
    assert not any("solution" in tags(c) for c in copy["cells"])
    assert [c for c in nb["cells"] if "solution" not in tags(c)] == copy["cells"]
    assert copy["metadata"] == nb["metadata"]


def test_a_solution_without_its_exercise_is_refused():
    nb = {"cells": [{"cell_type": "code", "metadata": {"tags": ["solution"]}, "source": ["x = 1"],
                     "outputs": [], "execution_count": None}], "metadata": {}}
    with pytest.raises(ValueError, match="must follow a cell tagged 'exercise'"):
        student.student_copy(nb)


def test_the_command_writes_one_copy_per_notebook_with_exercises(tmp_path, capsys):
    student.main(["--output", str(tmp_path)])
    assert sorted(p.name for p in tmp_path.iterdir()) == [p.name for p in WITH_EXERCISES]
    assert str(tmp_path) in capsys.readouterr().out
    written = json.loads((tmp_path / WITH_EXERCISES[0].name).read_text())
    assert not any("solution" in tags(c) for c in written["cells"])


def test_the_copies_links_to_the_docs_and_code_resolve_where_they_are_written(tmp_path):
    """The notebooks link to ../docs/ and ../fa/ from notebooks/; a copy elsewhere must
    point there from its own folder."""
    out = tmp_path / "deep" / "inside"
    links = []
    for path in student.write(out):
        text = "".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"]
                       if c["cell_type"] == "markdown")
        links += re.findall(r"\]\(([^)#\s]+\.(?:md|py))(?:#[^)]*)?\)", text)
    local = [link for link in links if "://" not in link]
    assert local and all((out / link).exists() for link in local), local
