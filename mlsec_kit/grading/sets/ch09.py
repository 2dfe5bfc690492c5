"""Checks of the chapter-9 exercise set: steal a softmax regression through its probability API by equation
solving (Tramèr et al. 2016), read a training example's label off one shared gradient (iDLG, Zhao et al. 2020),
and a conceptual question on what these attacks need and what their defences cost.

Student functions take and return torch tensors, numbers and strings: ``extract_softmax(query, num_features,
num_classes, budget, generator) -> (W, b)``, where ``query`` is an API the grader keeps (it counts the rows asked),
``label_from_gradient(weight_grad) -> label`` and ``attack_statements() -> letters``.

How the instances make each typical mistake fail on every seed:

- The victim's ``W`` carries a common row of norm 3-6 (added to every class, so the probabilities do not see
  it), its rows have means spaced at least 0.4 apart and its biases are spaced at least 0.4 apart. So a
  normalisation over the wrong axis (each row centred over the features: a different offset per class), a bias
  read off one query as if it were at ``x = 0`` (offset ``w_k . x`` per class), or a bias left at zero is never
  "the truth up to a common row". Regressing ``log p_k`` on the queries directly is NOT a mistake: the softmax's
  normaliser ``log Z(x)`` is the same for every class, so with the same queries for every class its
  least-squares fit shifts every row by the same vector (the tests pass it as a correct answer).
- The check that matters compares ``W_student - W_true`` and ``b_student - b_true`` with a common row (identical
  rows, identical entries) to 1e-6 of the victim's scale (its largest centred weight); the probabilities on fresh
  inputs must match too. Float64 solving is exact to ~1e-11. A float32 solve is off by 1e-7 to 1e-2 and passes or
  fails by chance, so one property asks for float64 tensors (a float32 answer fails it on every seed); the value
  properties accept a float32 answer within the rounding of casting a float64 solution to float32, and say
  "float32 rounding" beyond it. A float64 answer that is only close is told that something changed the equations
  (an epsilon, a clamp, float32 somewhere), not blamed on float32.
  Answers that only agree in argmax (a logarithm in base 10 or 2, a normalisation to unit norm, a substitute
  fitted to the labels) therefore fail although their agreement is 100% (or close).
- One class of every victim is *rare*: its logit lies at least ``RARE_GAP`` = 30 below another class's on the
  whole cube ``[-1, 1]^d``, so at every query there some probability is below 1e-13, and a "safe" log
  ``log(p + 1e-12)`` (or a clamp) changes that class's equations by far more than the tolerance on every seed.
- Agreement is measured on ``[-1, 1]^d`` (on ``[0, 1]^d`` the class with the largest row mean wins almost
  everywhere, and a constant label would agree on a fifth of the seeds) and on pairs of points 1e-4 of a segment
  either side of the victim's decision boundaries; the victim predicts at least 3 labels there (tested).
- ``num_features > num_classes`` always, so a transposed ``W`` has the wrong shape; the budget is drawn in
  ``[d + 2, 2d + 1]`` with ``K >= 4`` classes, so fresh ``d + 1`` queries per class (``K(d + 1) >= 4d + 4``),
  twice the minimum (``2d + 2``) or a fixed 100 (``2d + 1 <= 25``) exceed it, and a budget split among the
  classes leaves each class fewer than ``d + 1`` equations (``(2d + 1) / 4 < d + 1``); and since the budget
  exceeds ``d + 1``, windows of ``d + 1`` queries that differ between classes are possible; each class's fit
  then absorbs a different affine approximation of the nonlinear ``log Z``. The second instance of the budget
  and parameter properties has a budget of exactly ``d + 1``, so rejecting it, or always asking ``d + 2``, fails.
- The gradients of ``label_from_gradient`` come from a real cross-entropy backward pass of one example through
  a linear layer on ReLU, sigmoid or tanh features, with ``K >= 3`` classes. Behind non-negative features the
  row of the true class is the only one with a negative sum, so the argmax of the row sums is wrong on every
  instance. Behind tanh features the first instance has a negative feature sum, so the true row's sum is the
  only positive one and the row-sum argmin (statement e's point, in code) is wrong there; the true row is the
  largest (``|p_c - 1| = sum of the other p_k``) and the only one whose sign differs from the others'. The
  instances of every property that reads a label include one with fewer features than classes and a label
  ``>= H`` (a sum over the wrong axis returns an index ``< H``), one with ``H >= 2K`` and a label ``>= 1`` (a
  flat argmin divided by ``K`` instead of ``H`` is off), and, behind ReLUs, one whose first and last features
  are dead (zero), with a label other than 0 (reading one column's sign returns 0 there). Every instance is
  checked in the tests, on 1000 seeds: the logits stay moderate, so the true class's probability never rounds
  to 1.
- An answer to the statements that names none or all of them fails every property (it is not an answer).
- The module's own reference helpers are forbidden with the kit's functions, since a submission can import them.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..core import ExerciseSet
from ..expect import call, describe, expect_pair, expect_tensor, expect_value_error, fail, fmt, statement_checks
from ..instances import randint

SET = ExerciseSet("09_model_attacks", "Exercises: model inversion, extraction and gradient leakage", chapter=9)

_INFERENCE = "mlsec_kit.attacks.inference"
_CHECKER = "mlsec_kit.grading.sets.ch09"  # this module's reference helpers answer questions too
RARE_GAP = 30.0  # the rare class sits this far below another in logit: p < 1e-13 at every query in [-1, 1]^d
TOLERANCE = 1e-6  # of the victim's scale: float64 equation solving is exact to ~1e-11 (float32 to only ~1e-2)


def _uniform(rng: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=rng, dtype=torch.float64))


def _seeded(rng: torch.Generator) -> torch.Generator:
    """A fresh generator for the student's function, seeded from the property's own."""
    return torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=rng)))


# ---- (a) extract_softmax -------------------------------------------------------------------------------
extract_softmax = SET.question(
    "extract_softmax", "extract_softmax(query, num_features, num_classes, budget, generator) -> (W, b)",
    forbid=(f"{_INFERENCE}.extract_softmax_regression", f"{_INFERENCE}.extraction.extract_softmax_regression",
            f"{_CHECKER}._reference_extract", f"{_CHECKER}._common_row_error"))


class _API:
    """The victim's prediction API handed to the student: ``softmax(x W^T + b)`` in float64, counting rows."""

    def __init__(self, W: torch.Tensor, b: torch.Tensor) -> None:
        self._W, self._b = W, b
        self.rows, self.calls = 0, 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        d = self._W.shape[1]
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() != 2 or x.shape[1] != d \
                or len(x) == 0:
            fail(f"query was called with {describe(x)}; pass a float batch of inputs (N, {d}) with N >= 1, "
                 "one row per input")
        if not bool(torch.isfinite(x).all()):
            fail("query was called with inputs that are not finite (nan or inf); the API answers real inputs only")
        self.rows += len(x)
        self.calls += 1
        with torch.no_grad():
            return torch.softmax(x.detach().double() @ self._W.T + self._b, dim=1)


def _spaced(rng: torch.Generator, k: int, gap: float, jitter: float) -> torch.Tensor:
    """``k`` values spaced at least ``gap`` apart (``gap + jitter`` steps, shuffled), centred on a random number."""
    steps = gap + jitter * torch.rand(k, generator=rng, dtype=torch.float64)
    values = torch.cumsum(steps, 0)
    values = values - values.mean() + _uniform(rng, -1.0, 1.0)
    return values[torch.randperm(k, generator=rng)]


def _victim(rng: torch.Generator, *, minimal_budget: bool = False):
    """A softmax regression ``(W, b)`` with ``4 <= K <= 6`` classes and ``K < d <= 12`` features, in float64,
    and a query budget in ``[d + 2, 2d + 1]`` (exactly ``d + 1`` with ``minimal_budget``). Row means and biases
    are spaced >= 0.4 apart; every row carries the same offset of norm 3-6. One class (the last row before the
    shuffle) is *rare*: its logit is at least ``RARE_GAP`` below another class's on the whole cube ``[-1, 1]^d``,
    so some probability is below ``exp(-RARE_GAP)`` at every query there, and an epsilon added inside the log
    changes the equations."""
    k = randint(rng, 4, 6)
    d = randint(rng, max(k + 1, 5), 12)
    raw = torch.randn(k, d, generator=rng, dtype=torch.float64) * _uniform(rng, 0.8, 1.5)
    means = _spaced(rng, k, 0.4, 0.4).sort().values  # the rare class takes the largest mean
    W = raw - raw.mean(1, keepdim=True) + means.unsqueeze(1)
    b = _spaced(rng, k - 1, 0.4, 0.6)
    top = int(b.argmax())
    W[-1] = W[top] - W[top].mean() + means[-1] + 0.3 * (raw[-1] - raw[-1].mean())  # near a common class's row
    b = torch.cat([b, (b[top] - RARE_GAP - (W[-1] - W[top]).abs().sum()).reshape(1)])
    order = torch.randperm(k, generator=rng)
    W, b = W[order], b[order]
    common = torch.randn(d, generator=rng, dtype=torch.float64)
    W = W + common / common.norm() * _uniform(rng, 3.0, 6.0)
    budget = d + 1 if minimal_budget else randint(rng, d + 2, 2 * d + 1)
    return W, b, budget


def _scale(W: torch.Tensor, b: torch.Tensor) -> float:
    """The victim's scale: its largest identifiable (centred) weight. Not its biases: the rare class's bias lies
    ``RARE_GAP`` and more below the others, and a tolerance relative to it would let float32 solves through."""
    return max(float((W - W.mean(0)).abs().max()), 1.0)


def _common_row_error(W_hat, b_hat, W, b) -> tuple[float, float]:
    """How far ``W_hat - W`` is from identical rows and ``b_hat - b`` from identical entries (largest entry)."""
    D, e = W_hat.double() - W, b_hat.double() - b
    return float((D - D.mean(0)).abs().max()), float((e - e.mean()).abs().max())


def _reference_extract(query, num_features, num_classes, budget, generator):
    if budget < num_features + 1:
        raise ValueError(f"budget must be at least num_features + 1 = {num_features + 1}, got {budget}")
    x = torch.rand(num_features + 1, num_features, generator=generator, dtype=torch.float64)
    log_p = query(x).double().log()
    A = torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], 1)
    theta = torch.linalg.lstsq(A, log_p - log_p[:, :1]).solution
    return theta[:-1].T.contiguous(), theta[-1].contiguous()


def _extracted(fn, rng, W, b, budget) -> tuple[torch.Tensor, torch.Tensor, _API, str]:
    k, d = W.shape
    api = _API(W, b)
    what = f"extract_softmax(query, num_features={d}, num_classes={k}, budget={budget}, generator)"
    out = call(fn, api, d, k, budget, _seeded(rng), name="extract_softmax")
    W_hat, b_hat = expect_pair(out, what)
    W_hat = expect_tensor(W_hat, what + "[0] (W)")
    b_hat = expect_tensor(b_hat, what + "[1] (b)")
    if tuple(W_hat.shape) != (k, d) or tuple(b_hat.shape) != (k,):
        hint = ""
        if tuple(W_hat.shape) == (d, k):
            hint = ": that is W transposed; row k of W holds class k's weights, as in nn.Linear"
        elif tuple(W_hat.shape) == (k,) and tuple(b_hat.shape) == (k, d):
            hint = ": W and b are swapped; return (W, b)"
        elif tuple(W_hat.shape) in ((k - 1, d), (k, d + 1)):
            hint = (": one row per class, the reference class included (its row is the common offset you chose)"
                    if W_hat.shape[0] == k - 1 else ": split the last column (the intercept) off into b")
        fail(f"{what} returned W {tuple(W_hat.shape)} and b {tuple(b_hat.shape)}; expected W ({k}, {d}) "
             f"(num_classes, num_features) and b ({k},){hint}")
    if not (bool(torch.isfinite(W_hat).all()) and bool(torch.isfinite(b_hat).all())):
        fail(f"{what} returned W or b with nan or inf entries (the log of a probability that underflowed to 0?)")
    return W_hat, b_hat, api, what


@extract_softmax.prop("returns (W, b): float64 tensors of shapes (num_classes, num_features) and (num_classes,)")
def _ex_shape(fn, rng):
    W, b, budget = _victim(rng)
    W_hat, b_hat, _, what = _extracted(fn, rng, W, b, budget)
    if W_hat.dtype != torch.float64 or b_hat.dtype != torch.float64:
        fail(f"{what} returned W {W_hat.dtype} and b {b_hat.dtype}; expected float64 tensors (torch.float64): "
             "equation solving is exact only in double precision, so draw the queries, take the log, solve and "
             "return in float64")


def _allowed(W_hat, b_hat, W, b) -> float:
    """The largest error the check accepts: 1e-6 of the victim's scale, plus, for a float32 answer, the rounding
    of casting a float64 solution to float32 (2^-24 of its largest entry, twice: the error is centred)."""
    allowed = TOLERANCE * _scale(W, b)
    if W_hat.dtype != torch.float64 or b_hat.dtype != torch.float64:
        top = max(float(W_hat.double().abs().max()), float(b_hat.double().abs().max()))
        allowed += 4.0 * 2.0 ** -24 * top
    return allowed


@extract_softmax.prop("asks the API at most budget inputs in all (the rows of every call together)")
def _ex_budget(fn, rng):
    for minimal in (False, True):  # the second budget is exactly d + 1, the fewest queries that suffice
        W, b, budget = _victim(rng, minimal_budget=minimal)
        k, d = W.shape
        api = _API(W, b)
        call(fn, api, d, k, budget, _seeded(rng), name="extract_softmax")
        if api.rows > budget:
            hint = ""
            if api.calls >= k and api.rows >= k * (d + 1):
                hint = (f"; {k} x (d + 1) = {k * (d + 1)} is a fresh set of queries per class, but every answer "
                        f"gives all {k} probabilities at once: one set of d + 1 = {d + 1} queries serves every class")
            fail(f"with num_features={d}, num_classes={k} and budget={budget}, the API was asked {api.rows} inputs "
                 f"in {api.calls} call(s){hint}; an attacker pays per query, and d + 1 = {d + 1} well-chosen "
                 "inputs already give every equation")


@extract_softmax.prop("raises a ValueError naming budget when budget < num_features + 1 (too few equations)")
def _ex_bad_budget(fn, rng):
    W, b, _ = _victim(rng)
    k, d = W.shape
    for budget in (d, randint(rng, 1, d - 1)):
        expect_value_error(fn, (_API(W, b), d, k, budget, _seeded(rng)),
                            f"extract_softmax(query, num_features={d}, num_classes={k}, budget={budget}, generator)",
                            f"each class has d + 1 = {d + 1} unknowns (its weights and bias), so {budget} queries "
                            "leave the system underdetermined and the answer would be a guess", "budget")


def _diagnose(W_hat, b_hat, W, b) -> str:
    """A hint for parameters that are not the victim's up to a common row."""
    scale = _scale(W, b)
    err_W, err_b = _common_row_error(W_hat, b_hat, W, b)
    Wc, bc = W - W.mean(0), b - b.mean()
    Hc, hc = W_hat.double() - W_hat.double().mean(0), b_hat.double() - b_hat.double().mean()
    theta, theta_hat = torch.cat([Wc, bc[:, None]], 1), torch.cat([Hc, hc[:, None]], 1)
    s = float((theta * theta_hat).sum() / (theta * theta).sum())
    if s > 0 and abs(s - 1) > 1e-5 and float((theta_hat - s * theta).abs().max()) < 1e-2 * abs(s - 1) * scale:
        base = {round(1 / math.log(10), 3): " (a logarithm in base 10?)", round(1 / math.log(2), 3):
                " (a logarithm in base 2?)"}.get(round(s, 3), "")
        return (f"your parameters are the victim's times {s:.6g}{base}, up to a common row: the argmax agrees "
                "everywhere, the probabilities do not. Use the natural log (log p_k - log p_r = (w_k - w_r) . x + "
                "b_k - b_r); only a common row is free, the scale is not")
    if max(err_W, err_b) < 1e-2 * scale:
        if W_hat.dtype != torch.float64 or b_hat.dtype != torch.float64:
            return ("close, but errors of this size are float32 rounding: draw the queries, take the log and solve "
                    "in float64 (dtype=torch.float64)")
        return ("close but not exact, and float64 equation solving is exact: something changed the answers between "
                "the API and the solve (an epsilon or a clamp inside the log, or float32 queries, log or solve); "
                "take query(x).log() as it comes: the API never returns 0 on moderate inputs")
    if err_W < TOLERANCE * scale:
        return ("W is right up to the common row but b is not: b_student - b_true must be one number for every "
                "class; read b off the intercept of the same fit (a column of ones), not off one query's log p")
    D = W_hat.double() - W
    E = D - D.mean(0)
    if float((E - E.mean(1, keepdim=True)).abs().max()) < 1e-3 * scale:
        return ("W - W_true has rows that differ by a constant per class: a different offset for every row (each "
                "row centred over its features?); the free shift is ONE vector added to every row, so centre over "
                "the classes (W - W.mean(0)) or leave it")
    return ("fit log p_k - log p_r = (w_k - w_r) . x + (b_k - b_r) with an intercept, on the same queries for "
            "every class, in float64, with query(x).log() as it comes (no epsilon or clamp: some of the API's "
            "probabilities are below 1e-13, and log(p + eps) is then a different equation)")


@extract_softmax.prop("W and b equal the victim's up to one common row: W - W_true has identical rows, "
                      "b - b_true identical entries")
def _ex_common_row(fn, rng):
    for minimal in (False, True):  # a budget in [d + 2, 2d + 1] (room for windows), then exactly d + 1
        W, b, budget = _victim(rng, minimal_budget=minimal)
        W_hat, b_hat, _, what = _extracted(fn, rng, W, b, budget)
        err_W, err_b = _common_row_error(W_hat, b_hat, W, b)
        allowed = _allowed(W_hat, b_hat, W, b)
        if max(err_W, err_b) > allowed:
            fail(f"{what}: your answer is off by {fmt(max(err_W, err_b))}: the rows of W - W_true differ by up to "
                 f"{fmt(err_W)} and the entries of b - b_true by up to {fmt(err_b)} (allowed {fmt(allowed)}); "
                 f"{_diagnose(W_hat, b_hat, W, b)}")


def _fresh_logits(fn, rng, n: int, low: float, high: float):
    """The victim's and the extracted model's logits on ``n`` fresh inputs uniform in ``[low, high]^d``."""
    W, b, budget = _victim(rng)
    W_hat, b_hat, _, what = _extracted(fn, rng, W, b, budget)
    x = low + (high - low) * torch.rand(n, W.shape[1], generator=rng, dtype=torch.float64)
    return x @ W.T + b, x @ W_hat.double().T + b_hat.double(), what


def _agreement_inputs(rng: torch.Generator, W: torch.Tensor, b: torch.Tensor, n: int = 2000,
                      pairs: int = 200) -> torch.Tensor:
    """``n`` inputs uniform in the centred cube ``[-1, 1]^d`` (where the victim's labels vary: on ``[0, 1]^d`` one
    class wins almost everywhere), then, for ``pairs`` pairs of them with different labels, the two points 1e-4
    of the segment on either side of the decision boundary between them (found by bisection)."""
    x = 2 * torch.rand(n, W.shape[1], generator=rng, dtype=torch.float64) - 1
    labels = (x @ W.T + b).argmax(1)
    i = torch.randint(0, n, (8 * pairs,), generator=rng)
    j = torch.randint(0, n, (8 * pairs,), generator=rng)
    keep = (labels[i] != labels[j]).nonzero()[:pairs, 0]
    start, end = x[i[keep]], x[j[keep]]
    lo, hi = torch.zeros(len(keep), dtype=torch.float64), torch.ones(len(keep), dtype=torch.float64)
    first = labels[i[keep]]
    for _ in range(40):
        mid = (lo + hi) / 2
        same = ((start + mid[:, None] * (end - start)) @ W.T + b).argmax(1) == first
        lo, hi = torch.where(same, mid, lo), torch.where(same, hi, mid)
    t = torch.cat([lo - 1e-4, hi + 1e-4]).clamp(0, 1)[:, None]
    near = torch.cat([start, start]) + t * torch.cat([end - start, end - start])
    return torch.cat([x, near])


@extract_softmax.prop("the extracted model returns the victim's probabilities on fresh inputs")
def _ex_probabilities(fn, rng):
    logits, logits_hat, what = _fresh_logits(fn, rng, 500, -0.5, 1.5)  # beyond the usual query range too
    gap = float((torch.softmax(logits, 1) - torch.softmax(logits_hat, 1)).abs().max())
    if gap > 1e-5:
        fail(f"{what}: on 500 fresh inputs softmax(x W^T + b) of your (W, b) differs from the victim's answers by "
             f"up to {fmt(gap)}; a stolen model should answer as the victim does, not only pick the same label")


@extract_softmax.prop("labels fresh inputs as the victim does (agreement >= 99.9%)")
def _ex_agreement(fn, rng):
    W, b, budget = _victim(rng)
    W_hat, b_hat, _, what = _extracted(fn, rng, W, b, budget)
    x = _agreement_inputs(rng, W, b)
    same = float(((x @ W.T + b).argmax(1) == (x @ W_hat.double().T + b_hat.double()).argmax(1)).double().mean())
    if same < 0.999:
        fail(f"{what}: your model gives the victim's label on {same:.1%} of {len(x)} fresh inputs (uniform in "
             "[-1, 1]^d, and pairs just either side of the victim's decision boundaries); equation solving recovers "
             "the model exactly, so it should agree on all of them")


# ---- (b) label_from_gradient ---------------------------------------------------------------------------
label_from_gradient = SET.question(
    "label_from_gradient", "label_from_gradient(weight_grad) -> label",
    forbid=(f"{_INFERENCE}.idlg_label", f"{_INFERENCE}.gradient_leakage.idlg_label", f"{_INFERENCE}.idlg",
            f"{_INFERENCE}.gradient_leakage.idlg", f"{_CHECKER}._reference_label"))


def _gradient(rng: torch.Generator, k: int, h: int, label: int, *, activation: str = "relu",
              dead: tuple[int, ...] = (), negative_sum: bool = False) -> tuple[torch.Tensor, int]:
    """The gradient of the cross-entropy of ONE example with ``label`` w.r.t. the weight ``(k, h)`` of a linear
    layer on non-negative features (a ReLU or a sigmoid of random pre-activations; features in ``dead`` are
    0), computed by autograd in float32, and the label. Logits stay moderate (weights of scale ``1 / sqrt(h)``),
    so the true class's probability never rounds to 1."""
    pre = torch.randn(h, generator=rng) * 1.5
    features = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}[activation](pre)
    if activation == "tanh" and negative_sum:  # every pre-activation negative: the true row is the only
        features = -features.abs()  # positive one, so a row-sum argmin or a flat argmin picks another class
    features[list(dead)] = 0.0
    if activation == "relu":  # at least one live feature, not a dead one
        live = [i for i in range(h) if i not in dead]
        features[live[randint(rng, 0, len(live) - 1)]] = _uniform(rng, 0.5, 2.0)
    weight = (torch.randn(k, h, generator=rng) * _uniform(rng, 1.0, 3.0) / math.sqrt(h)).requires_grad_()
    bias = torch.randn(k, generator=rng) * 0.5
    loss = F.cross_entropy((weight @ features + bias)[None], torch.tensor([label]))
    (grad,) = torch.autograd.grad(loss, weight)
    return grad, label


def _gradient_cases(rng: torch.Generator, activation: str):
    """Four random gradients, then those that catch a wrong axis, a wrong unravel and (behind ReLUs) one column
    read alone."""
    for i in range(4):
        k = randint(rng, 3, 10)
        h = randint(rng, 2, 24)
        yield _gradient(rng, k, h, randint(rng, 0, k - 1), activation=activation, negative_sum=i == 0)
    k = randint(rng, 6, 10)
    h = randint(rng, 2, k // 2)
    yield _gradient(rng, k, h, randint(rng, h, k - 1), activation=activation)  # H < K, label >= H
    k = randint(rng, 3, 6)
    yield _gradient(rng, k, randint(rng, 2 * k, 3 * k), randint(rng, 1, k - 1), activation=activation)  # H >= 2K
    if activation == "relu":
        k, h = randint(rng, 3, 10), randint(rng, 4, 16)
        yield _gradient(rng, k, h, randint(rng, 1, k - 1), dead=(0, h - 1))  # label >= 1


def _reference_label(weight_grad: torch.Tensor) -> int:
    column = weight_grad[:, int(weight_grad.abs().sum(0).argmax())]  # the feature of largest magnitude
    return int((column * column.sign().sum()).argmin())  # the one entry whose sign is not the majority's (K >= 3)


def _label(fn, grad: torch.Tensor) -> tuple[int, str]:
    what = f"label_from_gradient(weight_grad {describe(grad)})"
    out = call(fn, grad.clone(), name="label_from_gradient")
    if isinstance(out, torch.Tensor):
        fail(f"{what} returned {describe(out)}; expected a Python int (call int(...) on the tensor)")
    if isinstance(out, bool) or not isinstance(out, int):
        fail(f"{what} returned {describe(out)}; expected a Python int, the label")
    return out, what


@label_from_gradient.prop("returns a Python int in [0, K), K = weight_grad.shape[0]")
def _lg_type(fn, rng):
    for grad, _ in _gradient_cases(rng, "relu"):
        got, what = _label(fn, grad)
        if not 0 <= got < grad.shape[0]:
            fail(f"{what} returned {got}; a label is a row of weight_grad, an int in [0, {grad.shape[0]})")


def _lg_hint(grad: torch.Tensor, got: int, activation: str) -> str:
    """Why ``got`` is not the label of the example behind ``grad``."""
    k, h = grad.shape
    dead = [j for j in range(h) if not bool(grad[:, j].any())]
    if dead and got == 0:
        return (f"0 is what an argmin returns on a column of zeros (feature {dead[0]} is dead, so its column is zero "
                "whatever the label) and on the column sums, which are all zero up to rounding (the p_k sum to 1); "
                "use a rule over every feature of a ROW, e.g. sum over dim=1")
    if got < h and got == int(grad.sum(0).argmin()):
        return ("that is the argmin over the other axis; each ROW of weight_grad belongs to a class (the weight is "
                "(K, H)), so sum over the features, dim=1")
    if activation == "tanh":
        return ("the features can be negative here (a tanh), so the true row's sum can be the only POSITIVE one and "
                "the sign of a row sum says nothing alone; compare the sizes of the rows: |p_c - 1| is the sum of "
                "the other p_k, larger than each of them when K >= 3")
    if got == int(grad.sum(1).argmax()):
        return "the row with the LARGEST sum is a class the example does not belong to: its factor p_k is positive"
    return "row k is (p_k - [k = label]) times the same features; what do the signs and sizes of the factors say?"


def _lg_check(fn, rng, activation: str) -> None:
    for grad, true in _gradient_cases(rng, activation):
        got, what = _label(fn, grad)
        if got != true:
            fail(f"{what}: you returned {got}, which is not the example's label; {_lg_hint(grad, got, activation)}")


@label_from_gradient.prop("finds the label behind ReLU features, dead ones included")
def _lg_relu(fn, rng):
    _lg_check(fn, rng, "relu")


@label_from_gradient.prop("finds the label behind sigmoid features")
def _lg_sigmoid(fn, rng):
    _lg_check(fn, rng, "sigmoid")


@label_from_gradient.prop("finds the label behind tanh features (which can be negative)")
def _lg_tanh(fn, rng):
    _lg_check(fn, rng, "tanh")


@label_from_gradient.prop("raises a ValueError naming weight_grad when it is not a 2-D (K, H) tensor")
def _lg_bad_input(fn, rng):
    grad, _ = _gradient(rng, randint(rng, 3, 6), randint(rng, 4, 9), 1)
    for bad, why in ((grad.sum(1), "a 1-D vector (the bias gradient?)"), (grad[None], "a 3-D tensor")):
        expect_value_error(fn, (bad,), f"label_from_gradient(weight_grad {describe(bad)})",
                            f"{why}: the rule reads the rows of the last layer's weight gradient (K, H)", "weight_grad")


# ---- (c) attack_statements (conceptual) ----------------------------------------------------------------
attack_statements = SET.question("attack_statements", "attack_statements() -> str of letters, e.g. 'ac'")
STATEMENTS = {
    "a": "Adding the same vector to every row of W, and the same number to every entry of b, leaves every "
         "probability of a softmax regression unchanged, so an attacker who sees only the probabilities can "
         "recover the victim's parameters at best up to such a shift.",
    "b": "Equation solving needs at least as many queries as the model has parameters, K(d + 1) for K classes "
         "and d features.",
    "c": "Rounding the returned probabilities to a few decimals makes equation solving inexact and lowers its "
         "agreement, at a price honest users pay too; an API that returns only labels still leaks the model to "
         "learning-based extraction, at a higher price in queries.",
    "d": "An extracted model that agrees with the victim on 100% of test inputs has the victim's parameters up "
         "to the shift.",
    "e": "For one example and the cross-entropy loss, the gradient of the last layer's bias alone reveals the "
         "label, even when the features before that layer can be negative.",
    "f": "Reading off the negative entries of the last layer's bias gradient recovers every label of a batch of 64 "
         "examples from the batch's averaged gradient.",
    "g": "Adding Gaussian noise to shared gradients stops gradient leakage without costing the trained model any "
         "accuracy.",
    "h": "Fredrikson, Jha and Ristenpart's (2015) model inversion needs only the label an API predicts, so rounding "
         "the confidences the API returns cannot affect it.",
}
TRUE_STATEMENTS = frozenset("ace")
_WHY_NOT = {
    "b": "each answer gives K - 1 independent equations (one per class against a reference), so d + 1 queries "
         "pin down all K(d + 1) parameters up to the shift",
    "d": "agreement compares labels only: the victim's parameters times 2 give the same label everywhere and "
         "different probabilities",
    "f": "the batch's bias gradient is the mean of p_i - onehot(y_i): a class present in the batch still has a "
         "positive entry when the model gives it enough probability on the other examples, and no entry says how "
         "many examples carry a label, so the signs no longer single the labels out",
    "g": "noise large enough to defeat the reconstruction also perturbs every update, so it costs accuracy: a "
         "privacy-utility trade-off, as with the noise of differential privacy",
    "h": "Fredrikson et al.'s inversion climbs the confidence the API returns for the target class; rounding it "
         "flattens that signal, which is why they propose rounding as a countermeasure",
}


statement_checks(attack_statements, "attack_statements", STATEMENTS, TRUE_STATEMENTS, _WHY_NOT, exact=True,
                 hint="think about what the softmax cannot see, what rounding "
                 "costs and whom, and what one example's bias gradient p - onehot(label) holds")
