"""Carlini–Wagner L2 and DeepFool: minimum-norm attacks that flip the label with small L2 perturbations."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from mlsec_kit.attacks.evasion import cw_l2, deepfool, pgd
from mlsec_kit.train import predict


def _l2(d: torch.Tensor) -> torch.Tensor:
    return d.flatten(1).norm(dim=1)


@pytest.fixture(scope="module")
def correct(cnn, test_batch):
    """The first 100 test digits the CNN classifies correctly."""
    x, y = test_batch
    keep = (predict(cnn, x).argmax(1) == y).nonzero().flatten()[:100]
    return x[keep], y[keep]


@pytest.fixture(scope="module")
def cw_result(cnn, correct):
    x, y = correct
    return cw_l2(cnn, x, y, steps=50, lr=0.1, binary_search_steps=5)


def test_cw_finds_adversarial_examples_in_range(cnn, correct, cw_result):
    x, y = correct
    assert cw_result.shape == x.shape and cw_result.dtype == x.dtype and not cw_result.requires_grad
    assert cw_result.min() >= 0 and cw_result.max() <= 1
    fooled = predict(cnn, cw_result).argmax(1) != y
    assert fooled.float().mean() > 0.95
    # where it found nothing it returns x itself, never a half-way point
    assert torch.equal(cw_result[~fooled], x[~fooled])


def test_cw_finds_smaller_l2_perturbations_than_pgd_at_equal_success(cnn, correct, cw_result):
    x, y = correct
    x_pgd = pgd(cnn, x, y, eps=1.5, alpha=0.3, steps=20, norm="l2")
    both = (predict(cnn, cw_result).argmax(1) != y) & (predict(cnn, x_pgd).argmax(1) != y)
    assert both.float().mean() > 0.9
    cw_norm, pgd_norm = _l2(cw_result - x)[both], _l2(x_pgd - x)[both]
    assert cw_norm.median() < 0.7 * pgd_norm.median()
    assert (cw_norm <= pgd_norm + 1e-4).float().mean() > 0.9


def _planted_linear(n=16, d=64, seed=0):
    """A linear two-class model on which C&W's answer is known: every input is class 0 with margin
    ``m_i = Z_0 - Z_1 > 0``, and the smallest L2 change that flips it is ``m_i / ||w||`` (inside the range).
    The weights span two orders of magnitude, so Adam's per-coordinate steps with a large ``c`` overshoot."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(d, generator=g) * torch.logspace(-1, 1, d)[torch.randperm(d, generator=g)]
    x = 0.3 + 0.4 * torch.rand(n, d, generator=g)
    model = nn.Linear(d, 2)
    with torch.no_grad():
        model.weight.zero_(), model.bias.zero_()
        model.weight[1] = w
        model.bias[1] = -(x @ w).max() - 1.0
        optimum = -(x @ w + model.bias[1]) / w.norm()
    return model, x, torch.zeros(n, dtype=torch.long), optimum


def test_cw_search_raises_c_until_an_attack_succeeds():
    """With c far too small one run fails almost everywhere; the search multiplies c by 10 until a success
    brackets it, then closes in: all succeed, at the optimal distance (measured 1.003x). Without the search
    (c held fixed) the second assertion fails."""
    model, x, y, optimum = _planted_linear()
    fixed = cw_l2(model, x, y, c=1e-3, binary_search_steps=1, steps=100, lr=0.05)
    searched = cw_l2(model, x, y, c=1e-3, binary_search_steps=6, steps=100, lr=0.05)
    assert (_l2(fixed - x) > 0).float().mean() < 0.2
    dist = _l2(searched - x)
    assert (dist > 0).all() and (predict(model, searched).argmax(1) != y).all()
    assert ((dist / optimum).median() - 1).abs() < 0.05


def test_cw_search_lowers_c_for_smaller_perturbations():
    """With c far too large every run succeeds, but with a perturbation twice the optimum (measured 2.18x):
    the misclassification term drowns the distance term. Halving c towards the bracket's lower end brings it
    to the optimum (1.01x); a search that never lowers c (or no search) stays at 2x."""
    model, x, y, optimum = _planted_linear()
    fixed = _l2(cw_l2(model, x, y, c=100.0, binary_search_steps=1, steps=100, lr=0.05) - x)
    searched = _l2(cw_l2(model, x, y, c=100.0, binary_search_steps=10, steps=100, lr=0.05) - x)
    assert (fixed > 0).all() and (searched > 0).all()
    assert (fixed / optimum).median() > 1.5
    assert ((searched / optimum).median() - 1).abs() < 0.05
    assert (searched <= fixed + 1e-6).all()


def test_cw_c_search_brackets_c():
    """The bookkeeping of the search, example by example: a success lowers the upper bound to c, a failure
    raises the lower bound to c; the next c is the bracket's midpoint, or 10c while nothing bounds it above."""
    from mlsec_kit.attacks.evasion.optimization import _next_c
    inf = float("inf")
    const = torch.tensor([1.0, 1.0, 4.0, 4.0])
    lower = torch.tensor([0.0, 0.0, 2.0, 2.0])
    upper = torch.tensor([inf, inf, 8.0, 8.0])
    ok = torch.tensor([True, False, True, False])
    c, lo, up = _next_c(const, lower, upper, ok)
    assert torch.equal(up, torch.tensor([1.0, inf, 4.0, 8.0]))
    assert torch.equal(lo, torch.tensor([0.0, 1.0, 2.0, 4.0]))
    assert torch.equal(c, torch.tensor([0.5, 10.0, 3.0, 6.0]))
    assert ((lo <= c) & (c <= up)).all()


def test_cw_targeted_reaches_the_target(cnn, correct):
    x, y = correct[0][:50], correct[1][:50]
    target = (y + 3) % 10
    x_adv = cw_l2(cnn, x, target, c=10.0, steps=100, binary_search_steps=4, targeted=True)
    assert (predict(cnn, x_adv).argmax(1) == target).float().mean() > 0.9


def test_cw_confidence_margin_buys_larger_perturbations(cnn, correct):
    x, y = correct[0][:40], correct[1][:40]
    low = cw_l2(cnn, x, y, steps=50, binary_search_steps=4)
    high = cw_l2(cnn, x, y, kappa=5.0, steps=50, binary_search_steps=4)
    logits = predict(cnn, high)
    margin = logits.gather(1, y[:, None]).squeeze(1) - logits.scatter(1, y[:, None], -1e9).amax(1)
    found = _l2(high - x) > 0
    assert found.float().mean() > 0.8 and (margin[found] <= -5 + 1e-3).all()
    assert _l2(high - x)[found].median() > _l2(low - x)[found].median()


def test_deepfool_flips_the_label_with_a_small_step(cnn, correct, cw_result):
    x, y = correct
    x_adv = deepfool(cnn, x, y)
    assert x_adv.shape == x.shape and x_adv.min() >= 0 and x_adv.max() <= 1
    assert (predict(cnn, x_adv).argmax(1) != y).float().mean() > 0.95
    # a minimum-norm attack: the same order of size as C&W's, far below PGD-L2's budget of 1.5
    df_norm, cw_norm = _l2(x_adv - x).median(), _l2(cw_result - x).median()
    assert 0.5 * cw_norm < df_norm < 2 * cw_norm and df_norm < 1.0


def test_deepfool_leaves_misclassified_inputs_alone(cnn, test_batch):
    x, y = test_batch
    wrong = (y + 1) % 10  # pretend the label is another class: the model already "misclassifies" most
    pred = predict(cnn, x).argmax(1)
    x_adv = deepfool(cnn, x, wrong)
    assert torch.equal(x_adv[pred != wrong], x[pred != wrong])


def test_deepfool_is_exact_on_a_linear_binary_classifier():
    # for an affine classifier the nearest boundary point is known in closed form: |f(x)| / ||w|| away
    g = torch.Generator().manual_seed(0)
    model = nn.Linear(10, 2)
    with torch.no_grad():
        model.weight.copy_(torch.randn(2, 10, generator=g))
        model.bias.copy_(torch.randn(2, generator=g))
    x = torch.randn(16, 10, generator=g)
    y = model(x).argmax(1).detach()
    w = model.weight[1] - model.weight[0]
    f = (model(x)[:, 1] - model(x)[:, 0]).abs().detach()
    overshoot = 0.02
    x_adv = deepfool(model, x, y, overshoot=overshoot, clip_min=-100.0, clip_max=100.0)
    expected = (1 + overshoot) * (f / w.norm() + 1e-4)
    assert torch.allclose(_l2(x_adv - x), expected, rtol=1e-4)
    assert (model(x_adv).argmax(1) != y).all()


def test_deepfool_steps_to_the_nearest_of_several_linear_boundaries():
    """Five classes, affine: the boundary between y and class k is the hyperplane Z_k = Z_y, at distance
    |Z_k - Z_y| / ||w_k - w_y||. DeepFool must step to the NEAREST of them (one step suffices when the model
    is affine); stepping towards the runner-up class (largest logit) or any fixed class is farther."""
    g = torch.Generator().manual_seed(1)
    model = nn.Linear(10, 5)
    with torch.no_grad():
        model.weight.copy_(torch.randn(5, 10, generator=g))
        model.bias.copy_(torch.randn(5, generator=g))
    x = torch.randn(64, 10, generator=g)
    with torch.no_grad():
        logits = model(x)
    y = logits.argmax(1)
    w = model.weight.detach()
    gaps = (logits - logits.gather(1, y[:, None])).abs()                  # |Z_k - Z_y|
    norms = (w[None] - w[y][:, None]).norm(dim=2)                         # ||w_k - w_y||
    dist = (gaps / norms.clamp_min(1e-12)).scatter(1, y[:, None], float("inf"))
    runner_up = logits.scatter(1, y[:, None], float("-inf")).argmax(1)
    assert (dist.argmin(1) != runner_up).any()                            # the planted case tells them apart
    overshoot = 0.02
    x_adv = deepfool(model, x, y, overshoot=overshoot, clip_min=-100.0, clip_max=100.0)
    expected = (1 + overshoot) * (dist.min(1).values + 1e-4)
    assert torch.allclose(_l2(x_adv - x), expected, rtol=1e-4)
    assert (model(x_adv).argmax(1) != y).all()


def test_model_is_left_as_it_was(correct):
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10), nn.Dropout(0.3)).train()
    x, y = correct[0][:10], correct[1][:10]
    before = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():  # works inside no_grad too
        cw_l2(model, x, y, steps=5, binary_search_steps=2)
        deepfool(model, x, y, steps=5)
    assert model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(p, q) for p, q in zip(before, model.parameters()))


def _bad_calls():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(4, 1, 8, 8, generator=g), torch.tensor([0, 1, 2, 3])
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 4))
    return [
        ("c", ValueError, lambda: cw_l2(model, x, y, c=0.0)),
        ("kappa", ValueError, lambda: cw_l2(model, x, y, kappa=-1.0)),
        ("steps", ValueError, lambda: cw_l2(model, x, y, steps=0)),
        ("lr", ValueError, lambda: cw_l2(model, x, y, lr=-0.1)),
        ("binary_search_steps", ValueError, lambda: cw_l2(model, x, y, binary_search_steps=0)),
        ("input range", ValueError, lambda: cw_l2(model, x + 1, y)),
        ("y must have shape", ValueError, lambda: cw_l2(model, x, y[:2])),
        ("steps", ValueError, lambda: deepfool(model, x, y, steps=0)),
        ("overshoot", ValueError, lambda: deepfool(model, x, y, overshoot=-0.1)),
        ("input range", ValueError, lambda: deepfool(model, -x, y)),
        ("y must have shape", ValueError, lambda: deepfool(model, x, y[:3])),
        ("x must be a floating-point", TypeError, lambda: deepfool(model, x.long(), y)),
    ]


@pytest.mark.parametrize("index", range(len(_bad_calls())))
def test_bad_input_raises_naming_the_argument(index):
    name, error, bad = _bad_calls()[index]
    with pytest.raises(error, match=name):
        bad()
