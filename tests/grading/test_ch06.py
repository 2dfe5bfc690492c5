"""The chapter-6 checks (random label flipping, flipping the labels a clean model is surest of, the number of
flips that overturn a class): every reference solution passes on any seed, and each plausible wrong
implementation fails the property written for it, on every one of many seeds."""

import pytest
import torch

from grading_helpers import (ROOT, assert_fails_on_every_seed, assert_forbidden_names_resolve, assert_mistake_fails,
                             assert_passes_on_seeds, assert_set_runs_quickly, run_blocked, solution_functions)
from mlsec_kit.grading import get_exercise, run_question

EXERCISE = get_exercise("06_poisoning")
SOURCE = ROOT / "exercises" / "source" / "06_poisoning.ipynb"
QUESTIONS = ("random_label_flip", "confident_label_flip", "flips_to_overturn")
SEEDS = range(100, 125)  # the grader draws seeds of its own: a mistake must fail on every one


@pytest.fixture(scope="module")
def solutions() -> dict:
    """The setup cell and the cells defining the three functions (not the real-data cell, which trains)."""
    return solution_functions(SOURCE, QUESTIONS)


def test_the_set_declares_the_chapter_questions():
    assert tuple(EXERCISE.questions) == QUESTIONS
    assert EXERCISE.chapter == 6 and EXERCISE.title == "Exercises: poisoning the training set"
    assert all(3 <= q.max_score <= 7 for q in EXERCISE.questions.values())
    for name in ("random_label_flip", "confident_label_flip"):
        forbid = EXERCISE.questions[name].forbid
        assert "mlsec_kit.attacks.poisoning.random_label_flip" in forbid
        assert "mlsec_kit.attacks.poisoning.targeted_label_flip" in forbid
        assert "mlsec_kit.attacks.poisoning.num_poisoned" in forbid
        assert "mlsec_kit.attacks.poisoning.backdoor._choose" in forbid  # the kit's draw of the rows


def test_the_forbidden_kit_functions_exist():
    """Each name the set forbids resolves to a kit function (a renamed one would silently stop being blocked)."""
    assert_forbidden_names_resolve(EXERCISE)


def test_the_kit_itself_passes_the_checks():
    """The kit's attacks follow the rules the questions state (round(rate * n), a uniform other class, the
    margin rule), so a student's answer and the chapter's numbers agree."""
    from mlsec_kit.attacks.poisoning import random_label_flip, targeted_label_flip
    from mlsec_kit.grading import run_question

    class Fixed(torch.nn.Module):  # a "model" whose logits are given
        def __init__(self, logits):
            super().__init__()
            self.logits = logits

        def forward(self, x):
            return self.logits

    def confident(x, y, logits, *, rate):
        return targeted_label_flip(x, y, rate=rate, model=Fixed(logits))

    for seed in range(5):
        assert run_question(EXERCISE.questions["random_label_flip"], random_label_flip, seed=seed).passed
        assert run_question(EXERCISE.questions["confident_label_flip"], confident, seed=seed).passed


def test_the_kit_and_the_checks_own_helpers_are_blocked_while_grading():
    """The kit's attacks and this module's reference helpers answer the questions; imported under any name,
    they earn nothing while graded (the grader blocks them in the submission's process)."""
    from mlsec_kit.attacks.poisoning import random_label_flip as kit_flip
    from mlsec_kit.grading.sets import ch06

    def flip(x, y, *, rate, num_classes, generator):
        return kit_flip(x, y, rate=rate, num_classes=num_classes, generator=generator)

    def confident(x, y, logits, *, rate):
        k = round(rate * len(y))
        idx = ch06._margins(logits, y).argsort(descending=True)[:k].sort().values
        y_poisoned = y.clone()
        y_poisoned[idx] = ch06._runner_up(logits, y)[idx]
        return x.clone(), y_poisoned, idx

    def flip_by_gradient(x, y, *, rate, num_classes, generator):  # steps=0: the gradient attack's random start
        from mlsec_kit.attacks.poisoning import gradient_poisoning
        return gradient_poisoning(x, y, rate=rate, x_val=x, y_val=y, steps=0, step_size=1.0,
                                  num_classes=num_classes, generator=generator)

    overturn = ch06._overturn
    for name, fn in (("random_label_flip", flip), ("random_label_flip", flip_by_gradient),
                     ("confident_label_flip", confident), ("flips_to_overturn", overturn)):
        question = EXERCISE.questions[name]
        assert run_question(question, fn, seed=1).passed  # a correct answer ...
        assert run_blocked(question, fn).score == 0  # ... that earns nothing
    assert run_question(EXERCISE.questions["flips_to_overturn"], overturn, seed=1).passed  # unblocked again


def test_differently_built_correct_answers_pass():
    """A correct answer built another way (numpy's generator seeded from the torch one, log-softmax margins,
    int32 indices, float64 inputs, a numpy integer count) earns full marks: the checks test properties, not one implementation."""
    import textwrap

    import numpy as np

    code = """
    def random_label_flip(x, y, *, rate, num_classes, generator):
        rng = np.random.default_rng(int(torch.randint(0, 2**31, (1,), generator=generator)))
        k = round(rate * len(y))
        idx = np.sort(rng.choice(len(y), size=k, replace=False))
        labels = y.numpy().copy()
        labels[idx] = (labels[idx] + rng.integers(1, num_classes, size=k)) % num_classes
        return x.double(), torch.from_numpy(labels), torch.from_numpy(idx).int()

    def confident_label_flip(x, y, logits, *, rate):
        k = round(rate * len(y))
        log_p = torch.log_softmax(logits.double(), 1)  # log-probability margins equal logit margins
        others = log_p.scatter(1, y[:, None], float("-inf"))
        margin = log_p.gather(1, y[:, None]).squeeze(1) - others.max(1).values
        idx = torch.topk(margin, k).indices.sort().values.int()
        y_poisoned = y.clone()
        y_poisoned[idx.long()] = others[idx.long()].argmax(1)
        return x, y_poisoned, idx

    def flips_to_overturn(n, num_classes, concentrated):
        spread = 1 if concentrated else num_classes - 1
        return np.int64(n) * spread // (spread + 1) + 1  # a numpy integer
    """
    namespace = {"torch": torch, "np": np}
    exec(textwrap.dedent(code), namespace)
    for name in QUESTIONS:
        assert_passes_on_seeds(EXERCISE.questions[name], namespace[name], range(20))


@pytest.mark.parametrize("name", QUESTIONS)
def test_every_solution_passes_every_check_on_many_seeds(solutions, name):
    assert_passes_on_seeds(EXERCISE.questions[name], solutions[name], range(50_000, 50_000 + 40))


def test_the_whole_set_runs_in_seconds(solutions):
    assert_set_runs_quickly(EXERCISE, solutions)


_RF = "\n        def random_label_flip(x, y, *, rate, num_classes, generator):"
_K = """
            k = round(rate * len(y))"""
_ROWS = """
            idx = torch.randperm(len(y), generator=generator)[:k].sort().values"""
_SHIFT = """
            new = (y[idx] + torch.randint(1, num_classes, (k,), generator=generator)) % num_classes"""
_RETURN = """
            y_poisoned = y.clone()
            y_poisoned[idx] = new
            return x.clone(), y_poisoned, idx"""


def _rf(*parts: str) -> str:
    return _RF + "".join(parts)


_CF = """
        def confident_label_flip(x, y, logits, *, rate):
            k = round(rate * len(y))
            others = logits.scatter(1, y[:, None], float("-inf"))
            true = logits.gather(1, y[:, None]).squeeze(1)
            margin = true - others.max(1).values"""
_CF_RETURN = """
            y_poisoned = y.clone()
            y_poisoned[idx] = new
            return x.clone(), y_poisoned, idx"""
_CF_TOP = """
            idx = margin.argsort(descending=True)[:k].sort().values"""
_CF_NEW = """
            new = others[idx].argmax(1)"""
_OV = "\n        def flips_to_overturn(n, num_classes, concentrated):"

MISTAKES = [
    # ---- random_label_flip ---------------------------------------------------------------------------------
    ("random_label_flip", "flips y in place", _rf(_K, _ROWS, _SHIFT, """
            y[idx] = new
            return x, y, idx"""), None, "changed y in place"),
    ("random_label_flip", "edits x in place (clamps it)", _rf(_K, _ROWS, _SHIFT, """
            x.clamp_(-1, 1)""", _RETURN), None, "changed x in place"),
    ("random_label_flip", "floor: int(rate * n)", _rf("""
            k = int(rate * len(y))""", _ROWS, _SHIFT, _RETURN), ["poisons round"], "floor(rate * n)"),
    ("random_label_flip", "ceil(rate * n)", _rf("""
            k = math.ceil(rate * len(y))""", _ROWS, _SHIFT, _RETURN), ["poisons round"], "ceil(rate * n)"),
    ("random_label_flip", "halves rounded up: int(rate * n + 0.5)", _rf("""
            k = int(rate * len(y) + 0.5)""", _ROWS, _SHIFT, _RETURN), ["poisons round"], "rounds halves up"),
    ("random_label_flip", "a label drawn from all classes, own included: (y + randint(0, C)) % C", _rf(_K, _ROWS, """
            new = (y[idx] + torch.randint(0, num_classes, (k,), generator=generator)) % num_classes""", _RETURN),
     ["gives every flipped row", "draws each new label"], "own class"),
    ("random_label_flip", "a label drawn from all classes", _rf(_K, _ROWS, """
            new = torch.randint(0, num_classes, (k,), generator=generator)""", _RETURN),
     ["gives every flipped row", "draws each new label"], "own class"),
    ("random_label_flip", "a draw from all classes moved to y + 1 when it hits the row's own", _rf(_K, _ROWS, """
            new = torch.randint(0, num_classes, (k,), generator=generator)
            new = torch.where(new == y[idx], (new + 1) % num_classes, new)""", _RETURN),
     ["draws each new label"], "uniform draw"),
    ("random_label_flip", "a draw from all classes, redrawn once, then y + 1", _rf(_K, _ROWS, """
            new = torch.randint(0, num_classes, (k,), generator=generator)
            again = torch.randint(0, num_classes, (k,), generator=generator)
            new = torch.where(new == y[idx], again, new)
            new = torch.where(new == y[idx], (new + 1) % num_classes, new)""", _RETURN),
     ["draws each new label"], "moved one class up"),
    ("random_label_flip", "always the next class, y + 1", _rf(_K, _ROWS, """
            new = (y[idx] + 1) % num_classes""", _RETURN), ["draws each new label"], "fixed class"),
    ("random_label_flip", "num_classes taken as y.max() + 1", _rf(_K, _ROWS, """
            c = int(y.max()) + 1
            new = (y[idx] + torch.randint(1, c, (k,), generator=generator)) % c""", _RETURN),
     ["draws each new label"], "y.max() + 1"),
    ("random_label_flip", "a shift without the modulo", _rf(_K, _ROWS, """
            new = y[idx] + torch.randint(1, num_classes, (k,), generator=generator)""", _RETURN),
     None, "modulo num_classes"),
    ("random_label_flip", "indices unsorted", _rf(_K, """
            idx = torch.randperm(len(y), generator=generator)[:k]""", _SHIFT, _RETURN),
     ["returns the sorted"], "not sorted"),
    ("random_label_flip", "rows drawn with replacement", _rf(_K, """
            idx = torch.randint(0, len(y), (k,), generator=generator).sort().values""", _SHIFT, _RETURN),
     None, "twice"),
    ("random_label_flip", "returns other indices than the rows it flipped", _rf(_K, _ROWS, _SHIFT, """
            y_poisoned = y.clone()
            y_poisoned[idx] = new
            return x.clone(), y_poisoned, torch.randperm(len(y), generator=generator)[:k].sort().values"""),
     None, "not in poisoned_indices"),
    ("random_label_flip", "returns a boolean mask", _rf(_K, _ROWS, _SHIFT, """
            y_poisoned = y.clone()
            y_poisoned[idx] = new
            return x.clone(), y_poisoned, y_poisoned != y"""), None, "boolean mask"),
    ("random_label_flip", "always the first k rows", _rf(_K, """
            idx = torch.arange(k)""", _SHIFT, _RETURN), ["chooses the rows"], "poisoned the same rows"),
    ("random_label_flip", "torch's global generator", _rf(_K, """
            idx = torch.randperm(len(y))[:k].sort().values
            new = (y[idx] + torch.randint(1, num_classes, (k,))) % num_classes""", _RETURN),
     ["chooses the rows"], "global generator"),
    ("random_label_flip", "never the last row: torch.randperm(n - 1)", _rf(_K, """
            idx = torch.randperm(len(y) - 1, generator=generator)[:k].sort().values""", _SHIFT, _RETURN),
     None, "never chosen"),  # (and it crashes at rate 1)
    ("random_label_flip", "every other row only", _rf(_K, """
            rows = torch.arange(0, len(y), 2) if 2 * k <= len(y) else torch.arange(len(y))
            idx = rows[torch.randperm(len(rows), generator=generator)[:k]].sort().values""", _SHIFT, _RETURN),
     ["chooses the rows"], "never chosen"),
    ("random_label_flip", "a random block of the rows sorted by label", _rf(_K, """
            start = int(torch.randint(0, len(y) - k + 1, (1,), generator=generator))
            idx = torch.argsort(y, stable=True)[start:start + k].sort().values""", _SHIFT, _RETURN),
     ["chooses the rows"], "a uniform choice puts"),
    ("random_label_flip", "one shift drawn for all rows", _rf(_K, _ROWS, """
            new = (y[idx] + int(torch.randint(1, num_classes, (1,), generator=generator))) % num_classes""",
                                                                _RETURN), ["draws each new label"], "uniform draw"),
    ("random_label_flip", "a shift from randint(1, num_classes - 1): never the class just below", _rf(_K, _ROWS, """
            new = (y[idx] + torch.randint(1, max(2, num_classes - 1), (k,), generator=generator)) % num_classes""",
                                                                _RETURN), ["draws each new label"], "uniform draw"),
    ("random_label_flip", "returns x itself, changed", _rf(_K, _ROWS, _SHIFT, """
            y_poisoned = y.clone()
            y_poisoned[idx] = new
            return x + 0.1, y_poisoned, idx"""), None, "differs from x"),
    # ---- confident_label_flip ------------------------------------------------------------------------------
    ("confident_label_flip", "flips y in place", _CF + _CF_TOP + _CF_NEW + """
            y[idx] = new
            return x, y, idx""", None, "in place"),
    ("confident_label_flip", "floor count", _CF + """
            idx = margin.argsort(descending=True)[:int(rate * len(y))].sort().values""" + _CF_NEW + _CF_RETURN,
     ["leaves its inputs"], "floor(rate * n)"),
    ("confident_label_flip", "indices unsorted", _CF + """
            idx = margin.argsort(descending=True)[:k]""" + _CF_NEW + _CF_RETURN, ["leaves its inputs"],
     "not sorted"),
    ("confident_label_flip", "the smallest margins", _CF + """
            idx = margin.argsort()[:k].sort().values""" + _CF_NEW + _CF_RETURN, ["flips the rows"], "SMALLEST"),
    ("confident_label_flip", "the gap between the two largest logits", _CF + """
            top2 = logits.topk(2, dim=1).values
            idx = (top2[:, 0] - top2[:, 1]).argsort(descending=True)[:k].sort().values""" + _CF_NEW + _CF_RETURN,
     ["flips the rows"], "two largest logits"),
    ("confident_label_flip", "the true class's logit alone", _CF + """
            idx = true.argsort(descending=True)[:k].sort().values""" + _CF_NEW + _CF_RETURN,
     ["flips the rows"], "true class's logit alone"),
    ("confident_label_flip", "the true logit minus the largest of all logits", _CF + """
            idx = (true - logits.max(1).values).argsort(descending=True)[:k].sort().values""" + _CF_NEW + _CF_RETURN,
     ["flips the rows"], "largest margin"),
    ("confident_label_flip", "the margin of the softmax probabilities", _CF + """
            p = logits.softmax(1)
            pm = p.gather(1, y[:, None]).squeeze(1) - p.scatter(1, y[:, None], -1.0).max(1).values
            idx = pm.argsort(descending=True)[:k].sort().values""" + _CF_NEW + _CF_RETURN,
     ["flips the rows"], "softmax probabilities"),
    ("confident_label_flip", "the true class's probability alone", _CF + """
            idx = logits.softmax(1).gather(1, y[:, None]).squeeze(1).argsort(descending=True)[:k].sort().values"""
     + _CF_NEW + _CF_RETURN, ["flips the rows"], "probabilit"),
    ("confident_label_flip", "the true logit minus the mean of the others", _CF + """
            idx = (true - (logits.sum(1) - true) / (logits.shape[1] - 1)).argsort(descending=True)[:k].sort().values"""
     + _CF_NEW + _CF_RETURN, ["flips the rows"], "MEAN of the other"),
    ("confident_label_flip", "the first k rows", _CF + """
            idx = torch.arange(k)""" + _CF_NEW + _CF_RETURN, ["flips the rows"], "first rows"),
    ("confident_label_flip", "the predicted class as the new label", _CF + _CF_TOP + """
            new = logits[idx].argmax(1)""" + _CF_RETURN, ["gives each"], "own class"),
    ("confident_label_flip", "the second largest logit of all classes", _CF + _CF_TOP + """
            new = logits[idx].topk(2, dim=1).indices[:, 1]""" + _CF_RETURN, ["gives each"], "largest logit among"),
    ("confident_label_flip", "a random other class", _CF + _CF_TOP + """
            new = (y[idx] + torch.randint(1, logits.shape[1], (k,))) % logits.shape[1]""" + _CF_RETURN,
     ["gives each"], "expected"),
    # ---- flips_to_overturn ---------------------------------------------------------------------------------
    ("flips_to_overturn", "a strict majority whatever the spread", _OV + """
            return n // 2 + 1""", ["spread evenly", "a tie"], "strict majority"),
    ("flips_to_overturn", "a tie overturns", _OV + """
            s = 1 if concentrated else num_classes - 1
            return math.ceil(n * s / (s + 1))""", ["returns a Python int", "a tie"], "tie"),
    ("flips_to_overturn", "the threshold as a float", _OV + """
            s = 1 if concentrated else num_classes - 1
            return n * s / (s + 1)""", None, "Python int"),
    ("flips_to_overturn", "spread over all num_classes classes", _OV + """
            s = 1 if concentrated else num_classes
            return n * s // (s + 1) + 1""", None, "expected"),
    ("flips_to_overturn", "the threshold rounded, not floored, plus one", _OV + """
            s = 1 if concentrated else num_classes - 1
            return round(n * s / (s + 1)) + 1""", None, "expected"),
    ("flips_to_overturn", "the rate instead of the count", _OV + """
            s = 1 if concentrated else num_classes - 1
            return s / (s + 1)""", None, "Python int"),
]


def _namespace() -> dict:
    import math
    return {"torch": torch, "math": math}


@pytest.mark.parametrize("name, label, code, failing, message", MISTAKES, ids=[m[1] for m in MISTAKES])
def test_each_mistake_fails_its_property(name, label, code, failing, message):
    assert_mistake_fails(EXERCISE.questions[name], code, name, _namespace(), failing, message)


@pytest.mark.parametrize("name, label, code, failing, message", MISTAKES, ids=[m[1] for m in MISTAKES])
def test_each_mistake_fails_on_every_seed(name, label, code, failing, message):
    assert_fails_on_every_seed(EXERCISE.questions[name], code, name, _namespace(), SEEDS, label)


def test_every_question_has_listed_mistakes():
    assert {m[0] for m in MISTAKES} == set(QUESTIONS)


@pytest.mark.notebooks
@pytest.mark.parametrize("label, failing, message", [
    ("flips y in place", None, "changed y in place"),
    ("torch's global generator", ["chooses the rows"], "global generator")])
def test_mistakes_are_caught_through_the_sandbox(tmp_path, repo_env, label, failing, message):
    """Graded for real, the student's function runs in another process: labels flipped in place, and draws
    from the global generator, must still show in the grader's process."""
    import textwrap

    import nbformat

    from grading_helpers import defining_cell, read
    from mlsec_kit.grading.runner import grade_notebook

    nb = read(ROOT / "exercises" / "06_poisoning.ipynb")
    code = next(m[2] for m in MISTAKES if m[:2] == ("random_label_flip", label))
    defining_cell(nb, "random_label_flip").source = textwrap.dedent(code).strip()
    path = tmp_path / "submission.ipynb"
    nbformat.write(nb, str(path))
    result = grade_notebook(path, EXERCISE, seed=5, timeout=60, cell_timeout=60)
    flips = next(q for q in result.questions if q.name == "random_label_flip")
    failed = [p for p in flips.properties if not p.passed]
    assert failed and all(message in p.message for p in failed), flips.report()
    if failing is not None:
        assert [p.description for p in failed] == \
            [p.description for p in flips.properties if p.description.startswith(tuple(failing))], flips.report()


# Executing the student and source notebooks is covered for every set by test_grading_notebooks.py.
