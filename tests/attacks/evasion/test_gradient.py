"""FGSM, PGD and their projections: properties on random inputs and on a small trained CNN, and bad input."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from mlsec_kit.attacks.evasion import fgsm, input_gradient, pgd, project_l2, project_linf
from mlsec_kit.train import accuracy

FAST = settings(max_examples=25, deadline=None)


def _random_problem(seed: int, n: int = 6, shape=(1, 8, 8), classes: int = 4):
    """Inputs in [0, 1], labels and a random MLP, all from one seed."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((n, *shape), generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(x[0].numel(), 16), nn.ReLU(), nn.Linear(16, classes))
    return model, x, y


def _linf(d: torch.Tensor) -> torch.Tensor:
    return d.flatten(1).abs().amax(1)


def _l2(d: torch.Tensor) -> torch.Tensor:
    return d.flatten(1).norm(dim=1)


def _losses(model, x, y):
    with torch.no_grad():
        return F.cross_entropy(model(x), y, reduction="none")


# ---- inside the ball and the range ---------------------------------------------------------------------
@FAST
@given(seed=st.integers(0, 10_000), eps=st.floats(0.0, 0.5), targeted=st.booleans())
def test_fgsm_stays_in_ball_and_range(seed, eps, targeted):
    model, x, y = _random_problem(seed)
    x_adv = fgsm(model, x, y, eps=eps, targeted=targeted)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and not x_adv.requires_grad
    assert _linf(x_adv - x).max() <= eps + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1


@FAST
@given(seed=st.integers(0, 10_000), eps=st.floats(0.0, 2.0), steps=st.integers(1, 5),
       norm=st.sampled_from(["linf", "l2", "L2"]), random_start=st.booleans(), targeted=st.booleans())
def test_pgd_stays_in_ball_and_range(seed, eps, steps, norm, random_start, targeted):
    model, x, y = _random_problem(seed)
    x_adv = pgd(model, x, y, eps=eps, alpha=eps / 2, steps=steps, norm=norm, random_start=random_start,
                targeted=targeted, generator=torch.Generator().manual_seed(seed))
    size = _linf(x_adv - x) if norm == "linf" else _l2(x_adv - x)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and not x_adv.requires_grad
    assert size.max() <= eps + 1e-5
    assert x_adv.min() >= 0 and x_adv.max() <= 1


def test_attacks_respect_a_custom_input_range():
    model, x, y = _random_problem(0, shape=(3, 8, 8))
    x = x * 4 - 2  # inputs in [-2, 2]
    for x_adv in (fgsm(model, x, y, eps=1.0, clip_min=-2, clip_max=2),
                  pgd(model, x, y, eps=1.0, alpha=0.5, steps=3, random_start=True, clip_min=-2, clip_max=2)):
        assert x_adv.min() >= -2 and x_adv.max() <= 2 and _linf(x_adv - x).max() <= 1 + 1e-6


def test_float64_inputs_keep_their_dtype():
    model, x, y = _random_problem(1)
    model = model.double()
    assert fgsm(model, x.double(), y, eps=0.1).dtype == torch.float64
    assert pgd(model, x.double(), y, eps=0.5, alpha=0.2, steps=2, norm="l2", random_start=True).dtype == torch.float64


# ---- the projections -----------------------------------------------------------------------------------
@FAST
@given(seed=st.integers(0, 10_000), eps=st.floats(0.01, 3.0), scale=st.floats(0.1, 5.0))
def test_l2_projection_is_the_nearest_point_of_the_ball(seed, eps, scale):
    g = torch.Generator().manual_seed(seed)
    delta = torch.randn(5, 2, 3, 3, generator=g, dtype=torch.float64) * scale
    p = project_l2(delta, eps=eps)
    assert (_l2(p) <= eps * (1 + 1e-9)).all()
    # no point of the ball is nearer: try many random points of it (interior and sphere)
    z = torch.randn(200, *delta.shape, generator=g, dtype=torch.float64)
    z = z / _l2(z.flatten(0, 1)).view(200, 5, 1, 1, 1) * eps * torch.rand(200, 5, 1, 1, 1, generator=g,
                                                                          dtype=torch.float64) ** 0.1
    best_random = (z - delta).flatten(2).norm(dim=2).amin(0)
    assert (_l2(p - delta) <= best_random + 1e-9).all()
    inside = _l2(delta) <= eps
    assert torch.equal(p[inside], delta[inside])            # points of the ball stay put
    cos = F.cosine_similarity(p.flatten(1), delta.flatten(1), dim=1)
    assert torch.allclose(cos, torch.ones_like(cos))          # outside points move along their direction


def test_l2_projection_is_per_example_and_safe_at_zero():
    delta = torch.zeros(3, 4)
    delta[1] = torch.tensor([3.0, 4.0, 0.0, 0.0])               # norm 5
    delta[2] = torch.tensor([0.3, 0.4, 0.0, 0.0])               # norm 0.5
    p = project_l2(delta, eps=1.0)
    assert torch.equal(p[0], delta[0]) and torch.equal(p[2], delta[2])
    assert torch.allclose(p[1], torch.tensor([0.6, 0.8, 0.0, 0.0]))
    assert torch.equal(project_l2(delta, eps=0.0), torch.zeros_like(delta))


@FAST
@given(seed=st.integers(0, 10_000), eps=st.floats(0.0, 1.0))
def test_linf_projection_is_the_nearest_point_of_the_ball(seed, eps):
    g = torch.Generator().manual_seed(seed)
    delta = torch.randn(4, 10, generator=g, dtype=torch.float64)
    p = project_linf(delta, eps=eps)
    assert (p.abs() <= eps).all()
    z = (torch.rand(300, 4, 10, generator=g, dtype=torch.float64) * 2 - 1) * eps
    assert ((p - delta).norm(dim=1) <= (z - delta).norm(dim=2).amin(0) + 1e-12).all()
    assert torch.equal(p[delta.abs() <= eps], delta[delta.abs() <= eps])


# ---- the loss goes up ----------------------------------------------------------------------------------
@FAST
@given(seed=st.integers(0, 10_000), eps=st.floats(0.01, 0.2))
def test_fgsm_increases_every_loss_of_a_linear_model(seed, eps):
    # cross-entropy of a linear model is convex in x, so a first-order ascent step cannot lower it
    g = torch.Generator().manual_seed(seed)
    x = 0.25 + 0.5 * torch.rand(8, 20, generator=g)  # away from the range's edges: no clipping
    y = torch.randint(0, 3, (8,), generator=g)
    torch.manual_seed(seed)
    model = nn.Linear(20, 3)
    before, after = _losses(model, x, y), _losses(model, fgsm(model, x, y, eps=eps), y)
    assert (after > before).all()
    target_after = _losses(model, fgsm(model, x, y, eps=eps, targeted=True), y)
    assert (target_after < before).all()


def test_fgsm_moves_every_pixel_by_eps_along_the_gradient_sign(cnn, test_batch):
    x, y = test_batch
    eps = 0.1
    x_adv = fgsm(cnn, x, y, eps=eps)
    grad = input_gradient(cnn, x, y)
    free = (grad != 0) & (x + eps * grad.sign() >= 0) & (x + eps * grad.sign() <= 1)
    assert torch.allclose((x_adv - x)[free], eps * grad.sign()[free], atol=1e-6)
    assert torch.equal(fgsm(cnn, x, y, eps=0.0), x)


def test_pgd_raises_the_loss_and_beats_fgsm(cnn, test_batch):
    x, y = test_batch
    eps = 0.15
    x_fgsm = fgsm(cnn, x, y, eps=eps)
    x_pgd = pgd(cnn, x, y, eps=eps, alpha=eps / 4, steps=10)
    clean, loss_fgsm, loss_pgd = (_losses(cnn, v, y).mean() for v in (x, x_fgsm, x_pgd))
    assert clean < loss_fgsm < loss_pgd
    acc_clean, acc_fgsm, acc_pgd = (accuracy(cnn, v, y) for v in (x, x_fgsm, x_pgd))
    assert acc_pgd <= acc_fgsm < acc_clean - 0.2
    assert acc_pgd < 0.25


def test_gradient_attacks_beat_random_noise_of_the_same_size(cnn, test_batch):
    x, y = test_batch
    eps = 0.15
    g = torch.Generator().manual_seed(0)
    noise = (x + eps * (torch.randint(0, 2, x.shape, generator=g) * 2.0 - 1)).clamp(0, 1)
    direction = torch.randn(x.shape, generator=g)
    noise_l2 = (x + project_l2(direction * 10, eps=1.0)).clamp(0, 1)
    assert accuracy(cnn, fgsm(cnn, x, y, eps=eps), y) < accuracy(cnn, noise, y) - 0.3
    assert accuracy(cnn, pgd(cnn, x, y, eps=1.0, alpha=0.25, steps=10, norm="l2"), y) < accuracy(cnn, noise_l2, y) - 0.3


def test_targeted_attacks_reach_the_target_more_often(cnn, test_batch):
    x, y = test_batch
    target = (y + 1) % 10
    hit = lambda v: (cnn(v).argmax(1) == target).float().mean().item()  # noqa: E731
    with torch.no_grad():
        hit_untargeted = hit(pgd(cnn, x, y, eps=0.2, alpha=0.05, steps=10))
        hit_targeted = hit(pgd(cnn, x, target, eps=0.2, alpha=0.05, steps=10, targeted=True))
        hit_fgsm_targeted = hit(fgsm(cnn, x, target, eps=0.2, targeted=True))
        hit_l2 = hit(pgd(cnn, x, target, eps=1.5, alpha=0.3, steps=10, norm="l2", targeted=True))
    assert hit_targeted > 0.4 and hit_targeted > hit_untargeted + 0.2
    assert hit_fgsm_targeted > hit_untargeted and hit_l2 > 0.4


def test_random_start_is_reproducible_through_the_generator(cnn, test_batch):
    x, y = test_batch
    run = lambda seed, norm: pgd(cnn, x, y, eps=0.1, alpha=0.0, steps=1, norm=norm, random_start=True,  # noqa: E731
                                 generator=torch.Generator().manual_seed(seed))
    for norm in ("linf", "l2"):
        assert torch.equal(run(1, norm), run(1, norm))
        assert not torch.equal(run(1, norm), run(2, norm))
        assert not torch.equal(run(1, norm), x)
    assert torch.equal(pgd(cnn, x, y, eps=0.1, alpha=0.0, steps=3), x)  # no start, no step: nothing moves


# ---- the model is left as it was; the device follows the input -----------------------------------------
def test_model_mode_and_parameters_are_left_alone():
    model, x, y = _random_problem(3)
    model = nn.Sequential(*model, nn.Dropout(0.5))  # dropout would make the attack random in train mode
    model.train()
    model[1].weight.requires_grad_(False)
    model[3].weight.grad = torch.ones_like(model[3].weight)
    before = [p.detach().clone() for p in model.parameters()]
    a = pgd(model, x, y, eps=0.1, alpha=0.05, steps=3)
    b = pgd(model, x, y, eps=0.1, alpha=0.05, steps=3)
    assert torch.equal(a, b)  # eval mode inside the attack: deterministic
    fgsm(model, x, y, eps=0.1)
    assert model.training
    assert not model[1].weight.requires_grad and model[3].weight.requires_grad
    assert torch.equal(model[3].weight.grad, torch.ones_like(model[3].weight)) and model[1].bias.grad is None
    assert all(torch.equal(p, q) for p, q in zip(before, model.parameters()))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_device_follows_the_inputs_on_cuda():
    model, x, y = _random_problem(4)
    model, x, y = model.cuda(), x.cuda(), y.cuda()
    for x_adv in (fgsm(model, x, y, eps=0.1),
                  pgd(model, x, y, eps=0.5, alpha=0.1, steps=2, norm="l2", random_start=True,
                      generator=torch.Generator().manual_seed(0))):
        assert x_adv.device == x.device


# ---- bad input -----------------------------------------------------------------------------------------
def _bad_calls():
    model, x, y = _random_problem(5)
    ok = dict(eps=0.1, alpha=0.05, steps=2)
    return [
        ("eps", ValueError, lambda: fgsm(model, x, y, eps=-0.1)),
        ("eps", ValueError, lambda: pgd(model, x, y, **{**ok, "eps": -1.0})),
        ("eps", TypeError, lambda: fgsm(model, x, y, eps="0.1")),
        ("alpha", ValueError, lambda: pgd(model, x, y, **{**ok, "alpha": -0.01})),
        ("steps", ValueError, lambda: pgd(model, x, y, **{**ok, "steps": 0})),
        ("steps", ValueError, lambda: pgd(model, x, y, **{**ok, "steps": 2.5})),
        ("norm", ValueError, lambda: pgd(model, x, y, **ok, norm="l1")),
        ("input range", ValueError, lambda: fgsm(model, x * 2, y, eps=0.1)),
        ("input range", ValueError, lambda: pgd(model, x - 0.5, y, **ok)),
        ("y must have shape", ValueError, lambda: fgsm(model, x, y[:-1], eps=0.1)),
        ("y must have shape", ValueError, lambda: pgd(model, x, y[:-1], **ok)),
        ("y must be an integer", TypeError, lambda: fgsm(model, x, y.float(), eps=0.1)),
        ("x must be a floating-point", TypeError, lambda: fgsm(model, (x * 255).long(), y, eps=0.1)),
        ("clip_min", ValueError, lambda: fgsm(model, x, y, eps=0.1, clip_min=1.0, clip_max=0.0)),
        ("eps", ValueError, lambda: project_l2(x, eps=-1.0)),
        ("eps", ValueError, lambda: project_linf(x, eps=-1.0)),
    ]


@pytest.mark.parametrize("index", range(len(_bad_calls())))
def test_bad_input_raises_naming_the_argument(index):
    name, error, bad = _bad_calls()[index]
    with pytest.raises(error, match=name):
        bad()


def test_random_start_is_uniform_in_the_ball():
    """The start is drawn uniformly from the ball: in 2-D the L2 radius has P(r <= t eps) = t^2 (a constant
    radius, or a uniform one, gives 0 or 0.5 at t = 1/2 instead of 0.25) and the direction is uniform over
    the circle; for Linf every coordinate is uniform on [-eps, eps] (mean |delta| = eps / 2, none beyond)."""
    model = nn.Linear(2, 2)
    x, y = torch.full((8000, 2), 0.5), torch.zeros(8000, dtype=torch.long)
    eps = 0.1
    start = lambda norm: pgd(model, x, y, eps=eps, alpha=0.0, steps=1, norm=norm, random_start=True,  # noqa: E731
                             generator=torch.Generator().manual_seed(13)) - x
    d = start("l2")
    r = d.norm(dim=1) / eps
    assert r.max() <= 1 + 1e-5
    assert abs((r <= 0.5).float().mean() - 0.25) < 0.02 and abs((r <= 0.9).float().mean() - 0.81) < 0.02
    quadrant = (d[:, 0] > 0).long() * 2 + (d[:, 1] > 0).long()
    assert (torch.bincount(quadrant, minlength=4).float() / len(d) - 0.25).abs().max() < 0.02
    d = start("linf") / eps
    assert d.abs().max() <= 1 + 1e-6 and abs(d.abs().mean() - 0.5) < 0.02
    assert abs((d.abs() <= 0.5).float().mean() - 0.5) < 0.02
