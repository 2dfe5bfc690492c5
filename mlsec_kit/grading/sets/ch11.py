"""Checks of the chapter-11 exercise set: per-example gradient clipping, the noisy gradient of one DP-SGD step,
the Rényi DP of the Gaussian mechanism and its conversion to (ε, δ), and a conceptual question on DP-SGD.

Student functions take and return torch tensors, numbers, lists and strings: ``clip_gradients(grads,
max_grad_norm) -> clipped``, ``noisy_gradient(grads, max_grad_norm, noise_multiplier, expected_batch_size,
generator) -> gradient``, ``gaussian_rdp(alpha, sensitivity, sigma) -> float``, ``rdp_to_dp(orders, rdp, delta)
-> (epsilon, alpha)`` and ``dp_sgd_statements() -> letters``.

Conventions the questions state: ``grads`` is a ``(B, d)`` tensor of per-example gradients (one row per
example, all parameters flattened); an example's clipped gradient is ``g_i min(1, C / ||g_i||)`` (Opacus's
``C / (||g_i|| + 1e-6)`` is accepted: the checks allow a relative error of 1e-4); the noisy gradient is
``(sum_i clip(g_i) + N(0, sigma^2 C^2 I)) / B_bar`` with ``B_bar = q n`` the *expected* batch size, the public
constant the accountant of Poisson-subsampled DP-SGD assumes (it analyses the noisy *sum*, whose sensitivity
is C under add/remove neighbours; dividing by a public constant is post-processing, dividing by the actual,
data-dependent batch size is not); ``noise_multiplier = 0`` returns the clipped sum over ``B_bar`` alone.

The statistical property of ``noisy_gradient`` draws 2000 gradients and accepts a mean within 5.5 standard
errors (from the measured spread) in every coordinate, a standard deviation within 6 standard errors of
sigma C / B_bar, correlations below 5.5 / sqrt(2000) and a Kolmogorov-Smirnov p-value above 1e-7 against the
normal. A correct solution therefore fails it with a probability of about 1e-6 per graded run: at most about
2e-7 from the mean (6 coordinates, 2 P(|Z| > 5.5) = 3.8e-8 each), 6e-7 from the correlations (15 pairs),
1e-7 from the KS test (its p-value is uniform under the null) and 2e-9 from the std. The power is not lost:
Laplace noise of the right std gives p of about 1e-20 on the smallest pool (6000 values), and every scale
error is off by a factor of at least 1.11 (see below). The seeds are fixed per property, so a rerun gives the
same verdict.

Numbers are compared to a relative 1e-6 (``gaussian_rdp``, ``rdp_to_dp``), loose enough for an answer computed
in float32 (PyTorch's default dtype; relative error about 6e-8) and far tighter than any named mistake (a
factor of 1.5 or more; the first or last order's epsilon is at least 4.9e-3 above the minimum). The order
``rdp_to_dp`` returns is accepted when it is (to 1e-6) any order whose epsilon is within that tolerance of the
minimum: a float32 argmin may land on a near-tied neighbour (the second-best order came within 6.4e-9 of the
best on some instances).

How the instances make each typical mistake fail on every seed:

- clipping the batch gradient instead of each example's (one factor for all rows, from the norm of the sum,
  the mean or the whole ``(B, d)`` matrix): every batch the clipping checks draw holds rows with norms at
  least 1.5 C and rows with norms at most 0.6 C (and ``noisy_gradient``'s batches too), so no single factor is
  right for all rows: a factor below 1 changes a short row, a factor of 1 leaves a long row too long. The
  kit's broken step (clip the *average*, then add the noise) is such an answer;
- the clip factor ``C / ||g_i||`` without ``min(1, .)``: the short rows (norm at most 0.6 C) are scaled *up*
  to norm C, and a zero row becomes ``nan``; the per-coordinate ``clamp(-C, C)`` changes a long row's
  direction or leaves its norm above C (d >= 3);
- noise scaled by the batch size twice (``sigma C / B_bar^2``), ``sigma`` in place of ``sigma C``, or noise
  added after averaging (``sigma C`` on the average): ``B_bar`` is at least 6 and C is drawn from [0.1, 0.4] or
  [2.5, 6], so the measured noise standard deviation is off by a factor of at least 2.5, against a tolerance of
  about 6 standard errors (under 6%) on 2000 draws of 3-6 coordinates; a power of sigma in place of sigma
  (``sigma^2 C``, ``sqrt(sigma) C``, the variance passed as the std) is off by a factor of at least 1.11
  (``sqrt(sigma)`` at sigma = 0.8; ``sigma^2`` by 1.25), since sigma is drawn from [0.4, 0.8] or [1.4, 2.5],
  never near 1 (these also give zero noise at sigma = 0, so only
  the scale test can catch them);
- dividing by the actual batch size ``B`` instead of ``B_bar``: every batch has ``|B - B_bar| >= 0.2 B_bar``,
  and the rows share a common direction, so the clipped sum is far from 0 and the noiseless result (checked
  at ``sigma = 0``, to a relative 1e-4) is off by 20% or more; an empty batch gives ``nan`` or ``inf``;
- one noise draw for all coordinates (a scalar broadcast): correlation 1 between coordinates, against a
  tolerance of 5.5 / sqrt(2000); Laplace noise of the right scale fails the Kolmogorov-Smirnov test against the
  normal (p < 1e-7 on 6000 or more values); ignoring the generator gives different results for equal seeds,
  and reseeding a generator inside the function returns the same gradient on every call;
- the RDP of the Gaussian without the factor alpha, or with Delta in place of Delta^2, or sigma in place of
  sigma^2: alpha is drawn from [1.5, 64], Delta from [0.2, 0.6] or [1.8, 5] and sigma from [0.3, 0.7] or
  [1.5, 8], so each differs from the right value by a factor of 1.5 or more, against a relative 1e-6;
- the RDP-to-DP conversion with the wrong sign of the log(1/delta) term, ``rho - log(1/delta) / (alpha - 1)``,
  is below the right value at every order (delta < 1), so its minimum is too; the conversion of Balle et
  al. (2020), tighter than the one asked, is below it by ``log(alpha) / (alpha - 1) - log(1 - 1/alpha) > 0`` at
  every order; a fixed order (the first, the last) misses the minimum, which every curve puts strictly inside
  the grid; log10 in place of the natural log is off by a factor of 2.3 in that term;
- an answer to the statements that names none or all of them fails every property (it is not an answer);
- the kit's ``clip_factors``, ``clip_and_sum``, ``dp_sgd_step``, ``gaussian_rdp``, ``gaussian_zcdp``,
  ``rdp_to_dp``, ``rdp_curve``, ``rdp_epsilon`` and ``rdp_epsilon_with_order``, and this module's reference
  helpers, are forbidden, since a submission can import them.
"""
from __future__ import annotations

import math

import torch
from scipy import stats

from ..core import ExerciseSet
from ..expect import call, describe, expect_float, expect_pair, expect_tensor, expect_value_error, fail, fmt, to_float, statement_checks
from ..instances import randint

SET = ExerciseSet("11_dp_sgd", "Exercises: differentially private deep learning", chapter=11)

_DPSGD = "mlsec_kit.dp.dpsgd"
_RENYI = "mlsec_kit.dp.renyi"
_ACCOUNTING = "mlsec_kit.dp.accounting"
_CHECKER = "mlsec_kit.grading.sets.ch11"  # this module's reference helpers answer questions too
DRAWS = 2000  # noisy gradients per statistical check
_TF_ORDERS = tuple([1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)))  # TF Privacy's and Opacus's grid
RTOL = 1e-6  # relative tolerance of the numeric answers: float32 passes (about 6e-8), every named mistake fails


def _close(got: float, want: float) -> str:
    """A note for an answer close to the right one but outside ``RTOL`` (float16, or rounding along the way)."""
    err = abs(got - want) / max(abs(want), 1e-300)
    if RTOL < err <= 1e-4:
        return f" (relative error {err:.1e}, above the {RTOL:.0e} allowed: compute in float64 or Python floats)"
    return ""


def _uniform(rng: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=rng, dtype=torch.float64))


def _seeded(rng: torch.Generator) -> torch.Generator:
    """A fresh generator for the student's function, seeded from the property's own."""
    return torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=rng)))


# ---- instances and reference answers -----------------------------------------------------------------------
def _clip_norm(rng: torch.Generator) -> float:
    """C from [0.1, 0.4] or [2.5, 6]: never near 1, so sigma and sigma * C are told apart."""
    return _uniform(rng, 0.1, 0.4) if randint(rng, 0, 1) else _uniform(rng, 2.5, 6.0)


def _rows(rng: torch.Generator, norms: torch.Tensor, d: int, *, common: float) -> torch.Tensor:
    """Rows of the given norms (float64) in directions ``u + common * v_i`` around a shared random ``u``."""
    u = torch.randn(d, generator=rng, dtype=torch.float64)
    u = u / u.norm()
    v = torch.randn(len(norms), d, generator=rng, dtype=torch.float64)
    dirs = common * u + v / v.norm(dim=1, keepdim=True)
    return dirs / dirs.norm(dim=1, keepdim=True) * norms[:, None]


def _mixed_norms(rng: torch.Generator, b: int, c: float) -> torch.Tensor:
    """``b >= 2`` norms: at least one in [1.5 C, 10 C] and one in [0.1 C, 0.6 C], the rest from either range, in
    random order."""
    long = torch.empty(b, dtype=torch.float64).uniform_(1.5, 10.0, generator=rng)
    short = torch.empty(b, dtype=torch.float64).uniform_(0.1, 0.6, generator=rng)
    pick = torch.rand(b, generator=rng) < 0.5
    pick[0], pick[1] = True, False
    norms = torch.where(pick, long, short) * c
    return norms[torch.randperm(b, generator=rng)]


def _clip_instance(rng: torch.Generator, *, kind: str = "mixed") -> tuple[torch.Tensor, float]:
    """``(grads (B, d) float32, C)``. ``kind``: ``"mixed"`` (long and short rows), ``"short"`` (every norm at
    most 0.6 C, one row zero)."""
    b, d, c = randint(rng, 5, 20), randint(rng, 3, 8), _clip_norm(rng)
    if kind == "short":
        norms = torch.empty(b, dtype=torch.float64).uniform_(0.1, 0.6, generator=rng) * c
        norms[randint(rng, 0, b - 1)] = 0.0
    else:
        norms = _mixed_norms(rng, b, c)
    return _rows(rng, norms, d, common=_uniform(rng, 0.0, 1.0)).float(), c


def _reference_clip(grads: torch.Tensor, c: float) -> torch.Tensor:
    """``g_i min(1, C / ||g_i||)`` per row, in float64 (a zero row stays zero)."""
    g = grads.double()
    norms = g.norm(dim=1, keepdim=True)
    return g * torch.where(norms > c, c / norms.clamp_min(1e-300), torch.ones_like(norms))


def _step_instance(rng: torch.Generator, *, empty: bool = False) -> dict:
    """A batch for ``noisy_gradient``: rows of mixed norms around a shared direction (so their clipped sum is
    far from 0), ``B_bar`` in [6, 40] and the actual size ``B`` at least 20% away from it (or 0), sigma from
    [0.4, 0.8] or [1.4, 2.5]: never near 1, so a noise std of sigma^2 C or sqrt(sigma) C is told from sigma C."""
    c, d = _clip_norm(rng), randint(rng, 3, 6)
    sigma = _uniform(rng, 0.4, 0.8) if randint(rng, 0, 1) else _uniform(rng, 1.4, 2.5)
    while True:
        bbar = _uniform(rng, 6.0, 40.0)
        b = 0 if empty else round(bbar * (_uniform(rng, 1.25, 1.6) if randint(rng, 0, 1) else _uniform(rng, 0.5, 0.8)))
        if empty or (b >= 2 and abs(b - bbar) >= 0.2 * bbar):
            break
    grads = (_rows(rng, _mixed_norms(rng, b, c), d, common=_uniform(rng, 1.5, 3.0)).float() if b
             else torch.zeros(0, d))
    return {"grads": grads, "c": c, "sigma": sigma, "bbar": bbar, "d": d}


def _reference_noiseless(grads: torch.Tensor, c: float, bbar: float) -> torch.Tensor:
    """``sum_i clip(g_i) / B_bar`` in float64."""
    return _reference_clip(grads, c).sum(0) / bbar


# ---- (a) clip_gradients ------------------------------------------------------------------------------------
clip_gradients = SET.question(
    "clip_gradients", "clip_gradients(grads, max_grad_norm) -> tensor (B, d)",
    forbid=("mlsec_kit.dp.clip_factors", f"{_DPSGD}.clip_factors", "mlsec_kit.dp.clip_and_sum",
            f"{_DPSGD}.clip_and_sum", f"{_CHECKER}._reference_clip", f"{_CHECKER}._reference_noiseless"))


def _clipped(fn, grads: torch.Tensor, c: float) -> tuple[torch.Tensor, str]:
    what = f"clip_gradients(grads {describe(grads)}, max_grad_norm={c:.4g})"
    out = expect_tensor(call(fn, grads.clone(), c, name="clip_gradients"), what, shape=grads.shape)
    if not out.is_floating_point():
        fail(f"{what} returned dtype {out.dtype}; expected floating-point gradients")
    return out.double(), what


def _clip_hint(got: torch.Tensor, grads: torch.Tensor, c: float) -> str:
    g = grads.double()
    norms = g.norm(dim=1)
    scale = float((got * g).sum() / (g * g).sum().clamp_min(1e-300))
    if torch.allclose(got, g * scale, rtol=1e-4, atol=1e-6 * c):
        return (f"; every row was scaled by the same factor {fmt(scale)}: that clips the batch, not each example; "
                "clip each row by its own norm, min(1, C / ||g_i||)")
    if torch.allclose(got, g.clamp(-c, c), rtol=1e-4, atol=1e-6 * c):
        return "; that clamps each coordinate to [-C, C]; clip the row's L2 norm, keeping its direction"
    short = norms < c
    if bool(short.any()) and torch.allclose(got.norm(dim=1)[short], torch.full_like(norms[short], c), rtol=1e-3):
        return ("; rows shorter than C came back with norm C: the factor is min(1, C / ||g_i||), never above 1 "
                "(clipping never lengthens a gradient)")
    return ""


def _compare_rows(got: torch.Tensor, grads: torch.Tensor, c: float, what: str, rows: torch.Tensor) -> None:
    want = _reference_clip(grads, c)
    if not bool(torch.isfinite(got).all()):
        i = int((~torch.isfinite(got)).any(1).nonzero()[0])
        fail(f"{what}: row {i} (norm {fmt(grads[i].double().norm())}) came back with nan or inf; a zero gradient "
             "stays zero: min(1, C / 0) = 1, or clamp the norm from below before dividing")
    err = (got - want).norm(dim=1)
    bad = rows & (err > 1e-4 * want.norm(dim=1).clamp_min(c))
    if bool(bad.any()):
        i = int(bad.nonzero()[0])
        n = float(grads[i].double().norm())
        fail(f"{what}: row {i} has norm {fmt(n)} and came back with norm {fmt(got[i].norm())}; expected norm "
             f"{fmt(min(n, c))} in the same direction (g_i min(1, C / ||g_i||)){_clip_hint(got, grads, c)}")


@clip_gradients.prop("returns a float tensor of shape (B, d) and leaves grads unchanged")
def _cg_form(fn, rng):
    grads, c = _clip_instance(rng)
    kept = grads.clone()
    what = f"clip_gradients(grads {describe(grads)}, max_grad_norm={c:.4g})"
    out = expect_tensor(call(fn, grads, c, name="clip_gradients"), what, shape=grads.shape)
    if not torch.equal(grads, kept):
        fail(f"{what} changed grads in place; compute the clipped rows on the side")
    if not out.is_floating_point():
        fail(f"{what} returned dtype {out.dtype}; expected floating-point gradients")


@clip_gradients.prop("scales every row longer than C down to norm C, keeping its direction")
def _cg_long(fn, rng):
    for _ in range(2):
        grads, c = _clip_instance(rng)
        got, what = _clipped(fn, grads, c)
        _compare_rows(got, grads, c, what, grads.double().norm(dim=1) > c)


@clip_gradients.prop("never lengthens a gradient: rows of norm at most C, a zero row included, come back unchanged")
def _cg_short(fn, rng):
    grads, c = _clip_instance(rng, kind="short")
    got, what = _clipped(fn, grads, c)
    _compare_rows(got, grads, c, what, torch.ones(len(grads), dtype=torch.bool))


@clip_gradients.prop("clips each example by its own norm: every row of a mixed batch is g_i min(1, C / ||g_i||)")
def _cg_each(fn, rng):
    for _ in range(2):
        grads, c = _clip_instance(rng)
        got, what = _clipped(fn, grads, c)
        _compare_rows(got, grads, c, what, torch.ones(len(grads), dtype=torch.bool))


@clip_gradients.prop("raises a ValueError naming max_grad_norm when it is <= 0")
def _cg_bad(fn, rng):
    grads, _ = _clip_instance(rng)
    for c in (0.0, -_uniform(rng, 0.1, 3.0)):
        expect_value_error(fn, (grads.clone(), c), f"clip_gradients(grads, max_grad_norm={c:.3g})",
                            "the clipping bound C must be > 0", "max_grad_norm")


# ---- (b) noisy_gradient ------------------------------------------------------------------------------------
noisy_gradient = SET.question(
    "noisy_gradient", "noisy_gradient(grads, max_grad_norm, noise_multiplier, expected_batch_size, generator) -> "
                      "tensor (d,)",
    forbid=("mlsec_kit.dp.clip_factors", f"{_DPSGD}.clip_factors", "mlsec_kit.dp.clip_and_sum",
            f"{_DPSGD}.clip_and_sum", "mlsec_kit.dp.dp_sgd_step", f"{_DPSGD}.dp_sgd_step",
            f"{_CHECKER}._reference_clip", f"{_CHECKER}._reference_noiseless"))


def _noisy(fn, inst: dict, sigma: float, generator: torch.Generator) -> tuple[torch.Tensor, str]:
    g, c, bbar = inst["grads"], inst["c"], inst["bbar"]
    what = (f"noisy_gradient(grads {describe(g)}, max_grad_norm={c:.4g}, noise_multiplier={sigma:.4g}, "
            f"expected_batch_size={bbar:.4g}, generator)")
    out = expect_tensor(call(fn, g.clone(), c, sigma, bbar, generator, name="noisy_gradient"), what,
                        shape=(inst["d"],))
    if not out.is_floating_point():
        fail(f"{what} returned dtype {out.dtype}; expected a floating-point gradient")
    return out.double(), what


def _noiseless_hint(got: torch.Tensor, inst: dict) -> str:
    g, c, bbar = inst["grads"].double(), inst["c"], inst["bbar"]
    b = len(g)
    clipped_sum = _reference_clip(g, c).sum(0)
    mean = g.mean(0)
    variants = {
        f"the sum divided by the actual batch size {b}; divide by expected_batch_size (B_bar = q n, a public "
        "constant: the accountant analyses the noisy sum, and the actual size depends on who was sampled)":
            clipped_sum / b,
        "the clipped sum, not divided by expected_batch_size": clipped_sum,
        "the batch's average clipped as a whole (clip each example's gradient, then sum)":
            mean * min(1.0, c / max(float(mean.norm()), 1e-300)),
        "the batch's sum clipped as a whole, over B_bar (clip each example's gradient, then sum)":
            g.sum(0) * min(1.0, c / max(float(g.sum(0).norm()), 1e-300)) / bbar,
        "rows shorter than C scaled up to norm C: the factor is min(1, C / ||g_i||)":
            (g * (c / g.norm(dim=1, keepdim=True))).sum(0) / bbar,
        "the unclipped sum over B_bar: clip each row first": g.sum(0) / bbar,
    }
    return next((f"; that is {h}" for h, v in variants.items()
                 if float((got - v).norm()) <= 1e-4 * max(float(v.norm()), c / bbar)), "")


@noisy_gradient.prop("returns a float tensor of shape (d,) and leaves grads unchanged")
def _ng_form(fn, rng):
    inst = _step_instance(rng)
    kept = inst["grads"].clone()
    g, c, bbar = inst["grads"], inst["c"], inst["bbar"]
    what = f"noisy_gradient(grads {describe(g)}, max_grad_norm={c:.4g}, noise_multiplier=1.0, ...)"
    out = expect_tensor(call(fn, g, c, 1.0, bbar, _seeded(rng), name="noisy_gradient"), what, shape=(inst["d"],))
    if not torch.equal(g, kept):
        fail(f"{what} changed grads in place; clip a copy")
    if not out.is_floating_point():
        fail(f"{what} returned dtype {out.dtype}; expected a floating-point gradient")


@noisy_gradient.prop("with noise_multiplier = 0 returns exactly the sum of the clipped gradients over "
                     "expected_batch_size")
def _ng_noiseless(fn, rng):
    for _ in range(3):
        inst = _step_instance(rng)
        got, what = _noisy(fn, inst, 0.0, _seeded(rng))
        want = _reference_noiseless(inst["grads"], inst["c"], inst["bbar"])
        if not bool(torch.isfinite(got).all()) or float((got - want).norm()) > 1e-4 * max(float(want.norm()),
                                                                                         inst["c"] / inst["bbar"]):
            fail(f"{what} = a vector of norm {fmt(got.norm())}; expected sum_i g_i min(1, C / ||g_i||) / "
                 f"expected_batch_size, of norm {fmt(want.norm())} ({len(inst['grads'])} rows in the batch)"
                 f"{_noiseless_hint(got, inst)}")


@noisy_gradient.prop("an empty batch (Poisson sampling draws one now and then) gives the noise alone: zeros at "
                     "noise_multiplier = 0, finite noise of std sigma C / B_bar otherwise")
def _ng_empty(fn, rng):
    inst = _step_instance(rng, empty=True)
    got, what = _noisy(fn, inst, 0.0, _seeded(rng))
    if not bool(torch.isfinite(got).all()) or float(got.abs().max()) > 0:
        fail(f"{what} on a batch of 0 rows returned {got.tolist()}; expected zeros (nan or inf: divide by "
             "expected_batch_size, never by the number of rows)")
    gen, sigma = _seeded(rng), inst["sigma"]
    draws = torch.stack([_noisy(fn, inst, sigma, gen)[0] for _ in range(200)])
    std = sigma * inst["c"] / inst["bbar"]
    if not bool(torch.isfinite(draws).all()):
        fail(f"noisy_gradient(grads (0, {inst['d']}), ..., noise_multiplier={sigma:.4g}, ...) returned nan or inf; "
             "the gradient of an empty batch is the noise over expected_batch_size")
    rms = float(draws.pow(2).mean().sqrt())
    if not 0.7 <= rms / std <= 1.4:
        fail(f"on a batch of 0 rows the noise has std {fmt(rms)}; expected sigma C / B_bar = {fmt(std)} "
             f"(sigma={sigma:.4g}, C={inst['c']:.4g}, B_bar={inst['bbar']:.4g})")


@noisy_gradient.prop("adds Gaussian noise of mean 0 and covariance (sigma C / B_bar)^2 I: the right scale, "
                     "independent coordinates")
def _ng_noise(fn, rng):
    inst = _step_instance(rng)
    sigma, c, bbar, d = inst["sigma"], inst["c"], inst["bbar"], inst["d"]
    gen = _seeded(rng)
    draws = torch.stack([_noisy(fn, inst, sigma, gen)[0] for _ in range(DRAWS)])
    if not bool(torch.isfinite(draws).all()):
        fail(f"noisy_gradient(..., noise_multiplier={sigma:.4g}, ...) returned nan or inf")
    z = draws - _reference_noiseless(inst["grads"], c, bbar)
    std = sigma * c / bbar
    where = f"(sigma={sigma:.4g}, C={c:.4g}, B_bar={bbar:.4g}, {len(inst['grads'])} rows, {DRAWS} draws)"
    # the mean's standard error from the measured spread: this test is about the centre only, the scale comes next
    if float(z.std(0).max()) == 0:
        fail(f"every call returned the same gradient {where}: draw fresh noise from generator on each call; do not "
             "reseed a generator inside the function")
    mean_err = (z.mean(0).abs() / (z.std(0) / math.sqrt(DRAWS)).clamp_min(1e-300)).max()
    if float(mean_err) > 5.5:
        fail(f"the draws average {fmt(draws.mean(0).norm())} in norm, away from sum_i clip(g_i) / B_bar by "
             f"{float(mean_err):.0f} standard errors {where}: the noise must have mean 0 and the clipped sum "
             "must be right (see the check at noise_multiplier = 0)")
    ratio = float(z.pow(2).mean().sqrt()) / std
    tol = 6 / math.sqrt(2 * DRAWS * d)
    if abs(ratio - 1) > tol:
        named = {"sigma / B_bar: the noise std is sigma times C, the clipping bound": sigma / bbar,
                 "sigma^2 C / B_bar: the noise std is sigma C (its variance is sigma^2 C^2)": sigma ** 2 * c / bbar,
                 "sigma C / B_bar^2: the noise is divided by the batch size twice": sigma * c / bbar ** 2,
                 "sigma C: the noise is added after averaging; add it to the sum, then divide": sigma * c,
                 "sigma C / B: divide by expected_batch_size": sigma * c / max(len(inst["grads"]), 1)}
        hint = next((f"; that is {h}" for h, v in named.items() if abs(ratio * std / v - 1) < 0.1), "")
        fail(f"the noise has std {fmt(ratio * std)} per coordinate; expected sigma C / B_bar = {fmt(std)} "
             f"{where}{hint}")
    corr = torch.corrcoef(z.T)
    off = (corr - torch.eye(d, dtype=corr.dtype)).abs().max()
    if not bool(torch.isfinite(off)) or float(off) > 5.5 / math.sqrt(DRAWS):
        fail(f"the noise of two coordinates has correlation {fmt(off)} over {DRAWS} draws; draw one independent "
             "normal per coordinate (shape (d,)), not one number for all")
    p = stats.kstest((z / std).flatten().numpy(), "norm").pvalue
    if p < 1e-7:
        fail(f"the noise has the right std but is not Gaussian (Kolmogorov-Smirnov p = {p:.1e} on {z.numel()} "
             "values); draw it with torch.randn or torch.normal")


@noisy_gradient.prop("draws its noise from the generator (same seed, same gradient; another seed, another)")
def _ng_generator(fn, rng):
    inst = _step_instance(rng)
    seed, sigma = randint(rng, 0, 10**6), inst["sigma"]
    a = _noisy(fn, inst, sigma, torch.Generator().manual_seed(seed))[0]
    b = _noisy(fn, inst, sigma, torch.Generator().manual_seed(seed))[0]
    c = _noisy(fn, inst, sigma, torch.Generator().manual_seed(seed + 1))[0]
    if not torch.equal(a, b):
        fail("two calls with generators seeded alike gave different gradients; pass generator=generator to "
             "torch.randn or torch.normal (and use no other source of randomness)")
    if torch.equal(a, c):
        fail("generators with different seeds gave the same gradient; is the noise drawn from the generator?")


@noisy_gradient.prop("raises a ValueError naming the argument when max_grad_norm <= 0, noise_multiplier < 0 or "
                     "expected_batch_size <= 0")
def _ng_bad(fn, rng):
    inst = _step_instance(rng)
    g, c, sigma, bbar = inst["grads"], inst["c"], inst["sigma"], inst["bbar"]
    cases = [((g.clone(), -_uniform(rng, 0.1, 2.0), sigma, bbar, _seeded(rng)), "max_grad_norm",
              "the clipping bound C must be > 0"),
             ((g.clone(), c, -_uniform(rng, 0.1, 2.0), bbar, _seeded(rng)), "noise_multiplier",
              "the noise multiplier must be >= 0"),
             ((g.clone(), c, sigma, 0.0, _seeded(rng)), "expected_batch_size",
              "the expected batch size q n must be > 0")]
    for args, argument, why in cases:
        shown = ", ".join(f"{k}={v:.3g}" for k, v in zip(("max_grad_norm", "noise_multiplier",
                                                          "expected_batch_size"), args[1:4]))
        expect_value_error(fn, args, f"noisy_gradient(grads, {shown}, generator)", why, argument)


# ---- (c) gaussian_rdp --------------------------------------------------------------------------------------
gaussian_rdp = SET.question(
    "gaussian_rdp", "gaussian_rdp(alpha, sensitivity, sigma) -> float",
    forbid=("mlsec_kit.dp.gaussian_rdp", f"{_RENYI}.gaussian_rdp", "mlsec_kit.dp.gaussian_zcdp",
            f"{_RENYI}.gaussian_zcdp", "mlsec_kit.dp.rdp_curve", f"{_ACCOUNTING}.rdp_curve",
            f"{_CHECKER}._reference_rdp"))


def _reference_rdp(alpha: float, sensitivity: float, sigma: float) -> float:
    return alpha * sensitivity ** 2 / (2 * sigma ** 2)


def _rdp_instance(rng: torch.Generator) -> tuple[float, float, float]:
    """alpha in [1.5, 64], Delta in [0.2, 0.6] or [1.8, 5], sigma in [0.3, 0.7] or [1.5, 8]: Delta and sigma never
    near 1, so Delta and Delta^2 (sigma and sigma^2) differ by a factor of 1.5 or more."""
    alpha = _uniform(rng, 1.5, 64.0)
    delta_ = _uniform(rng, 0.2, 0.6) if randint(rng, 0, 1) else _uniform(rng, 1.8, 5.0)
    sigma = _uniform(rng, 0.3, 0.7) if randint(rng, 0, 1) else _uniform(rng, 1.5, 8.0)
    return alpha, delta_, sigma


@gaussian_rdp.prop("returns a Python float")
def _gr_float(fn, rng):
    alpha, d, s = _rdp_instance(rng)
    expect_float(call(fn, alpha, d, s, name="gaussian_rdp"), f"gaussian_rdp({alpha:.4g}, {d:.4g}, {s:.4g})")


@gaussian_rdp.prop("is alpha Delta^2 / (2 sigma^2), for fractional orders alpha too")
def _gr_value(fn, rng):
    for _ in range(6):
        alpha, d, s = _rdp_instance(rng)
        what = f"gaussian_rdp(alpha={alpha:.4g}, sensitivity={d:.4g}, sigma={s:.4g})"
        got = to_float(call(fn, alpha, d, s, name="gaussian_rdp"), what)
        want = _reference_rdp(alpha, d, s)
        if abs(got - want) <= RTOL * want:
            continue
        named = {"Delta^2 / (2 sigma^2) without the factor alpha: that is the zCDP parameter rho; the RDP at "
                 "order alpha is alpha rho": d ** 2 / (2 * s ** 2),
                 "alpha Delta / (2 sigma^2): square the sensitivity": alpha * d / (2 * s ** 2),
                 "alpha Delta^2 / (2 sigma): square sigma": alpha * d ** 2 / (2 * s),
                 "alpha Delta^2 / sigma^2: the factor 1/2 is missing": alpha * d ** 2 / s ** 2,
                 "(alpha - 1) Delta^2 / (2 sigma^2): the factor is alpha": (alpha - 1) * d ** 2 / (2 * s ** 2)}
        hint = next((f"; that is {h}" for h, v in named.items() if abs(got - v) <= RTOL * abs(v)), "")
        fail(f"{what} = {fmt(got)}; expected alpha Delta^2 / (2 sigma^2) = {fmt(want)}{hint}{_close(got, want)}")


@gaussian_rdp.prop("raises a ValueError naming alpha when alpha <= 1, and naming sigma when sigma <= 0")
def _gr_bad(fn, rng):
    _, d, s = _rdp_instance(rng)
    for alpha in (1.0, _uniform(rng, 0.1, 0.9)):
        expect_value_error(fn, (alpha, d, s), f"gaussian_rdp(alpha={alpha:.3g}, sensitivity={d:.3g}, "
                            f"sigma={s:.3g})",
                            "this question takes orders alpha > 1 (the conversion to (epsilon, delta) divides by "
                            "alpha - 1)",
                            "alpha")
    for sigma in (0.0, -_uniform(rng, 0.1, 2.0)):
        expect_value_error(fn, (_uniform(rng, 2, 10), d, sigma), f"gaussian_rdp(alpha, sensitivity={d:.3g}, "
                            f"sigma={sigma:.3g})", "the noise standard deviation must be > 0", "sigma")


# ---- (d) rdp_to_dp -----------------------------------------------------------------------------------------
rdp_to_dp = SET.question(
    "rdp_to_dp", "rdp_to_dp(orders, rdp, delta) -> (epsilon, alpha)",
    forbid=("mlsec_kit.dp.rdp_to_dp", f"{_RENYI}.rdp_to_dp", "mlsec_kit.dp.zcdp_to_dp", f"{_RENYI}.zcdp_to_dp",
            "mlsec_kit.dp.rdp_epsilon", f"{_ACCOUNTING}.rdp_epsilon", "mlsec_kit.dp.rdp_epsilon_with_order",
            f"{_ACCOUNTING}.rdp_epsilon_with_order", f"{_CHECKER}._reference_conversion"))


def _reference_conversion(orders: list, rdp: list, delta: float) -> tuple[float, float]:
    """Mironov (2017), Prop. 3: ``min_alpha rho_alpha + ln(1/delta) / (alpha - 1)`` and the order attaining it."""
    eps = [r + math.log(1 / delta) / (a - 1) for a, r in zip(orders, rdp)]
    i = min(range(len(eps)), key=eps.__getitem__)
    return eps[i], orders[i]


def _curve_instance(rng: torch.Generator, kind: str) -> tuple[list, list, float]:
    """``(orders, rdp, delta)`` with the minimum strictly inside the grid (at least two orders either side).

    ``"gaussian"``: ``k`` Gaussian releases, ``rho_alpha = k alpha / (2 sigma^2)`` (minimum near
    ``1 + sqrt(2 sigma^2 ln(1/delta) / k)``) on a sorted random subset of TF Privacy's grid; ``"convex"``: a
    random increasing convex curve ``a (alpha - 1) + b (alpha - 1)^2`` on random orders, shuffled."""
    delta = 10 ** _uniform(rng, -9, -3)
    log_inv = math.log(1 / delta)
    while True:
        if kind == "gaussian":
            keep = torch.rand(len(_TF_ORDERS), generator=rng) < _uniform(rng, 0.3, 0.9)
            orders = [a for a, k in zip(_TF_ORDERS, keep.tolist()) if k]
            target = _uniform(rng, 3.0, 30.0)  # where the minimum should fall
            sigma = _uniform(rng, 0.6, 5.0)
            k = 2 * sigma ** 2 * log_inv / (target - 1) ** 2
            rdp = [k * a / (2 * sigma ** 2) for a in orders]
        else:
            orders = sorted(1 + 60 * float(u) for u in torch.rand(randint(rng, 8, 40), generator=rng, dtype=torch.float64))
            a_, b_ = 10 ** _uniform(rng, -3, 0), 10 ** _uniform(rng, -4, -1)
            rdp = [a_ * (a - 1) + b_ * (a - 1) ** 2 for a in orders]
        if len(set(orders)) < len(orders):
            continue
        _, best = _reference_conversion(orders, rdp, delta)
        rank = sorted(orders).index(best)
        if 2 <= rank <= len(orders) - 3:
            break
    if kind == "convex":
        perm = torch.randperm(len(orders), generator=rng).tolist()
        orders, rdp = [orders[i] for i in perm], [rdp[i] for i in perm]
    return orders, rdp, delta


def _near_best(orders: list, rdp: list, delta: float) -> list:
    """The orders whose epsilon is within ``RTOL`` of the minimum (a float32 argmin may pick a near-tied one)."""
    want, _ = _reference_conversion(orders, rdp, delta)
    log_inv = math.log(1 / delta)
    return [a for a, r in zip(orders, rdp) if r + log_inv / (a - 1) - want <= RTOL * max(1.0, want)]


def _convert(fn, orders: list, rdp: list, delta: float) -> tuple[float, float, str]:
    what = f"rdp_to_dp(orders ({len(orders)} orders), rdp, delta={delta:.3g})"
    out = call(fn, list(orders), list(rdp), delta, name="rdp_to_dp")
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        fail(f"{what} returned {describe(out)}; expected a pair (epsilon, alpha): the epsilon and the order "
             "attaining it")
    eps, alpha = expect_pair(out, what)
    return to_float(eps, what + "[0] (epsilon)"), to_float(alpha, what + "[1] (the order)"), what


def _check_conversion(fn, orders: list, rdp: list, delta: float, context: str = "") -> None:
    eps, alpha, what = _convert(fn, orders, rdp, delta)
    want, best = _reference_conversion(orders, rdp, delta)
    eps_ok = abs(eps - want) <= RTOL * max(1.0, want)
    if eps_ok and any(math.isclose(alpha, a, rel_tol=RTOL) for a in _near_best(orders, rdp, delta)):
        return
    log_inv = math.log(1 / delta)
    per_order = {a: (r, a - 1) for a, r in zip(orders, rdp)}

    def smallest(f):
        return min(f(r, a1) for r, a1 in per_order.values())

    named = {
        "rho - ln(1/delta)/(alpha - 1): the sign of the log(1/delta) term is wrong; the conversion adds it":
            smallest(lambda r, a1: r - log_inv / a1),
        "Balle et al. (2020)'s conversion, which is tighter; this question asks for Mironov's, "
        "rho + ln(1/delta)/(alpha - 1)":
            smallest(lambda r, a1: r + math.log(a1 / (a1 + 1)) - (math.log(delta) + math.log(a1 + 1)) / a1),
        "the conversion with log10; use the natural logarithm": smallest(lambda r, a1: r + math.log10(1 / delta) / a1),
        "rho + ln(1/delta)/alpha: divide by alpha - 1": smallest(lambda r, a1: r + log_inv / (a1 + 1)),
        "the first order's epsilon: minimise over all the orders":
            rdp[0] + log_inv / (orders[0] - 1),
        "the last order's epsilon: minimise over all the orders":
            rdp[-1] + log_inv / (orders[-1] - 1),
        "the largest epsilon over the orders: each order gives a valid bound, so take the smallest":
            max(r + log_inv / a1 for r, a1 in per_order.values()),
    }
    hint = next((f"; that is {h}" for h, v in named.items() if abs(eps - v) <= RTOL * max(1.0, abs(v))), "")
    if abs(alpha - want) <= RTOL * max(1.0, want) and any(math.isclose(eps, a, rel_tol=RTOL) for a in orders):
        hint = "; that is (alpha, epsilon): return (epsilon, alpha) in that order"
    if eps_ok:
        fail(f"{what}{context} returned epsilon {fmt(eps)} (right) with the order {fmt(alpha)}; the order that "
             f"attains it is {fmt(best)}")
    fail(f"{what}{context} = ({fmt(eps)}, {fmt(alpha)}); expected min over the orders of "
         f"rho_alpha + ln(1/delta)/(alpha - 1) = {fmt(want)} at alpha = {fmt(best)}{hint}{_close(eps, want)}")


@rdp_to_dp.prop("returns a pair (epsilon, alpha) of numbers, alpha one of the orders")
def _rd_form(fn, rng):
    orders, rdp, delta = _curve_instance(rng, "convex")
    eps, alpha, what = _convert(fn, orders, rdp, delta)
    if not any(math.isclose(alpha, a, rel_tol=RTOL) for a in orders):
        swapped = any(math.isclose(eps, a, rel_tol=RTOL) for a in orders)
        fail(f"{what} returned the order {fmt(alpha)}, which is not one of the orders given"
             + ("; the first item is an order: return (epsilon, alpha) in that order" if swapped else ""))


@rdp_to_dp.prop("epsilon is the minimum over the orders of rho_alpha + ln(1/delta) / (alpha - 1), alpha the "
                "order attaining it")
def _rd_value(fn, rng):
    for kind in ("gaussian", "convex", "gaussian", "convex"):
        _check_conversion(fn, *_curve_instance(rng, kind))


@rdp_to_dp.prop("reproduces TF Privacy's published epsilon of about 3.0 for its MNIST tutorial (sigma 1.1, "
                "q = 256/60000, 60 epochs, delta 1e-5) from the RDP curve of that setting")
def _rd_tf_privacy(fn, rng):
    from ...dp.renyi import subsampled_gaussian_rdp

    steps = math.ceil(60 * 60000 / 256)
    rdp = (steps * subsampled_gaussian_rdp(q=256 / 60000, sigma=1.1, orders=_TF_ORDERS)).tolist()
    _check_conversion(fn, list(_TF_ORDERS), rdp, 1e-5,
                      context=f" on the RDP curve of {steps} steps of DP-SGD (TF Privacy's MNIST tutorial)")


@rdp_to_dp.prop("raises a ValueError naming delta when delta is not in (0, 1)")
def _rd_bad(fn, rng):
    orders, rdp, _ = _curve_instance(rng, "convex")
    for delta in (0.0, 1.0, 1 + _uniform(rng, 0.1, 2.0), -_uniform(rng, 1e-6, 0.5)):
        expect_value_error(fn, (list(orders), list(rdp), delta), f"rdp_to_dp(orders, rdp, delta={delta:.3g})",
                            "delta must be in (0, 1): ln(1/delta) is undefined or negative outside it", "delta")


# ---- (e) dp_sgd_statements (conceptual) --------------------------------------------------------------------
dp_sgd_statements = SET.question("dp_sgd_statements", "dp_sgd_statements() -> str of letters, e.g. 'ac'")
STATEMENTS = {
    "a": "Clipping each example's gradient to norm C bounds, whatever the data, how far adding or removing one "
         "example moves the sum of the clipped gradients: by at most C. Clipping the batch's average gradient "
         "instead can let one example move the clipped average by a full C, not C divided by the expected batch "
         "size, so the noise the correct step adds to the average is far too small for the claimed guarantee.",
    "b": "At a fixed noise multiplier sigma, raising the clipping norm C weakens the privacy guarantee, since each "
         "example can then move the sum further.",
    "c": "For the setting of TF Privacy's MNIST tutorial (sigma 1.1, q = 256/60000, 60 epochs, delta 1e-5), TF "
         "Privacy published epsilon of about 3.0 and Opacus's RDP accountant reports about 2.6. Both convert the "
         "same Rényi DP curve of the Poisson-subsampled Gaussian mechanism; the 2.6 comes from a tighter "
         "RDP-to-(epsilon, delta) conversion (Balle et al. 2020), is as valid an upper bound as the 3.0, and "
         "neither number points to a bug.",
    "d": "Publishing every noisy gradient computed during training costs privacy beyond the epsilon the "
         "accountant reports for the final model.",
    "e": "With Poisson sampling, DP-SGD divides the noisy sum by the expected batch size q n, a public constant: "
         "the actual batch size depends on who was sampled, and the accountant analyses the noisy sum, whose "
         "sensitivity under add/remove neighbours is C.",
    "f": "Training on fixed-size batches taken in turn from a shuffled dataset has exactly the guarantee the "
         "accountant of the Poisson-subsampled Gaussian mechanism reports for the same sample rate.",
    "g": "An audit of a model the accountant says is (8, 1e-5)-DP finds an empirical lower bound of epsilon 0.3; "
         "the accountant therefore overstates the privacy loss, and epsilon 0.3 may be reported for the model.",
}
TRUE_STATEMENTS = frozenset("ace")
_WHY_NOT = {
    "b": "the noise std is sigma C, so it grows with C in proportion; the accountant's epsilon depends only on "
         "sigma, the sample rate, the number of steps and delta (C trades clipping bias against noise, not privacy)",
    "d": "the accountant composes the privacy loss of every noisy gradient, as if each were published; the final "
         "model is post-processing of them and costs nothing extra",
    "f": "the accountant assumes each example joins each batch independently with probability q; shuffled "
         "fixed-size batches are another mechanism, whose guarantee can be markedly weaker for the same sigma and "
         "q: say which sampling the accountant assumes, or sample as it assumes",
    "g": "an audit gives a lower bound for one attack; the accountant gives an upper bound for every attack; a "
         "lower bound below it refutes nothing and proves nothing, and only the upper bound may be claimed",
}


statement_checks(dp_sgd_statements, "dp_sgd_statements", STATEMENTS, TRUE_STATEMENTS, _WHY_NOT, exact=True,
                 hint="think about what clipping bounds, what the accountant "
                 "analyses, and what the two published numbers for one setting have in common")
