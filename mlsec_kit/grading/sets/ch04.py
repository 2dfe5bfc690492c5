"""Checks of the chapter-4 exercise set: the oracle's query accounting and one step of SimBA.

Every property draws a tiny random problem (8x8 "images" in [0, 1], a random linear model behind a counting
query function), so the whole set runs in about a second. Student functions take and return torch tensors:
``charge(queries, index) -> queries`` and ``simba_step(probs, x_orig, x_adv, y, p, q, eps) -> (x_new, p_new)``.
"""
from __future__ import annotations

import torch
from torch import nn

from ..core import ExerciseSet
from ..expect import call, describe, expect_pair, expect_tensor, fail, fmt, to_float
from ..instances import init_normal, randint

SET = ExerciseSet("04_evasion_blackbox", "Exercises: black-box evasion attacks", chapter=4)

# ---- (a) charge ---------------------------------------------------------------------------------------
charge = SET.question("charge", "charge(queries, index) -> queries",
                      forbid=("mlsec_kit.attacks.evasion.oracle.Oracle._charge",))


def _counts(rng: torch.Generator):
    n = randint(rng, 3, 12)
    queries = torch.randint(0, 50, (n,), generator=rng)
    index = torch.randint(0, n, (randint(rng, 1, 3 * n),), generator=rng)
    return queries, index


def _charged(fn, queries, index):
    what = f"charge(queries {describe(queries)}, index {describe(index)})"
    return expect_tensor(call(fn, queries.clone(), index.clone(), name="charge"), what, shape=queries.shape,
                         dtype=torch.int64)


@charge.prop("returns an int64 tensor shaped like queries, and leaves queries unchanged")
def _charge_shape(fn, rng):
    queries, index = _counts(rng)
    saved = queries.clone()
    out = call(fn, queries, index, name="charge")
    expect_tensor(out, f"charge(queries {describe(queries)}, index {describe(index)})", shape=queries.shape,
                  dtype=torch.int64)
    if not torch.equal(queries, saved):
        fail("charge changed queries in place; return a new tensor (queries + ...) instead")


@charge.prop("the total grows by one per row queried, repeated indices included")
def _charge_total(fn, rng):
    queries, index = _counts(rng)
    index = torch.cat([index, index[:1], index[:1]])  # the same example three times at least
    out = _charged(fn, queries, index)
    grown = int(out.sum() - queries.sum())
    if grown != len(index):
        hint = " (an example queried several times in one call must be charged each time: torch.bincount)" \
            if grown < len(index) else ""
        fail(f"the total grew by {grown} after a query of {len(index)} rows{hint}")


@charge.prop("each example is charged exactly the rows that belong to it, the others keep their count")
def _charge_each(fn, rng):
    queries, index = _counts(rng)
    out = _charged(fn, queries, index)
    expected = queries + torch.bincount(index, minlength=len(queries))
    if not torch.equal(out, expected):
        i = int((out != expected).nonzero()[0])
        fail(f"example {i} has {int(out[i])} queries, expected {int(expected[i])} ({int(queries[i])} before, "
             f"{int((index == i).sum())} rows of this query belong to it)")


# ---- (b) simba_step -----------------------------------------------------------------------------------
simba_step = SET.question("simba_step", "simba_step(probs, x_orig, x_adv, y, p, q, eps) -> (x_new, p_new)",
                          forbid=("mlsec_kit.attacks.evasion.score_based.simba",))


class _Probs:
    """The query function handed to the student: softmax of a random linear model, counting rows."""

    def __init__(self, model: nn.Module):
        self.model, self.rows = model, 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            fail(f"probs was called with {describe(x)}; pass a batch of images (1, 1, 8, 8)")
        self.rows += len(x)
        with torch.no_grad():
            return torch.softmax(self.model(x), 1)


def _linear(rng: torch.Generator, classes: int = 5) -> nn.Module:
    return init_normal(nn.Sequential(nn.Flatten(), nn.Linear(64, classes)), rng, scale=0.5).eval()


def _step_instance(rng: torch.Generator):
    """One example: clean x, a partly attacked x_adv (coordinate q untouched), its label and probability."""
    model = _linear(rng)
    x = torch.rand(1, 1, 8, 8, generator=rng)
    x = torch.where(torch.rand(x.shape, generator=rng) < 0.2, torch.zeros_like(x), x)  # some black pixels
    eps = [0.05, 0.1, 0.2][randint(rng, 0, 2)]
    q = randint(rng, 0, 63)
    moved = torch.rand(x.shape, generator=rng) < 0.3
    moved.view(-1)[q] = False
    signs = torch.randint(0, 2, x.shape, generator=rng) * 2.0 - 1
    x_adv = torch.where(moved, (x + eps * signs).clamp(0, 1), x)
    with torch.no_grad():
        y = int(model(x).argmax(1))
        p = float(torch.softmax(model(x_adv), 1)[0, y])
    return model, x, x_adv, y, p, q, eps


def _step(fn, probs, x, x_adv, y, p, q, eps):
    what = f"simba_step(probs, x_orig {describe(x)}, x_adv, y={y}, p={fmt(p)}, q={q}, eps={eps:g})"
    out = call(fn, probs, x.clone(), x_adv.clone(), y, p, q, eps, name="simba_step")
    x_new, p_new = expect_pair(out, what)
    return expect_tensor(x_new, what, shape=x_adv.shape, dtype=x_adv.dtype), to_float(p_new, what)


def _true_prob(model, x, y) -> float:
    with torch.no_grad():
        return float(torch.softmax(model(x), 1)[0, y])


@simba_step.prop("returns (x_new, p_new) with x_new shaped like x_adv, and leaves x_adv unchanged")
def _step_shape(fn, rng):
    model, x, x_adv, y, p, q, eps = _step_instance(rng)
    x.view(-1)[q] = x_adv.view(-1)[q] = 0.5  # a pixel any step would move
    p = _true_prob(model, x_adv, y)
    saved = x_adv.clone()
    out = call(fn, _Probs(model), x, x_adv, y, p, q, eps, name="simba_step")
    what = "simba_step(...)"
    x_new, p_new = expect_pair(out, what)
    expect_tensor(x_new, what, shape=x_adv.shape, dtype=x_adv.dtype)
    to_float(p_new, what)
    if not torch.equal(x_adv, saved):
        fail("simba_step changed x_adv in place; build the candidate on a copy (x_adv.clone())")


@simba_step.prop("changes only coordinate q, stays within eps of x_orig and inside [0, 1]")
def _step_ball(fn, rng):
    for _ in range(4):
        model, x, x_adv, y, p, q, eps = _step_instance(rng)
        x_new, _ = _step(fn, _Probs(model), x, x_adv, y, p, q, eps)
        other = torch.ones(x.numel(), dtype=torch.bool)
        other[q] = False
        if not torch.equal(x_new.view(-1)[other], x_adv.view(-1)[other]):
            fail(f"coordinates other than q={q} changed; SimBA moves one coordinate per step (x.view(-1)[q])")
        if (x_new - x).abs().max() > eps + 1e-6:
            fail(f"a pixel is {fmt((x_new - x).abs().max())} from x_orig with eps={eps:g}")
        if x_new.min() < 0 or x_new.max() > 1:
            fail(f"x_new has values in [{fmt(x_new.min())}, {fmt(x_new.max())}]; clip the candidate to [0, 1]")


@simba_step.prop("never raises the true-class probability, and p_new is the probability of x_new")
def _step_prob(fn, rng):
    for _ in range(4):
        model, x, x_adv, y, p, q, eps = _step_instance(rng)
        x_new, p_new = _step(fn, _Probs(model), x, x_adv, y, p, q, eps)
        actual = _true_prob(model, x_new, y)
        if actual > p + 1e-6:
            fail(f"the true-class probability rose from {fmt(p)} to {fmt(actual)}; keep a step only if it lowers p")
        if abs(actual - p_new) > 1e-5:
            fail(f"p_new is {fmt(p_new)} but the probability of y at x_new is {fmt(actual)}; return the "
                 "probability of the point you return (p itself when no step is kept)")


@simba_step.prop("asks at most two queries, and only one when stepping down already lowers p")
def _step_queries(fn, rng):
    for _ in range(6):
        model, x, x_adv, y, p, q, eps = _step_instance(rng)
        probs = _Probs(model)
        _step(fn, probs, x, x_adv, y, p, q, eps)
        down = x_adv.clone()
        down.view(-1)[q] = (down.view(-1)[q] - eps).clamp(0, 1)
        first_helps = _true_prob(model, down, y) < p
        if probs.rows > 2:
            fail(f"simba_step queried {probs.rows} inputs; one step tries at most x - eps e_q, then x + eps e_q")
        if first_helps and probs.rows != 1:
            fail(f"x - eps e_q already lowers p, yet {probs.rows} queries were asked; try the second direction "
                 "only when the first did not help (and p is given: do not query x_adv again)")
        if probs.rows == 0:
            fail("simba_step asked no query; it must query the candidate to know whether p dropped")


@simba_step.prop("run over every coordinate, fools a weak model more often than random signs of size eps")
def _step_beats_noise(fn, rng):
    model, eps, n = _linear(rng, classes=4), 0.1, 12
    x = torch.rand(n, 1, 8, 8, generator=rng)
    with torch.no_grad():
        y = model(x).argmax(1)
    noise = (x + eps * (torch.randint(0, 2, x.shape, generator=rng) * 2.0 - 1)).clamp(0, 1)
    fooled_attack = 0
    for i in range(n):
        xi, probs = x[i:i + 1], _Probs(model)
        x_adv, p = xi.clone(), _true_prob(model, xi, int(y[i]))
        for q in torch.randperm(64, generator=rng).tolist():
            x_adv, p = _step(fn, probs, xi, x_adv, int(y[i]), p, q, eps)
            with torch.no_grad():
                if int(model(x_adv).argmax(1)) != int(y[i]):
                    fooled_attack += 1
                    break
    with torch.no_grad():
        fooled_noise = int((model(noise).argmax(1) != y).sum())
    if fooled_attack <= fooled_noise:
        fail(f"SimBA built from your step fooled {fooled_attack} of {n} inputs, random signs of size eps={eps:g} "
             f"fooled {fooled_noise}; the search should do much better than chance")
