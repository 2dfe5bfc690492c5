"""The chapter-4 checks (query accounting, one SimBA step, success-versus-queries curves): every reference
solution passes on any seed, and each plausible wrong implementation fails the property written for it, on
every one of many seeds."""

import pytest
import torch

from grading_helpers import assert_fails_on_every_seed, assert_mistake_fails, assert_passes_on_seeds, assert_set_runs_quickly, ROOT, solution_functions
from mlsec_kit.grading import get_exercise, run_question

EXERCISE = get_exercise("04_evasion_blackbox")
SOURCE = ROOT / "exercises" / "source" / "04_evasion_blackbox.ipynb"
STUDENT = ROOT / "exercises" / "04_evasion_blackbox.ipynb"
QUESTIONS = ("charge", "simba_step", "success_curve")
SEEDS = range(100, 125)  # the grader draws seeds of its own: a mistake must fail on every one


@pytest.fixture(scope="module")
def solutions() -> dict:
    """The setup cell and the cells defining the two functions (not the real-data cell, which trains)."""
    return solution_functions(SOURCE, QUESTIONS)


def test_the_set_declares_the_chapter_questions():
    assert tuple(EXERCISE.questions) == QUESTIONS
    assert EXERCISE.chapter == 4 and EXERCISE.title == "Exercises: black-box evasion attacks"
    assert all(3 <= q.max_score <= 7 for q in EXERCISE.questions.values())
    assert "mlsec_kit.attacks.evasion.simba" in EXERCISE.questions["simba_step"].forbid
    assert "mlsec_kit.attacks.evasion.Oracle" in EXERCISE.questions["charge"].forbid


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
            return queries + 1""", ["the total grows", "each example", "an example this query"], "grew by"),
    ("charge", "counts distinct examples", """
        def charge(queries, index):
            return queries + torch.bincount(index.unique(), minlength=len(queries))""",
     ["the total grows", "each example"], "grew by"),
    ("charge", "bincount without minlength", """
        def charge(queries, index):
            return queries + torch.bincount(index)""", None, "minlength"),
    ("simba_step", "keeps a step that does not change p (<=)", """
        def simba_step(probs, x_orig, x_adv, y, scores, q, eps):
            for s in (-eps, eps):
                c = x_adv.clone(); c.view(-1)[q] = (c.view(-1)[q] + s).clamp(0, 1)
                sc = probs(c)
                if sc[0, y] <= scores[0, y]: return c, sc
            return x_adv.clone(), scores""", None, "strictly"),
    ("simba_step", "queries the clipped no-op step", """
        def simba_step(probs, x_orig, x_adv, y, scores, q, eps):
            for s in (-eps, eps):
                c = x_adv.clone(); c.view(-1)[q] = (c.view(-1)[q] + s).clamp(0, 1)
                sc = probs(c)
                if sc[0, y] < scores[0, y]: return c, sc
            return x_adv.clone(), scores""", ["asks at most two"], "skip the query"),
    ("simba_step", "gives up when stepping down is a no-op", """
        def simba_step(probs, x_orig, x_adv, y, scores, q, eps):
            c = x_adv.clone(); c.view(-1)[q] = (c.view(-1)[q] - eps).clamp(0, 1)
            if torch.equal(c, x_adv): return x_adv.clone(), scores
            for s in (-eps, eps):
                c = x_adv.clone(); c.view(-1)[q] = (c.view(-1)[q] + s).clamp(0, 1)
                sc = probs(c)
                if sc[0, y] < scores[0, y]: return c, sc
            return x_adv.clone(), scores""", None, "should end at eps"),
    ("simba_step", "keeps any step", """
        def simba_step(probs, x_orig, x_adv, y, scores, q, eps):
            c = x_adv.clone(); c.view(-1)[q] = (c.view(-1)[q] - eps).clamp(0, 1)
            return c, probs(c)""", None, "rose"),
    ("simba_step", "always asks both", """
        def simba_step(probs, x_orig, x_adv, y, scores, q, eps):
            best, best_s = x_adv.clone(), scores
            for s in (-eps, eps):
                c = x_adv.clone(); c.view(-1)[q] = (c.view(-1)[q] + s).clamp(0, 1)
                sc = probs(c)
                if sc[0, y] < best_s[0, y]: best, best_s = c, sc
            return best, best_s""", ["asks at most two"], "only when the first did not help"),
    ("simba_step", "only ever tries -eps", """
        def simba_step(probs, x_orig, x_adv, y, scores, q, eps):
            c = x_adv.clone(); c.view(-1)[q] = (c.view(-1)[q] - eps).clamp(0, 1)
            sc = probs(c)
            if sc[0, y] < scores[0, y]: return c, sc
            return x_adv.clone(), scores""", None, "query the second"),
    ("simba_step", "no clipping", """
        def simba_step(probs, x_orig, x_adv, y, scores, q, eps):
            for s in (-eps, eps):
                c = x_adv.clone(); c.view(-1)[q] = c.view(-1)[q] + s
                sc = probs(c)
                if sc[0, y] < scores[0, y]: return c, sc
            return x_adv.clone(), scores""", None, "clip"),
    ("simba_step", "clips to the eps-ball but not to [0, 1]", """
        def simba_step(probs, x_orig, x_adv, y, scores, q, eps):
            for s in (-eps, eps):
                c = x_adv.clone(); c.view(-1)[q] = c.view(-1)[q] + s
                c = torch.max(torch.min(c, x_orig + eps), x_orig - eps)
                sc = probs(c)
                if sc[0, y] < scores[0, y]: return c, sc
            return x_adv.clone(), scores""", None, "clip"),
    ("simba_step", "moves every pixel", """
        def simba_step(probs, x_orig, x_adv, y, scores, q, eps):
            for s in (-eps, eps):
                c = (x_adv + s).clamp(0, 1).clamp(x_orig - eps, x_orig + eps)
                sc = probs(c)
                if sc[0, y] < scores[0, y]: return c, sc
            return x_adv.clone(), scores""", None, "coordinates other than q"),
    ("simba_step", "in place", """
        def simba_step(probs, x_orig, x_adv, y, scores, q, eps):
            x_adv.view(-1)[q] = (x_adv.view(-1)[q] - eps).clamp(0, 1)
            return x_adv, probs(x_adv)""", None, "in place"),
    ("simba_step", "returns the scores of x_adv after a kept step", """
        def simba_step(probs, x_orig, x_adv, y, scores, q, eps):
            for s in (-eps, eps):
                c = x_adv.clone(); c.view(-1)[q] = (c.view(-1)[q] + s).clamp(0, 1)
                if probs(c)[0, y] < scores[0, y]: return c, scores
            return x_adv.clone(), scores""", None, "scores of the point you return"),
    ("simba_step", "re-queries x_adv", """
        def simba_step(probs, x_orig, x_adv, y, scores, q, eps):
            p = probs(x_adv)[0, y]
            for s in (-eps, eps):
                c = x_adv.clone(); c.view(-1)[q] = (c.view(-1)[q] + s).clamp(0, 1)
                sc = probs(c)
                if sc[0, y] < p: return c, sc
            return x_adv.clone(), scores""", None, "queries"),
    ("success_curve", "divides by the fooled inputs only", """
        def success_curve(queries, fooled, budgets):
            return torch.tensor([(fooled & (queries <= b)).sum().item() / max(int(fooled.sum()), 1) for b in budgets])""",
     None, "failures included"),
    ("success_curve", "strictly fewer queries than the budget", """
        def success_curve(queries, fooled, budgets):
            return torch.tensor([(fooled & (queries < b)).float().mean().item() for b in budgets])""",
     None, "at most"),
    ("success_curve", "counts failures that stopped within the budget", """
        def success_curve(queries, fooled, budgets):
            return torch.tensor([(queries <= b).float().mean().item() for b in budgets])""", None, "fooled"),
    ("success_curve", "counts instead of fractions", """
        def success_curve(queries, fooled, budgets):
            return torch.tensor([float((fooled & (queries <= b)).sum()) for b in budgets])""", None, "expected"),
    ("success_curve", "the overall success rate at every budget", """
        def success_curve(queries, fooled, budgets):
            return torch.tensor([fooled.float().mean().item()] * len(budgets))""", None, "expected"),
]


@pytest.mark.parametrize("name, label, code, failing, message", MISTAKES, ids=[m[1] for m in MISTAKES])
def test_each_mistake_fails_its_property(name, label, code, failing, message):
    assert_mistake_fails(EXERCISE.questions[name], code, name, {"torch": torch}, failing, message)


@pytest.mark.parametrize("name, label, code, failing, message", MISTAKES, ids=[m[1] for m in MISTAKES])
def test_each_mistake_fails_on_every_seed(name, label, code, failing, message):
    assert_fails_on_every_seed(EXERCISE.questions[name], code, name, {"torch": torch}, SEEDS, label)


def test_every_question_has_listed_mistakes():
    assert {m[0] for m in MISTAKES} == set(QUESTIONS)


# Executing the student and source notebooks is covered for every set by test_grading_notebooks.py.
