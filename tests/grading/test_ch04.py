"""The chapter-4 checks (query accounting and one SimBA step): every reference solution passes on any seed,
each typical mistake fails the property written for it, and both notebooks run in a real kernel."""
import re
import textwrap
import time

import nbclient
import pytest
import torch

from grading_helpers import ROOT, exec_notebook_code, read
from mlsec_kit.grading import get_exercise, run_question

EXERCISE = get_exercise("04_evasion_blackbox")
SOURCE = ROOT / "exercises" / "source" / "04_evasion_blackbox.ipynb"
STUDENT = ROOT / "exercises" / "04_evasion_blackbox.ipynb"
QUESTIONS = ("charge", "simba_step")


@pytest.fixture(scope="module")
def solutions() -> dict:
    """The setup cell and the cells defining the two functions (not the real-data cell, which trains)."""
    nb = read(SOURCE)
    nb.cells = [c for c in nb.cells if c.cell_type == "code" and
                ("import mlsec_kit" in c.source or re.search(r"^def (charge|simba_step)\(", c.source, re.M))]
    return exec_notebook_code(nb)


def test_the_set_declares_the_chapter_questions():
    assert tuple(EXERCISE.questions) == QUESTIONS
    assert EXERCISE.chapter == 4 and EXERCISE.title == "Exercises: black-box evasion attacks"
    assert all(3 <= q.max_score <= 5 for q in EXERCISE.questions.values())


@pytest.mark.parametrize("name", QUESTIONS)
def test_every_solution_passes_every_check_on_many_seeds(solutions, name):
    question = EXERCISE.questions[name]
    for seed in range(40):
        result = run_question(question, solutions[name], seed=30_000 + seed)
        assert result.passed, result.report()


def test_the_kit_oracle_accounting_passes_too():
    from mlsec_kit.attacks.evasion import Oracle

    def charge(queries, index):  # the kit's Oracle does the accounting: read it back
        oracle = Oracle(torch.nn.Flatten())
        oracle._queries = queries.clone()
        oracle(torch.zeros(len(index), 2), index=index)
        return oracle.queries[: len(queries)]
    result = run_question(EXERCISE.questions["charge"], charge, seed=5)
    assert result.passed, result.report()


def test_the_whole_set_runs_in_seconds(solutions):
    start = time.monotonic()
    for name, question in EXERCISE.questions.items():
        run_question(question, solutions[name], seed=7)
    assert time.monotonic() - start < 5


MISTAKES = [
    ("charge", "fancy indexing drops repeats", """
        def charge(queries, index):
            out = queries.clone(); out[index] += 1
            return out""", ["the total grows", "each example"], "bincount"),
    ("charge", "in place", """
        def charge(queries, index):
            queries += torch.bincount(index, minlength=len(queries))
            return queries""", ["returns an int64 tensor"], "in place"),
    ("charge", "one per call", """
        def charge(queries, index):
            return queries + 1""", ["the total grows", "each example"], "grew by"),
    ("simba_step", "keeps any step", """
        def simba_step(probs, x_orig, x_adv, y, p, q, eps):
            c = x_adv.clone(); c.view(-1)[q] = (c.view(-1)[q] - eps).clamp(0, 1)
            return c, probs(c)[0, y].item()""", ["never raises"], "rose"),
    ("simba_step", "always asks both", """
        def simba_step(probs, x_orig, x_adv, y, p, q, eps):
            best, best_p = x_adv.clone(), p
            for s in (-eps, eps):
                c = x_adv.clone(); c.view(-1)[q] = (c.view(-1)[q] + s).clamp(0, 1)
                pc = probs(c)[0, y].item()
                if pc < best_p: best, best_p = c, pc
            return best, best_p""", ["asks at most two"], "only when the first did not help"),
    ("simba_step", "no clipping", """
        def simba_step(probs, x_orig, x_adv, y, p, q, eps):
            for s in (-eps, eps):
                c = x_adv.clone(); c.view(-1)[q] = c.view(-1)[q] + s
                pc = probs(c)[0, y].item()
                if pc < p: return c, pc
            return x_adv.clone(), p""", ["changes only coordinate q"], "clip"),
    ("simba_step", "moves every pixel", """
        def simba_step(probs, x_orig, x_adv, y, p, q, eps):
            for s in (-eps, eps):
                c = (x_adv + s).clamp(0, 1).clamp(x_orig - eps, x_orig + eps)
                pc = probs(c)[0, y].item()
                if pc < p: return c, pc
            return x_adv.clone(), p""", None, "coordinates other than q"),
    ("simba_step", "in place", """
        def simba_step(probs, x_orig, x_adv, y, p, q, eps):
            x_adv.view(-1)[q] = (x_adv.view(-1)[q] - eps).clamp(0, 1)
            return x_adv, probs(x_adv)[0, y].item()""", None, "in place"),
]


@pytest.mark.parametrize("name, label, code, failing, message", MISTAKES, ids=[m[1] for m in MISTAKES])
def test_each_mistake_fails_its_property(name, label, code, failing, message):
    namespace = {"torch": torch}
    exec(textwrap.dedent(code), namespace)
    result = run_question(EXERCISE.questions[name], namespace[name], seed=3)
    failed = [p for p in result.properties if not p.passed]
    assert failed, result.report()
    if failing is not None:  # exactly these properties fail, the others still earn their points
        expected = {p.description for p in result.properties if p.description.startswith(tuple(failing))}
        assert len(expected) == len(failing)
        assert {p.description for p in failed} == expected, result.report()
    assert any(message in p.message for p in failed), result.report()
    assert all("\n" not in p.message for p in result.properties)


# ---- the notebooks, in a real kernel --------------------------------------------------------------------
def _execute(path, cwd):
    nb = read(path)
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
                            ).execute()
    return nb


def _check_output(nb, name: str) -> str:
    cell = next(c for c in nb.cells if c.cell_type == "code" and c.source == f'check("{name}", {name})')
    assert [o.output_type for o in cell.outputs] == ["stream"]
    return cell.outputs[0].text


def _last_text(nb) -> str:
    return "".join(o.text for o in nb.cells[-1].outputs if o.output_type == "stream")

# Executing the student and source notebooks is covered for every set by test_grading_notebooks.py.
