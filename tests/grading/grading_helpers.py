"""Helpers for the grading tests: the chapter-2 notebooks and ways to build submissions from them."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
from IPython.core.inputtransformer2 import TransformerManager

ROOT = Path(__file__).resolve().parents[2]
EXERCISE = "02_ml_basics"
SOURCE = ROOT / "exercises" / "source" / f"{EXERCISE}.ipynb"
STUDENT = ROOT / "exercises" / f"{EXERCISE}.ipynb"
QUESTIONS = ("standardize", "accuracy", "train_one_epoch", "per_example_loss", "generalization_gap")


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(str(path), as_version=4)


def defining_cell(nb: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    """The code cell that defines function ``name``."""
    cells = [c for c in nb.cells if c.cell_type == "code" and re.search(rf"^def {name}\(", c.source, re.M)]
    assert len(cells) == 1, f"expected one cell defining {name}, found {len(cells)}"
    return cells[0]


def solution_code(name: str) -> str:
    """The reference solution of question ``name``, taken from the exercise source."""
    return defining_cell(read(SOURCE), name).source


def submission(path: Path, *, answers: dict[str, str] = (), extra: list[tuple[str, str]] = ()) -> Path:
    """Write a submission built from the student notebook: ``answers`` replace the stub of a function,
    each ``(after, code)`` in ``extra`` adds a code cell after the cell defining ``after`` (or after the
    setup cell when ``after`` is ``"setup"``)."""
    nb = read(STUDENT)
    for name, code in dict(answers).items():
        defining_cell(nb, name).source = code
    for after, code in extra:
        anchor = nb.cells[1] if after == "setup" else defining_cell(nb, after)
        nb.cells.insert(nb.cells.index(anchor) + 1, nbformat.v4.new_code_cell(code))
    nbformat.write(nb, str(path))
    return path


def solved(*names: str) -> dict[str, str]:
    return {name: solution_code(name) for name in names}


def exec_notebook_code(nb: nbformat.NotebookNode) -> dict:
    """Run a notebook's code cells in this process (IPython syntax such as ``%pip`` is transformed)."""
    namespace: dict = {}
    transform = TransformerManager().transform_cell
    for cell in nb.cells:
        if cell.cell_type == "code":
            exec(compile(transform(cell.source), "<cell>", "exec"), namespace)
    return namespace
