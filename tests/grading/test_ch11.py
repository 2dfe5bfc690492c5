"""The chapter-11 checks (per-example clipping, the noisy gradient of one DP-SGD step, the Rényi DP of the Gaussian
mechanism and its conversion to (epsilon, delta), which statements about DP-SGD are true): every reference
solution passes on any seed, correct answers written differently pass too, and each plausible wrong
implementation fails, on every one of many seeds, with a message that says what to fix."""
import math
import textwrap

import numpy as np
import pytest
import torch

from grading_helpers import (ROOT, assert_blank_scores_nothing, assert_fails_on_every_seed,
                             assert_forbidden_names_resolve, assert_mistake_fails, assert_passes_on_seeds,
                             assert_set_runs_quickly, run_blocked, solution_functions)
from mlsec_kit import dp
from mlsec_kit.grading import get_exercise, run_question
from mlsec_kit.grading.sets import ch11

EXERCISE_ID = "11_dp_sgd"
EXERCISE = get_exercise(EXERCISE_ID)
SOURCE = ROOT / "exercises" / "source" / f"{EXERCISE_ID}.ipynb"
QUESTIONS = ("clip_gradients", "noisy_gradient", "gaussian_rdp", "rdp_to_dp", "dp_sgd_statements")
SEEDS = range(1100, 1124)  # the grader draws seeds of its own: a mistake must fail on every one


@pytest.fixture(scope="module")
def solutions() -> dict:
    """The setup cell and the cells defining the five functions (not the real-data cell, which trains)."""
    return solution_functions(SOURCE, QUESTIONS)


def _namespace() -> dict:
    return {"torch": torch, "math": math, "np": np}


def _student(code: str, name: str):
    namespace = _namespace()
    exec(textwrap.dedent(code), namespace)
    return namespace[name]


def test_the_set_declares_the_chapter_questions():
    assert tuple(EXERCISE.questions) == QUESTIONS
    assert EXERCISE.title == "Exercises: differentially private deep learning" and EXERCISE.chapter == 11
    assert all(3 <= q.max_score <= 6 for q in EXERCISE.questions.values())
    forbid = {name: set(q.forbid) for name, q in EXERCISE.questions.items()}
    assert {"mlsec_kit.dp.clip_factors", "mlsec_kit.dp.clip_and_sum"} <= forbid["clip_gradients"]
    assert {"mlsec_kit.dp.clip_factors", "mlsec_kit.dp.clip_and_sum", "mlsec_kit.dp.dp_sgd_step"} \
        <= forbid["noisy_gradient"]
    assert "mlsec_kit.dp.gaussian_rdp" in forbid["gaussian_rdp"]
    assert {"mlsec_kit.dp.rdp_to_dp", "mlsec_kit.dp.rdp_epsilon"} <= forbid["rdp_to_dp"]
    # the module's reference helpers answer questions too
    assert "mlsec_kit.grading.sets.ch11._reference_clip" in forbid["clip_gradients"]
    assert "mlsec_kit.grading.sets.ch11._reference_conversion" in forbid["rdp_to_dp"]


def test_the_source_notebook_mentions_its_chapter():
    text = SOURCE.read_text(encoding="utf-8")
    assert "chapter 11" in text.lower()


# ---- answers built on the kit: they pass unblocked, and earn nothing of value once the grader blocks them ----
def _kit_clip(grads, max_grad_norm):
    factors = dp.clip_factors(grads.norm(dim=1), max_grad_norm=max_grad_norm)
    return grads * factors[:, None]


def _kit_noisy(grads, max_grad_norm, noise_multiplier, expected_batch_size, generator):
    if noise_multiplier < 0:
        raise ValueError("noise_multiplier must be >= 0")
    if not expected_batch_size > 0:
        raise ValueError("expected_batch_size must be > 0")
    total = dp.clip_and_sum({"w": grads}, max_grad_norm=max_grad_norm)["w"]
    return (total + noise_multiplier * max_grad_norm * torch.randn(total.shape, generator=generator)) \
        / expected_batch_size


def _kit_rdp(alpha, sensitivity, sigma):
    if not alpha > 1:
        raise ValueError("alpha must be > 1")
    return float(dp.gaussian_rdp(sigma=sigma, orders=alpha, sensitivity=sensitivity)[0])


def _kit_conversion(orders, rdp, delta):
    if not 0 < delta < 1:
        raise ValueError("delta must be in (0, 1)")
    return dp.rdp_to_dp(orders=orders, rdp=rdp, delta=delta, method="mironov")


def _checker_clip(grads, max_grad_norm):
    if not max_grad_norm > 0:
        raise ValueError("max_grad_norm must be > 0")
    return ch11._reference_clip(grads, max_grad_norm)


def test_every_forbidden_name_is_a_kit_function_and_is_blocked_while_grading():
    """The names resolve (a typo would block nothing), and the kit's own answers lose the value checks."""

    assert_forbidden_names_resolve(EXERCISE)
    for name, fn in [("clip_gradients", _kit_clip), ("noisy_gradient", _kit_noisy), ("gaussian_rdp", _kit_rdp),
                     ("rdp_to_dp", _kit_conversion), ("clip_gradients", _checker_clip)]:
        question = EXERCISE.questions[name]
        assert run_question(question, fn, seed=1).passed, run_question(question, fn, seed=1).report()
        result = run_blocked(question, fn)
        # only the checks of bad input, which never reach the kit, may still pass
        assert result.score <= 1, result.report()


# ---- the reference solutions ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", QUESTIONS)
def test_every_solution_passes_every_check_on_many_seeds(solutions, name):
    assert_passes_on_seeds(EXERCISE.questions[name], solutions[name], SEEDS)


def test_the_whole_set_runs_in_seconds(solutions):
    assert_set_runs_quickly(EXERCISE, solutions, limit=15)


def test_a_blank_notebook_scores_nothing():
    assert_blank_scores_nothing(EXERCISE)


CORRECT_VARIANTS = """
def clip_opacus(grads, max_grad_norm):
    if max_grad_norm <= 0:
        raise ValueError("max_grad_norm must be positive")
    factors = (max_grad_norm / (grads.norm(dim=1) + 1e-6)).clamp(max=1.0)
    return grads * factors[:, None]

def clip_loop(grads, max_grad_norm):
    if not max_grad_norm > 0:
        raise ValueError(f"max_grad_norm={max_grad_norm} is not > 0")
    rows = []
    for g in grads:
        n = float(g.double().norm())
        rows.append(g if n <= max_grad_norm else g * (max_grad_norm / n))
    return torch.stack(rows) if rows else grads.clone()

def noisy_normal(grads, max_grad_norm, noise_multiplier, expected_batch_size, generator):
    for name, value, ok in (("max_grad_norm", max_grad_norm, max_grad_norm > 0),
                            ("noise_multiplier", noise_multiplier, noise_multiplier >= 0),
                            ("expected_batch_size", expected_batch_size, expected_batch_size > 0)):
        if not ok:
            raise ValueError(f"{name} out of range: {value}")
    g = grads.double()
    factors = torch.minimum(torch.ones(len(g), dtype=torch.float64),
                            max_grad_norm / (g.norm(dim=1) + 1e-6))
    total = (g * factors[:, None]).sum(0)
    std = noise_multiplier * max_grad_norm
    noise = torch.normal(0.0, std, size=total.shape, generator=generator, dtype=torch.float64) if std > 0 else 0.0
    return (total + noise) / expected_batch_size

def rdp_numpy(alpha, sensitivity, sigma):
    if alpha <= 1:
        raise ValueError("alpha must be > 1")
    if sigma <= 0:
        raise ValueError("sigma must be > 0")
    return float(np.float64(alpha) * sensitivity ** 2 / 2 / sigma ** 2)

def conversion_numpy(orders, rdp, delta):
    if delta <= 0 or delta >= 1:
        raise ValueError("delta must be in (0, 1)")
    a, r = np.asarray(orders, dtype=np.float64), np.asarray(rdp, dtype=np.float64)
    eps = r - np.log(delta) / (a - 1)
    i = int(np.argmin(eps))
    return float(eps[i]), float(a[i])

def rdp_float32(alpha, sensitivity, sigma):
    if alpha <= 1:
        raise ValueError("alpha must be > 1")
    if sigma <= 0:
        raise ValueError("sigma must be > 0")
    # PyTorch's default dtype: a relative error of about 6e-8
    return (torch.tensor(alpha) * torch.tensor(sensitivity) ** 2 / (2 * torch.tensor(sigma) ** 2)).item()

def conversion_float32(orders, rdp, delta):
    if not 0 < delta < 1:
        raise ValueError("delta must be in (0, 1)")
    a = torch.tensor(orders)   # float32: the argmin may land on a near-tied order, rounded to float32
    e = torch.tensor(rdp) + math.log(1 / delta) / (a - 1)
    i = int(e.argmin())
    return e[i].item(), a[i].item()

def conversion_float32_order_from_list(orders, rdp, delta):
    if not 0 < delta < 1:
        raise ValueError("delta must be in (0, 1)")
    e = torch.tensor(rdp) + math.log(1 / delta) / (torch.tensor(orders) - 1)
    i = int(e.argmin())
    return e[i].item(), orders[i]

def statements_spaced():
    return "a, C; e".lower()
"""


def test_differently_built_correct_answers_pass():
    """Opacus's 1e-6 in the clip factor, a loop over rows, torch.normal in float64, NumPy, float32 (PyTorch's
    default dtype), letters with separators: all earn full marks."""
    namespace = _namespace()
    exec(textwrap.dedent(CORRECT_VARIANTS), namespace)
    for name, fn in [("clip_gradients", "clip_opacus"), ("clip_gradients", "clip_loop"),
                     ("noisy_gradient", "noisy_normal"), ("gaussian_rdp", "rdp_numpy"),
                     ("rdp_to_dp", "conversion_numpy"), ("dp_sgd_statements", "statements_spaced")]:
        assert_passes_on_seeds(EXERCISE.questions[name], namespace[fn], range(12))
    for name, fn in [("gaussian_rdp", "rdp_float32"), ("rdp_to_dp", "conversion_float32"),
                     ("rdp_to_dp", "conversion_float32_order_from_list")]:
        assert_passes_on_seeds(EXERCISE.questions[name], namespace[fn], SEEDS)


# ---- typical mistakes: each fails the property written for it, with a message that names the fix ----------------
CLIP_BATCH = """
    def clip_gradients(grads, max_grad_norm):
        total = grads.sum(0).norm()            # the batch's gradient, clipped as a whole
        return grads * min(1.0, max_grad_norm / float(total))"""
CLIP_FROBENIUS = """
    def clip_gradients(grads, max_grad_norm):
        return grads * min(1.0, max_grad_norm / float(grads.norm()))   # one norm for the whole (B, d) matrix"""
CLIP_MEAN = """
    def clip_gradients(grads, max_grad_norm):
        return grads * min(1.0, max_grad_norm / float(grads.mean(0).norm()))"""
CLIP_NO_MIN = """
    def clip_gradients(grads, max_grad_norm):
        if max_grad_norm <= 0:
            raise ValueError("max_grad_norm must be > 0")
        return grads * (max_grad_norm / grads.norm(dim=1, keepdim=True))   # scales short rows up"""
CLIP_DIM0 = """
    def clip_gradients(grads, max_grad_norm):
        return grads * (max_grad_norm / grads.norm(dim=0, keepdim=True)).clamp(max=1.0)   # norm of each column"""
CLIP_L1 = """
    def clip_gradients(grads, max_grad_norm):
        return grads * (max_grad_norm / grads.norm(p=1, dim=1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0)"""
CLIP_SQUARED = """
    def clip_gradients(grads, max_grad_norm):
        return grads * (max_grad_norm / grads.pow(2).sum(1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0)"""
CLIP_MAX = """
    def clip_gradients(grads, max_grad_norm):
        return grads * (max_grad_norm / grads.norm(dim=1, keepdim=True).clamp_min(1e-12)).clamp(min=1.0)"""
CLIP_IN_PLACE = """
    def clip_gradients(grads, max_grad_norm):
        return grads.mul_((max_grad_norm / grads.norm(dim=1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0))"""
CLIP_COORDINATES = """
    def clip_gradients(grads, max_grad_norm):
        return grads.clamp(-max_grad_norm, max_grad_norm)"""

_NOISY_HEAD = """
    def noisy_gradient(grads, max_grad_norm, noise_multiplier, expected_batch_size, generator):
        c, s, b = max_grad_norm, noise_multiplier, expected_batch_size
        if not (c > 0 and s >= 0 and b > 0):
            raise ValueError("max_grad_norm, noise_multiplier or expected_batch_size out of range")
        clipped = grads * (c / grads.norm(dim=1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0)
        z = torch.randn(grads.shape[1], generator=generator)
"""


def _noisy(body: str) -> str:
    return _NOISY_HEAD + textwrap.indent(textwrap.dedent(body).strip("\n"), " " * 8)


NOISY_BATCH_CLIP = """
    def noisy_gradient(grads, max_grad_norm, noise_multiplier, expected_batch_size, generator):
        # the kit's broken step: clip the average, then add the noise the correct step adds to the average
        mean = grads.mean(0) if len(grads) else torch.zeros(grads.shape[1])
        clipped = mean * min(1.0, max_grad_norm / max(float(mean.norm()), 1e-12))
        z = torch.randn(grads.shape[1], generator=generator)
        return clipped + noise_multiplier * max_grad_norm * z / expected_batch_size"""
NOISY_NO_MIN = """
    def noisy_gradient(grads, max_grad_norm, noise_multiplier, expected_batch_size, generator):
        c = max_grad_norm
        clipped = grads * (c / grads.norm(dim=1, keepdim=True))
        z = torch.randn(grads.shape[1], generator=generator)
        return (clipped.sum(0) + noise_multiplier * c * z) / expected_batch_size"""
NOISY_TWICE = _noisy("return (clipped.sum(0) + s * c * z / b) / b")
NOISY_SIGMA = _noisy("return (clipped.sum(0) + s * z) / b")
NOISY_ACTUAL_SIZE = _noisy("return (clipped.sum(0) + s * c * z) / len(grads)")
NOISY_AFTER_AVERAGE = _noisy("return clipped.sum(0) / b + s * c * z")
NOISY_SQRT_BBAR = _noisy("return (clipped.sum(0) + s * c * z / math.sqrt(b)) / b")
NOISY_SIGMA_SQUARED = _noisy("return (clipped.sum(0) + s * s * c * z) / b")
NOISY_SQRT_SIGMA = _noisy("return (clipped.sum(0) + math.sqrt(s) * c * z) / b")
NOISY_RESEEDED = _noisy("""
z = torch.randn(grads.shape[1], generator=torch.Generator().manual_seed(0))   # reseeded: the same noise every call
return (clipped.sum(0) + s * c * z) / b""")
NOISY_SCALAR = """
    def noisy_gradient(grads, max_grad_norm, noise_multiplier, expected_batch_size, generator):
        c = max_grad_norm
        clipped = grads * (c / grads.norm(dim=1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0)
        z = torch.randn(1, generator=generator)          # one draw for every coordinate
        return (clipped.sum(0) + noise_multiplier * c * z) / expected_batch_size"""
NOISY_GLOBAL_RNG = _noisy("return (clipped.sum(0) + s * c * torch.randn(grads.shape[1])) / b")
NOISY_LAPLACE = _noisy("""
e = torch.empty(2, grads.shape[1]).exponential_(generator=generator)
return (clipped.sum(0) + s * c / math.sqrt(2) * (e[0] - e[1])) / b""")

RDP_NO_ALPHA = """
    def gaussian_rdp(alpha, sensitivity, sigma):
        return sensitivity ** 2 / (2 * sigma ** 2)"""
RDP_DELTA = """
    def gaussian_rdp(alpha, sensitivity, sigma):
        return alpha * sensitivity / (2 * sigma ** 2)"""
RDP_SIGMA = """
    def gaussian_rdp(alpha, sensitivity, sigma):
        return alpha * sensitivity ** 2 / (2 * sigma)"""
RDP_NO_HALF = """
    def gaussian_rdp(alpha, sensitivity, sigma):
        return alpha * sensitivity ** 2 / sigma ** 2"""

CONV_SIGN = """
    def rdp_to_dp(orders, rdp, delta):
        return min((r - math.log(1 / delta) / (a - 1), a) for a, r in zip(orders, rdp))"""
CONV_BALLE = """
    def rdp_to_dp(orders, rdp, delta):
        return min((r + math.log((a - 1) / a) - (math.log(delta) + math.log(a)) / (a - 1), a)
                   for a, r in zip(orders, rdp))"""
CONV_LOG10 = """
    def rdp_to_dp(orders, rdp, delta):
        return min((r + math.log10(1 / delta) / (a - 1), a) for a, r in zip(orders, rdp))"""
CONV_FIRST = """
    def rdp_to_dp(orders, rdp, delta):
        return rdp[0] + math.log(1 / delta) / (orders[0] - 1), orders[0]"""
CONV_MAX = """
    def rdp_to_dp(orders, rdp, delta):
        return max((r + math.log(1 / delta) / (a - 1), a) for a, r in zip(orders, rdp))"""
CONV_EPS_ONLY = """
    def rdp_to_dp(orders, rdp, delta):
        return min(r + math.log(1 / delta) / (a - 1) for a, r in zip(orders, rdp))"""
CONV_INDEX = """
    def rdp_to_dp(orders, rdp, delta):
        eps = [r + math.log(1 / delta) / (a - 1) for a, r in zip(orders, rdp)]
        i = min(range(len(eps)), key=eps.__getitem__)
        return eps[i], i"""
CONV_SWAPPED = """
    def rdp_to_dp(orders, rdp, delta):
        eps, alpha = min((r + math.log(1 / delta) / (a - 1), a) for a, r in zip(orders, rdp))
        return alpha, eps"""
CONV_MIN_RDP_ORDER = """
    def rdp_to_dp(orders, rdp, delta):
        eps = min(r + math.log(1 / delta) / (a - 1) for a, r in zip(orders, rdp))
        return eps, orders[min(range(len(rdp)), key=rdp.__getitem__)]"""
CONV_SORTED_ORDERS = """
    def rdp_to_dp(orders, rdp, delta):
        return min((r + math.log(1 / delta) / (a - 1), a) for a, r in zip(sorted(orders), rdp))"""
CONV_INVERTED = """
    def rdp_to_dp(orders, rdp, delta):
        return min((r + math.log(1 / delta) * (a - 1) / a, a) for a, r in zip(orders, rdp))"""
CONV_ALPHA = """
    def rdp_to_dp(orders, rdp, delta):
        return min((r + math.log(1 / delta) / a, a) for a, r in zip(orders, rdp))"""

MISTAKES = [
    ("clip_gradients", "batch clipped by the norm of its sum", CLIP_BATCH,
     None, "same factor"),
    ("clip_gradients", "no min(1, .)", CLIP_NO_MIN, ["never lengthens", "clips each example"], "never above 1"),
    ("clip_gradients", "per-coordinate clamp", CLIP_COORDINATES, None, "clamps each coordinate"),
    ("noisy_gradient", "clip after averaging", NOISY_BATCH_CLIP, None, "average clipped as a whole"),
    ("noisy_gradient", "noise divided twice", NOISY_TWICE, ["adds Gaussian noise", "an empty batch"],
     "divided by the batch size twice"),
    ("noisy_gradient", "sigma for sigma C", NOISY_SIGMA, ["adds Gaussian noise", "an empty batch"],
     "sigma times C"),
    ("noisy_gradient", "actual batch size", NOISY_ACTUAL_SIZE, None, "actual batch size"),
    ("noisy_gradient", "noise after averaging", NOISY_AFTER_AVERAGE, ["adds Gaussian noise", "an empty batch"],
     "added after averaging"),
    ("noisy_gradient", "one draw for all coordinates", NOISY_SCALAR, None, "one number for all"),
    ("noisy_gradient", "global RNG", NOISY_GLOBAL_RNG, ["draws its noise"], "seeded alike"),
    ("noisy_gradient", "Laplace noise", NOISY_LAPLACE, ["adds Gaussian noise"], "not Gaussian"),
    ("gaussian_rdp", "without alpha", RDP_NO_ALPHA, None, "zCDP"),
    ("gaussian_rdp", "Delta for Delta^2", RDP_DELTA, None, "square the sensitivity"),
    ("rdp_to_dp", "wrong sign", CONV_SIGN, ["epsilon is the minimum", "reproduces TF Privacy", "raises"], "sign"),
    ("rdp_to_dp", "Balle et al.'s conversion", CONV_BALLE,
     ["epsilon is the minimum", "reproduces TF Privacy", "raises"], "Mironov"),
    ("rdp_to_dp", "first order only", CONV_FIRST, ["epsilon is the minimum", "reproduces TF Privacy", "raises"],
     "minimise over all"),
    ("noisy_gradient", "sigma^2 C", NOISY_SIGMA_SQUARED, None, "its variance is sigma^2 C^2"),
    ("noisy_gradient", "reseeded generator", NOISY_RESEEDED, ["adds Gaussian noise", "draws its noise"],
     "do not reseed"),
    ("rdp_to_dp", "epsilon only", CONV_EPS_ONLY, ["returns a pair", "epsilon is the minimum", "reproduces TF Privacy",
                                                   "raises"], "(epsilon, alpha)"),
    ("rdp_to_dp", "pair swapped", CONV_SWAPPED, ["returns a pair", "epsilon is the minimum", "reproduces TF Privacy",
                                                  "raises"], "(epsilon, alpha) in that order"),
]


@pytest.mark.parametrize("name, label, code, failing, message", MISTAKES, ids=[m[1] for m in MISTAKES])
def test_each_mistake_fails_its_property(name, label, code, failing, message):
    assert_mistake_fails(EXERCISE.questions[name], code, name, _namespace(), failing, message)


WRONG_EVERY_SEED = [
    ("clip_gradients", CLIP_BATCH, "clipping the batch gradient (norm of the sum)"),
    ("clip_gradients", CLIP_FROBENIUS, "clipping the batch gradient (norm of the whole matrix)"),
    ("clip_gradients", CLIP_MEAN, "clipping the batch gradient (norm of the mean)"),
    ("clip_gradients", CLIP_NO_MIN, "C / ||g|| without min(1, .)"),
    ("clip_gradients", CLIP_COORDINATES, "clamping each coordinate"),
    ("clip_gradients", CLIP_DIM0, "the norm over dim=0 (each column)"),
    ("clip_gradients", CLIP_L1, "the L1 norm"),
    ("clip_gradients", CLIP_SQUARED, "the squared norm"),
    ("clip_gradients", CLIP_MAX, "max(1, .) in place of min(1, .)"),
    ("clip_gradients", CLIP_IN_PLACE, "clipping grads in place"),
    ("noisy_gradient", NOISY_BATCH_CLIP, "clipping the average (the kit's broken step)"),
    ("noisy_gradient", NOISY_NO_MIN, "C / ||g|| without min(1, .)"),
    ("noisy_gradient", NOISY_TWICE, "noise divided by the batch size twice"),
    ("noisy_gradient", NOISY_SIGMA, "sigma in place of sigma C"),
    ("noisy_gradient", NOISY_ACTUAL_SIZE, "dividing by the actual batch size"),
    ("noisy_gradient", NOISY_AFTER_AVERAGE, "noise added after averaging"),
    ("noisy_gradient", NOISY_SCALAR, "one noise draw for all coordinates"),
    ("noisy_gradient", NOISY_GLOBAL_RNG, "noise from the global RNG"),
    ("noisy_gradient", NOISY_LAPLACE, "Laplace noise of the right std"),
    ("noisy_gradient", NOISY_SQRT_BBAR, "noise sigma C / sqrt(B_bar) on the sum"),
    ("noisy_gradient", NOISY_SIGMA_SQUARED, "noise std sigma^2 C"),
    ("noisy_gradient", NOISY_SQRT_SIGMA, "noise std sqrt(sigma) C"),
    ("noisy_gradient", NOISY_RESEEDED, "a generator reseeded inside the function"),
    ("gaussian_rdp", RDP_NO_ALPHA, "RDP without the factor alpha"),
    ("gaussian_rdp", RDP_DELTA, "Delta in place of Delta^2"),
    ("gaussian_rdp", RDP_SIGMA, "sigma in place of sigma^2"),
    ("gaussian_rdp", RDP_NO_HALF, "the factor 1/2 missing"),
    ("rdp_to_dp", CONV_SIGN, "the wrong sign of the log(1/delta) term"),
    ("rdp_to_dp", CONV_BALLE, "Balle et al.'s conversion where Mironov's is asked"),
    ("rdp_to_dp", CONV_LOG10, "log10"),
    ("rdp_to_dp", CONV_FIRST, "the first order only"),
    ("rdp_to_dp", CONV_MAX, "the largest epsilon over the orders"),
    ("rdp_to_dp", CONV_ALPHA, "dividing by alpha, not alpha - 1"),
    ("rdp_to_dp", CONV_EPS_ONLY, "epsilon only"),
    ("rdp_to_dp", CONV_INDEX, "the index in place of the order"),
    ("rdp_to_dp", CONV_SWAPPED, "(alpha, epsilon) swapped"),
    ("rdp_to_dp", CONV_MIN_RDP_ORDER, "the order of the smallest RDP"),
    ("rdp_to_dp", CONV_SORTED_ORDERS, "orders sorted but not the RDP values"),
    ("rdp_to_dp", CONV_INVERTED, "(alpha - 1) / alpha in place of 1 / (alpha - 1)"),
]


@pytest.mark.parametrize("name, code, label", WRONG_EVERY_SEED, ids=[w[2] for w in WRONG_EVERY_SEED])
def test_a_wrong_answer_fails_on_every_seed(name, code, label):
    assert_fails_on_every_seed(EXERCISE.questions[name], code, name, _namespace(), SEEDS, label)


@pytest.mark.parametrize("answer", ["", "abcdefg", "ac", "ace", "acef", "b", "xyz"])
def test_statements_earn_full_marks_only_when_exact(answer):
    result = run_question(EXERCISE.questions["dp_sgd_statements"], lambda: answer, seed=0)
    assert result.passed == (answer == "ace"), result.report()
    if answer == "acef":  # complete but not sound: the message says why f is false
        assert [p.passed for p in result.properties] == [False, True, False]
        assert "Poisson" in result.properties[2].message or "independently" in result.properties[2].message


# ---- the instances keep the promises the every-seed guarantees rest on ----------------------------------------
def test_the_instances_keep_their_promises():
    for seed in range(200):
        rng = torch.Generator().manual_seed(seed)
        grads, c = ch11._clip_instance(rng)
        norms = grads.double().norm(dim=1)
        assert not 0.4 < c < 2.5
        assert bool((norms >= 1.5 * c * (1 - 1e-6)).any()) and bool((norms <= 0.6 * c * (1 + 1e-6)).any())
        assert grads.shape[1] >= 3
        short, c = ch11._clip_instance(rng, kind="short")
        assert bool((short.norm(dim=1) == 0).any()) and float(short.double().norm(dim=1).max()) <= 0.6 * c * (1 + 1e-6)
        inst = ch11._step_instance(rng)
        b, bbar = len(inst["grads"]), inst["bbar"]
        assert abs(b - bbar) >= 0.2 * bbar and bbar >= 6 and 3 <= inst["d"] <= 6
        assert 0.4 <= inst["sigma"] <= 0.8 or 1.4 <= inst["sigma"] <= 2.5  # never near 1
        n = inst["grads"].double().norm(dim=1)
        assert bool((n >= 1.5 * inst["c"] * (1 - 1e-6)).any()) and bool((n <= 0.6 * inst["c"] * (1 + 1e-6)).any())
        # the clipped sum is far from 0: dividing by B instead of B_bar shows
        clipped_sum = ch11._reference_clip(inst["grads"], inst["c"]).sum(0)
        assert float(clipped_sum.norm()) > 0.2 * float(ch11._reference_clip(inst["grads"], inst["c"]).norm(dim=1).sum())
        assert ch11._step_instance(rng, empty=True)["grads"].shape[0] == 0
        alpha, delta_, sigma = ch11._rdp_instance(rng)
        assert 1.5 <= alpha <= 64 and not 0.6 < delta_ < 1.8 and not 0.7 < sigma < 1.5
        for kind in ("gaussian", "convex"):
            orders, rdp, delta = ch11._curve_instance(rng, kind)
            _, best = ch11._reference_conversion(orders, rdp, delta)
            rank = sorted(orders).index(best)
            assert 2 <= rank <= len(orders) - 3 and 0 < delta < 1 and len(set(orders)) == len(orders)
            if kind == "convex":  # shuffled: the first and the last order given are not the extremes
                assert orders != sorted(orders) or len(orders) < 3


def test_the_reference_answers_agree_with_the_kit():
    """The checks' own answers: the clipped rows and their sum as the kit's clip_factors and clip_and_sum give
    them (the kit adds 1e-6 to the norm), the Gaussian's RDP as the kit's gaussian_rdp, Mironov's conversion as
    the kit's rdp_to_dp, and TF Privacy's published 3.01 at order 8.8 for its MNIST tutorial."""
    for seed in range(30):
        rng = torch.Generator().manual_seed(seed)
        grads, c = ch11._clip_instance(rng)
        ours = ch11._reference_clip(grads, c)
        kit = grads.double() * dp.clip_factors(grads.double().norm(dim=1), max_grad_norm=c)[:, None]
        assert float((ours - kit).norm(dim=1).max()) <= 1e-5 * c
        inst = ch11._step_instance(rng)
        total = dp.clip_and_sum({"w": inst["grads"].double()}, max_grad_norm=inst["c"])["w"]
        ours = ch11._reference_noiseless(inst["grads"], inst["c"], inst["bbar"])
        assert float((ours - total / inst["bbar"]).norm()) <= 1e-5 * float(ours.norm())
        alpha, d, s = ch11._rdp_instance(rng)
        assert ch11._reference_rdp(alpha, d, s) == pytest.approx(
            float(dp.gaussian_rdp(sigma=s, orders=alpha, sensitivity=d)[0]), rel=1e-12)
        orders, rdp, delta = ch11._curve_instance(rng, "convex")
        eps, best = ch11._reference_conversion(orders, rdp, delta)
        assert (eps, best) == pytest.approx(dp.rdp_to_dp(orders=orders, rdp=rdp, delta=delta, method="mironov"))
    eps, best = dp.rdp_epsilon_with_order(noise_multiplier=1.1, sample_rate=256 / 60000, steps=14063, delta=1e-5,
                                          conversion="mironov")
    assert round(eps, 2) == 3.01 and best == 8.8


def test_the_noisy_gradient_of_the_reference_equals_the_kits_dp_sgd_step():
    """One step of the kit's dp_sgd_step on a linear model (vmap path, noise drawn from the same seed) writes the
    same gradient as the reference noisy_gradient on that model's per-example gradients."""
    ns = solution_functions(SOURCE, QUESTIONS)
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3, bias=False)
    x, y = torch.randn(12, 5) * 4, torch.randint(0, 3, (12,))
    per = dp.per_sample_gradients(model, x, y)["weight"].flatten(1)
    c, sigma, bbar = 0.7, 1.3, 10.0
    dp.dp_sgd_step(model, x, y, max_grad_norm=c, noise_multiplier=sigma, expected_batch_size=bbar,
                   generator=torch.Generator().manual_seed(5), method="vmap")
    kit = model.weight.grad.flatten()
    # the kit draws N(0, (sigma C)^2) with torch.normal; the reference draws sigma C * randn: the same numbers
    ours = ns["noisy_gradient"](per, c, sigma, bbar, torch.Generator().manual_seed(5))
    assert torch.allclose(ours, kit, rtol=1e-4, atol=1e-6)
