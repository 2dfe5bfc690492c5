"""Checks of the chapter-3 exercise set: FGSM, the two projections of PGD, a PGD loop, a robustness
evaluation over a grid of budgets, and a conceptual question (the worst case of a linear model).

Every property draws a tiny random problem (a batch of 8x8 "images" in [0, 1], a random linear model or
MLP), so the whole set runs in a few seconds on a laptop CPU. Student functions take and return torch
tensors and numbers: ``fgsm(model, x, y, eps) -> x_adv``, ``project_*(delta, eps) -> delta``,
``pgd(model, x, y, eps, alpha, steps) -> x_adv``, ``robust_accuracy(model, x, y, eps_grid, steps) -> accs``
and ``worst_case_margin(w, b, x, y, eps, norm) -> margins``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..core import ExerciseSet
from ..expect import call, describe, expect_tensor, fail, fmt
from ..instances import init_normal, randint

SET = ExerciseSet("03_evasion_whitebox", "Exercises: white-box evasion attacks", chapter=3)


def _images(rng: torch.Generator, n: int, *, edges: bool = True) -> torch.Tensor:
    """``n`` random 8x8 one-channel images in [0, 1]; with ``edges``, a third of the pixels are 0 or 1."""
    x = torch.rand(n, 1, 8, 8, generator=rng)
    if edges:
        mask = torch.rand(x.shape, generator=rng)
        x = torch.where(mask < 0.15, torch.zeros_like(x), torch.where(mask > 0.85, torch.ones_like(x), x))
    return x


def _model(rng: torch.Generator, classes: int, *, hidden: int = 0) -> nn.Module:
    layers = [nn.Flatten()] + ([nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, classes)] if hidden
                               else [nn.Linear(64, classes)])
    return init_normal(nn.Sequential(*layers), rng, scale=0.3).eval()


def _losses(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return F.cross_entropy(model(x), y, reduction="none")


# ---- (a) fgsm -----------------------------------------------------------------------------------------
_EVASION = "mlsec_kit.attacks.evasion"
fgsm = SET.question("fgsm", "fgsm(model, x, y, eps) -> x_adv", forbid=(f"{_EVASION}.fgsm", f"{_EVASION}.pgd"))


def _fgsm_instance(rng: torch.Generator, *, edges: bool = True, hidden: int = 16):
    n, c = randint(rng, 8, 24), randint(rng, 3, 6)
    x = _images(rng, n, edges=edges)
    eps = [0.05, 0.1, 0.15, 0.2][randint(rng, 0, 3)]
    return _model(rng, c, hidden=hidden), x, torch.randint(0, c, (n,), generator=rng), eps


def _attack(fn, model, x, y, eps) -> torch.Tensor:
    what = f"fgsm(model, x {tuple(x.shape)}, y ({len(y)},), eps={eps:g})"
    return expect_tensor(call(fn, model, x.clone(), y, eps, name="fgsm"), what, shape=x.shape, dtype=x.dtype)


@fgsm.prop("returns a tensor shaped like x, detached from the graph, and leaves x unchanged")
def _fgsm_shape(fn, rng):
    model, x, y, eps = _fgsm_instance(rng)
    saved = x.clone()
    out = call(fn, model, x, y, eps, name="fgsm")
    expect_tensor(out, f"fgsm(model, x {tuple(x.shape)}, y ({len(y)},), eps={eps:g})", shape=x.shape, dtype=x.dtype)
    if not torch.equal(x, saved):
        fail("fgsm changed x in place; build a new tensor (x + ...) instead of x += ...")
    _detached(out, "fgsm")


def _detached(out: torch.Tensor, name: str) -> None:
    if out.requires_grad or out.grad_fn is not None:
        fail(f"{name} returned a tensor still attached to the autograd graph (requires_grad=True); return "
             "x_adv.detach(), so that later steps do not backpropagate through this one")


@fgsm.prop("stays within eps of x (every pixel) and inside [0, 1]")
def _fgsm_ball(fn, rng):
    model, x, y, eps = _fgsm_instance(rng)
    x_adv = _attack(fn, model, x, y, eps)
    change = (x_adv - x).abs().max()
    if change > eps + 1e-6:
        fail(f"a pixel moved by {fmt(change)} with eps={eps:g}; FGSM moves each pixel by at most eps")
    if x_adv.min() < 0 or x_adv.max() > 1:
        fail(f"x_adv has values in [{fmt(x_adv.min())}, {fmt(x_adv.max())}]; clip to the valid range [0, 1] "
             "(x + eps * sign leaves it near black and white pixels)")


@fgsm.prop("moves every pixel by exactly eps along the gradient's sign (unless clipped at 0 or 1)")
def _fgsm_sign(fn, rng):
    model, x, y, eps = _fgsm_instance(rng, edges=False)
    x_adv = _attack(fn, model, x, y, eps)
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(xg), y, reduction="sum"), xg)
    step = eps * grad.sign()
    free = (grad != 0) & (x >= eps) & (x <= 1 - eps)  # no clipping, whichever way the pixel moves
    moved = (x_adv - x)[free]
    if not free.any():
        return
    if torch.allclose(moved, -step[free], atol=1e-5):
        fail("every pixel moved by eps, but against the gradient: that lowers the loss; step along +sign(grad)")
    err = (moved - step[free]).abs().max()
    if err > 1e-5:
        sizes = moved.abs()
        hint = ("; pixels moved by different amounts: use the sign of the gradient, not the gradient itself"
                if sizes.max() - sizes.min() > 1e-4 else "")
        j = int((moved - step[free]).abs().argmax())
        fail(f"a pixel whose step is not clipped moved by {fmt(moved[j])} instead of eps * sign(grad) = "
             f"{fmt(step[free][j])} (eps={eps:g}){hint}")


@fgsm.prop("a pixel pushed past 0 or 1 is clipped to it, not left where it was")
def _fgsm_clip(fn, rng):
    model, x, y, eps = _fgsm_instance(rng, edges=False)
    near = torch.rand(x.shape, generator=rng)  # a third of the pixels within eps of 0 or of 1
    inner = 0.1 * eps + 0.8 * eps * torch.rand(x.shape, generator=rng)
    x = torch.where(near < 0.17, inner, torch.where(near > 0.83, 1 - inner, x))
    x_adv = _attack(fn, model, x, y, eps)
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(xg), y, reduction="sum"), xg)
    target = (x + eps * grad.sign()).clamp(0, 1)
    clipped = (grad != 0) & ((x + eps * grad.sign() < 0) | (x + eps * grad.sign() > 1))
    if not clipped.any():
        return
    err = (x_adv - target)[clipped].abs()
    if err.max() > 1e-5:
        j = int(err.argmax())
        fail(f"a pixel at {fmt(x[clipped][j])} whose step of eps={eps:g} crosses the edge ended at "
             f"{fmt(x_adv[clipped][j])} instead of {fmt(target[clipped][j])}; clip x + eps * sign(grad) to [0, 1] "
             "(clamp), do not leave such pixels unmoved")


@fgsm.prop("raises the loss of every example of a linear model")
def _fgsm_loss(fn, rng):
    model, x, y, eps = _fgsm_instance(rng, edges=False, hidden=0)
    x = 0.25 + 0.5 * x  # away from 0 and 1, so nothing is clipped; the loss is convex in x
    before, after = _losses(model, x, y), _losses(model, _attack(fn, model, x, y, eps), y)
    worse = (after <= before).nonzero().flatten()
    if len(worse):
        i = int(worse[0])
        fail(f"example {i}'s loss went from {fmt(before[i])} to {fmt(after[i])} (eps={eps:g}); the attack must "
             f"increase the loss of the true label y ({len(worse)} of {len(y)} examples did not)")


@fgsm.prop("fools a weak model more often than random signs of the same size")
def _fgsm_beats_noise(fn, rng):
    model, x, _, _ = _fgsm_instance(rng, hidden=0)  # a random linear model: weak, but sure of itself
    x, eps = torch.cat([x, _images(rng, 100)]), 0.2
    with torch.no_grad():
        y = model(x).argmax(1)  # the model is right on every clean input, by construction
    noise = (x + eps * (torch.randint(0, 2, x.shape, generator=rng) * 2.0 - 1)).clamp(0, 1)
    x_adv = _attack(fn, model, x, y, eps)
    with torch.no_grad():
        fooled_attack = (model(x_adv).argmax(1) != y).sum().item()
        fooled_noise = (model(noise).argmax(1) != y).sum().item()
    if fooled_attack <= fooled_noise:
        fail(f"your attack changed {fooled_attack} of {len(y)} labels, random signs of size eps={eps:g} changed "
             f"{fooled_noise}; the gradient's direction should do much better than chance")


# ---- (b) project_linf ---------------------------------------------------------------------------------
project_linf = SET.question("project_linf", "project_linf(delta, eps) -> delta",
                            forbid=(f"{_EVASION}.project_linf", f"{_EVASION}.project_l2"))


def _delta(rng: torch.Generator, *, dtype: torch.dtype = torch.float32, kind: int | None = None
           ) -> tuple[torch.Tensor, float]:
    """A batch of perturbations (2-D or image-shaped; ``kind`` 0, 1, 2 picks which, default random) with a
    wide spread of norms, and a radius."""
    n = randint(rng, 4, 12)
    kind = randint(rng, 0, 2) if kind is None else kind
    shape = [(n, randint(rng, 3, 20)), (n, 1, 4, 4), (n, 3, 2, 2)][kind]
    scale = torch.rand(n, generator=rng) * 3
    delta = torch.randn(shape, generator=rng) * scale.view(-1, *([1] * (len(shape) - 1)))
    return delta.to(dtype), [0.1, 0.3, 0.5, 1.0, 2.0][randint(rng, 0, 4)]


def _project(fn, delta: torch.Tensor, eps: float, name: str) -> torch.Tensor:
    what = f"{name}(delta {describe(delta)}, eps={eps:g})"
    return expect_tensor(call(fn, delta.clone(), eps, name=name), what, shape=delta.shape, dtype=delta.dtype)


def _prop_shape(name: str):
    def prop(fn, rng):
        for dtype in (torch.float32, torch.float64):
            delta, eps = _delta(rng, dtype=dtype)
            saved = delta.clone()
            out = call(fn, delta, eps, name=name)
            expect_tensor(out, f"{name}(delta {describe(delta)}, eps={eps:g})", shape=delta.shape, dtype=dtype)
            if not torch.equal(delta, saved):
                fail(f"{name} changed delta in place; return a new tensor")
    return prop


project_linf.prop("returns a tensor shaped like delta, with its dtype, and leaves delta unchanged")(
    _prop_shape("project_linf"))


@project_linf.prop("every coordinate of the result is in [-eps, eps]")
def _linf_in_ball(fn, rng):
    delta, eps = _delta(rng)
    p = _project(fn, delta, eps, "project_linf")
    if p.abs().max() > eps + 1e-6:
        fail(f"a coordinate is {fmt(p.abs().max())} with eps={eps:g}; clip each coordinate to [-eps, eps]")


@project_linf.prop("a perturbation already inside the ball is returned unchanged")
def _linf_inside(fn, rng):
    delta, eps = _delta(rng)
    delta = delta.clamp(-eps, eps) * 0.99
    p = _project(fn, delta, eps, "project_linf")
    if not torch.allclose(p, delta, atol=1e-6):
        fail(f"on delta with every |coordinate| < eps={eps:g} the result differs by up to "
             f"{fmt((p - delta).abs().max())}; points of the ball must stay where they are")


@project_linf.prop("returns the nearest point of the ball (in L2 distance), for each example")
def _linf_nearest(fn, rng):
    delta, eps = _delta(rng, dtype=torch.float64)
    p = _project(fn, delta, eps, "project_linf")
    if p.abs().max() > eps + 1e-9:
        fail("the result is not inside the Linf ball, so it cannot be its nearest point")
    best = (delta.clamp(-eps, eps) - delta).flatten(1).norm(dim=1)
    got = (p - delta).flatten(1).norm(dim=1)
    if (got > best + 1e-6).any():
        i = int((got - best).argmax())
        fail(f"example {i}: the result is {fmt(got[i])} from delta, but a point of the ball only {fmt(best[i])} "
             "away exists; move each coordinate only as far as needed (clip it), do not rescale the vector")


# ---- (c) project_l2 -----------------------------------------------------------------------------------
project_l2 = SET.question("project_l2", "project_l2(delta, eps) -> delta",
                          forbid=(f"{_EVASION}.project_l2", f"{_EVASION}.project_linf"))
project_l2.prop("returns a tensor shaped like delta, with its dtype, and leaves delta unchanged")(
    _prop_shape("project_l2"))


def _norms(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).double().norm(dim=1)


@project_l2.prop("each example's L2 norm is at most eps, for flat and image-shaped batches")
def _l2_in_ball(fn, rng):
    for kind in (0, 1, 2):
        delta, eps = _delta(rng, kind=kind)
        delta[0] *= 3 * eps / _norms(delta[:1]).float().clamp_min(1e-12)  # surely outside
        n = _norms(_project(fn, delta, eps, "project_l2"))
        if (n > eps * (1 + 1e-5)).any():
            i = int(n.argmax())
            fail(f"example {i} has L2 norm {fmt(n[i])} > eps={eps:g} (delta {describe(delta)}); take the norm "
                 "over all dimensions of one example, e.g. delta.flatten(1).norm(dim=1), not per row")


@project_l2.prop("an example already inside the ball is returned unchanged, even when others are outside")
def _l2_inside(fn, rng):
    delta, eps = _delta(rng)
    delta[0] = delta[0] / _norms(delta[:1]).float().clamp_min(1e-12) * eps * 0.5  # one example surely inside
    delta[-1] = delta[-1] / _norms(delta[-1:]).float().clamp_min(1e-12) * eps * 3  # and one surely outside
    inside = _norms(delta) <= eps
    p = _project(fn, delta, eps, "project_l2")
    if not torch.allclose(p[inside], delta[inside], atol=1e-6):
        fail(f"an example with norm below eps={eps:g} was changed; with several examples in a batch, each is "
             "projected on its own (a norm over the whole batch mixes them up)")


@project_l2.prop("an example outside the ball is scaled onto its sphere, keeping its direction")
def _l2_outside(fn, rng):
    delta, eps = _delta(rng, dtype=torch.float64)
    delta = delta * (3 * eps / _norms(delta).clamp_min(1e-12)).view(-1, *([1] * (delta.dim() - 1)))
    delta[0] *= 0.2  # norm 0.6 eps: inside, so the batch mixes both cases
    p = _project(fn, delta, eps, "project_l2")
    n = _norms(p)[1:]
    if ((n - eps).abs() > 1e-6 * max(1.0, eps)).any():
        i = int((n - eps).abs().argmax()) + 1
        fail(f"example {i} had norm {fmt(3 * eps)} and now has {fmt(n[i - 1])}; expected exactly eps={eps:g} "
             "(the nearest point of the ball lies on its surface)")
    cos = F.cosine_similarity(p.flatten(1)[1:], delta.flatten(1)[1:], dim=1)
    if (cos < 1 - 1e-9).any():
        fail("an example's direction changed; scale the whole vector by eps / ||delta||, do not clip coordinates")


@project_l2.prop("a zero perturbation stays exactly zero (no division by zero, no NaN)")
def _l2_zero(fn, rng):
    delta, eps = _delta(rng)
    i = randint(rng, 0, delta.shape[0] - 1)
    delta[i] = 0.0
    p = _project(fn, delta, eps, "project_l2")
    if not torch.isfinite(p).all():
        fail("the result has NaN or inf where an example of delta is all zeros (norm 0); only rescale examples "
             "whose norm exceeds eps, or clamp the norm away from 0 before dividing")
    if (p[i] != 0).any():
        fail(f"an all-zero example became non-zero (largest entry {fmt(p[i].abs().max())}); the zero perturbation "
             "is inside the ball, so its projection is itself: do not add anything to delta")


# ---- (d) pgd ------------------------------------------------------------------------------------------
pgd = SET.question("pgd", "pgd(model, x, y, eps, alpha, steps) -> x_adv",
                   forbid=(f"{_EVASION}.pgd", f"{_EVASION}.fgsm", f"{_EVASION}.project_linf"))


def _reference_pgd(model, x, y, eps, alpha, steps):
    """The textbook Linf PGD: a step along the gradient's sign, back into the ball around x, into [0, 1]."""
    delta = torch.zeros_like(x)
    for _ in range(steps):
        xd = (x + delta).requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(xd), y, reduction="sum"), xd)
        delta = (delta + alpha * grad.sign()).clamp(-eps, eps)
        delta = (x + delta).clamp(0, 1) - x
    return x + delta


def _pgd_instance(rng: torch.Generator):
    model, x, y, eps = _fgsm_instance(rng, hidden=16)
    steps = randint(rng, 3, 8)
    return model, x, y, eps, 2.5 * eps / steps, steps


def _run_pgd(fn, model, x, y, eps, alpha, steps):
    what = f"pgd(model, x {tuple(x.shape)}, y ({len(y)},), eps={eps:g}, alpha={alpha:.4g}, steps={steps})"
    out = call(fn, model, x.clone(), y, eps, alpha, steps, name="pgd")
    return expect_tensor(out, what, shape=x.shape, dtype=x.dtype)


@pgd.prop("returns a tensor shaped like x, detached from the graph, and leaves x unchanged")
def _pgd_shape(fn, rng):
    model, x, y, eps, alpha, steps = _pgd_instance(rng)
    saved = x.clone()
    out = call(fn, model, x, y, eps, alpha, steps, name="pgd")
    expect_tensor(out, "pgd(...)", shape=x.shape, dtype=x.dtype)
    if not torch.equal(x, saved):
        fail("pgd changed x in place; keep x and build x + delta anew at every step")
    _detached(out, "pgd")


@pgd.prop("stays within eps of x (every pixel) and inside [0, 1]")
def _pgd_ball(fn, rng):
    model, x, y, eps, _, steps = _pgd_instance(rng)
    x_adv = _run_pgd(fn, model, x, y, eps, eps, steps)  # steps of eps: without a projection they leave the ball
    change = (x_adv - x).abs().max()
    if change > eps + 1e-6:
        fail(f"a pixel moved by {fmt(change)} from x with eps={eps:g}; project delta = x_adv - x onto the ball "
             "around x after every step (clamp delta, not x_adv, to [-eps, eps])")
    if x_adv.min() < 0 or x_adv.max() > 1:
        fail(f"x_adv has values in [{fmt(x_adv.min())}, {fmt(x_adv.max())}]; clip x + delta to [0, 1] after "
             "every step")


@pgd.prop("is the textbook iteration: sign step of alpha, projection onto the ball around x, clip to [0, 1]")
def _pgd_reference(fn, rng):
    model, x, y, eps, alpha, steps = _pgd_instance(rng)
    x_adv = _run_pgd(fn, model, x, y, eps, alpha, steps)
    expected = _reference_pgd(model, x, y, eps, alpha, steps).detach()
    err = (x_adv - expected).abs().max()
    if err > 1e-5:
        one = _reference_pgd(model, x, y, eps, alpha, 1).detach()
        hint = ("; it equals a single step: loop `steps` times, recomputing the gradient at x + delta"
                if (x_adv - one).abs().max() < 1e-5 else
                "; each step moves every pixel by alpha along the sign of the gradient at the current point, "
                "up the loss of the true label")
        fail(f"a pixel differs by {fmt(err)} from PGD with eps={eps:g}, alpha={alpha:.4g}, steps={steps}{hint}")


@pgd.prop("leaves a small network's loss, on average, no lower than one FGSM step of the same eps does")
def _pgd_beats_fgsm(fn, rng):
    model, x, y, eps, _, steps = _pgd_instance(rng)
    x = 0.2 + 0.6 * x
    steps = 10
    x_adv = _run_pgd(fn, model, x, y, eps, 2.5 * eps / steps, steps)
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(xg), y, reduction="sum"), xg)
    x_fgsm = (x + eps * grad.sign()).clamp(0, 1)
    ours, theirs = _losses(model, x_adv, y).mean(), _losses(model, x_fgsm, y).mean()
    if ours < theirs - 1e-6:
        fail(f"mean loss {fmt(ours)} after your PGD, {fmt(theirs)} after one FGSM step of the same eps={eps:g}; "
             "ten steps that each go up the loss should do at least as well")


# ---- (e) robust_accuracy ------------------------------------------------------------------------------
robust_accuracy = SET.question("robust_accuracy", "robust_accuracy(model, x, y, eps_grid, steps) -> accs",
                               forbid=(f"{_EVASION}.pgd", "mlsec_kit.train.accuracy", "mlsec_kit.train.evaluate"))


def _eval_instance(rng: torch.Generator):
    """A small MLP, 150-250 inputs whose labels it gets right about 80% of the time, a grid starting at 0."""
    n, c = randint(rng, 150, 250), randint(rng, 3, 5)
    model = init_normal(nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                                      nn.Linear(32, c)), rng, scale=0.6).eval()  # curved: PGD beats FGSM
    x = _images(rng, n)
    with torch.no_grad():
        y = model(x).argmax(1)
    wrong = torch.rand(n, generator=rng) < 0.2
    y = torch.where(wrong, (y + torch.randint(1, c, (n,), generator=rng)) % c, y)  # some clean errors
    grid = [0.0, 0.05, 0.1, 0.2, 0.3][: randint(rng, 4, 5)]
    return model, x, y, grid, randint(rng, 5, 10)


def _reference_curve(model, x, y, grid, steps) -> torch.Tensor:
    accs = []
    for eps in grid:
        x_adv = _reference_pgd(model, x, y, eps, 2.5 * eps / steps, steps).detach() if eps > 0 else x
        with torch.no_grad():
            accs.append((model(x_adv).argmax(1) == y).float().mean().item())
    return torch.tensor(accs)


def _curve(fn, model, x, y, grid, steps) -> torch.Tensor:
    what = f"robust_accuracy(model, x {tuple(x.shape)}, y ({len(y)},), eps_grid={grid}, steps={steps})"
    out = call(fn, model, x.clone(), y, list(grid), steps, name="robust_accuracy")
    if isinstance(out, (list, tuple)):
        try:
            out = torch.tensor([float(v) for v in out])
        except (TypeError, ValueError):
            fail(f"{what} returned {describe(out)}; expected one accuracy (a number) per eps")
    out = expect_tensor(out, what, shape=(len(grid),))
    return out.double()


@robust_accuracy.prop("returns one accuracy in [0, 1] per eps; at eps = 0 it is the clean accuracy")
def _eval_shape(fn, rng):
    model, x, y, grid, steps = _eval_instance(rng)
    accs = _curve(fn, model, x, y, grid, steps)
    if ((accs < 0) | (accs > 1)).any():
        fail(f"accuracies {[round(float(a), 4) for a in accs]} are not all in [0, 1]")
    with torch.no_grad():
        clean = (model(x).argmax(1) == y).float().mean().item()
    if abs(accs[0] - clean) > 1e-6:
        fail(f"at eps = 0 you report {fmt(accs[0])}, the clean accuracy is {fmt(clean)}: count the inputs the "
             "model classifies as their TRUE label y (not as its own clean prediction)")


@robust_accuracy.prop("matches the accuracy under PGD (alpha = 2.5 eps / steps) at every eps of the grid")
def _eval_reference(fn, rng):
    model, x, y, grid, steps = _eval_instance(rng)
    accs = _curve(fn, model, x, y, grid, steps)
    expected = _reference_curve(model, x, y, grid, steps).double()
    tol = 1.5 / len(y)  # one input of slack for float rounding
    bad = ((accs - expected).abs() > tol).nonzero().flatten()
    if len(bad):
        i = int(bad[0])
        fail(f"at eps={grid[i]:g} you report {fmt(accs[i])}, PGD-{steps} with alpha = 2.5 eps / steps against the "
             f"true labels gives {fmt(expected[i])}; attack each eps of the grid separately, with PGD, and count "
             "the adversarial inputs still classified as y")


@robust_accuracy.prop("never exceeds the clean accuracy, and falls as eps grows on a weak model")
def _eval_falls(fn, rng):
    model, x, y, _, steps = _eval_instance(rng)
    grid = [0.0, 0.1, 0.3]
    accs = _curve(fn, model, x, y, grid, steps)
    if (accs[1:] > accs[0] + 1e-6).any():
        fail(f"accuracies {[round(float(a), 4) for a in accs]} for eps {grid}: an attack cannot make the model "
             "more accurate than on clean inputs")
    if not accs[2] < accs[0]:
        fail(f"accuracies {[round(float(a), 4) for a in accs]} for eps {grid}: at eps=0.3 PGD should fool this "
             "small model on some inputs")


# ---- (f) worst_case_margin (conceptual) -----------------------------------------------------------------
worst_case_margin = SET.question("worst_case_margin", "worst_case_margin(w, b, x, y, eps, norm) -> margins")


def _linear_instance(rng: torch.Generator):
    n, d = randint(rng, 5, 20), randint(rng, 4, 40)
    w = torch.randn(d, generator=rng, dtype=torch.float64) * torch.rand(d, generator=rng, dtype=torch.float64) * 2
    b = float(torch.randn(1, generator=rng))
    x = torch.randn(n, d, generator=rng, dtype=torch.float64)
    y = torch.randint(0, 2, (n,), generator=rng) * 2 - 1
    eps = [0.05, 0.1, 0.3, 1.0][randint(rng, 0, 3)]
    return w, b, x, y, eps


def _margins(fn, w, b, x, y, eps, norm) -> torch.Tensor:
    what = f"worst_case_margin(w {describe(w)}, b={b:.4g}, x {describe(x)}, y {describe(y)}, eps={eps:g}, norm={norm!r})"
    out = expect_tensor(call(fn, w.clone(), b, x.clone(), y.clone(), eps, norm, name="worst_case_margin"), what,
                        shape=(len(x),))
    return out.double()


def _attained(w, b, x, y, eps, norm) -> torch.Tensor:
    """The margin of the worst perturbation itself, built explicitly: the attack on a linear model."""
    if norm == "linf":
        delta = -eps * y[:, None].double() * w.sign()[None]
    else:
        delta = -eps * y[:, None].double() * (w / w.norm())[None]
    return y.double() * ((x + delta) @ w + b)


@worst_case_margin.prop("for norm='linf' the margin is y (w.x + b) - eps ||w||_1, attained by a perturbation")
def _wcm_linf(fn, rng):
    w, b, x, y, eps = _linear_instance(rng)
    got = _margins(fn, w, b, x, y, eps, "linf")
    expected = _attained(w, b, x, y, eps, "linf")
    if (got - expected).abs().max() > 1e-6 * (1 + expected.abs().max()):
        i = int((got - expected).abs().argmax())
        clean = float(y[i] * (x[i] @ w + b))
        fail(f"example {i}: clean margin {fmt(clean)}, you report {fmt(got[i])} under an Linf budget eps={eps:g}, "
             f"but delta = -eps y sign(w) reaches {fmt(expected[i])}: the worst case costs eps times the DUAL norm "
             "of w (for Linf, the L1 norm)")


@worst_case_margin.prop("for norm='l2' the margin is y (w.x + b) - eps ||w||_2, attained by a perturbation")
def _wcm_l2(fn, rng):
    w, b, x, y, eps = _linear_instance(rng)
    got = _margins(fn, w, b, x, y, eps, "l2")
    expected = _attained(w, b, x, y, eps, "l2")
    if (got - expected).abs().max() > 1e-6 * (1 + expected.abs().max()):
        i = int((got - expected).abs().argmax())
        fail(f"example {i}: you report {fmt(got[i])} under an L2 budget eps={eps:g}, but delta = -eps y w/||w||_2 "
             f"reaches {fmt(expected[i])}: for L2 the dual norm is L2 itself")


@worst_case_margin.prop("the Linf worst case grows with the dimension: ||w||_1 = d when every |w_i| = 1")
def _wcm_dimension(fn, rng):
    _, b, _, _, eps = _linear_instance(rng)
    got = []
    for d in (4, 64):
        w = torch.ones(d, dtype=torch.float64)
        x, y = torch.zeros(1, d, dtype=torch.float64), torch.ones(1, dtype=torch.int64)
        got.append(float(_margins(fn, w, b, x, y, eps, "linf")[0]))
    drop = [b - g for g in got]
    if abs(drop[1] - 64 * eps) > 1e-6 or abs(drop[0] - 4 * eps) > 1e-6:
        fail(f"with w = all ones, the Linf worst case lowers the margin by {fmt(drop[0])} in 4 dimensions and "
             f"{fmt(drop[1])} in 64 (eps={eps:g}); each coordinate adds eps |w_i|, so expect {fmt(4 * eps)} and "
             f"{fmt(64 * eps)}: why small Linf budgets fool high-dimensional models")
