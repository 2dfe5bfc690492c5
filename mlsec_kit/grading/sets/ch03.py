"""Checks of the chapter-3 exercise set: FGSM and the two projections of PGD.

Every property draws a tiny random problem (a batch of 8x8 "images" in [0, 1], a random linear model or
MLP), so the whole set runs in about a second on a laptop CPU. Student functions take and return torch
tensors: ``fgsm(model, x, y, eps) -> x_adv`` and ``project_*(delta, eps) -> delta``.
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
fgsm = SET.question("fgsm", "fgsm(model, x, y, eps) -> x_adv", forbid=("mlsec_kit.attacks.evasion.gradient.fgsm",))


def _fgsm_instance(rng: torch.Generator, *, edges: bool = True, hidden: int = 16):
    n, c = randint(rng, 8, 24), randint(rng, 3, 6)
    x = _images(rng, n, edges=edges)
    eps = [0.05, 0.1, 0.15, 0.2][randint(rng, 0, 3)]
    return _model(rng, c, hidden=hidden), x, torch.randint(0, c, (n,), generator=rng), eps


def _attack(fn, model, x, y, eps) -> torch.Tensor:
    what = f"fgsm(model, x {tuple(x.shape)}, y ({len(y)},), eps={eps:g})"
    return expect_tensor(call(fn, model, x.clone(), y, eps, name="fgsm"), what, shape=x.shape, dtype=x.dtype)


@fgsm.prop("returns a tensor shaped like x, and leaves x unchanged")
def _fgsm_shape(fn, rng):
    model, x, y, eps = _fgsm_instance(rng)
    saved = x.clone()
    out = call(fn, model, x, y, eps, name="fgsm")
    expect_tensor(out, f"fgsm(model, x {tuple(x.shape)}, y ({len(y)},), eps={eps:g})", shape=x.shape, dtype=x.dtype)
    if not torch.equal(x, saved):
        fail("fgsm changed x in place; build a new tensor (x + ...) instead of x += ...")


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
                            forbid=("mlsec_kit.attacks.evasion.gradient.project_linf",))


def _delta(rng: torch.Generator, *, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, float]:
    """A batch of perturbations (2-D or image-shaped) with a wide spread of norms, and a radius."""
    n = randint(rng, 4, 12)
    shape = [(n, randint(rng, 3, 20)), (n, 1, 4, 4), (n, 3, 2, 2)][randint(rng, 0, 2)]
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
                          forbid=("mlsec_kit.attacks.evasion.gradient.project_l2",))
project_l2.prop("returns a tensor shaped like delta, with its dtype, and leaves delta unchanged")(
    _prop_shape("project_l2"))


def _norms(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).double().norm(dim=1)


@project_l2.prop("each example's L2 norm is at most eps")
def _l2_in_ball(fn, rng):
    delta, eps = _delta(rng)
    n = _norms(_project(fn, delta, eps, "project_l2"))
    if (n > eps * (1 + 1e-5)).any():
        i = int(n.argmax())
        fail(f"example {i} has L2 norm {fmt(n[i])} > eps={eps:g} (delta {describe(delta)}); take the norm over "
             "all dimensions of one example, e.g. delta.flatten(1).norm(dim=1)")


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


@project_l2.prop("a zero perturbation stays zero (no division by zero, no NaN)")
def _l2_zero(fn, rng):
    delta, eps = _delta(rng)
    delta[randint(rng, 0, delta.shape[0] - 1)] = 0.0
    p = _project(fn, delta, eps, "project_l2")
    if not torch.isfinite(p).all():
        fail("the result has NaN or inf where an example of delta is all zeros (norm 0); only rescale examples "
             "whose norm exceeds eps, or clamp the norm away from 0 before dividing")
