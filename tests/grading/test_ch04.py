"""The chapter-4 checks (query accounting and one SimBA step): every reference solution passes on any seed,
each typical mistake fails the property written for it, and both notebooks run in a real kernel."""
import re

import pytest
import torch

from grading_helpers import assert_mistake_fails, assert_passes_on_seeds, assert_set_runs_quickly, ROOT, exec_notebook_code, read
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
    assert_passes_on_seeds(EXERCISE.questions[name], solutions[name], range(30_000, 30_000 + 40))


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
    assert_set_runs_quickly(EXERCISE, solutions)


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
    assert_mistake_fails(EXERCISE.questions[name], code, name, {"torch": torch}, failing, message)


# Executing the student and source notebooks is covered for every set by test_grading_notebooks.py.
