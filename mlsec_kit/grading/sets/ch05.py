"""Checks of the chapter-5 exercise set: one step of PGD adversarial training, the certification rule of
randomized smoothing, and a conceptual question (reading the signs of gradient masking off an evaluation).

Every property draws a tiny random problem (8x8 "images" in [0, 1], a random two-class linear model trained by
plain SGD, vote counts of a smoothed classifier, tables of robust accuracies), so the whole set runs in about a
second. Student functions take and return torch tensors and numbers: ``pgd_at_step(model, optimizer, x, y,
eps, alpha, steps, generator) -> loss``, ``certify_from_counts(counts0, counts, sigma, alpha) -> (cls,
radius)`` and ``masking_signs(acc) -> counts``.

Why a two-class linear model: the gradient of its cross-entropy with respect to the input has the same sign
everywhere, ``-sign(w_y - w_other)``, so (i) with ``alpha >= 2 eps`` PGD reaches the same corner of the
eps-ball from any random start, which makes the adversarial loss and the SGD update exactly predictable, and
(ii) with a batch of one example the SGD update of class ``y``'s row divided by that of its bias is the very
input the model was trained on, so the checks see the training point without looking inside the function.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..core import ExerciseSet
from ..expect import call, describe, expect_float, expect_pair, expect_tensor, fail, fmt, to_float
from ..instances import init_normal, params, randint

SET = ExerciseSet("05_evasion_defenses", "Exercises: defending against evasion", chapter=5)

_DEF = "mlsec_kit.defenses"

# ---- (a) pgd_at_step ------------------------------------------------------------------------------------
pgd_at_step = SET.question(
    "pgd_at_step", "pgd_at_step(model, optimizer, x, y, eps, alpha, steps, generator) -> float",
    forbid=(f"{_DEF}.adversarial_training_step", f"{_DEF}.adversarial_training.adversarial_training_step",
            f"{_DEF}.adversarial_fit", f"{_DEF}.adversarial_training.adversarial_fit",
            "mlsec_kit.attacks.evasion.pgd", "mlsec_kit.attacks.evasion.fgsm"))


def _linear2(rng: torch.Generator) -> nn.Module:
    """A random two-class linear model on 8x8 images (logit gaps of a few units: no saturated softmax)."""
    return init_normal(nn.Sequential(nn.Flatten(), nn.Linear(64, 2)), rng, scale=0.3).train()


def _direction(model: nn.Module, y: torch.Tensor) -> torch.Tensor:
    """The sign of the input gradient of the cross-entropy, per example: ``-sign(w_y - w_other)``."""
    w = model[1].weight.detach()
    return -torch.sign(w[y] - w[1 - y]).view(len(y), 1, 8, 8)


def _inner(rng: torch.Generator, n: int, eps: float) -> torch.Tensor:
    """``n`` images whose pixels are at least eps from 0 and 1 (no clipping to the range happens)."""
    return eps + (1 - 2 * eps) * torch.rand(n, 1, 8, 8, generator=rng)


def _with_edges(rng: torch.Generator, n: int) -> torch.Tensor:
    """``n`` images of which a third of the pixels are exactly 0 or 1 (black and white)."""
    x = torch.rand(n, 1, 8, 8, generator=rng)
    mask = torch.rand(x.shape, generator=rng)
    return torch.where(mask < 0.15, torch.zeros_like(x), torch.where(mask > 0.85, torch.ones_like(x), x))


def _step(fn, model, x, y, eps, alpha, steps, *, lr=0.5, seed=0):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    what = (f"pgd_at_step(model, optimizer, x {describe(x)}, y {describe(y)}, eps={eps:g}, alpha={alpha:.4g}, "
            f"steps={steps}, generator)")
    return call(fn, model, optimizer, x.clone(), y.clone(), eps, alpha, steps, generator, name="pgd_at_step"), what


def _corner_instance(rng: torch.Generator):
    """A batch, a model and a step size of at least 2 eps: PGD ends at x + eps * direction from any start."""
    n = randint(rng, 6, 16)
    eps = [0.05, 0.1, 0.15, 0.2][randint(rng, 0, 3)]
    model = _linear2(rng)
    x, y = _inner(rng, n, eps), torch.randint(0, 2, (n,), generator=rng)
    return model, x, y, eps, 2.5 * eps, randint(rng, 2, 5)


def _sgd_reference(model, x_train, y, lr=0.5):
    """``model`` after one step of plain SGD (``lr < 0``: gradient ascent) on the mean cross-entropy."""
    reference = copy.deepcopy(model)
    grads = torch.autograd.grad(F.cross_entropy(reference(x_train), y), list(reference.parameters()))
    with torch.no_grad():
        for p, g in zip(reference.parameters(), grads):
            p -= lr * g
    return reference


@pgd_at_step.prop("returns the loss as a Python float, and leaves x and y unchanged")
def _at_float(fn, rng):
    model, x, y, eps, alpha, steps = _corner_instance(rng)
    xs, ys = x.clone(), y.clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    out = call(fn, model, optimizer, xs, ys, eps, alpha, steps, torch.Generator().manual_seed(0),
               name="pgd_at_step")
    expect_float(out, "pgd_at_step")
    if not (torch.equal(xs, x) and torch.equal(ys, y)):
        fail("pgd_at_step changed x or y in place; build the adversarial batch as a new tensor")


@pgd_at_step.prop("the loss returned is the mean cross-entropy at the PGD points, before the update")
def _at_loss(fn, rng):
    model, x, y, eps, alpha, steps = _corner_instance(rng)
    before = copy.deepcopy(model)
    out, what = _step(fn, model, x, y, eps, alpha, steps)
    got = to_float(out, what)
    with torch.no_grad():
        expected = float(F.cross_entropy(before(x + eps * _direction(before, y)), y))
        clean = float(F.cross_entropy(before(x), y))
        after = float(F.cross_entropy(model(x + eps * _direction(before, y)), y))
    if abs(got - expected) <= 1e-4 * max(1.0, expected):
        return
    hints = {"the loss on the clean batch x: train (and report) on the adversarial batch": clean,
             "the loss after the optimizer step: report the loss computed before optimizer.step()": after}
    hint = next((f"; that is {h}" for h, v in hints.items() if abs(got - v) <= 1e-4 * max(1.0, v)), "")
    fail(f"returned {fmt(got)}; the cross-entropy at the worst point of the eps-ball (eps={eps:g}, alpha={alpha:.4g} "
         f">= 2 eps, so PGD reaches it from any start) is {fmt(expected)}, the clean loss {fmt(clean)}{hint}")


@pgd_at_step.prop("takes one optimizer step down the gradient of the loss at the PGD points")
def _at_update(fn, rng):
    model, x, y, eps, alpha, steps = _corner_instance(rng)
    before = copy.deepcopy(model)
    _step(fn, model, x, y, eps, alpha, steps)
    x_adv = x + eps * _direction(before, y)
    got = params(model)
    diff = max(float((a - b).abs().max()) for a, b in zip(got, params(_sgd_reference(before, x_adv, y))))
    if diff <= 1e-5:
        return
    same = lambda ref: max(float((a - b).abs().max()) for a, b in zip(got, ref)) <= 1e-5  # noqa: E731
    if same(params(before)):
        fail("the parameters did not change; after loss.backward() call optimizer.step()")
    if same(params(_sgd_reference(before, x, y))):
        fail("the update is one SGD step on the CLEAN batch: train on the adversarial examples instead")
    if same(params(_sgd_reference(before, x_adv, y, lr=-0.5))):
        fail("the parameters moved UP the loss (gradient ascent): the attack maximises the loss over the input, "
             "the training step minimises it over the parameters")
    fail(f"the parameters differ by up to {fmt(diff)} from one SGD step on the loss at the PGD points; call "
         "optimizer.zero_grad() right before loss.backward() (the attack's gradients must not reach the update)")


def _single(rng: torch.Generator, *, edges: bool, big_steps: bool):
    """One example (batch of 1): the update of row y divided by that of bias y is the training input."""
    model = _linear2(rng)
    eps = [0.1, 0.15, 0.2, 0.25][randint(rng, 0, 3)]
    x = _with_edges(rng, 1) if edges else _inner(rng, 1, eps)
    y = torch.randint(0, 2, (1,), generator=rng)
    steps = randint(rng, 2, 5)
    alpha = 2.5 * eps if big_steps else 0.5 * eps / steps  # small steps: the random start still shows
    return model, x, y, eps, alpha, steps


def _trained_on(fn, model, x, y, eps, alpha, steps, *, seed=0) -> torch.Tensor:
    """The input the model was trained on, read off the SGD update of a one-example batch."""
    before = copy.deepcopy(model)
    _step(fn, model, x, y, eps, alpha, steps, lr=1.0, seed=seed)
    c = int(y[0])
    dw = (model[1].weight.detach()[c] - before[1].weight.detach()[c]).double()
    db = float(model[1].bias.detach()[c] - before[1].bias.detach()[c])
    if abs(db) < 1e-7:
        fail("the model did not change after a step on one example; call loss.backward() and optimizer.step()")
    return (dw / db).view(1, 1, 8, 8)


@pgd_at_step.prop("trains on points within eps of x and inside [0, 1]")
def _at_ball(fn, rng):
    for edges in (False, True):
        model, x, y, eps, alpha, steps = _single(rng, edges=edges, big_steps=True)
        x_train = _trained_on(fn, model, x, y, eps, alpha, steps)
        dist = float((x_train - x.double()).abs().max())
        if dist > eps + 1e-4:
            fail(f"the model was trained on a point {fmt(dist)} from x with eps={eps:g} (alpha={alpha:.4g}); "
                 "after every step project back onto the ball: x_adv = min(max(x_adv, x - eps), x + eps)")
        if x_train.min() < -1e-4 or x_train.max() > 1 + 1e-4:
            fail(f"the model was trained on a point with values in [{fmt(x_train.min())}, {fmt(x_train.max())}]; "
                 "clip the adversarial batch to the valid range [0, 1] after the random start and every step")


@pgd_at_step.prop("starts at a uniform random point of the ball, then takes `steps` sign steps of alpha up the loss")
def _at_start(fn, rng):
    # three examples, 192 pixels: a single step, or steps larger than alpha, show on some, whatever the start
    slack = min(_start_once(fn, rng) for _ in range(3))
    if slack > 0.25:
        fail(f"no pixel ended near the lowest point a start at -eps and `steps` steps of alpha reach (the closest "
             f"is {fmt(slack)} eps above it): each step moves by alpha, not more; keep to the given alpha and steps")


def _start_once(fn, rng):
    model, x, y, eps, alpha, steps = _single(rng, edges=False, big_steps=False)
    s = _direction(model, y).double()
    moved = s * (_trained_on(fn, model, x, y, eps, alpha, steps) - x.double())  # per pixel, along the gradient
    low = -eps + steps * alpha  # a start at -eps, then every step up the loss
    if float(moved.min()) < low - 1e-4:
        fail(f"a pixel ended {fmt(-moved.min())} against the gradient's sign; from any start in the ball, {steps} "
             f"steps of alpha={alpha:.4g} up the loss leave it at least {fmt(low)} along it: take `steps` steps, "
             "each of alpha * sign(grad) with the gradient of the loss at the current point")
    if float(moved.abs().max()) < 1e-4:
        fail("the model was trained on x itself: no pixel moved; train on the PGD examples, not the clean batch")
    if float(moved.max() - moved.min()) < 1e-3:
        fail(f"every pixel moved by the same {fmt(moved.mean())} along the gradient's sign: there is no random "
             "start; begin at x + delta with delta uniform in [-eps, eps], drawn with `generator`")
    return (float(moved.min()) - low) / eps  # near 0 for uniform starts: some start near -eps


@pgd_at_step.prop("draws its random start from `generator` only (same seed, same start; new seed, new start)")
def _at_generator(fn, rng):
    model, x, y, eps, alpha, steps = _single(rng, edges=False, big_steps=False)
    first = _trained_on(fn, copy.deepcopy(model), x, y, eps, alpha, steps, seed=11)
    again = _trained_on(fn, copy.deepcopy(model), x, y, eps, alpha, steps, seed=11)
    other = _trained_on(fn, copy.deepcopy(model), x, y, eps, alpha, steps, seed=12)
    if (first - again).abs().max() > 1e-4:
        fail("two calls with generators seeded alike trained on different points; draw the random start with "
             "torch.rand(..., generator=generator), not from torch's global generator")
    if (first - other).abs().max() < 1e-4:
        fail("generators seeded differently gave the same start; draw it from the `generator` argument")


# ---- (b) certify_from_counts ----------------------------------------------------------------------------
certify_from_counts = SET.question(
    "certify_from_counts", "certify_from_counts(counts0, counts, sigma, alpha) -> (cls, radius)",
    forbid=(f"{_DEF}.certify", f"{_DEF}.smoothing.certify", f"{_DEF}.clopper_pearson_lower",
            f"{_DEF}.smoothing.clopper_pearson_lower", f"{_DEF}.smoothed_predict",
            f"{_DEF}.smoothing.smoothed_predict"))


def _lower(k: int, n: int, alpha: float) -> float:
    """The one-sided (1 - alpha) Clopper-Pearson lower bound on a binomial proportion."""
    from scipy.stats import beta
    return 0.0 if k == 0 else float(beta.ppf(alpha, k, n - k + 1))


def _radius(k: int, n: int, sigma: float, alpha: float) -> float:
    from scipy.stats import norm
    return sigma * float(norm.ppf(_lower(k, n, alpha)))


def _votes(rng: torch.Generator, n: int, classes: int, top: int, k: int) -> torch.Tensor:
    """Counts of ``n`` votes over ``classes``: ``k`` of them for ``top``, the rest spread over the others."""
    rest = torch.multinomial(torch.ones(classes - 1), n - k, replacement=True, generator=rng) if n > k \
        else torch.zeros(0, dtype=torch.int64)
    counts = torch.zeros(classes, dtype=torch.int64)
    counts[top] = k
    for j, c in enumerate(c for c in range(classes) if c != top):
        counts[c] = int((rest == j).sum())
    return counts


def _certify_instance(rng: torch.Generator, share_low: float = 0.6, share_high: float = 0.99):
    """Selection and estimation counts whose top class is certified (lower bound above 0.55)."""
    classes = randint(rng, 3, 10)
    top = randint(rng, 0, classes - 1)
    n0, n = randint(rng, 20, 100), [100, 500, 1000, 5000, 10000][randint(rng, 0, 4)]
    sigma = [0.12, 0.25, 0.5, 1.0][randint(rng, 0, 3)]
    alpha = [0.001, 0.01, 0.05][randint(rng, 0, 2)]
    while True:
        share = share_low + (share_high - share_low) * float(torch.rand(1, generator=rng))
        k = min(n - 1, round(share * n))
        if _lower(k, n, alpha) > 0.55:
            break
    counts0 = _votes(rng, n0, classes, top, round(0.9 * n0))
    return counts0, _votes(rng, n, classes, top, k), top, sigma, alpha


def _certified(fn, counts0, counts, sigma, alpha):
    what = f"certify_from_counts(counts0 {describe(counts0)}, counts {describe(counts)}, sigma={sigma:g}, alpha={alpha:g})"
    out = call(fn, counts0.clone(), counts.clone(), sigma, alpha, name="certify_from_counts")
    cls, radius = expect_pair(out, what)
    if isinstance(cls, torch.Tensor) and cls.numel() == 1 and not cls.is_floating_point():
        cls = int(cls.item())
    if isinstance(cls, bool) or not isinstance(cls, int):
        fail(f"{what} returned a class {describe(cls)}; expected a Python int (-1 to abstain)")
    return cls, to_float(radius, what + " (the radius)"), what


@certify_from_counts.prop("returns (class, radius): a Python int and a number, the top class and a positive radius")
def _cert_types(fn, rng):
    counts0, counts, top, sigma, alpha = _certify_instance(rng, 0.8, 0.99)
    cls, radius, what = _certified(fn, counts0, counts, sigma, alpha)
    if cls != top or not radius > 0:
        fail(f"{what} returned ({cls}, {fmt(radius)}); class {top} has {int(counts0[top])} of {int(counts0.sum())} "
             f"selection votes and {int(counts[top])} of {int(counts.sum())} estimation votes: it is certified "
             "with a positive radius")


@certify_from_counts.prop("the radius is sigma * Phi^-1 of the one-sided Clopper-Pearson lower bound at level alpha")
def _cert_radius(fn, rng):
    from scipy.stats import beta, norm
    counts0, counts, top, sigma, alpha = _certify_instance(rng)
    k, n = int(counts[top]), int(counts.sum())
    cls, radius, what = _certified(fn, counts0, counts, sigma, alpha)
    expected = _radius(k, n, sigma, alpha)
    if cls == top and abs(radius - expected) <= 1e-6 * max(1.0, expected):
        return
    if cls != top:
        fail(f"{what} returned class {cls}; expected {top}, the top class of the selection counts counts0, "
             f"certified with radius {fmt(expected)}")
    k0, n0 = int(counts0[top]), int(counts0.sum())
    hints = {
        "sigma * Phi^-1(k / n), the point estimate: use the lower confidence bound on pA instead": sigma * norm.ppf(k / n),
        "the two-sided bound at alpha/2; Cohen et al. bound pA from below at level alpha (one-sided)":
            sigma * norm.ppf(beta.ppf(alpha / 2, k, n - k + 1)),
        "the bound from the selection counts counts0: estimate pA with the n samples of counts":
            sigma * norm.ppf(max(1e-300, beta.ppf(alpha, k0, n0 - k0 + 1))) if k0 > 0 else float("nan"),
        "Phi^-1 of the lower bound without the factor sigma": float(norm.ppf(beta.ppf(alpha, k, n - k + 1))),
        "an upper confidence bound: beta.ppf(alpha, k, n - k + 1) is the lower one":
            sigma * norm.ppf(beta.ppf(1 - alpha, k, n - k + 1)),
    }
    hint = next((f"; that is {h}" for h, v in hints.items() if abs(radius - v) <= 1e-6 * max(1.0, abs(v))), "")
    fail(f"radius {fmt(radius)} for {k} of {n} votes (sigma={sigma:g}, alpha={alpha:g}); expected "
         f"sigma * Phi^-1(pA_lower) = {fmt(expected)}{hint}")


@certify_from_counts.prop("when all n votes agree the radius is finite: the bound alpha^(1/n) < 1 keeps it so")
def _cert_unanimous(fn, rng):
    counts0, counts, top, sigma, alpha = _certify_instance(rng)
    n = int(counts.sum())
    counts = torch.zeros_like(counts)
    counts[top] = n
    cls, radius, what = _certified(fn, counts0, counts, sigma, alpha)
    expected = _radius(n, n, sigma, alpha)
    if cls != top or not abs(radius - expected) <= 1e-6 * max(1.0, expected):
        fail(f"{what} with all {n} votes for class {top} returned ({cls}, {fmt(radius)}); expected ({top}, "
             f"{fmt(expected)}): the lower bound is alpha^(1/n) = {fmt(alpha ** (1 / n))}, not the point estimate 1 "
             "(whose radius is infinite)")


@certify_from_counts.prop("abstains (-1, 0.0) when the lower bound is at most 1/2, even with a majority of the votes")
def _cert_abstain(fn, rng):
    counts0, counts, top, sigma, alpha = _certify_instance(rng)
    n = int(counts.sum())
    last = n // 2 + 1  # majorities whose lower bound is still at most 1/2, for these n and alpha
    while _lower(last + 1, n, alpha) <= 0.5:
        last += 1
    k = randint(rng, n // 2 + 1, last)
    counts = _votes(rng, n, len(counts), top, k)
    cls, radius, what = _certified(fn, counts0, counts, sigma, alpha)
    if (cls, radius) != (-1, 0.0):
        bound = _lower(k, n, alpha)
        fail(f"{what} returned ({cls}, {fmt(radius)}); class {top} has {k} of {n} votes, a majority, but its lower "
             f"bound is {fmt(bound)} <= 1/2: abstain with class -1 and radius 0.0")


@certify_from_counts.prop("selects the class with counts0, so it abstains when the estimation votes disagree")
def _cert_selection(fn, rng):
    counts0, counts, top, sigma, alpha = _certify_instance(rng, 0.9, 0.99)
    other = (top + 1 + randint(rng, 0, len(counts) - 2)) % len(counts)
    counts[[top, other]] = counts[[other, top]]  # the estimation votes favour `other`
    cls, radius, what = _certified(fn, counts0, counts, sigma, alpha)
    if (cls, radius) != (-1, 0.0):
        fail(f"{what} returned ({cls}, {fmt(radius)}); the selection counts pick class {top}, which has only "
             f"{int(counts[top])} of {int(counts.sum())} estimation votes: abstain (-1, 0.0). Choosing the class "
             "from the same votes that bound its probability biases the bound (Cohen et al. select with n0 samples)")


# ---- (c) masking_signs (conceptual: Carlini et al.'s checklist on an evaluation table) --------------------
masking_signs = SET.question("masking_signs", "masking_signs(acc) -> counts")
COLUMNS = ("clean", "fgsm", "pgd10", "pgd100", "blackbox", "eps_max")
_TOL, _EPS_MAX_LIMIT = 0.01, 0.1


def _honest(rng: torch.Generator) -> list[float]:
    """A defence evaluated honestly: each stronger attack lower by a clear margin, black-box weaker than the
    white-box attacks, next to nothing left at the largest budget."""
    u = lambda lo, hi: lo + (hi - lo) * float(torch.rand(1, generator=rng))  # noqa: E731
    clean = u(0.7, 0.99)
    fgsm = clean - u(0.1, 0.3)
    pgd10 = fgsm - u(0.03, 0.15)
    pgd100 = pgd10 - u(0.03, 0.08)
    blackbox = u(pgd100 + 0.05, clean - 0.02)
    return [clean, fgsm, pgd10, pgd100, blackbox, u(0.005, 0.05)]


def _violate(row: list[float], rule: int, rng: torch.Generator) -> list[float]:
    """``row`` changed so it breaks checklist item ``rule`` (0-3) clearly, and no other item."""
    u = lambda lo, hi: lo + (hi - lo) * float(torch.rand(1, generator=rng))  # noqa: E731
    clean, fgsm, pgd10, pgd100, blackbox, eps_max = row
    if rule == 0:  # one step stronger than ten
        fgsm = pgd10 - u(0.05, 0.15)
        pgd100 = min(pgd100, fgsm - 0.03)
    elif rule == 1:  # more steps help the defence
        pgd100 = pgd10 + u(0.05, 0.1)
        fgsm = max(fgsm, pgd100 + 0.03)
        blackbox = max(blackbox, fgsm + 0.02)
    elif rule == 2:  # black-box beats every white-box attack
        blackbox = min(fgsm, pgd10, pgd100) - u(0.05, 0.15)
    else:  # the largest budget leaves accuracy
        eps_max = u(0.2, 0.6)
    return [clean, fgsm, pgd10, pgd100, blackbox, eps_max]


def _reference_signs(acc: torch.Tensor) -> torch.Tensor:
    clean, fgsm, pgd10, pgd100, blackbox, eps_max = acc.T
    white = torch.minimum(torch.minimum(fgsm, pgd10), pgd100)
    return ((fgsm < pgd10 - _TOL).long() + (pgd100 > pgd10 + _TOL).long() + (blackbox < white - _TOL).long()
            + (eps_max > _EPS_MAX_LIMIT).long())


def _table(rng: torch.Generator, rules_of_row: list[tuple[int, ...]]) -> torch.Tensor:
    rows = []
    for rules in rules_of_row:
        row = _honest(rng)
        for rule in rules:
            row = _violate(row, rule, rng)
        rows.append(row)
    acc = torch.tensor(rows, dtype=torch.float64).clamp(0, 1)
    expected = torch.tensor([len(r) for r in rules_of_row])
    assert torch.equal(_reference_signs(acc), expected), (acc, rules_of_row)  # the generator's own promise
    return acc


def _signs(fn, acc: torch.Tensor) -> torch.Tensor:
    what = f"masking_signs(acc {describe(acc)})"
    out = call(fn, acc.clone(), name="masking_signs")
    if isinstance(out, (list, tuple)):
        try:
            out = torch.tensor([int(v) for v in out])
        except (TypeError, ValueError):
            fail(f"{what} returned {describe(out)}; expected one count (an int) per defence")
    out = expect_tensor(out, what, shape=(len(acc),))
    if out.is_floating_point() or out.dtype == torch.bool:
        fail(f"{what} returned dtype {out.dtype}; expected integer counts (e.g. torch.int64)")
    return out.long()


def _show(row: torch.Tensor) -> str:
    return ", ".join(f"{c} {float(v):.2f}" for c, v in zip(COLUMNS, row))


@masking_signs.prop("returns one integer count in 0..4 per defence; honestly evaluated defences score 0")
def _signs_honest(fn, rng):
    acc = _table(rng, [() for _ in range(randint(rng, 3, 6))])
    got = _signs(fn, acc)
    bad = (got != 0).nonzero().flatten()
    if len(bad):
        i = int(bad[0])
        fail(f"defence {i} ({_show(acc[i])}) scored {int(got[i])}, yet every stronger attack lowers its accuracy, "
             "black-box attacks do worse than white-box ones and the largest budget leaves almost nothing: 0 signs")


_RULE_TEXT = ("a one-step attack (FGSM) beats the iterative one (PGD-10)",
              "more steps (PGD-100) give a HIGHER accuracy than PGD-10",
              "the black-box attack beats the strongest white-box attack",
              f"accuracy at the largest budget stays above {_EPS_MAX_LIMIT:g}")


@masking_signs.prop("counts each checklist item on its own: one defence breaks one item, the others none")
def _signs_each(fn, rng):
    for rule in torch.randperm(4, generator=rng).tolist():
        d = randint(rng, 3, 5)
        masked = randint(rng, 0, d - 1)
        acc = _table(rng, [(rule,) if i == masked else () for i in range(d)])
        got = _signs(fn, acc)
        expected = torch.zeros(d, dtype=torch.int64)
        expected[masked] = 1
        if not torch.equal(got, expected):
            i = int((got != expected).nonzero()[0])
            fail(f"defence {i} ({_show(acc[i])}) scored {int(got[i])}, expected {int(expected[i])}"
                 + (f": {_RULE_TEXT[rule]}" if i == masked else ""))


@masking_signs.prop("adds up the items each defence breaks, and the most suspicious defence scores highest")
def _signs_total(fn, rng):
    d = 4
    combos = [(), (0, 3), (2, 3), (0, 2, 3), (1, 2), (1, 3), (1, 2, 3), (0,), (2,)]
    picks = torch.randperm(len(combos), generator=rng)[:d].tolist()
    rules = [combos[p] for p in picks]
    if not any(len(r) >= 2 for r in rules):
        rules[0] = combos[3]
    acc = _table(rng, rules)
    got, expected = _signs(fn, acc), _reference_signs(acc)
    if not torch.equal(got, expected):
        i = int((got != expected).nonzero()[0])
        broken = "; ".join(_RULE_TEXT[r] for r in rules[i]) or "nothing"
        fail(f"defence {i} ({_show(acc[i])}) scored {int(got[i])}, expected {int(expected[i])} (it breaks: "
             f"{broken})")
