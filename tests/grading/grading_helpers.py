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
QUESTIONS = ("standardize", "accuracy", "train_one_epoch", "per_example_loss", "generalization_gap",
             "membership_chance")


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


def solution_functions(source: Path, questions) -> dict:
    """The namespace of a source notebook's setup cell and the cells defining the ``questions``' functions,
    run here (not its real-data cells, which train models)."""
    import re

    nb = read(source)
    defines = re.compile(r"^def (" + "|".join(questions) + r")\(", re.M)
    nb.cells = [c for c in nb.cells if c.cell_type == "code" and ("import mlsec_kit" in c.source or defines.search(c.source))]
    return exec_notebook_code(nb)


# ---- assertions every exercise set's tests make ---------------------------------------------------------
def assert_passes_on_seeds(question, fn, seeds) -> None:
    """A reference solution earns full marks on every seed (fresh random instances each time)."""
    from mlsec_kit.grading import run_question

    for seed in seeds:
        result = run_question(question, fn, seed=seed)
        assert result.passed, result.report()


def assert_set_runs_quickly(exercise, solutions: dict, *, limit: float = 5.0) -> None:
    """All checks of a set, on the reference solutions, finish within ``limit`` seconds."""
    import time

    from mlsec_kit.grading import run_question

    start = time.monotonic()
    for name, question in exercise.questions.items():
        run_question(question, solutions[name], seed=7)
    assert time.monotonic() - start < limit


def assert_fails_on_every_seed(question, code: str, name: str, namespace: dict, seeds, label: str) -> None:
    """A typical mistake (``code`` defining ``name``) fails ``question`` on every one of ``seeds``: a check that
    catches a mistake on some seeds only is a lottery."""
    import textwrap

    namespace = dict(namespace)
    exec(textwrap.dedent(code), namespace)
    passed, first = [], 0
    for seed in seeds:  # the property that failed on the last seed is tried first: the same verdict, sooner
        failing = first_failing(question, namespace[name], seed, first=first)
        if failing is None:
            passed.append(seed)
        else:
            first = failing
    assert not passed, f"{label!r} passes on seeds {passed}"


def _property_fails(question, index: int, fn, seed: int) -> bool:
    """Whether property ``index`` of ``question`` fails for ``fn`` on ``seed``, run alone with the generator and
    global seed ``run_question`` gives it (``derive_seed`` of the seed, the question and the index): the same
    verdict as ``run_question``'s for that property, without a report or a time limit."""
    import torch

    from mlsec_kit.grading.core import derive_seed

    sub_seed = derive_seed(seed, question.exercise, question.name, index)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sub_seed)
            question.properties[index].fn(fn, torch.Generator().manual_seed(sub_seed))
    except Exception:  # noqa: BLE001 - a CheckFailure, or anything the answer raised: a failed property
        return True
    return False


def property_fails(question, fn, seed: int, prefix: str) -> bool:
    """Whether the property of ``question`` whose description starts with ``prefix`` fails for ``fn`` on
    ``seed``, running that property alone (see ``_property_fails``)."""
    index, = [i for i, p in enumerate(question.properties) if p.description.startswith(prefix)]
    return _property_fails(question, index, fn, seed)


def first_failing(question, fn, seed: int, *, first: int = 0):
    """The index of a property of ``question`` that fails for ``fn`` on ``seed`` (each run alone, as
    ``_property_fails`` does), trying property ``first`` before the others in order; None when all pass."""
    order = [first, *(i for i in range(len(question.properties)) if i != first)]
    return next((index for index in order if _property_fails(question, index, fn, seed)), None)


def fails_quickly(question, fn, seed: int) -> bool:
    """Whether ``run_question(question, fn, seed=seed)`` would not pass, stopping at the first failing property
    (each run as ``_property_fails`` does): the same verdict in less time (no report, no time limit, and the
    properties after the first failure are not run)."""
    return first_failing(question, fn, seed) is not None


def assert_mistake_fails(question, code: str, name: str, namespace: dict, failing, message: str) -> None:
    """A typical mistake (``code`` defining ``name``) fails: exactly the properties named in ``failing``
    (prefixes of their descriptions; ``None``: at least one), with ``message`` in a one-line explanation."""
    import textwrap

    from mlsec_kit.grading import run_question

    namespace = dict(namespace)
    exec(textwrap.dedent(code), namespace)
    result = run_question(question, namespace[name], seed=3)
    failed = [p for p in result.properties if not p.passed]
    assert failed, result.report()
    if failing is not None:  # exactly these properties fail, the others still earn their points
        expected = {p.description for p in result.properties if p.description.startswith(tuple(failing))}
        assert len(expected) == len(failing)
        assert {p.description for p in failed} == expected, result.report()
    assert any(message in p.message for p in failed), result.report()
    assert all("\n" not in p.message for p in result.properties)


def assert_forbidden_names_resolve(exercise) -> None:
    """Every name a question forbids resolves to a callable (a typo or a rename would silently block nothing)."""
    from mlsec_kit.grading.runner import _resolve

    for question in exercise.questions.values():
        for name in question.forbid:
            assert callable(_resolve(name)), name


def run_blocked(question, fn, *, seed: int = 1):
    """``question`` graded on ``fn`` with the question's forbidden names blocked, as the grader does in the
    submission's process; the blocked names' report says "implement this yourself"."""
    from mlsec_kit.grading import run_question
    from mlsec_kit.grading.runner import _block

    undo = _block(list(question.forbid))
    try:
        result = run_question(question, fn, seed=seed)
    finally:
        undo()
    assert "implement this yourself" in result.report()
    return result


def assert_blank_scores_nothing(exercise) -> None:
    """Every question of ``exercise``, answered by a stub that raises as a blank student cell does, scores 0 and
    says "not implemented yet" for every property."""
    from mlsec_kit.grading import run_question

    def stub(*args):
        raise NotImplementedError("not implemented yet")

    for question in exercise.questions.values():
        result = run_question(question, stub, seed=0)
        assert result.score == 0 and all(p.message == "not implemented yet" for p in result.properties)


def assert_notebook_states(source: Path, statements: dict) -> None:
    """The source notebook's lettered statements (``* **a.** ...``) are the ones the conceptual question grades,
    word for word (Markdown and punctuation aside)."""
    import json

    cells = [("".join(c["source"]), c["cell_type"]) for c in json.loads(source.read_text(encoding="utf-8"))["cells"]]
    markdown = next(text for text, kind in cells if kind == "markdown" and "**a.**" in text)

    def norm(text: str) -> str:
        return re.sub(r"[^a-z0-9]", "", text.lower())

    bullets = dict(re.findall(r"\* \*\*([a-z])\.\*\* (.*?)(?=\n\* \*\*|\Z)", markdown, re.S))
    assert set(bullets) == set(statements)
    for letter, statement in statements.items():
        assert norm(bullets[letter]) == norm(statement), letter
