"""The chapter-5 checks (a PGD adversarial-training step, the certification rule of randomized smoothing,
the signs of gradient masking in an evaluation table): every reference solution passes on any seed, and each
plausible wrong implementation fails the property written for it, on every one of many seeds."""

import pytest
import torch

from grading_helpers import assert_fails_on_every_seed, assert_mistake_fails, assert_passes_on_seeds, assert_set_runs_quickly, ROOT, solution_functions
from mlsec_kit.grading import get_exercise
from mlsec_kit.grading.core import Question

EXERCISE = get_exercise("05_evasion_defenses")
SOURCE = ROOT / "exercises" / "source" / "05_evasion_defenses.ipynb"
QUESTIONS = ("pgd_at_step", "certify_from_counts", "masking_signs")
SEEDS = range(100, 125)  # the grader draws seeds of its own: a mistake must fail on every one


@pytest.fixture(scope="module")
def solutions() -> dict:
    """The setup cell and the cells defining the three functions (not the real-data cell, which trains)."""
    return solution_functions(SOURCE, QUESTIONS)


def test_the_set_declares_the_chapter_questions():
    assert tuple(EXERCISE.questions) == QUESTIONS
    assert EXERCISE.chapter == 5 and EXERCISE.title == "Exercises: defending against evasion"
    assert all(3 <= q.max_score <= 7 for q in EXERCISE.questions.values())
    assert "mlsec_kit.defenses.adversarial_training_step" in EXERCISE.questions["pgd_at_step"].forbid
    assert "mlsec_kit.defenses.smoothing.certify" in EXERCISE.questions["certify_from_counts"].forbid
    assert "mlsec_kit.defenses.smoothing.clopper_pearson_lower" in EXERCISE.questions["certify_from_counts"].forbid


def test_forbidding_a_kit_function_that_does_not_exist_yet_is_harmless():
    """The set forbids chapter-5 kit functions by name; where one is missing, blocking skips it."""
    from mlsec_kit.grading.runner import _block, _resolve

    assert _resolve("mlsec_kit.defenses.no_such_function") is None
    assert _resolve("mlsec_kit.no_such_module.function") is None
    undo = _block([f for q in EXERCISE.questions.values() for f in q.forbid])
    undo()
    Question("05_evasion_defenses", "f", "f()", forbid=("mlsec_kit.defenses.not_written_yet",))


@pytest.mark.parametrize("name", QUESTIONS)
def test_every_solution_passes_every_check_on_many_seeds(solutions, name):
    assert_passes_on_seeds(EXERCISE.questions[name], solutions[name], range(50_000, 50_000 + 40))


def test_the_whole_set_runs_in_seconds(solutions):
    assert_set_runs_quickly(EXERCISE, solutions)


_PGD_START = """
            x_adv = (x + eps * (2 * torch.rand(x.shape, generator=generator) - 1)).clamp(0, 1)"""
_PGD_LOOP = """
            for _ in range(steps):
                x_adv.requires_grad_(True)
                (g,) = torch.autograd.grad(F.cross_entropy(model(x_adv), y), x_adv)
                x_adv = torch.min(torch.max(x_adv.detach() + alpha * g.sign(), x - eps), x + eps).clamp(0, 1)"""
_TRAIN = """
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x_adv), y)
            loss.backward()
            optimizer.step()
            return loss.item()"""
_HEAD = "\n        def pgd_at_step(model, optimizer, x, y, eps, alpha, steps, generator):"


def _at(*parts: str) -> str:
    return _HEAD + "".join(parts)


_CERT_HEAD = """
        def certify_from_counts(counts0, counts, sigma, alpha):
            top = int(counts0.argmax())
            k, n = int(counts[top]), int(counts.sum())"""
_SIGNS_HEAD = """
        def masking_signs(acc, num_classes):
            clean, fgsm, pgd10, pgd100, blackbox, eps_max = acc.T
            white = torch.minimum(torch.minimum(fgsm, pgd10), pgd100)"""

MISTAKES = [
    # ---- pgd_at_step: the step trains on something other than PGD examples, or does not train --------
    ("pgd_at_step", "trains on the clean batch", _at("""
            x_adv = x""", _TRAIN), ["the loss returned", "takes one optimizer step", "starts at", "follows", "draws"], "clean"),
    ("pgd_at_step", "reports the loss after the update", _at(_PGD_START, _PGD_LOOP, """
            optimizer.zero_grad()
            F.cross_entropy(model(x_adv), y).backward()
            optimizer.step()
            with torch.no_grad():
                return F.cross_entropy(model(x_adv), y).item()"""), ["the loss returned", "follows"],
     "before optimizer.step"),
    ("pgd_at_step", "never steps the optimizer", _at(_PGD_START, _PGD_LOOP, """
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x_adv), y)
            loss.backward()
            return loss.item()"""), None, "optimizer.step()"),
    ("pgd_at_step", "gradient ascent on the parameters", _at(_PGD_START, _PGD_LOOP, """
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x_adv), y)
            (-loss).backward()
            optimizer.step()
            return loss.item()"""), ["takes one optimizer step", "follows"], "gradient ascent"),
    ("pgd_at_step", "the attack's gradients reach the update (no zero_grad)", _at(_PGD_START, """
            for _ in range(steps):
                x_adv.requires_grad_(True)
                F.cross_entropy(model(x_adv), y).backward()
                x_adv = torch.min(torch.max(x_adv.detach() + alpha * x_adv.grad.sign(), x - eps), x + eps).clamp(0, 1)
            loss = F.cross_entropy(model(x_adv), y)
            loss.backward()
            optimizer.step()
            return loss.item()"""), None, "zero_grad"),
    ("pgd_at_step", "trains on clean and adversarial examples together", _at(_PGD_START, _PGD_LOOP, """
            optimizer.zero_grad()
            loss = 0.5 * F.cross_entropy(model(x), y) + 0.5 * F.cross_entropy(model(x_adv), y)
            loss.backward()
            optimizer.step()
            return loss.item()"""), None, "the clean loss"),
    ("pgd_at_step", "no projection onto the eps-ball", _at(_PGD_START, """
            for _ in range(steps):
                x_adv.requires_grad_(True)
                (g,) = torch.autograd.grad(F.cross_entropy(model(x_adv), y), x_adv)
                x_adv = (x_adv.detach() + alpha * g.sign()).clamp(0, 1)""", _TRAIN), None, "project back"),
    ("pgd_at_step", "no clipping to [0, 1]", _at("""
            x_adv = x + eps * (2 * torch.rand(x.shape, generator=generator) - 1)
            for _ in range(steps):
                x_adv.requires_grad_(True)
                (g,) = torch.autograd.grad(F.cross_entropy(model(x_adv), y), x_adv)
                x_adv = torch.min(torch.max(x_adv.detach() + alpha * g.sign(), x - eps), x + eps)""", _TRAIN),
     ["trains on points", "follows"], "valid range"),
    ("pgd_at_step", "PGD without a random start", _at("""
            x_adv = x.clone()""", _PGD_LOOP, _TRAIN), ["starts at", "follows", "draws its random start"],
     "no random start"),
    ("pgd_at_step", "FGSM without a random start", _at("""
            x_adv = x.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(F.cross_entropy(model(x_adv), y), x_adv)
            x_adv = (x + eps * g.sign()).clamp(0, 1)""", _TRAIN), None, "no random start"),
    ("pgd_at_step", "one step from the random start (steps ignored)", _at(_PGD_START, """
            x_adv.requires_grad_(True)
            (g,) = torch.autograd.grad(F.cross_entropy(model(x_adv), y), x_adv)
            x_adv = torch.min(torch.max(x_adv.detach() + alpha * g.sign(), x - eps), x + eps).clamp(0, 1)""",
                                                                 _TRAIN), ["starts at", "follows"], "take `steps` steps"),
    ("pgd_at_step", "fast adversarial training instead (one step of 1.25 eps, alpha and steps ignored)", _at(_PGD_START, """
            x_adv.requires_grad_(True)
            (g,) = torch.autograd.grad(F.cross_entropy(model(x_adv), y), x_adv)
            x_adv = torch.min(torch.max(x_adv.detach() + 1.25 * eps * g.sign(), x - eps), x + eps).clamp(0, 1)""",
                                                _TRAIN), None, "keep to the given alpha"),
    ("pgd_at_step", "the attack descends the loss", _at(_PGD_START, """
            for _ in range(steps):
                x_adv.requires_grad_(True)
                (g,) = torch.autograd.grad(F.cross_entropy(model(x_adv), y), x_adv)
                x_adv = torch.min(torch.max(x_adv.detach() - alpha * g.sign(), x - eps), x + eps).clamp(0, 1)""",
                                                _TRAIN), None, "against the gradient"),
    ("pgd_at_step", "random start from torch's global generator", _at("""
            x_adv = (x + eps * (2 * torch.rand(x.shape) - 1)).clamp(0, 1)""", _PGD_LOOP, _TRAIN),
     ["follows", "draws its random start"], "global generator"),
    ("pgd_at_step", "one step too many (range(steps + 1))", _at(_PGD_START, """
            for _ in range(steps + 1):
                x_adv.requires_grad_(True)
                (g,) = torch.autograd.grad(F.cross_entropy(model(x_adv), y), x_adv)
                x_adv = torch.min(torch.max(x_adv.detach() + alpha * g.sign(), x - eps), x + eps).clamp(0, 1)""",
                                              _TRAIN), ["starts at", "follows"], "one step more"),
    ("pgd_at_step", "projection and clipping only once, after the loop", _at("""
            x_adv = x + eps * (2 * torch.rand(x.shape, generator=generator) - 1)
            for _ in range(steps):
                x_adv.requires_grad_(True)
                (g,) = torch.autograd.grad(F.cross_entropy(model(x_adv), y), x_adv)
                x_adv = x_adv.detach() + alpha * g.sign()
            x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)""", _TRAIN), ["follows"],
     "after every step"),
    ("pgd_at_step", "a Gaussian random start (0.5 eps N(0, 1), clamped to the ball)", _at("""
            x_adv = (x + (0.5 * eps * torch.randn(x.shape, generator=generator)).clamp(-eps, eps)).clamp(0, 1)""",
                                                                  _PGD_LOOP, _TRAIN), ["starts at", "follows"],
     "not Gaussian"),
    # ---- certify_from_counts -------------------------------------------------------------------------
    ("certify_from_counts", "radius from the point estimate", _CERT_HEAD + """
            p_lower = beta.ppf(alpha, k, n - k + 1)
            if p_lower <= 0.5:
                return -1, 0.0
            return top, float(sigma * norm.ppf(k / n))""", ["the radius is", "when all n votes"], "point estimate"),
    ("certify_from_counts", "never abstains", _CERT_HEAD + """
            return top, float(sigma * norm.ppf(beta.ppf(alpha, k, n - k + 1)))""", ["abstains", "selects"],
     "abstain"),
    ("certify_from_counts", "sigma Phi^-1(p) without a confidence bound", _CERT_HEAD + """
            if k / n <= 0.5:
                return -1, 0.0
            return top, float(sigma * norm.ppf(k / n))""", None, "point estimate"),
    ("certify_from_counts", "a two-sided bound at alpha / 2", _CERT_HEAD + """
            p_lower = beta.ppf(alpha / 2, k, n - k + 1)
            if p_lower <= 0.5:
                return -1, 0.0
            return top, float(sigma * norm.ppf(p_lower))""", None, "one-sided"),
    ("certify_from_counts", "the upper confidence bound", _CERT_HEAD + """
            p = beta.ppf(1 - alpha, k, n - k + 1)
            if p <= 0.5:
                return -1, 0.0
            return top, float(sigma * norm.ppf(p))""", None, "expected"),
    ("certify_from_counts", "class chosen from the estimation counts", """
        def certify_from_counts(counts0, counts, sigma, alpha):
            top = int(counts.argmax())
            k, n = int(counts[top]), int(counts.sum())
            p_lower = beta.ppf(alpha, k, n - k + 1)
            if p_lower <= 0.5:
                return -1, 0.0
            return top, float(sigma * norm.ppf(p_lower))""", ["selects"], "select with n0"),
    ("certify_from_counts", "bound from the selection counts", """
        def certify_from_counts(counts0, counts, sigma, alpha):
            top = int(counts0.argmax())
            k, n = int(counts0[top]), int(counts0.sum())
            p_lower = beta.ppf(alpha, k, n - k + 1)
            if p_lower <= 0.5:
                return -1, 0.0
            return top, float(sigma * norm.ppf(p_lower))""", None, "expected"),
    ("certify_from_counts", "abstains with a nonzero radius", _CERT_HEAD + """
            p_lower = beta.ppf(alpha, k, n - k + 1)
            cls = top if p_lower > 0.5 else -1
            return cls, float(sigma * norm.ppf(p_lower))""", ["abstains", "selects"], "radius 0.0"),
    ("certify_from_counts", "half the radius (sigma / 2)", _CERT_HEAD + """
            p_lower = beta.ppf(alpha, k, n - k + 1)
            if p_lower <= 0.5:
                return -1, 0.0
            return top, float(sigma / 2 * norm.ppf(p_lower))""", None, "expected"),
    ("certify_from_counts", "a normal-approximation bound", _CERT_HEAD + """
            p = k / n
            p_lower = p - norm.ppf(1 - alpha) * (p * (1 - p) / n) ** 0.5
            if p_lower <= 0.5:
                return -1, 0.0
            return top, float(sigma * norm.ppf(min(p_lower, 1 - 1e-12)))""", None, "expected"),
    # ---- masking_signs -------------------------------------------------------------------------------
    ("masking_signs", "more steps raising accuracy read as the sign (the direction reversed)", _SIGNS_HEAD + """
            signs = [fgsm < pgd10 - 0.01, pgd100 > pgd10 + 0.01, blackbox < white - 0.01, eps_max > 1 / num_classes + 0.01]
            return sum(s.long() for s in signs)""", ["counts each", "treats", "adds up"], "had not converged"),
    ("masking_signs", "black-box compared with the clean accuracy", _SIGNS_HEAD + """
            signs = [fgsm < pgd10 - 0.01, pgd100 < pgd10 - 0.01, blackbox < clean - 0.01, eps_max > 1 / num_classes + 0.01]
            return sum(s.long() for s in signs)""", None, "0 signs"),
    ("masking_signs", "black-box compared with PGD-100 only", _SIGNS_HEAD + """
            signs = [fgsm < pgd10 - 0.01, pgd100 < pgd10 - 0.01, blackbox < pgd100 - 0.01, eps_max > 1 / num_classes + 0.01]
            return sum(s.long() for s in signs)""", ["treats"], "within the 0.01 tolerance"),
    ("masking_signs", "no noise tolerance anywhere", _SIGNS_HEAD + """
            signs = [fgsm < pgd10, pgd100 < pgd10, blackbox < white, eps_max > 1 / num_classes]
            return sum(s.long() for s in signs)""", None, "within the 0.01 tolerance"),
    ("masking_signs", "the reviewer's: black-box against PGD-100, no tolerance, more steps reversed, 0.1 fixed", """
        def masking_signs(acc, num_classes):
            clean, fgsm, pgd10, pgd100, bb, em = acc.T
            return (fgsm < pgd10).long() + (pgd100 > pgd10).long() + (bb < pgd100).long() + (em > 0.1).long()""",
     None, "expected"),
    ("masking_signs", "a tolerance of 0.02", _SIGNS_HEAD + """
            signs = [fgsm < pgd10 - 0.02, pgd100 < pgd10 - 0.02, blackbox < white - 0.02, eps_max > 1 / num_classes + 0.02]
            return sum(s.long() for s in signs)""", ["treats"], "expected 1"),
    ("masking_signs", "the largest budget held to chance without the tolerance", _SIGNS_HEAD + """
            signs = [fgsm < pgd10 - 0.01, pgd100 < pgd10 - 0.01, blackbox < white - 0.01, eps_max > 1 / num_classes]
            return sum(s.long() for s in signs)""", ["treats"], "above chance"),
    ("masking_signs", "a fixed threshold of 0.1 for the largest budget, whatever the number of classes", _SIGNS_HEAD + """
            signs = [fgsm < pgd10 - 0.01, pgd100 < pgd10 - 0.01, blackbox < white - 0.01, eps_max > 0.1 + 0.01]
            return sum(s.long() for s in signs)""", None, "classes"),
    ("masking_signs", "zero accuracy demanded at the largest budget (the unbounded-attack item)", _SIGNS_HEAD + """
            signs = [fgsm < pgd10 - 0.01, pgd100 < pgd10 - 0.01, blackbox < white - 0.01, eps_max > 0.01]
            return sum(s.long() for s in signs)""", None, "chance"),
    ("masking_signs", "FGSM weaker than PGD read as a sign", _SIGNS_HEAD + """
            signs = [fgsm > pgd10 + 0.01, pgd100 < pgd10 - 0.01, blackbox < white - 0.01, eps_max > 1 / num_classes + 0.01]
            return sum(s.long() for s in signs)""", None, "0 signs"),
    ("masking_signs", "forgets the single-step item", _SIGNS_HEAD + """
            signs = [pgd100 < pgd10 - 0.01, blackbox < white - 0.01, eps_max > 1 / num_classes + 0.01]
            return sum(s.long() for s in signs)""", ["counts each", "treats", "adds up"], "expected"),
    ("masking_signs", "flags instead of counts", _SIGNS_HEAD + """
            signs = [fgsm < pgd10 - 0.01, pgd100 < pgd10 - 0.01, blackbox < white - 0.01, eps_max > 1 / num_classes + 0.01]
            return (sum(s.long() for s in signs) > 0).long()""", ["adds up"], "expected"),
    ("masking_signs", "the highest PGD accuracy looks masked", """
        def masking_signs(acc, num_classes):
            out = torch.zeros(len(acc), dtype=torch.int64)
            out[acc[:, 3].argmax()] = 1
            return out""", None, "scored"),
    ("masking_signs", "a guess: nothing is ever masked", """
        def masking_signs(acc, num_classes):
            return torch.zeros(len(acc), dtype=torch.int64)""", ["counts each", "treats", "adds up"], "expected 1"),
    ("masking_signs", "a guess: every defence breaks one item", """
        def masking_signs(acc, num_classes):
            return torch.ones(len(acc), dtype=torch.int64)""", None, "0 signs"),
    ("masking_signs", "a fraction of items instead of a count", _SIGNS_HEAD + """
            signs = [fgsm < pgd10 - 0.01, pgd100 < pgd10 - 0.01, blackbox < white - 0.01, eps_max > 1 / num_classes + 0.01]
            return sum(s.double() for s in signs) / 4""", None, "integer counts"),
]


def _namespace() -> dict:
    import torch.nn.functional as F
    from scipy.stats import beta, norm
    return {"torch": torch, "F": F, "beta": beta, "norm": norm}


@pytest.mark.parametrize("name, label, code, failing, message", MISTAKES, ids=[m[1] for m in MISTAKES])
def test_each_mistake_fails_its_property(name, label, code, failing, message):
    assert_mistake_fails(EXERCISE.questions[name], code, name, _namespace(), failing, message)


@pytest.mark.parametrize("name, label, code, failing, message", MISTAKES, ids=[m[1] for m in MISTAKES])
def test_each_mistake_fails_on_every_seed(name, label, code, failing, message):
    assert_fails_on_every_seed(EXERCISE.questions[name], code, name, _namespace(), SEEDS, label)


def test_every_question_has_listed_mistakes():
    assert {m[0] for m in MISTAKES} == set(QUESTIONS)


# Executing the student and source notebooks is covered for every set by test_grading_notebooks.py.
