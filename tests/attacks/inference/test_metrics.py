"""ROC helpers of the membership attacks: against scikit-learn and brute force, and on bad input."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from scipy import stats
from sklearn import metrics as skm

from mlsec_kit.attacks.inference.metrics import (auc, auc_chance_interval, balanced_accuracy, clopper_pearson,
                                                 plot_roc, roc, tpr_at_fpr)

SEEDS = range(20)


def draw(seed: int, n: int = 300, ties: bool = True):
    """Scores that overlap between the groups (members shifted up), with ties when ``ties``."""
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.4
    scores = rng.normal(size=n) + labels * 0.8
    if ties:
        scores = np.round(scores * 3) / 3
    return torch.from_numpy(scores), torch.from_numpy(labels)


@pytest.mark.parametrize("seed", SEEDS)
def test_roc_and_auc_agree_with_sklearn(seed):
    s, lab = draw(seed, ties=seed % 2 == 0)
    fpr, tpr, thr = roc(s, lab)
    f2, t2, th2 = skm.roc_curve(lab.numpy(), s.numpy(), drop_intermediate=False)
    np.testing.assert_allclose(fpr.numpy(), f2)
    np.testing.assert_allclose(tpr.numpy(), t2)
    np.testing.assert_allclose(thr.numpy()[1:], th2[1:])
    assert thr[0] == np.inf
    assert auc(s, lab) == pytest.approx(skm.roc_auc_score(lab.numpy(), s.numpy()), abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_balanced_accuracy_matches_sklearn_and_brute_force(seed):
    s, lab = draw(seed)
    t = float(s.median())
    assert balanced_accuracy(s, lab, threshold=t) == pytest.approx(
        skm.balanced_accuracy_score(lab.numpy(), (s >= t).numpy()))
    best = max(skm.balanced_accuracy_score(lab.numpy(), (s >= c).numpy()) for c in np.unique(s.numpy()))
    assert balanced_accuracy(s, lab) == pytest.approx(best)


def brute_tpr_at_fpr(s: np.ndarray, lab: np.ndarray, fpr: float) -> float:
    best = 0.0
    for c in np.r_[np.unique(s), np.inf]:
        if (s[~lab] >= c).mean() <= fpr:
            best = max(best, (s[lab] >= c).mean())
    return best


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("target", [0.0, 0.001, 0.01, 0.1, 0.5])
def test_tpr_at_fpr_is_the_best_tpr_within_the_fpr_budget(seed, target):
    s, lab = draw(seed, ties=seed % 2 == 0)
    r = tpr_at_fpr(s, lab, fpr=target)
    sn, ln = s.numpy(), lab.numpy()
    assert r.tpr == pytest.approx(brute_tpr_at_fpr(sn, ln, target))
    # the threshold is what it claims: the rates are those of "score >= threshold"
    assert r.fpr == pytest.approx((sn[~ln] >= r.threshold).mean()) and r.fpr <= target
    assert r.tpr == pytest.approx((sn[ln] >= r.threshold).mean())
    assert r.ci_low <= r.tpr <= r.ci_high
    assert (r.num_members, r.num_non_members) == (int(ln.sum()), int((~ln).sum()))


def test_tpr_at_fpr_never_overshoots_the_budget():
    # 10 non-members, budget 15%: one false positive is allowed, two are not. The first ROC point with
    # FPR >= 15% (the wrong side) lets two through and reaches a higher TPR (a member ties a non-member at 8).
    non = torch.arange(10, dtype=torch.float64)
    mem = torch.tensor([8.5, 8.0, 7.5, 1.0], dtype=torch.float64)
    s, lab = torch.cat([mem, non]), torch.cat([torch.ones(4), torch.zeros(10)]).bool()
    r = tpr_at_fpr(s, lab, fpr=0.15)
    assert r.fpr == pytest.approx(0.1) and r.tpr == pytest.approx(0.25) and r.threshold == 8.5
    fpr, tpr, _ = roc(s, lab)
    wrong_side = tpr[int(np.nonzero(fpr.numpy() >= 0.15)[0][0])].item()
    assert wrong_side > r.tpr


def test_clopper_pearson_matches_scipy():
    for k, n in [(0, 50), (3, 50), (25, 50), (50, 50), (7, 1000)]:
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
        assert clopper_pearson(k, n) == pytest.approx((ci.low, ci.high))


def test_auc_chance_interval_covers_uninformed_attacks():
    rng = np.random.default_rng(0)
    lo, hi = auc_chance_interval(150, 150, confidence=0.99)
    lab = torch.cat([torch.ones(150), torch.zeros(150)]).bool()
    inside = [lo <= auc(torch.from_numpy(rng.normal(size=300)), lab) <= hi for _ in range(400)]
    assert 0.97 <= np.mean(inside) <= 1.0
    # and an attack with a real signal falls outside it
    assert auc(lab.double() * 0.5 + torch.from_numpy(rng.normal(size=300)), lab) > hi


def test_inputs_are_left_unchanged_and_numpy_works():
    s, lab = draw(0)
    s0, lab0 = s.clone(), lab.clone()
    roc(s, lab), tpr_at_fpr(s, lab, fpr=0.01), balanced_accuracy(s, lab)
    assert torch.equal(s, s0) and torch.equal(lab, lab0)
    assert auc(s.numpy(), lab.numpy().astype(int)) == auc(s, lab)


def test_plot_roc_uses_loglog_axes_and_labels_the_auc():
    s, lab = draw(1)
    fig, ax = plt.subplots()
    line = plot_roc(ax, s, lab, label="loss")
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert f"{auc(s, lab):.3f}" in line.get_label()
    np.testing.assert_allclose(line.get_xdata(), roc(s, lab)[0].numpy())
    plt.close(fig)


@pytest.mark.parametrize("call, match", [
    (lambda: roc(torch.zeros(3), torch.tensor([1, 0])), "same length"),
    (lambda: roc(torch.zeros(3), torch.tensor([1, 1, 1])), "both members"),
    (lambda: roc(torch.zeros(3), torch.tensor([0, 1, 2])), "0/1"),
    (lambda: roc(torch.tensor([0.0, float("nan")]), torch.tensor([0, 1])), "finite"),
    (lambda: roc(torch.zeros(2, 2), torch.zeros(2, 2)), "1-D"),
    (lambda: tpr_at_fpr(torch.zeros(2), torch.tensor([0, 1]), fpr=1.5), r"fpr must be a number in \[0, 1\]"),
    (lambda: tpr_at_fpr(torch.zeros(2), torch.tensor([0, 1]), fpr=0.1, confidence=1.0), "confidence"),
    (lambda: balanced_accuracy(torch.zeros(2), torch.tensor([0, 1]), threshold="a"), "threshold"),
    (lambda: auc_chance_interval(0, 5), "num_members"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_non_tensor_input_is_a_type_error():
    with pytest.raises(TypeError, match="scores"):
        roc([0.1, 0.2], torch.tensor([0, 1]))
