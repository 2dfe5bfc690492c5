"""Checks of the chapter-5 exercise set: one step of PGD adversarial training, the certification rule of
randomized smoothing, and a conceptual question (reading Carlini et al.'s checklist off an evaluation table).

Every property draws a tiny random problem (8x8 "images" in [0, 1], a random linear model or a small tanh
network trained by plain SGD, vote counts of a smoothed classifier, tables of robust accuracies), so the whole
set runs in about a second. Student functions take and return torch tensors and numbers: ``pgd_at_step(model,
optimizer, x, y, eps, alpha, steps, generator) -> loss``, ``certify_from_counts(counts0, counts, sigma, alpha)
-> (cls, radius)`` and ``masking_signs(acc, num_classes) -> counts``.

Why a two-class linear model for most PGD checks: the gradient of its cross-entropy with respect to the input
has the same sign everywhere, ``-sign(w_y - w_other)``, so (i) with ``alpha >= 2 eps`` PGD reaches the same
corner of the eps-ball from any random start, which makes the adversarial loss and the SGD update exactly
predictable, (ii) with small steps each pixel's end point shows where it started, so the start's distribution
can be tested, and (iii) with a batch of one example the SGD update of class ``y``'s row divided by that of its
bias is the very input the model was trained on, so the checks see the training point without looking inside
the function. Because that path is the same for many wrong orders of the steps, one property also replays PGD
exactly, from the generator's draws, on a tanh network whose gradient changes sign along the path.
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


def _linear2(rng: torch.Generator, side: int = 8) -> nn.Module:
    """A random two-class linear model on side x side images (logit gaps of a few units: no saturated softmax)."""
    return init_normal(nn.Sequential(nn.Flatten(), nn.Linear(side * side, 2)), rng, scale=2.4 / side).train()


def _direction(model: nn.Module, y: torch.Tensor) -> torch.Tensor:
    """The sign of the input gradient of the cross-entropy, per example: ``-sign(w_y - w_other)``."""
    w = model[1].weight.detach()
    side = round(w.shape[1] ** 0.5)
    return -torch.sign(w[y] - w[1 - y]).view(len(y), 1, side, side)


def _inner(rng: torch.Generator, n: int, eps: float, side: int = 8) -> torch.Tensor:
    """``n`` images whose pixels are at least eps from 0 and 1 (no clipping to the range happens)."""
    return eps + (1 - 2 * eps) * torch.rand(n, 1, side, side, generator=rng)


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


def _single(rng: torch.Generator, *, edges: bool, big_steps: bool, side: int = 8):
    """One example (batch of 1): the update of row y divided by that of bias y is the training input."""
    model = _linear2(rng, side)
    eps = [0.1, 0.15, 0.2, 0.25][randint(rng, 0, 3)]
    x = _with_edges(rng, 1) if edges else _inner(rng, 1, eps, side)
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
    return (dw / db).view(x.shape)


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


# Where a uniform start on [-eps, eps] puts the pixels, along the gradient's sign: P(start < t * eps) = (1 + t) / 2.
_START_QUANTILES = (-0.5, 0.0, 0.45)
_START_SLACK, _START_SPREAD = 0.02, 0.05


@pgd_at_step.prop("starts at a uniform random point of the ball, then takes `steps` sign steps of alpha up the loss")
def _at_start(fn, rng):
    # One 64x64 example, 4096 pixels, on a linear model (the gradient's sign is the same everywhere) and steps
    # of alpha = eps / (2 steps): a pixel that starts at s * eps along the sign ends at (s + 1/2) * eps, or at
    # eps when s > 1/2. The lowest of 4096 uniform starts lies within 0.02 eps of -eps except with probability
    # 0.99^4096 < 1e-17, and the fractions below -eps/2, 0 and 0.45 eps stay within 0.05 of 1/4, 1/2 and 0.725
    # (more than six standard deviations) for a uniform start, not for a Gaussian or a corner one.
    model, x, y, eps, alpha, steps = _single(rng, edges=False, big_steps=False, side=64)
    s = _direction(model, y).double()
    moved = (s * (_trained_on(fn, model, x, y, eps, alpha, steps) - x.double())).flatten() / eps
    low = -1 + steps * alpha / eps  # a start at -eps, then every step up the loss (in units of eps)
    if float(moved.min()) < low - 1e-4:
        fail(f"a pixel ended {fmt(-moved.min() * eps)} against the gradient's sign; from any start in the ball, "
             f"{steps} steps of alpha={alpha:.4g} up the loss leave it at least {fmt(low * eps)} along it: take "
             "`steps` steps, each of alpha * sign(grad) with the gradient of the loss at the current point")
    if float(moved.abs().max()) < 1e-4:
        fail("the model was trained on x itself: no pixel moved; train on the PGD examples, not the clean batch")
    if float(moved.max() - moved.min()) < 1e-3:
        fail(f"every pixel moved by the same {fmt(moved.mean() * eps)} along the gradient's sign: there is no "
             "random start; begin at x + delta with delta uniform in [-eps, eps], drawn with `generator`")
    slack = float(moved.min()) - low
    if slack > _START_SLACK:
        fail(f"of {moved.numel()} pixels none ended near the lowest point a start at -eps and {steps} steps of "
             f"alpha={alpha:.4g} reach (the closest is {slack:.3f} eps above it): each step moves by alpha, not "
             "more; keep to the given alpha and steps (range(steps), not one step more)")
    start = moved - steps * alpha / eps  # the start along the sign (pixels that started above eps/2 show eps/2)
    for t in _START_QUANTILES:
        share, uniform = float((start < t).double().mean()), (1 + t) / 2
        if abs(share - uniform) > _START_SPREAD:
            fail(f"{share:.1%} of {start.numel()} pixels started below {t:g} eps along the gradient's sign, where a "
                 f"uniform start in [-eps, eps] puts {uniform:.1%}: draw the start as eps * (2 * torch.rand(x.shape, "
                 "generator=generator) - 1), uniform on the whole ball (not Gaussian, not at its corners)")


def _mlp(rng: torch.Generator) -> nn.Module:
    """A small tanh network on 8x8 images, three classes: its input gradient changes sign inside the eps-ball."""
    return init_normal(nn.Sequential(nn.Flatten(), nn.Linear(64, 12), nn.Tanh(), nn.Linear(12, 3)), rng,
                       scale=0.4).train()


def _replay(model, x, y, eps, alpha, steps, seed, *, extra=0, project_each=True, clip_start=True):
    """The PGD point the statement prescribes, replayed from a generator seeded ``seed`` (the variants: a wrong
    number of steps, projection and clipping only after the loop, a start left outside [0, 1])."""
    generator = torch.Generator().manual_seed(seed)
    x_adv = x + eps * (2 * torch.rand(x.shape, generator=generator) - 1)
    x_adv = x_adv.clamp(0, 1) if clip_start else x_adv
    for _ in range(steps + extra):
        x_adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x_adv), y), x_adv)
        x_adv = x_adv.detach() + alpha * grad.sign()
        if project_each:
            x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
    return torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1).detach()


@pgd_at_step.prop("follows PGD's path exactly where the gradient turns inside the ball (the start drawn as stated)")
def _at_path(fn, rng):
    # A tanh network (its gradient's sign changes along the path), steps that cover 0.8-1.6 eps in all (so a
    # step more or less moves the pixels that started far from the loss's side), and images a third of whose
    # pixels are 0 or 1 (so where the projection and the clipping happen changes the path).
    model = _mlp(rng)
    n, steps = randint(rng, 4, 8), randint(rng, 3, 6)
    eps = [0.1, 0.15, 0.2, 0.25][randint(rng, 0, 3)]
    alpha = (0.8 + 0.8 * float(torch.rand(1, generator=rng))) * eps / steps
    x, y = _with_edges(rng, n), torch.randint(0, 3, (n,), generator=rng)
    seed = randint(rng, 0, 10_000)
    before = copy.deepcopy(model)
    out, what = _step(fn, model, x, y, eps, alpha, steps, seed=seed)
    got = to_float(out, what)
    loss_at = lambda **kw: float(F.cross_entropy(  # noqa: E731
        before(_replay(before, x, y, eps, alpha, steps, seed, **kw)), y).detach())
    x_adv = _replay(before, x, y, eps, alpha, steps, seed)
    expected = float(F.cross_entropy(before(x_adv), y).detach())
    close = lambda v: abs(got - v) <= 1e-5 * max(1.0, abs(v))  # noqa: E731
    if close(expected):
        diff = max(float((a - b).abs().max()) for a, b in zip(params(model), params(_sgd_reference(before, x_adv, y))))
        if diff <= 1e-5:
            return
        fail(f"the loss is right but the parameters differ by up to {fmt(diff)} from one SGD step on the loss at the "
             "PGD points; zero the gradients right before loss.backward(), then optimizer.step()")
    variants = {
        "one step too many: take exactly `steps` steps, for _ in range(steps)": dict(extra=1),
        "one step too few: take exactly `steps` steps, for _ in range(steps)": dict(extra=-1),
        "the projection onto the ball and the clipping to [0, 1] happen once, after the loop: apply both after "
        "every step, so that each gradient is taken at a valid point of the ball": dict(project_each=False,
                                                                                       clip_start=False),
        "the projection happens only after the loop: project and clip after every step": dict(project_each=False),
        "the random start is not clipped to [0, 1]: clip x + delta before the first gradient": dict(clip_start=False),
    }
    hint = next((f"; that is {h}" for h, kw in variants.items() if close(loss_at(**kw))), "")
    fail(f"returned {fmt(got)}; replaying PGD from the same generator (start x + eps * (2 * torch.rand(x.shape, "
         f"generator=generator) - 1) clipped to [0, 1], then {steps} steps of alpha={alpha:.4g} each projected and "
         f"clipped) on a network whose gradient changes sign inside the ball gives the loss {fmt(expected)}{hint}")


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


@certify_from_counts.prop("the radius is sigma * Phi^-1 of the one-sided Clopper-Pearson lower bound at "
                          "confidence 1 - alpha")
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
masking_signs = SET.question("masking_signs", "masking_signs(acc, num_classes) -> counts")
COLUMNS = ("clean", "fgsm", "pgd10", "pgd100", "blackbox", "eps_max")
_TOL = 0.01  # differences of at most this much are noise
_NEAR = (0.006, 0.0095)  # a difference within the tolerance, on the suspicious side (flag none)
_JUST = (0.012, 0.019)  # a difference just beyond it (flag)
_CLEAR = (0.03, 0.15)  # a clear violation


def _u(rng: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand(1, generator=rng))


def _row(rng: torch.Generator, classes: int, rules=(), noise=(), just: bool = False) -> list[float]:
    """One defence's row. Honest by default: FGSM clearly weaker than PGD-10, PGD-100 within 0.004 of PGD-10
    (the attack has converged), the black-box attack clearly weaker than the strongest white-box one, and
    at most chance accuracy at the largest budget. ``noise`` names comparisons moved to the suspicious side,
    but within the 0.01 tolerance: "fgsm" (FGSM up to 0.0095 stronger than PGD-10), "pgd100" (PGD-100 up to
    0.0095 stronger), "pgd100_up" (PGD-100 0.006-0.009 weaker, so it is not the strongest white-box attack),
    "blackbox" (up to 0.0095 stronger than the strongest white-box attack), "eps_max" (up to 0.0095 above
    chance). ``rules`` are the checklist items (0-3) the row then breaks, by 0.03-0.15, or by 0.012-0.019 when
    ``just``."""
    chance = 1 / classes
    clean = _u(rng, 0.75, 0.99)
    pgd10 = _u(rng, max(chance, 0.25) + 0.1, clean - 0.15)
    fgsm = _u(rng, pgd10 + 0.03, clean - 0.02)
    pgd100 = pgd10 + _u(rng, -0.004, 0.004)
    eps_max = _u(rng, 0.4, 1.0) * chance
    if "fgsm" in noise:
        fgsm = pgd10 - _u(rng, *_NEAR)
    if "pgd100" in noise:
        pgd100 = pgd10 - _u(rng, *_NEAR)
    if "pgd100_up" in noise:
        pgd100 = pgd10 + _u(rng, 0.006, 0.009)
    if "eps_max" in noise:
        eps_max = chance + _u(rng, *_NEAR)
    white = min(fgsm, pgd10, pgd100)
    blackbox = white - _u(rng, *_NEAR) if "blackbox" in noise else _u(rng, white + 0.03, clean - 0.01)
    d = lambda: _u(rng, *(_JUST if just else _CLEAR))  # noqa: E731
    if 0 in rules:  # a single step stronger than ten
        fgsm = pgd10 - d()
    if 1 in rules:  # ten steps had not converged: a hundred do clearly better
        pgd100 = pgd10 - d()
    if 3 in rules:  # the largest budget leaves more than chance
        eps_max = chance + d()
    if 2 in rules:  # the black-box attack beats every white-box one
        blackbox = min(fgsm, pgd10, pgd100) - d()
    return [clean, fgsm, pgd10, pgd100, blackbox, eps_max]


def _reference_signs(acc: torch.Tensor, classes: int) -> torch.Tensor:
    clean, fgsm, pgd10, pgd100, blackbox, eps_max = acc.T
    white = torch.minimum(torch.minimum(fgsm, pgd10), pgd100)
    return ((fgsm < pgd10 - _TOL).long() + (pgd100 < pgd10 - _TOL).long() + (blackbox < white - _TOL).long()
            + (eps_max > 1 / classes + _TOL).long())


def _table(rng: torch.Generator, classes: int, rows: list[dict]) -> torch.Tensor:
    """A table with one row per dict of ``_row``'s keyword arguments."""
    acc = torch.tensor([_row(rng, classes, **r) for r in rows], dtype=torch.float64)
    expected = torch.tensor([len(r.get("rules", ())) for r in rows])
    assert acc.min() >= 0 and acc.max() <= 1, acc  # the generator's own promises
    assert torch.equal(_reference_signs(acc, classes), expected), (acc, rows)
    return acc


def _signs(fn, acc: torch.Tensor, classes: int) -> torch.Tensor:
    what = f"masking_signs(acc {describe(acc)}, num_classes={classes})"
    out = call(fn, acc.clone(), classes, name="masking_signs")
    if isinstance(out, (list, tuple)):
        try:
            out = torch.tensor([int(v) for v in out])
        except (TypeError, ValueError):
            fail(f"{what} returned {describe(out)}; expected one count (an int) per defence")
    out = expect_tensor(out, what, shape=(len(acc),))
    if out.is_floating_point() or out.dtype == torch.bool:
        fail(f"{what} returned dtype {out.dtype}; expected integer counts (e.g. torch.int64)")
    return out.long()


def _show(row: torch.Tensor, classes: int) -> str:
    return ", ".join(f"{c} {float(v):.4f}" for c, v in zip(COLUMNS, row)) + f" ({classes} classes)"


_RULE_TEXT = ("a one-step attack (FGSM) beats the iterative one (PGD-10) by more than 0.01",
              "PGD-100 is more than 0.01 below PGD-10: more iterations raised the attack's success, so PGD-10 had "
              "not converged",
              "the black-box attack beats the strongest white-box attack (the lowest of FGSM, PGD-10 and PGD-100) "
              "by more than 0.01",
              "accuracy at the largest budget is more than 0.01 above chance, 1 / num_classes")


def _compare(fn, acc, classes, rows, why) -> None:
    got, expected = _signs(fn, acc, classes), _reference_signs(acc, classes)
    if not torch.equal(got, expected):
        i = int((got != expected).nonzero()[0])
        broken = "; ".join(_RULE_TEXT[r] for r in sorted(rows[i].get("rules", ()))) or "nothing"
        fail(f"defence {i} ({_show(acc[i], classes)}) scored {int(got[i])}, expected {int(expected[i])} (it "
             f"breaks: {broken}{why(rows[i])})")


@masking_signs.prop("returns one integer count in 0..4 per defence; honestly evaluated defences score 0")
def _signs_honest(fn, rng):
    classes = randint(rng, 3, 10)
    rows = [{} for _ in range(randint(rng, 3, 6))]
    acc = _table(rng, classes, rows)
    got = _signs(fn, acc, classes)
    bad = (got != 0).nonzero().flatten()
    if len(bad):
        i = int(bad[0])
        fail(f"defence {i} ({_show(acc[i], classes)}) scored {int(got[i])}, yet FGSM is weaker than PGD-10, "
             "PGD-100 agrees with PGD-10 (the attack has converged), the black-box attack is weaker than the "
             "white-box ones and the largest budget leaves at most chance accuracy: 0 signs")


@masking_signs.prop("counts each checklist item on its own: one defence breaks one item, the others none")
def _signs_each(fn, rng):
    for rule in torch.randperm(4, generator=rng).tolist():
        classes, d = randint(rng, 3, 10), randint(rng, 3, 5)
        masked = randint(rng, 0, d - 1)
        rows = [{"rules": (rule,)} if i == masked else {} for i in range(d)]
        _compare(fn, _table(rng, classes, rows), classes, rows, lambda r: "")


_NOISE_TEXT = {"fgsm": "FGSM below PGD-10 by at most 0.01", "pgd100": "PGD-100 below PGD-10 by at most 0.01",
               "pgd100_up": "PGD-100 a little above PGD-10, so it is not the strongest white-box attack",
               "blackbox": "the black-box attack below the strongest white-box one by at most 0.01",
               "eps_max": "the largest budget at most 0.01 above chance"}


@masking_signs.prop("treats differences of at most 0.01 as noise, and flags any difference beyond 0.01")
def _signs_tolerance(fn, rng):
    # For each item: rows within the tolerance on the suspicious side (0 signs) and rows just beyond it (one
    # sign); for the black-box item also rows whose strongest white-box attack is FGSM or PGD-10, not PGD-100.
    # Up to nine classes: chance is above 0.11, so a fixed threshold of 0.1 flags the rows near chance.
    near = {0: [("fgsm",)], 1: [("pgd100",)], 3: [("eps_max",)],
            2: [("blackbox",), ("pgd100_up", "blackbox"), ("fgsm", "pgd100_up", "blackbox")]}
    for item in torch.randperm(4, generator=rng).tolist():
        classes = randint(rng, 3, 9)
        rows = [{"noise": n} for n in near[item]] + [{"rules": (item,), "just": True}]
        if item == 2:
            rows += [{"rules": (2,), "just": True, "noise": ("pgd100_up",)},
                     {"rules": (2,), "just": True, "noise": ("fgsm", "pgd100_up")}]
        order = torch.randperm(len(rows), generator=rng).tolist()
        rows = [rows[i] for i in order]
        _compare(fn, _table(rng, classes, rows), classes, rows,
                 lambda r: "; within the 0.01 tolerance: " + ", ".join(_NOISE_TEXT[k] for k in r.get("noise", ()))
                 if r.get("noise") else "")


@masking_signs.prop("adds up the items each defence breaks, and the most suspicious defence scores highest")
def _signs_total(fn, rng):
    combos = [(), (0, 3), (2, 3), (0, 2, 3), (1, 2), (1, 3), (1, 2, 3), (0,), (2,), (0, 1, 2, 3)]
    picks = torch.randperm(len(combos), generator=rng)[:4].tolist()
    rows = [{"rules": combos[p]} for p in picks]
    if not any(len(r["rules"]) >= 2 for r in rows):
        rows[0] = {"rules": combos[3]}
    classes = randint(rng, 3, 10)
    _compare(fn, _table(rng, classes, rows), classes, rows, lambda r: "")
