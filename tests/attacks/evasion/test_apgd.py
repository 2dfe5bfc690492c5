"""APGD and the DLR loss: the feasible set, the paper's step-size schedule, strength against PGD, agreement
with ART's AutoProjectedGradientDescent, bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mlsec_kit.attacks.evasion import apgd, dlr_loss, pgd
from mlsec_kit.attacks.evasion.apgd import _checkpoints, _halve
from mlsec_kit.train import accuracy, predict


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("norm, eps", [("linf", 0.1), ("l2", 0.8)])
@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_x_adv_in_ball_and_range(cnn, test_batch, norm, eps, loss):
    x, y = test_batch
    x_adv = apgd(cnn, x, y, eps=eps, steps=10, norm=norm, loss=loss, restarts=2, generator=gen())
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and not x_adv.requires_grad
    diff = (x_adv - x).flatten(1)
    dist = diff.abs().amax(1) if norm == "linf" else diff.norm(dim=1)
    assert dist.max() <= eps * (1 + 1e-5)
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert accuracy(cnn, x_adv, y) < accuracy(cnn, x, y) - 0.2  # it does attack


def test_eps_zero_returns_x(cnn, test_batch):
    x, y = test_batch
    assert torch.equal(apgd(cnn, x[:20], y[:20], eps=0.0, steps=5, generator=gen()), x[:20])


def test_deterministic_with_a_seeded_generator(cnn, test_batch):
    x, y = test_batch
    a = apgd(cnn, x[:50], y[:50], eps=0.1, steps=10, generator=gen(3))
    b = apgd(cnn, x[:50], y[:50], eps=0.1, steps=10, generator=gen(3))
    assert torch.equal(a, b)


def test_at_least_as_strong_as_pgd_with_the_same_budget(cnn, test_batch):
    """Same model, same 20 gradient steps: APGD (no step size to tune) leaves no more examples correct than
    the kit's PGD with the usual step 2.5 eps / steps, at every eps, and fewer in total."""
    x, y = test_batch
    steps, ours, theirs = 20, [], []
    for eps in (0.05, 0.08, 0.1, 0.12, 0.15):
        ours.append(accuracy(cnn, apgd(cnn, x, y, eps=eps, steps=steps, generator=gen()), y))
        theirs.append(accuracy(cnn, pgd(cnn, x, y, eps=eps, alpha=2.5 * eps / steps, steps=steps), y))
        assert ours[-1] <= theirs[-1], (eps, ours[-1], theirs[-1])
    assert sum(ours) < sum(theirs)


def test_history_is_the_non_decreasing_best_loss_and_x_adv_keeps_the_best(cnn, test_batch):
    x, y = test_batch
    x, y = x[:100], y[:100]
    x_adv, history = apgd(cnn, x, y, eps=0.05, steps=15, restarts=3, generator=gen(1), return_history=True)
    assert history.shape == (3, 15, 100)
    assert (history.diff(dim=1) >= 0).all()
    assert history.mean(-1)[:, -1].gt(history.mean(-1)[:, 0]).all()  # the loss does go up
    # examples never fooled come back at their best point over all restarts: its loss is the best one
    fooled = predict(cnn, x_adv).argmax(1) != y
    loss = F.cross_entropy(predict(cnn, x_adv), y, reduction="none")
    best = history[:, -1].amax(0)
    assert (~fooled).sum() > 20
    assert torch.allclose(loss[~fooled], best[~fooled], atol=1e-4)


def test_more_restarts_never_help_the_model(cnn, test_batch):
    """Restart 0 draws the same start with the same seed, and each example keeps its best over restarts."""
    x, y = test_batch
    one = predict(cnn, apgd(cnn, x, y, eps=0.08, steps=10, restarts=1, generator=gen(2))).argmax(1) == y
    three = predict(cnn, apgd(cnn, x, y, eps=0.08, steps=10, restarts=3, generator=gen(2))).argmax(1) == y
    assert not (three & ~one).any()


def test_checkpoint_schedule_is_the_papers():
    # p = 0, .22, .41, .57, .70, .80, .87, .93, .99: each interval 3% shorter than the last, never below 6%
    assert _checkpoints(100) == [0, 22, 41, 57, 70, 80, 87, 93, 99]
    assert _checkpoints(200) == [0, 44, 82, 114, 140, 160, 174, 186, 198]
    assert _checkpoints(10) == [0, 3, 5, 6, 7, 8, 9, 10]  # ceil(p * steps), duplicates dropped


def test_halving_rule_has_both_conditions():
    n = 4
    f_last = torch.tensor([1.0, 1.0, 1.0, 1.0])
    f_now = torch.tensor([2.0, 1.0, 1.0, 2.0])
    reduced = torch.tensor([False, False, True, False])
    increases = torch.tensor([8.0, 8.0, 8.0, 5.0])  # of 10 iterations: rho 0.75 needs >= 7.5
    halve = _halve(increases, 10, 0.75, reduced, f_now, f_last)
    # 0: progress and a new best: keep; 1: best unchanged, not halved last time: condition 2;
    # 2: best unchanged but halved last time: keep; 3: too few increases: condition 1
    assert halve.tolist() == [False, True, False, True]
    # 7 increases of 10 < 0.75 * 10: condition 1 alone halves every example, whatever the best loss did
    assert _halve(torch.full((n,), 7.0), 10, 0.75, torch.ones(n, dtype=torch.bool), f_now + 1, f_last).all()
    assert not _halve(torch.full((n,), 8.0), 10, 0.75, torch.ones(n, dtype=torch.bool), f_now + 1, f_last).any()


class InteriorPeak(nn.Module):
    """Logits (-s ||x - c||^2, 0, 0): the cross-entropy of class 1 is largest at the centre c, inside the ball.

    A fixed step of 2 eps circles around c forever; only a shrinking step gets close to it.
    """

    def __init__(self, c: torch.Tensor):
        super().__init__()
        self.c = c

    def forward(self, x):
        d = ((x - self.c) ** 2).flatten(1).sum(1, keepdim=True)
        return torch.cat([-20 * d, torch.zeros_like(d), torch.zeros_like(d)], dim=1)


def test_step_halving_converges_to_an_interior_maximum():
    """Fails when the halving is removed: with the step stuck at 2 eps the iterates cannot settle on c."""
    g = gen(5)
    x = 0.3 + 0.4 * torch.rand(30, 1, 4, 4, generator=g)
    c = (x + (torch.rand(x.shape, generator=g) - 0.5) * 0.1).clamp(0, 1)  # within 0.05 of x: inside eps 0.1
    y = torch.ones(30, dtype=torch.long)
    x_adv = apgd(InteriorPeak(c), x, y, eps=0.1, steps=100, generator=gen(0))
    assert (x_adv - c).abs().amax() < 0.1 / 50


def test_dlr_is_invariant_to_shift_and_positive_scale():
    g = gen(0)
    logits = torch.randn(64, 10, generator=g) * 3
    y = torch.randint(0, 10, (64,), generator=g)
    base = dlr_loss(logits, y)
    shift = torch.randn(64, 1, generator=g) * 10
    scale = torch.rand(64, 1, generator=g) * 50 + 0.01
    assert torch.allclose(dlr_loss(logits * scale + shift, y), base, atol=1e-4)
    assert torch.equal(base > 0, logits.argmax(1) != y)  # positive exactly when misclassified
    ce = F.cross_entropy(logits * 100, y, reduction="none")
    assert not torch.allclose(ce, F.cross_entropy(logits, y, reduction="none"))  # CE is not invariant


def test_dlr_needs_three_classes(weak_logreg, test_batch):
    with pytest.raises(ValueError, match="K >= 3"):
        dlr_loss(torch.randn(5, 2), torch.zeros(5, dtype=torch.long))
    two = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    x, y = test_batch
    with pytest.raises(ValueError, match="loss"):
        apgd(two, x[:5], (y[:5] % 2), eps=0.1, steps=2, loss="dlr")


@pytest.mark.parametrize("kwargs, name", [
    (dict(eps=-0.1), "eps"), (dict(eps=0.1, loss="hinge"), "loss"), (dict(eps=0.1, steps=0), "steps"),
    (dict(eps=0.1, rho=0.0), "rho"), (dict(eps=0.1, rho=1.0), "rho"), (dict(eps=0.1, rho=1.5), "rho"),
    (dict(eps=0.1, norm="l1"), "norm"), (dict(eps=0.1, restarts=0), "restarts"),
])
def test_bad_input_names_the_argument(cnn, test_batch, kwargs, name):
    x, y = test_batch
    with pytest.raises(ValueError, match=name):
        apgd(cnn, x[:4], y[:4], **kwargs)


art = pytest.importorskip("art")
from art.attacks.evasion import AutoProjectedGradientDescent  # noqa: E402
from art.estimators.classification import PyTorchClassifier  # noqa: E402


@pytest.mark.parametrize("loss, art_loss", [("ce", "cross_entropy"), ("dlr", "difference_logits_ratio")])
@pytest.mark.parametrize("norm, art_norm, eps", [("linf", np.inf, 0.1), ("linf", np.inf, 0.15), ("l2", 2, 0.5)])
def test_agrees_with_art_apgd_example_by_example(cnn, digits, test_batch, loss, art_loss, norm, art_norm, eps):
    """Same model, inputs, budget (20 iterations, initial step 2 eps, one random start). The random starts
    differ, so not the same points: the same examples broken (>= 90% agreement), robust accuracy within 3
    points and no weaker than ART's, and a loss at least ART's (ours returns its best point, ART its last)."""
    x, y = test_batch
    classifier = PyTorchClassifier(cnn, loss=torch.nn.CrossEntropyLoss(), input_shape=digits.input_shape,
                                   nb_classes=digits.num_classes, clip_values=(0.0, 1.0), device_type="cpu")
    np.random.seed(0)
    attack = AutoProjectedGradientDescent(classifier, norm=art_norm, eps=eps, eps_step=2 * eps, max_iter=20,
                                          nb_random_init=1, batch_size=len(x), loss_type=art_loss, verbose=False)
    theirs = torch.from_numpy(attack.generate(x.numpy(), y=y.numpy()))
    ours = apgd(cnn, x, y, eps=eps, steps=20, norm=norm, loss=loss, generator=gen())
    ok_ours, ok_theirs = predict(cnn, ours).argmax(1) == y, predict(cnn, theirs).argmax(1) == y
    assert (ok_ours == ok_theirs).float().mean() >= 0.9
    assert ok_ours.float().mean() <= ok_theirs.float().mean() + 0.01
    assert abs(ok_ours.float().mean() - ok_theirs.float().mean()) <= 0.03
    f = (lambda v: F.cross_entropy(predict(cnn, v), y, reduction="none")) if loss == "ce" else \
        (lambda v: dlr_loss(predict(cnn, v), y))
    assert f(ours).mean() >= f(theirs).mean() - 0.05
