"""Checks of the chapter-10 exercise set: randomized response and its estimator, the Laplace mechanism for a
clipped mean, the sensitivity of a query under each neighbouring relation, and composition arithmetic.

The statistical properties draw thousands of releases and accept at five standard errors (four, one-sided, for
too little Laplace noise, on 20,000 releases; or a p-value above 1e-4, or an audit at 99.9% confidence), so a correct solution fails with a probability of about one
in a thousand per property at most; the seeds are fixed per property, so a rerun gives the same verdict.
The privacy properties audit the *joint* output on two neighbouring inputs (:func:`mlsec_kit.dp.audit_epsilon`,
event chosen on held-out samples): right marginals are not enough. Student functions take tensors or
numbers and a ``torch.Generator`` for their randomness; scalars come back as Python floats.
"""
from __future__ import annotations

import math

import torch
from scipy import stats

from ... import dp
from ..core import ExerciseSet
from ..expect import call, describe, expect_float, expect_pair, expect_tensor, fail, fmt, to_float
from ..instances import randint

SET = ExerciseSet("10_differential_privacy", "Exercises: differential privacy", chapter=10)


def _uniform(rng: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=rng, dtype=torch.float64))


def _seeded(rng: torch.Generator) -> torch.Generator:
    """A fresh generator for the student's function, seeded from the property's own."""
    return torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=rng)))


# ---- (a) randomized_response ---------------------------------------------------------------------------
randomized_response = SET.question(
    "randomized_response", "randomized_response(bits, epsilon, generator) -> tensor",
    forbid=("mlsec_kit.dp.randomized_response", "mlsec_kit.dp.mechanisms.randomized_response"))


def _reports(fn, bits: torch.Tensor, epsilon: float, generator: torch.Generator) -> torch.Tensor:
    what = f"randomized_response(bits {describe(bits)}, epsilon={epsilon:.3g}, generator)"
    out = expect_tensor(call(fn, bits.clone(), epsilon, generator, name="randomized_response"), what,
                        shape=bits.shape)
    if out.is_floating_point() or not bool(((out == 0) | (out == 1)).all()):
        fail(f"{what} returned values other than the integers 0 and 1 (dtype {out.dtype})")
    return out.long()


@randomized_response.prop("returns a tensor of 0s and 1s with the shape of bits")
def _rr_shape(fn, rng):
    bits = torch.randint(0, 2, (randint(rng, 3, 20), randint(rng, 1, 4)), generator=rng)
    _reports(fn, bits, _uniform(rng, 0.5, 2.0), _seeded(rng))


@randomized_response.prop("keeps each bit with probability e^eps / (1 + e^eps)")
def _rr_keep(fn, rng):
    n, eps = 20_000, _uniform(rng, 0.2, 3.0)
    bits = torch.randint(0, 2, (n,), generator=rng)
    kept = int((_reports(fn, bits, eps, _seeded(rng)) == bits).sum())
    p = 1 / (1 + math.exp(-eps))
    if abs(kept - n * p) > 5 * math.sqrt(n * p * (1 - p)):
        hints = {"1 - p: the truth and the lie are swapped": 1 - p, "eps / (1 + eps)": eps / (1 + eps),
                 "1/2: the reports ignore the bits": 0.5}
        hint = next((f"; that is {h}" for h, v in hints.items() if abs(kept / n - v) < 0.02), "")
        fail(f"kept {kept / n:.4f} of {n} bits at epsilon={eps:.3g}; expected about {p:.4f}{hint}")


@randomized_response.prop("lies symmetrically: a 0 becomes 1 as often as a 1 becomes 0")
def _rr_symmetric(fn, rng):
    n, eps = 10_000, _uniform(rng, 0.3, 2.0)
    p = 1 / (1 + math.exp(-eps))
    for b in (0, 1):
        bits = torch.full((n,), b, dtype=torch.long)
        ones = int(_reports(fn, bits, eps, _seeded(rng)).sum())
        expected = n * (p if b == 1 else 1 - p)
        if abs(ones - expected) > 5 * math.sqrt(n * p * (1 - p)):
            fail(f"on {n} bits all equal to {b} at epsilon={eps:.3g}, {ones} reports are 1; expected about "
                 f"{expected:.0f}")


@randomized_response.prop("draws its randomness from the generator (same seed, same reports)")
def _rr_generator(fn, rng):
    bits = torch.randint(0, 2, (200,), generator=rng)
    seed = randint(rng, 0, 10**6)
    a = _reports(fn, bits, 1.0, torch.Generator().manual_seed(seed))
    b = _reports(fn, bits, 1.0, torch.Generator().manual_seed(seed))
    c = _reports(fn, bits, 1.0, torch.Generator().manual_seed(seed + 1))
    if not torch.equal(a, b):
        fail("two calls with generators seeded alike gave different reports; pass generator=generator to "
             "torch.rand (and use no other source of randomness)")
    if torch.equal(a, c):
        fail("generators with different seeds gave identical reports on 200 bits; is the randomness used at all?")


@randomized_response.prop("is epsilon-DP for the joint report: one person's bit changed, the rest known")
def _rr_joint(fn, rng):
    # D and D' differ in person 0's bit; the auditor knows everyone else's. The number of reports that differ
    # from D is a post-processing of the joint report, so its law may change by at most e^eps between them.
    n, eps, count = randint(rng, 8, 16), _uniform(rng, 0.5, 2.0), 1500
    d = torch.randint(0, 2, (n,), generator=rng)
    d[0] = 0
    d_prime = d.clone()
    d_prime[0] = 1
    gen = _seeded(rng)
    stats_ = [torch.tensor([float((_reports(fn, data, eps, gen) != d).sum()) for _ in range(count)],
                           dtype=torch.float64) for data in (d, d_prime)]
    audit = dp.audit_epsilon(stats_[0], stats_[1], confidence=0.999)
    if audit.refutes(eps):
        constant = len(torch.unique(stats_[0])) == 1
        hint = ("; on D the number of flipped entries never varies: flip each entry independently with its "
                "own coin, do not flip a fixed number of them" if constant else "")
        fail(f"on {n} bits differing in one person's bit, the joint reports show epsilon >= {audit.epsilon:.2f} "
             f"(99.9% confidence, {count} reports each); the claim is epsilon={eps:.3g}{hint}")


# ---- (b) rr_estimate -----------------------------------------------------------------------------------
rr_estimate = SET.question(
    "rr_estimate", "rr_estimate(reports, epsilon) -> float",
    forbid=("mlsec_kit.dp.randomized_response_estimate", "mlsec_kit.dp.mechanisms.randomized_response_estimate"))


def _estimate(fn, reports: torch.Tensor, eps: float) -> float:
    return to_float(call(fn, reports.clone(), eps, name="rr_estimate"),
                    f"rr_estimate(reports {describe(reports)}, epsilon={eps:.3g})")


@rr_estimate.prop("returns a Python float")
def _est_float(fn, rng):
    reports = torch.randint(0, 2, (50,), generator=rng)
    expect_float(call(fn, reports, 1.0, name="rr_estimate"), "rr_estimate")


@rr_estimate.prop("inverts the expected report rate: (mean - (1 - p)) / (2p - 1), unclipped")
def _est_formula(fn, rng):
    for kind in ("random", "random", "random", "all 0", "all 1"):  # all 0s or 1s: the estimate leaves [0, 1]
        n, eps = randint(rng, 10, 200), _uniform(rng, 0.1, 3.0)
        reports = torch.randint(0, 2, (n,), generator=rng)
        if kind != "random":
            reports = torch.full((n,), int(kind[-1]), dtype=torch.long)
        p = 1 / (1 + math.exp(-eps))
        rate = float(reports.double().mean())
        expected = (rate - (1 - p)) / (2 * p - 1)
        got = _estimate(fn, reports, eps)
        if abs(got - expected) > 1e-6 * max(1.0, abs(expected)):
            hint = ("; do not clip the estimate into [0, 1], clipping biases it"
                    if abs(got - min(1.0, max(0.0, expected))) < 1e-9
                    else "; that is the raw fraction of 1s, which is biased towards 1/2" if abs(got - rate) < 1e-9
                    else "")
            fail(f"rr_estimate on {n} reports with {rate:.3f} ones at epsilon={eps:.3g} gave {fmt(got)}; "
                 f"expected {fmt(expected)}{hint}")


@rr_estimate.prop("is unbiased: averages to the true fraction over many surveys")
def _est_unbiased(fn, rng):
    n, surveys, eps = 200, 600, _uniform(rng, 0.5, 2.0)
    true = randint(rng, 10, 90) / 100
    bits = (torch.arange(n) < round(true * n)).long()
    gen = _seeded(rng)
    estimates = torch.tensor([_estimate(fn, dp.randomized_response(bits, epsilon=eps, generator=gen), eps)
                              for _ in range(surveys)], dtype=torch.float64)
    se = float(estimates.std()) / math.sqrt(surveys)
    if abs(float(estimates.mean()) - true) > 5 * se + 1e-9:
        fail(f"over {surveys} surveys of {n} people at epsilon={eps:.3g} the estimates average "
             f"{float(estimates.mean()):.4f}; the true fraction is {true:.2f}")


# ---- (c) sensitivity: the neighbouring relation decides it ---------------------------------------------
sensitivity = SET.question(
    "sensitivity", "sensitivity(query, neighbours, lower, upper, n) -> float",
    forbid=("mlsec_kit.dp.sum_sensitivity", "mlsec_kit.dp.mean_sensitivity", "mlsec_kit.dp.histogram_sensitivity",
            "mlsec_kit.dp.queries.sum_sensitivity", "mlsec_kit.dp.queries.mean_sensitivity",
            "mlsec_kit.dp.queries.histogram_sensitivity"))


def _bounds_instances(rng: torch.Generator) -> list[tuple[float, float, int]]:
    """Bounds of every sign pattern (so max(|lower|, |upper|) differs from upper and from upper - lower)."""
    out = []
    for kind in ("positive", "negative dominates", "upper dominates", "negative"):
        a, b = float(randint(rng, 1, 20)), float(randint(rng, 1, 20))
        if kind == "positive":
            lower, upper = a, a + b
        elif kind == "negative dominates":
            lower, upper = -(a + b), a
        elif kind == "upper dominates":
            lower, upper = -a, a + b
        else:
            lower, upper = -(a + b), -a
        out.append((lower, upper, randint(rng, 5, 500)))
    return out


def _sensitivity(fn, query: str, neighbours: str, lower: float, upper: float, n: int) -> float:
    what = f"sensitivity({query!r}, {neighbours!r}, lower={lower:g}, upper={upper:g}, n={n})"
    return to_float(call(fn, query, neighbours, lower, upper, n, name="sensitivity"), what)


def _expect_sensitivity(fn, query: str, neighbours: str, lower: float, upper: float, n: int, want: float,
                        why: str, hints: dict) -> None:
    got = _sensitivity(fn, query, neighbours, lower, upper, n)
    if abs(got - want) > 1e-9 * max(1.0, abs(want)):
        hint = next((f"; {h}" for h, v in hints.items() if abs(got - v) <= 1e-9 * max(1.0, abs(v))), "")
        fail(f"sensitivity({query!r}, {neighbours!r}, lower={lower:g}, upper={upper:g}, n={n}) = {fmt(got)}; "
             f"expected {fmt(want)}: {why}{hint}")


@sensitivity.prop("returns a Python float")
def _sens_float(fn, rng):
    lower, upper, n = _bounds_instances(rng)[0]
    expect_float(call(fn, "sum", "replace", lower, upper, n, name="sensitivity"), "sensitivity")


@sensitivity.prop("clipped sum: max(|lower|, |upper|) under add/remove, upper - lower under replace")
def _sens_sum(fn, rng):
    for lower, upper, n in _bounds_instances(rng):
        _expect_sensitivity(fn, "sum", "add_remove", lower, upper, n, max(abs(lower), abs(upper)),
                            "an added or removed record brings or takes its whole clipped value",
                            {"that is upper - lower, the replace-one sensitivity": upper - lower,
                             "that is upper, but a record can be as far as |lower| from 0": upper})
        _expect_sensitivity(fn, "sum", "replace", lower, upper, n, upper - lower,
                            "a record replaced can go from lower to upper",
                            {"that is max(|lower|, |upper|), the add/remove sensitivity": max(abs(lower), abs(upper))})


@sensitivity.prop("count of records with a property: 1 under both relations")
def _sens_count(fn, rng):
    for lower, upper, n in _bounds_instances(rng)[:2]:
        for neighbours in ("add_remove", "replace"):
            _expect_sensitivity(fn, "count", neighbours, lower, upper, n, 1.0,
                                "one record changes one count by at most 1, even when it is replaced",
                                {"a single count moves by at most 1 under replace: the record leaves or joins "
                                 "the counted set, not both": 2.0})


@sensitivity.prop("histogram (L1): 1 under add/remove, 2 under replace")
def _sens_histogram(fn, rng):
    for lower, upper, n in _bounds_instances(rng)[:2]:
        _expect_sensitivity(fn, "histogram", "add_remove", lower, upper, n, 1.0,
                            "an added or removed record changes one bin by 1", {})
        _expect_sensitivity(fn, "histogram", "replace", lower, upper, n, 2.0,
                            "a replaced record can leave one bin and join another, two counts move by 1",
                            {"under replace two bins change: the record leaves one and joins another": 1.0})


@sensitivity.prop("clipped mean with n public (replace): (upper - lower) / n")
def _sens_mean(fn, rng):
    for lower, upper, n in _bounds_instances(rng):
        _expect_sensitivity(fn, "mean", "replace", lower, upper, n, (upper - lower) / n,
                            "one of n clipped values moves by at most upper - lower",
                            {"divide by n: the mean of n values": upper - lower,
                             "that is max(|lower|, |upper|) / n, the add/remove sum's bound over n":
                                 max(abs(lower), abs(upper)) / n})


# ---- (d) laplace_mean ----------------------------------------------------------------------------------
laplace_mean = SET.question(
    "laplace_mean", "laplace_mean(x, lower, upper, epsilon, generator) -> float",
    forbid=("mlsec_kit.dp.private_mean", "mlsec_kit.dp.queries.private_mean", "mlsec_kit.dp.laplace",
            "mlsec_kit.dp.mechanisms.laplace"))


def _mean_instance(rng: torch.Generator, *, outliers: bool = False):
    n = randint(rng, 20, 200)
    lower = float(randint(rng, -10, 10))
    upper = lower + float(randint(rng, 1, 50))
    x = lower + (upper - lower) * torch.rand(n, generator=rng, dtype=torch.float64)
    if outliers:
        k = randint(rng, 1, 3)
        x[:k] = upper + 100 * (upper - lower)  # on one side only, so they do not cancel in the mean
    return x, lower, upper


def _small_symmetric_instance(rng: torch.Generator):
    """A handful of values (n in 2..5) between bounds lower < 0 < upper with |lower| close to upper.

    Small n tells the sensitivity (upper - lower) / n from (upper - lower) / (n + 1) (a scale n / (n + 1) <= 5/6
    of the right one), and bounds on both sides of 0 tell it from max(|lower|, |upper|) / n (about half of it).
    """
    n = randint(rng, 2, 5)  # not 1: there (upper - lower) / epsilon, forgetting n, would be right
    a = float(randint(rng, 5, 40))
    lower, upper = -a, a + float(randint(rng, 0, int(a) // 5))
    x = lower + (upper - lower) * torch.rand(n, generator=rng, dtype=torch.float64)
    return x, lower, upper


def _releases(fn, x, lower, upper, eps, count, gen) -> torch.Tensor:
    what = f"laplace_mean(x {describe(x)}, lower={lower:g}, upper={upper:g}, epsilon={eps:.3g}, generator)"
    out = []
    for _ in range(count):
        out.append(to_float(call(fn, x, lower, upper, eps, gen, name="laplace_mean"), what))
    return torch.tensor(out, dtype=torch.float64)


@laplace_mean.prop("clips x to [lower, upper] before averaging, and returns a Python float")
def _lm_clips(fn, rng):
    x, lower, upper = _mean_instance(rng, outliers=True)
    got = expect_float(call(fn, x.clone(), lower, upper, 1e9, _seeded(rng), name="laplace_mean"), "laplace_mean")
    expected = float(x.clamp(lower, upper).mean())
    if abs(got - expected) > 1e-6 * (upper - lower):
        hint = "; that is the mean without clipping" if abs(got - float(x.mean())) < 1e-6 * (upper - lower) else ""
        fail(f"with epsilon=1e9 (almost no noise) and outliers far outside [{lower:g}, {upper:g}] the release is "
             f"{fmt(got)}; expected the clipped mean {fmt(expected)}{hint}")


@laplace_mean.prop("is unbiased for data inside the bounds")
def _lm_unbiased(fn, rng):
    x, lower, upper = _mean_instance(rng)
    eps, count = _uniform(rng, 0.2, 2.0), 3000
    out = _releases(fn, x, lower, upper, eps, count, _seeded(rng))
    se = float(out.std()) / math.sqrt(count)  # the measured spread: this property is about the centre only
    if abs(float(out.mean()) - float(x.mean())) > 5 * se:
        fail(f"{count} releases average {fmt(out.mean())}; the mean of x is {fmt(x.mean())} "
             f"(n={len(x)}, [{lower:g}, {upper:g}], epsilon={eps:.3g})")


@laplace_mean.prop("adds Laplace noise of scale (upper - lower) / (n * epsilon), not less")
def _lm_scale(fn, rng):
    # few values, bounds around 0: the instance where the plausible wrong sensitivities are far from the right one
    x, lower, upper = _small_symmetric_instance(rng)
    eps, count = _uniform(rng, 0.2, 2.0), 20_000
    out = _releases(fn, x, lower, upper, eps, count, _seeded(rng)) - float(x.mean())
    b = (upper - lower) / (len(x) * eps)
    b_hat = float(out.abs().mean())  # |Lap(b)| is exponential with mean b and sd b: b_hat / b has sd 1/sqrt(count)
    se = 1 / math.sqrt(count)
    # tight below (too little noise breaks the privacy claim), loose above (too much only costs accuracy): a
    # right answer falls 4 standard errors short with probability 3e-5, while 7% too little noise is 10 below
    scale_ok = 1 - 4 * se <= b_hat / b <= 1 + 5 * se
    if scale_ok and stats.kstest(out.numpy(), "laplace", args=(0.0, b)).pvalue > 1e-4:
        return
    n = len(x)
    hints = {"(upper - lower) / epsilon: divide by n too": (upper - lower) / eps,
             "1 / (n * epsilon): the sensitivity is (upper - lower) / n": 1 / (n * eps),
             "(upper - lower) * epsilon / n: divide by epsilon, do not multiply": (upper - lower) * eps / n,
             "(upper - lower) / ((n + 1) * epsilon): the mean of n values moves by (upper - lower) / n":
                 (upper - lower) / ((n + 1) * eps),
             "max(|lower|, |upper|) / (n * epsilon), the add/remove sum's bound over n: with n public (replace), "
             "one value can move from lower to upper": max(abs(lower), abs(upper)) / (n * eps)}
    hint = ""
    if stats.kstest(out.numpy(), "norm", args=(0.0, float(out.std()))).pvalue > 1e-3:
        hint = "; the noise looks Gaussian, not Laplace"
    # a named formula is only told apart from a mere rescaling when it is far from b
    if not hint:
        named = next((f"; that is {h}" for h, v in hints.items()
                      if abs(b_hat / v - 1) < 0.05 and abs(v / b - 1) > 0.1), "")
        if b_hat < b:
            hint = (f"; that is {b_hat / b:.0%} of the scale the claim needs: too little noise, so the release is "
                    f"less private than epsilon says{named}")
        else:
            hint = named
    fail(f"the noise of {count} releases has scale about {fmt(b_hat)}; expected Laplace with b = {fmt(b)} "
         f"(n={n}, [{lower:g}, {upper:g}], epsilon={eps:.3g}){hint}")


@laplace_mean.prop("its noise comes from the generator and depends on nothing else (not on the data)")
def _lm_data_independent(fn, rng):
    x, lower, upper = _mean_instance(rng)
    seed = randint(rng, 0, 10**6)
    got = [to_float(call(fn, x.clone(), lower, upper, 1.0, torch.Generator().manual_seed(s), name="laplace_mean"),
                    "laplace_mean") for s in (seed, seed, seed + 1)]
    if got[0] != got[1]:
        fail("two calls with generators seeded alike gave different releases; pass generator=generator to the "
             "sampler (and use no other source of randomness)")
    if got[0] == got[2]:
        fail("generators with different seeds gave the same release; is the noise drawn from the generator?")
    constant = torch.full_like(x, _uniform(rng, lower, upper))
    eps, count = _uniform(rng, 0.2, 2.0), 2000
    gen = _seeded(rng)
    noise = [_releases(fn, data, lower, upper, eps, count, gen) - float(data.mean()) for data in (constant, x)]
    if stats.ks_2samp(noise[0].numpy(), noise[1].numpy()).pvalue < 1e-4:
        fail(f"the noise has scale about {fmt(noise[0].abs().mean())} on constant data and "
             f"{fmt(noise[1].abs().mean())} on spread-out data of the same size n={len(x)} (epsilon={eps:.3g}); "
             "the sensitivity (upper - lower) / n must come from the bounds, not the data (a data-dependent scale "
             "releases the exact mean of constant data, and itself leaks)")


@laplace_mean.prop("empirical privacy loss on neighbouring datasets stays under epsilon")
def _lm_privacy(fn, rng):
    x, lower, upper = _mean_instance(rng)
    eps, count = 1.0, 4000
    d, d_prime = x.clone(), x.clone()
    d[0], d_prime[0] = lower, upper + 1000 * (upper - lower)  # one record replaced: the worst case
    gen = _seeded(rng)
    a = _releases(fn, d, lower, upper, eps, count, gen)
    b = _releases(fn, d_prime, lower, upper, eps, count, gen)
    audit = dp.audit_epsilon(a, b, confidence=0.999)  # the event is chosen on half the releases, tested on the rest
    if audit.refutes(eps):
        fail(f"releases on two neighbouring datasets (one record changed) differ so much that epsilon is at least "
             f"{audit.epsilon:.2f} with 99.9% confidence; the claim is epsilon={eps:g} (clip, and use the "
             "sensitivity (upper - lower) / n)")


# ---- (e) sequential_composition ------------------------------------------------------------------------
sequential_composition = SET.question(
    "sequential_composition", "sequential_composition(budgets) -> (epsilon, delta)",
    forbid=("mlsec_kit.dp.sequential_composition", "mlsec_kit.dp.composition.sequential_composition",
            "mlsec_kit.dp.PrivacyBudget", "mlsec_kit.dp.budget.PrivacyBudget"))


def _budgets(rng: torch.Generator) -> list[tuple[float, float]]:
    return [(_uniform(rng, 0.01, 2.0), _uniform(rng, 0.0, 1e-5) if randint(rng, 0, 1) else 0.0)
            for _ in range(randint(rng, 1, 12))]


def _pair(fn, *args, name: str) -> tuple[float, float]:
    what = f"{name}({', '.join(map(describe, args))})"
    a, b = expect_pair(call(fn, *args, name=name), what)
    return to_float(a, what + " (epsilon)"), to_float(b, what + " (delta)")


@sequential_composition.prop("returns a pair (epsilon, delta) of numbers")
def _seq_pair(fn, rng):
    _pair(fn, _budgets(rng), name="sequential_composition")


@sequential_composition.prop("adds up the epsilons and the deltas")
def _seq_sum(fn, rng):
    for _ in range(5):
        budgets = _budgets(rng)
        eps, delta = _pair(fn, list(budgets), name="sequential_composition")
        want_eps, want_delta = math.fsum(e for e, _ in budgets), math.fsum(d for _, d in budgets)
        if abs(eps - want_eps) > 1e-9 * max(1, want_eps) or abs(delta - want_delta) > 1e-15 + 1e-9 * want_delta:
            hint = ("; that is the largest one: parallel composition, which only holds on disjoint data"
                    if abs(eps - max(e for e, _ in budgets)) < 1e-12 and len(budgets) > 1 else "")
            fail(f"for {len(budgets)} mechanisms got ({fmt(eps)}, {fmt(delta)}); expected ({fmt(want_eps)}, "
                 f"{fmt(want_delta)}){hint}")


@sequential_composition.prop("one mechanism costs itself, and the order does not matter")
def _seq_identity(fn, rng):
    e, d = _uniform(rng, 0.01, 3.0), _uniform(rng, 0.0, 1e-4)
    got = _pair(fn, [(e, d)], name="sequential_composition")
    if abs(got[0] - e) > 1e-12 or abs(got[1] - d) > 1e-15:
        fail(f"sequential_composition([({e:.4g}, {d:.3g})]) = ({fmt(got[0])}, {fmt(got[1])}); expected the same pair")
    budgets = _budgets(rng)
    forward = _pair(fn, list(budgets), name="sequential_composition")
    backward = _pair(fn, list(reversed(budgets)), name="sequential_composition")
    if abs(forward[0] - backward[0]) > 1e-9 or abs(forward[1] - backward[1]) > 1e-15:
        fail(f"reversing the list changed the result from {forward} to {backward}")


# ---- (f) advanced_composition --------------------------------------------------------------------------
advanced_composition = SET.question(
    "advanced_composition", "advanced_composition(epsilon, delta, k, delta_prime) -> (epsilon, delta)",
    forbid=("mlsec_kit.dp.advanced_composition", "mlsec_kit.dp.composition.advanced_composition",
            "mlsec_kit.dp.PrivacyBudget", "mlsec_kit.dp.budget.PrivacyBudget"))


def _adv_instance(rng: torch.Generator):
    return (_uniform(rng, 0.001, 1.0), _uniform(rng, 0.0, 1e-6), randint(rng, 1, 5000),
            10 ** _uniform(rng, -9, -2))


@advanced_composition.prop("returns a pair (epsilon, delta) of numbers")
def _adv_pair(fn, rng):
    _pair(fn, *_adv_instance(rng), name="advanced_composition")


def _close(a: float, b: float, rel: float) -> bool:
    return abs(a - b) <= rel * max(abs(b), 1e-300)


@advanced_composition.prop("epsilon is eps sqrt(2k ln(1/delta')) + k eps (e^eps - 1), or k eps where smaller")
def _adv_eps(fn, rng):
    for _ in range(6):
        eps, delta, k, delta_prime = _adv_instance(rng)
        got, _ = _pair(fn, eps, delta, k, delta_prime, name="advanced_composition")
        first = eps * math.sqrt(2 * k * math.log(1 / delta_prime))
        second = k * eps * math.expm1(eps)
        if _close(got, first + second, 1e-9) or _close(got, min(first + second, k * eps), 1e-9):
            continue  # the theorem's bound, or the better of it and sequential composition (both valid)
        hint = ("; the term k * eps * (e^eps - 1) is missing" if _close(got, first, 1e-9)
                else "; that is sequential composition, k * eps, which is larger here" if _close(got, k * eps, 1e-9)
                else "")
        fail(f"advanced_composition({eps:.4g}, {delta:.3g}, {k}, {delta_prime:.3g}) gave epsilon {fmt(got)}; "
             f"expected {fmt(first + second)} (or k * eps = {fmt(k * eps)} if that is smaller){hint}")


@advanced_composition.prop("delta is k * delta + delta' (k * delta when k * eps is returned)")
def _adv_delta(fn, rng):
    for _ in range(6):
        eps, delta, k, delta_prime = _adv_instance(rng)
        got_eps, got = _pair(fn, eps, delta, k, delta_prime, name="advanced_composition")
        want = k * delta + delta_prime
        sequential = _close(got_eps, k * eps, 1e-9) and not _close(got_eps, eps * math.sqrt(
            2 * k * math.log(1 / delta_prime)) + k * eps * math.expm1(eps), 1e-9)
        if abs(got - want) <= 1e-12 * max(want, 1e-12) or (sequential and abs(got - k * delta) <= 1e-12 * max(
                k * delta, 1e-12)):
            continue
        fail(f"advanced_composition({eps:.4g}, {delta:.3g}, {k}, {delta_prime:.3g}) gave delta {fmt(got)}; "
             f"expected k * delta + delta' = {fmt(want)}")


@advanced_composition.prop("grows with k, and beats k * eps for many small steps")
def _adv_shape(fn, rng):
    eps, delta_prime = _uniform(rng, 0.001, 0.02), 1e-6
    k = randint(rng, 5000, 20000)
    small, _ = _pair(fn, eps, 0.0, k, delta_prime, name="advanced_composition")
    large, _ = _pair(fn, eps, 0.0, 2 * k, delta_prime, name="advanced_composition")
    if not large > small:
        fail(f"epsilon for k={2 * k} ({fmt(large)}) is not larger than for k={k} ({fmt(small)})")
    if not small < k * eps:
        fail(f"{k} steps of epsilon={eps:.4g} gave {fmt(small)}, not below sequential composition's {fmt(k * eps)}")
