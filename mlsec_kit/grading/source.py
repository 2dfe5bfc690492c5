"""Student notebooks from exercise sources: strip the solutions, keep everything else.

An exercise source ``exercises/source/<id>.ipynb`` is a notebook that runs as it is, solutions included.
Inside a code cell, a solution sits between two marker lines, always inside a function body::

    def accuracy(logits, y):
        \"\"\"Fraction of rows whose largest logit is the label.\"\"\"
        # BEGIN SOLUTION
        return (logits.argmax(dim=1) == y).float().mean().item()
        # END SOLUTION

:func:`student_notebook` replaces each region by one ``raise NotImplementedError(...)`` line at the
region's indentation (so the notebook still runs: the error comes only when the function is called),
drops cells tagged ``solution``, clears outputs and writes ``exercises/<id>.ipynb``. The student version
is never edited by hand: ``python -m mlsec_kit.grading generate`` rewrites it, and a test fails when the
committed file differs from what generation gives.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Iterable, Optional

import nbformat

from .core import ExerciseSet, exercise_ids, get_exercise

__all__ = ["BEGIN", "END", "SOLUTION_TAG", "strip_solutions", "student_notebook", "render", "check_source",
           "source_path", "student_path", "generate"]

BEGIN = "# BEGIN SOLUTION"
END = "# END SOLUTION"
SOLUTION_TAG = "solution"  # a cell with this tag is left out of the student version
_DEF = re.compile(r"^(\s*)(?:async\s+)?def\s+(\w+)\s*\(")


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _enclosing_function(lines: list[str], index: int, indent: str) -> Optional[str]:
    for line in reversed(lines[:index]):
        match = _DEF.match(line)
        if match and len(match.group(1)) < len(indent):
            return match.group(2)
    return None


def strip_solutions(code: str, *, where: str = "cell") -> str:
    """Replace every ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` region of ``code`` by a ``raise`` line.

    Raises:
        ValueError: for a region that is not closed, is nested, ends without beginning, or sits at the
            top level of the cell (the student notebook would then fail when it runs).
    """
    lines, out, start = code.split("\n"), [], None
    for number, line in enumerate(lines, 1):
        marker = line.strip()
        if marker == BEGIN:
            if start is not None:
                raise ValueError(f"{where}, line {number}: {BEGIN} inside another solution region")
            if not _indent(line):
                raise ValueError(f"{where}, line {number}: a solution region must sit inside a function "
                                 "body, or the student notebook fails when it runs")
            start = number
            name = _enclosing_function(lines, number - 1, _indent(line)) or "this function"
            out.append(f'{_indent(line)}raise NotImplementedError("{name} is not implemented yet: '
                       'replace this line with your code")')
        elif marker == END:
            if start is None:
                raise ValueError(f"{where}, line {number}: {END} without {BEGIN}")
            start = None
        elif start is None:
            out.append(line)
    if start is not None:
        raise ValueError(f"{where}, line {start}: {BEGIN} is never closed by {END}")
    return "\n".join(out)


def student_notebook(source: nbformat.NotebookNode, exercise_id: str) -> nbformat.NotebookNode:
    """The student version of an exercise source: solutions stripped, solution cells dropped, no outputs."""
    nb = copy.deepcopy(source)
    cells = []
    for number, cell in enumerate(nb.cells, 1):
        if SOLUTION_TAG in cell.get("metadata", {}).get("tags", []):
            continue
        if cell.cell_type == "code":
            cell.source = strip_solutions(cell.source, where=f"{exercise_id}, cell {number}")
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)
        cells.append(cell)
    nb.cells = cells
    nb.metadata = {key: nb.metadata[key] for key in ("kernelspec", "language_info") if key in nb.metadata}
    nb.metadata["mlsec_kit"] = {"exercise": exercise_id,
                                "generated_from": f"exercises/source/{exercise_id}.ipynb"}
    nbformat.validate(nb)
    return nb


def render(nb: nbformat.NotebookNode) -> str:
    """The exact text a notebook is written as (what ``nbformat.write`` puts in a file)."""
    text = nbformat.writes(nb)
    return text if text.endswith("\n") else text + "\n"


def check_source(source: nbformat.NotebookNode, exercise: ExerciseSet) -> list[str]:
    """Problems with an exercise source: a question without a function stub or without a check cell."""
    code = "\n".join(c.source for c in source.cells if c.cell_type == "code")
    problems = []
    for name in exercise.questions:
        if not re.search(rf"^def {name}\(", code, re.M):
            problems.append(f"no cell defines the function {name}(...)")
        if not re.search(rf"""check\(\s*["']{name}["']\s*,\s*{name}\s*\)""", code):
            problems.append(f'no cell calls check("{name}", {name})')
    if BEGIN not in code:
        problems.append(f"no solution region (lines {BEGIN} / {END} inside a function)")
    return problems


def source_path(root: Path, exercise_id: str) -> Path:
    return Path(root) / "exercises" / "source" / f"{exercise_id}.ipynb"


def student_path(root: Path, exercise_id: str) -> Path:
    return Path(root) / "exercises" / f"{exercise_id}.ipynb"


def generate(root: Path, ids: Optional[Iterable[str]] = None, *, check_only: bool = False) -> list[Path]:
    """Write ``exercises/<id>.ipynb`` for each exercise set from its source under ``root``.

    Args:
        root: the book's repository root (it holds ``exercises/``).
        ids: the exercise ids (default: every set the package ships).
        check_only: write nothing; only report which student notebooks differ from their source.

    Returns:
        The student notebooks that changed (or, with ``check_only``, would change).

    Raises:
        FileNotFoundError: when an exercise has no source notebook.
        ValueError: when a source is malformed (see :func:`check_source` and :func:`strip_solutions`).
    """
    changed = []
    for exercise_id in ids or exercise_ids():
        exercise = get_exercise(exercise_id)
        src = source_path(root, exercise_id)
        if not src.is_file():
            raise FileNotFoundError(f"exercise {exercise_id} has no source notebook: {src} is missing")
        source = nbformat.read(str(src), as_version=4)
        problems = check_source(source, exercise)
        if problems:
            raise ValueError(f"{src}: " + "; ".join(problems))
        text, dest = render(student_notebook(source, exercise_id)), student_path(root, exercise_id)
        if not dest.is_file() or dest.read_text(encoding="utf-8") != text:
            changed.append(dest)
            if not check_only:
                dest.write_text(text, encoding="utf-8")
    return changed
