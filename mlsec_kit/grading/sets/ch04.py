"""Checks of the chapter-4 exercise set: the oracle's query accounting, one step of SimBA, and a
conceptual question (reading attacks off success-versus-queries curves).

Every property draws a tiny random problem (8x8 "images" in [0, 1], a random linear model behind a counting
query function), so the whole set runs in about a second. Student functions take and return torch tensors:
``charge(queries, index) -> queries``, ``simba_step(probs, x_orig, x_adv, y, scores, q, eps) -> (x_new,
scores_new)`` and ``success_curve(queries, fooled, budgets) -> rates``.
"""
from __future__ import annotations

import torch
from torch import nn

from ..core import ExerciseSet
from ..expect import CheckFailure, call, describe, expect_pair, expect_tensor, fail, fmt
from ..instances import init_normal, randint

SET = ExerciseSet("04_evasion_blackbox", "Exercises: black-box evasion attacks", chapter=4)

# ---- (a) charge ---------------------------------------------------------------------------------------
charge = SET.question("charge", "charge(queries, index) -> queries",
                      forbid=("mlsec_kit.attacks.evasion.oracle.Oracle._charge",
                              "mlsec_kit.attacks.evasion.Oracle"))


def _counts(rng: torch.Generator, *, skip_last: bool = False):
    """Counts of ``n`` examples and a query's row index; with ``skip_last`` the last example is not queried
    (so ``torch.bincount(index)`` without ``minlength`` comes out one short)."""
    n = randint(rng, 3, 12)
    queries = torch.randint(0, 50, (n,), generator=rng)
    index = torch.randint(0, n - 1 if skip_last else n, (randint(rng, 1, 3 * n),), generator=rng)
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
    _charge_compare(out, queries, index)


@charge.prop("an example this query does not touch, the last one included, keeps its count")
def _charge_untouched(fn, rng):
    queries, index = _counts(rng, skip_last=True)
    hint = (f"; no row of this query belongs to the last example, so torch.bincount(index) has only "
            f"{int(index.max()) + 1} entries for {len(queries)} examples: pass minlength=len(queries)")
    try:
        out = call(fn, queries.clone(), index.clone(), name="charge")
    except CheckFailure as err:
        fail(str(err) + hint)
    if isinstance(out, torch.Tensor) and out.shape != queries.shape:
        fail(f"charge(queries {describe(queries)}, index {describe(index)}) returned shape {tuple(out.shape)}"
             + hint)
    out = _charged(fn, queries, index)
    _charge_compare(out, queries, index)


def _charge_compare(out, queries, index):
    expected = queries + torch.bincount(index, minlength=len(queries))
    if not torch.equal(out, expected):
        i = int((out != expected).nonzero()[0])
        fail(f"example {i} has {int(out[i])} queries, expected {int(expected[i])} ({int(queries[i])} before, "
             f"{int((index == i).sum())} rows of this query belong to it)")


# ---- (b) simba_step -----------------------------------------------------------------------------------
simba_step = SET.question("simba_step", "simba_step(probs, x_orig, x_adv, y, scores, q, eps) -> (x_new, scores_new)",
                          forbid=("mlsec_kit.attacks.evasion.simba", "mlsec_kit.attacks.evasion.score_based.simba"))


class _Probs:
    """The query function handed to the student: softmax of a random linear model, counting rows."""

    def __init__(self, model: nn.Module):
        self.model, self.rows, self.asked = model, 0, []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            fail(f"probs was called with {describe(x)}; pass a batch of images (1, 1, 8, 8)")
        self.rows += len(x)
        self.asked.extend(row.detach().clone() for row in x)
        with torch.no_grad():
            return torch.softmax(self.model(x), 1)


def _linear(rng: torch.Generator, classes: int = 5) -> nn.Module:
    return init_normal(nn.Sequential(nn.Flatten(), nn.Linear(64, classes)), rng, scale=0.5).eval()


def _scores(model, x) -> torch.Tensor:
    with torch.no_grad():
        return torch.softmax(model(x), 1)


def _step_instance(rng: torch.Generator):
    """One example: clean x, a partly attacked x_adv (coordinate q untouched), its label and scores."""
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
    return model, x, x_adv, y, _scores(model, x_adv), q, eps


def _with_pixel(model, x, x_adv, q, value):
    """``x`` and ``x_adv`` with coordinate ``q`` (unmoved) set to ``value``, and the new scores of x_adv."""
    x, x_adv = x.clone(), x_adv.clone()
    x.view(-1)[q] = x_adv.view(-1)[q] = value
    return x, x_adv, _scores(model, x_adv)


def _step(fn, probs, x, x_adv, y, scores, q, eps):
    what = f"simba_step(probs, x_orig {describe(x)}, x_adv, y={y}, scores {describe(scores)}, q={q}, eps={eps:g})"
    out = call(fn, probs, x.clone(), x_adv.clone(), y, scores.clone(), q, eps, name="simba_step")
    x_new, s_new = expect_pair(out, what)
    x_new = expect_tensor(x_new, what, shape=x_adv.shape, dtype=x_adv.dtype)
    return x_new, expect_tensor(s_new, what + " (the scores)", shape=scores.shape)


def _true_prob(model, x, y) -> float:
    return float(_scores(model, x)[0, y])


@simba_step.prop("returns (x_new, scores_new) shaped like x_adv and scores, and leaves x_adv unchanged")
def _step_shape(fn, rng):
    model, x, x_adv, y, _, q, eps = _step_instance(rng)
    x, x_adv, scores = _with_pixel(model, x, x_adv, q, 0.5)  # a pixel any step would move
    saved = x_adv.clone()
    out = call(fn, _Probs(model), x, x_adv, y, scores, q, eps, name="simba_step")
    what = "simba_step(...)"
    x_new, s_new = expect_pair(out, what)
    expect_tensor(x_new, what, shape=x_adv.shape, dtype=x_adv.dtype)
    expect_tensor(s_new, what + " (the scores)", shape=scores.shape)
    if not torch.equal(x_adv, saved):
        fail("simba_step changed x_adv in place; build the candidate on a copy (x_adv.clone())")


@simba_step.prop("changes only coordinate q, stays within eps of x_orig and inside [0, 1]")
def _step_ball(fn, rng):
    for _ in range(4):
        model, x, x_adv, y, scores, q, eps = _step_instance(rng)
        x_new, _ = _step(fn, _Probs(model), x, x_adv, y, scores, q, eps)
        other = torch.ones(x.numel(), dtype=torch.bool)
        other[q] = False
        if not torch.equal(x_new.view(-1)[other], x_adv.view(-1)[other]):
            fail(f"coordinates other than q={q} changed; SimBA moves one coordinate per step (x.view(-1)[q])")
        if (x_new - x).abs().max() > eps + 1e-6:
            fail(f"a pixel is {fmt((x_new - x).abs().max())} from x_orig with eps={eps:g}")
        if x_new.min() < 0 or x_new.max() > 1:
            fail(f"x_new has values in [{fmt(x_new.min())}, {fmt(x_new.max())}]; clip the candidate to [0, 1]")


def _black(rng: torch.Generator):
    """An instance whose coordinate q is a black pixel (0) at which stepping up by eps lowers p."""
    for _ in range(40):
        model, x, x_adv, y, _, _, eps = _step_instance(rng)
        for q in torch.randperm(64, generator=rng).tolist():
            xq, aq, scores = _with_pixel(model, x, x_adv, q, 0.0)
            up = aq.clone()
            up.view(-1)[q] = eps
            if _true_prob(model, up, y) < float(scores[0, y]) - 1e-4:
                return model, xq, aq, y, scores, q, eps
    raise AssertionError("no coordinate of 40 random linear models lowers p when raised")  # pragma: no cover


def _step_black(fn, rng):
    """At a black pixel x - eps e_q clips back to x_adv (no change, so no drop of p); x + eps e_q must be tried."""
    model, x, x_adv, y, scores, q, eps = _black(rng)
    x_new, _ = _step(fn, _Probs(model), x, x_adv, y, scores, q, eps)
    got = float(x_new.view(-1)[q])
    if abs(got - eps) > 1e-6:
        fail(f"the pixel at q={q} is black (0): x - eps e_q clips back to x_adv, which does not lower p (it is the "
             f"same point), while x + eps e_q does; the pixel should end at eps={eps:g}, not {fmt(got)}. A step "
             "counts only if p drops strictly (<), and a clipped step that changes nothing is no step at all")


def _pick(model, x, x_adv, y, eps, value, want_down: bool, clip_to=None):
    """A coordinate q which, set to ``value``, makes the first step (down) lower p when ``want_down``, or makes
    it fail while the second (up) lowers p; None if no coordinate of this model does."""
    for q in range(64):
        xq, aq, scores = _with_pixel(model, x, x_adv, q, value)
        p = float(scores[0, y])
        down, up = aq.clone(), aq.clone()
        down.view(-1)[q] = (value - eps) if clip_to is None else max(value - eps, 0.0)
        up.view(-1)[q] = (value + eps) if clip_to is None else min(value + eps, 1.0)
        p_down, p_up = _true_prob(model, down, y), _true_prob(model, up, y)
        if (want_down and p_down < p - 1e-4) or (not want_down and p_down >= p + 1e-4 and p_up < p - 1e-4):
            return q, xq, aq, scores
    return None


@simba_step.prop("tries x + eps e_q when x - eps e_q does not lower p (at a black pixel too), and keeps it when "
                 "it does")
def _step_second_sign(fn, rng):
    for _ in range(20):
        model, x, x_adv, y, _, _, eps = _step_instance(rng)
        found = _pick(model, x, x_adv, y, eps, 0.5, want_down=False)
        if found is not None:
            break
    else:  # pragma: no cover - a random linear model always has such a coordinate
        return
    q, x, x_adv, scores = found
    x_new, _ = _step(fn, _Probs(model), x, x_adv, y, scores, q, eps)
    moved = float(x_new.view(-1)[q] - x_adv.view(-1)[q])
    if abs(moved - eps) > 1e-6:
        fail(f"at q={q}, x - eps e_q raises p but x + eps e_q lowers it, yet the coordinate moved by {fmt(moved)} "
             f"instead of +eps={eps:g}; when the first direction fails, query the second")
    _step_black(fn, rng)


@simba_step.prop("clips the candidate to [0, 1] near a black or white pixel (and still keeps it)")
def _step_clips(fn, rng):
    for _ in range(20):
        model, x, x_adv, y, _, _, eps = _step_instance(rng)
        value = eps * (0.2 + 0.6 * float(torch.rand(1, generator=rng)))  # within eps of black
        found = _pick(model, x, x_adv, y, eps, value, want_down=True, clip_to=True)
        if found is not None:
            break
    else:  # pragma: no cover
        return
    q, x, x_adv, scores = found
    x_new, _ = _step(fn, _Probs(model), x, x_adv, y, scores, q, eps)
    got = float(x_new.view(-1)[q])
    if abs(got) > 1e-6:
        fail(f"the pixel at q={q} was {fmt(value)}; stepping down by eps={eps:g} lowers p, so the kept point "
             f"has it at clip({fmt(value)} - {eps:g}) = 0, not {fmt(got)}: clip the candidate to [0, 1]")


@simba_step.prop("never raises the true-class probability, and scores_new are the scores of x_new")
def _step_prob(fn, rng):
    for _ in range(4):
        model, x, x_adv, y, scores, q, eps = _step_instance(rng)
        p = float(scores[0, y])
        x_new, s_new = _step(fn, _Probs(model), x, x_adv, y, scores, q, eps)
        actual = _scores(model, x_new)
        if float(actual[0, y]) > p + 1e-6:
            fail(f"the true-class probability rose from {fmt(p)} to {fmt(actual[0, y])}; keep a step only if it "
                 "lowers p")
        if (actual - s_new).abs().max() > 1e-5:
            fail(f"scores_new differ from the scores of x_new by up to {fmt((actual - s_new).abs().max())}; return "
                 "the scores of the point you return (the scores given when no step is kept)")


@simba_step.prop("asks at most two queries, only one when stepping down already lowers p, and none whose answer "
                 "is known (x_adv itself, as the clipped step at a black pixel)")
def _step_queries(fn, rng):
    for _ in range(6):
        model, x, x_adv, y, scores, q, eps = _step_instance(rng)
        p = float(scores[0, y])
        probs = _Probs(model)
        _step(fn, probs, x, x_adv, y, scores, q, eps)
        down = x_adv.clone()
        down.view(-1)[q] = (down.view(-1)[q] - eps).clamp(0, 1)
        first_helps = _true_prob(model, down, y) < p
        if probs.rows > 2:
            fail(f"simba_step queried {probs.rows} inputs; one step tries at most x - eps e_q, then x + eps e_q")
        if first_helps and probs.rows != 1:
            fail(f"x - eps e_q already lowers p, yet {probs.rows} queries were asked; try the second direction "
                 "only when the first did not help (and the scores are given: do not query x_adv again)")
        if probs.rows == 0:
            fail("simba_step asked no query; it must query the candidate to know whether p dropped")
    model, x, x_adv, y, scores, q, eps = _black(rng)
    probs = _Probs(model)
    _step(fn, probs, x, x_adv, y, scores, q, eps)
    if any(torch.equal(point, x_adv[0]) for point in probs.asked):
        fail(f"simba_step queried x_adv itself (pixel q={q} is black, so x - eps e_q clipped to [0, 1] is x_adv "
             "again), whose scores are given; when the clipped candidate equals x_adv, skip the query "
             "(torch.equal(candidate, x_adv)) and go on to the other direction")


@simba_step.prop("run over every coordinate, fools a weak model more often than random signs of size eps")
def _step_beats_noise(fn, rng):
    model, eps, n = _linear(rng, classes=4), 0.1, 12
    x = torch.rand(n, 1, 8, 8, generator=rng)
    x = torch.where(torch.rand(x.shape, generator=rng) < 0.4, torch.zeros_like(x), x)  # black pixels, as in digits
    with torch.no_grad():
        y = model(x).argmax(1)
    noise = (x + eps * (torch.randint(0, 2, x.shape, generator=rng) * 2.0 - 1)).clamp(0, 1)
    fooled_attack = 0
    for i in range(n):
        xi, probs = x[i:i + 1], _Probs(model)
        x_adv, scores = xi.clone(), _scores(model, xi)
        for q in torch.randperm(64, generator=rng).tolist():
            x_adv, scores = _step(fn, probs, xi, x_adv, int(y[i]), scores, q, eps)
            if int(scores.argmax(1)) != int(y[i]):  # read off the returned scores: no extra query
                fooled_attack += 1
                break
    with torch.no_grad():
        fooled_noise = int((model(noise).argmax(1) != y).sum())
    if fooled_attack <= fooled_noise:
        fail(f"SimBA built from your step fooled {fooled_attack} of {n} inputs, random signs of size eps={eps:g} "
             f"fooled {fooled_noise}; the search should do much better than chance")


# ---- (c) success_curve (conceptual: comparing attacks by their queries) -----------------------------------
success_curve = SET.question("success_curve", "success_curve(queries, fooled, budgets) -> rates")


def _run_log(rng: torch.Generator):
    """What an attack reports on N inputs: the queries each used and whether it was fooled (a failure spent
    the whole budget, or stopped early when it ran out of directions), and ascending budgets."""
    n, budget = randint(rng, 20, 60), randint(rng, 100, 500)
    fooled = torch.rand(n, generator=rng) < 0.2 + 0.6 * float(torch.rand(1, generator=rng))
    fooled[0], fooled[1] = True, False
    queries = torch.randint(1, budget + 1, (n,), generator=rng)
    queries[~fooled] = torch.where(torch.rand(int((~fooled).sum()), generator=rng) < 0.7, budget,
                                   queries[~fooled])
    budgets = sorted({int(queries[fooled][0])} | {int(v) for v in torch.randint(1, budget + 1, (4,), generator=rng)}
                     | {budget})
    return queries, fooled, budgets


def _reference_rates(queries, fooled, budgets) -> torch.Tensor:
    return torch.tensor([(fooled & (queries <= b)).float().mean().item() for b in budgets], dtype=torch.float64)


def _rates(fn, queries, fooled, budgets) -> torch.Tensor:
    what = f"success_curve(queries {describe(queries)}, fooled {describe(fooled)}, budgets={budgets})"
    out = call(fn, queries.clone(), fooled.clone(), list(budgets), name="success_curve")
    if isinstance(out, (list, tuple)):
        try:
            out = torch.tensor([float(v) for v in out])
        except (TypeError, ValueError):
            fail(f"{what} returned {describe(out)}; expected one rate (a number) per budget")
    return expect_tensor(out, what, shape=(len(budgets),)).double()


@success_curve.prop("at each budget, the fraction of ALL attacked inputs fooled within that many queries")
def _curve_reference(fn, rng):
    queries, fooled, budgets = _run_log(rng)
    got, expected = _rates(fn, queries, fooled, budgets), _reference_rates(queries, fooled, budgets)
    bad = ((got - expected).abs() > 1e-6).nonzero().flatten()
    if len(bad):
        i = int(bad[0])
        fail(f"at a budget of {budgets[i]} queries you report {fmt(got[i])}, expected {fmt(expected[i])}: count the "
             f"inputs fooled with at most {budgets[i]} queries (<=) and divide by all {len(queries)} inputs, the "
             "failures included")


@success_curve.prop("is a fraction that never falls as the budget grows, and ends at the overall success rate")
def _curve_shape(fn, rng):
    queries, fooled, budgets = _run_log(rng)
    got = _rates(fn, queries, fooled, budgets)
    if ((got < 0) | (got > 1)).any() or (got[1:] < got[:-1] - 1e-12).any():
        fail(f"rates {[round(float(r), 4) for r in got]} for budgets {budgets}: a success rate is in [0, 1] and "
             "never falls when the attacker may spend more")
    overall = fooled.double().mean().item()
    if abs(got[-1] - overall) > 1e-6:
        fail(f"at the full budget {budgets[-1]} you report {fmt(got[-1])}, but {fmt(overall)} of the inputs were "
             "fooled in the end: a failure counts as not fooled, however many queries it spent")


@success_curve.prop("two attacks on the same inputs: the one that fools more early has the higher curve early")
def _curve_compare(fn, rng):
    n = randint(rng, 20, 40)
    fooled = torch.ones(n, dtype=torch.bool)
    fast = torch.randint(1, 20, (n,), generator=rng)
    slow = fast + 30  # the same inputs, each fooled 30 queries later
    budgets = [10, 25, 60]
    a, b = _rates(fn, fast, fooled, budgets), _rates(fn, slow, fooled, budgets)
    if not (a[1] > b[1] and abs(a[2] - b[2]) < 1e-9):
        fail(f"the same {n} inputs fooled by attack A within 1-19 queries and by B 30 queries later: curves "
             f"{[round(float(r), 3) for r in a]} and {[round(float(r), 3) for r in b]} at budgets {budgets}; A must be "
             "above B at 25 queries and equal at 60")
