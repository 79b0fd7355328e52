"""Generate the student notebooks in ``lessons/`` from the solved ones in ``solutions/``.

In a solution notebook, the part of an exercise cell that the student writes sits between two marker
lines::

    def box_filter_cumsum(x, r):
        ### BEGIN SOLUTION
        ...
        ### END SOLUTION

    check_box_filter(box_filter_cumsum)

The lesson gets the same cell with the block replaced by ``raise NotImplementedError(...)`` at the
marker's indentation, tagged ``raises-exception`` so that ``pytest --nbval`` expects the error until the
student fills it in. Later cells use the library, so a lesson still runs top to bottom. Outputs and
execution counts are stripped from both copies.

    python tools/make_lessons.py          # write lessons/
    python tools/make_lessons.py --check  # exit 1 if lessons/ is out of date (the test suite runs this)
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
BEGIN = re.compile(r"^(\s*)### BEGIN SOLUTION\s*$")
END = re.compile(r"^\s*### END SOLUTION\s*$")
STUB = 'raise NotImplementedError("Exercise: replace this line with your code, then run the cell")'
EXCEPTION_TAG = "raises-exception"


def strip_solution(source: str) -> tuple[str, bool]:
    """Return the cell source with every marked block replaced by a stub, and whether any was found."""
    out, inside, found = [], False, False
    for line in source.splitlines():
        begin = BEGIN.match(line)
        if begin and not inside:
            out.append(f"{begin.group(1)}{STUB}")
            inside, found = True, True
        elif inside:
            inside = not END.match(line)
        else:
            out.append(line)
    if inside:
        raise ValueError("a '### BEGIN SOLUTION' block has no '### END SOLUTION'")
    return "\n".join(out), found


def clean(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy without outputs, execution counts or run-time metadata."""
    notebook = copy.deepcopy(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            for key in ("execution", "collapsed", "scrolled"):
                cell.metadata.pop(key, None)
    return notebook


def make_lesson(solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The student version of a solution notebook."""
    lesson = clean(solution)
    for cell in lesson.cells:
        if cell.cell_type != "code":
            continue
        cell.source, found = strip_solution(cell.source)
        tags = [t for t in cell.metadata.get("tags", []) if t != EXCEPTION_TAG]
        if found:
            tags.append(EXCEPTION_TAG)
        if tags:
            cell.metadata["tags"] = tags
        else:
            cell.metadata.pop("tags", None)
    return lesson


def render(notebook: nbformat.NotebookNode) -> str:
    return nbformat.writes(notebook) + "\n"


def expected_files(root: Path = ROOT) -> dict[Path, str]:
    """``{path: text}`` for every file this script owns: cleaned solutions and generated lessons."""
    files = {}
    for path in sorted((root / "solutions").glob("*.ipynb")):
        solution = nbformat.read(path, as_version=4)
        files[path] = render(clean(solution))
        files[root / "lessons" / path.name] = render(make_lesson(solution))
    return files


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report drift instead of writing")
    args = parser.parse_args(argv)
    files = expected_files()
    stale = [path for path, text in files.items() if not path.is_file() or path.read_text() != text]
    extra = sorted(set((ROOT / "lessons").glob("*.ipynb")) - set(files))
    if args.check:
        for path in stale:
            print(f"out of date: {path.relative_to(ROOT)}")
        for path in extra:
            print(f"no solution for: {path.relative_to(ROOT)}")
        return 1 if stale or extra else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[path])
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
