"""The notebooks themselves: generated lessons in sync with solutions, clean, and shaped like lessons.

Running them is nbval's job (``pytest --nbval --nbval-current-env lessons solutions``, in the README's
test command); these tests check what nbval does not.
"""

import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import make_lessons  # noqa: E402

SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
LESSONS = sorted((ROOT / "lessons").glob("*.ipynb"))


def test_strip_solution_replaces_the_block_at_its_indentation():
    source = "def f(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\n\ncheck(f)"
    stripped, found = make_lessons.strip_solution(source)
    assert found
    assert stripped == f"def f(x):\n    {make_lessons.STUB}\n\ncheck(f)"
    assert make_lessons.strip_solution("x = 1") == ("x = 1", False)
    with pytest.raises(ValueError, match="END SOLUTION"):
        make_lessons.strip_solution("### BEGIN SOLUTION\nx = 1")


def test_lessons_are_generated_from_the_solutions():
    assert make_lessons.main(["--check"]) == 0, "run `make lessons` (python tools/make_lessons.py)"


def test_every_lesson_has_a_solution_and_the_eight_lessons_exist():
    assert [p.name for p in LESSONS] == [p.name for p in SOLUTIONS]
    assert [p.name[:2] for p in SOLUTIONS] == ["01", "02", "03", "04", "05", "06", "07", "08", "09"]


@pytest.mark.parametrize("path", SOLUTIONS + LESSONS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_notebooks_are_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, "strip outputs (make lessons does)"
    assert notebook.metadata["kernelspec"]["name"] == "animescene"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_every_solution_has_a_checked_exercise_and_reads_the_smoke_switch(path):
    notebook = nbformat.read(path, as_version=4)
    code = [c.source for c in notebook.cells if c.cell_type == "code"]
    exercises = [s for s in code if "### BEGIN SOLUTION" in s]
    assert exercises, "a lesson needs at least one exercise"
    assert all("check_" in s for s in exercises), "every exercise cell ends with its checker"
    assert any("assert " in s for s in code), "cells should assert what they computed"
    assert any("pick(" in s or "smoke_mode()" in s for s in code), "heavy cells read the smoke switch"
    assert notebook.cells[0].cell_type == "markdown" and notebook.cells[0].source.startswith("# ")
