"""ROC helpers of the membership attacks: against scikit-learn and brute force, and on bad input."""
from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from scipy import stats
from sklearn import metrics as skm

from mlsec_kit.attacks.inference import best_balanced_accuracy as exported_best
from mlsec_kit.attacks.inference.metrics import (auc, auc_chance_interval, balanced_accuracy, best_balanced_accuracy,
                                                 clopper_pearson, plot_roc, roc, tpr_at_fpr)

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
    assert best_balanced_accuracy(s, lab) == pytest.approx(best)


def test_balanced_accuracy_needs_a_threshold_and_the_oracle_is_optimistic():
    s, lab = draw(0)
    with pytest.raises(TypeError, match="threshold"):
        balanced_accuracy(s, lab)
    with pytest.raises(TypeError, match="best_balanced_accuracy"):
        balanced_accuracy(s, lab, threshold=None)
    assert exported_best is best_balanced_accuracy
    # a threshold fitted on half of the data and applied to the other half scores below the oracle cut that
    # the evaluation half itself would pick, on every seed: the oracle is an upper bound, not an attack's result
    gaps = []
    for seed in SEEDS:
        s, lab = draw(seed, n=400)
        fit, ev = slice(0, 200), slice(200, 400)
        f, t, thr = (x.numpy() for x in roc(s[fit], lab[fit]))
        cut = float(thr[np.argmax(t - f)])
        honest, oracle = balanced_accuracy(s[ev], lab[ev], threshold=cut), best_balanced_accuracy(s[ev], lab[ev])
        assert honest <= oracle + 1e-12
        gaps.append(oracle - honest)
    assert np.mean(gaps) > 0.01


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
    sn, ln = s.numpy(), lab.numpy()
    achievable = target * (~ln).sum() >= 1        # about 180 non-members: 0 and 0.1% allow no false positive
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = tpr_at_fpr(s, lab, fpr=target)
    assert r.achievable == achievable
    assert len(caught) == (0 if achievable else 1)
    assert r.tpr == pytest.approx(brute_tpr_at_fpr(sn, ln, target))
    # the threshold is what it claims: the rates are those of "score >= threshold"
    assert r.fpr == pytest.approx((sn[~ln] >= r.threshold).mean()) and r.fpr <= target
    assert r.tpr == pytest.approx((sn[ln] >= r.threshold).mean())
    assert r.ci_low <= r.tpr <= r.ci_high
    assert (r.num_members, r.num_non_members) == (int(ln.sum()), int((~ln).sum()))


def test_tpr_at_fpr_warns_when_the_budget_is_below_one_non_member():
    rng = np.random.default_rng(0)
    s = torch.from_numpy(np.r_[rng.normal(size=100) + 2, rng.normal(size=100)])
    lab = torch.cat([torch.ones(100), torch.zeros(100)]).bool()
    with pytest.warns(UserWarning, match=r"100 non-members.*at least 1000 non-members"):
        r = tpr_at_fpr(s, lab, fpr=1e-3)
    assert not r.achievable and r.fpr == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")            # 1% of 100 is exactly one false positive: no warning
        r = tpr_at_fpr(s, lab, fpr=0.01)
    assert r.achievable and r.fpr == pytest.approx(0.01)


def test_bootstrap_interval_covers_the_true_tpr_where_clopper_pearson_does_not():
    """At 1% FPR the threshold rests on the ten highest of 1,000 non-members, and its sampling error dominates.
    Members ~ N(2, 1), non-members ~ N(0, 1): the true TPR at 1% FPR is 1 - Phi(Phi^-1(0.99) - 2). The
    Clopper-Pearson interval (threshold held fixed) covers it far less often than its nominal 95%; the
    bootstrap that resamples both groups and re-picks the threshold comes close to 95%."""
    n, fpr, shift, reps = 1000, 0.01, 2.0, 100
    truth = 1 - stats.norm.cdf(stats.norm.ppf(1 - fpr) - shift)
    rng = np.random.default_rng(0)
    lab = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    covered = {"clopper-pearson": 0, "bootstrap": 0}
    for r in range(reps):
        s = np.r_[rng.normal(size=n) + shift, rng.normal(size=n)]
        for ci in covered:
            res = tpr_at_fpr(s, lab, fpr=fpr, ci=ci, num_bootstrap=200, generator=torch.Generator().manual_seed(r))
            covered[ci] += res.ci_low <= truth <= res.ci_high
    print(covered)
    assert covered["bootstrap"] >= 0.88 * reps
    assert covered["clopper-pearson"] <= 0.75 * reps


def test_bootstrap_is_seeded_and_degenerates_correctly():
    s, lab = draw(3)
    a = tpr_at_fpr(s, lab, fpr=0.05, ci="bootstrap", num_bootstrap=300, generator=torch.Generator().manual_seed(1))
    b = tpr_at_fpr(s, lab, fpr=0.05, ci="bootstrap", num_bootstrap=300, generator=torch.Generator().manual_seed(1))
    c = tpr_at_fpr(s, lab, fpr=0.05, ci="bootstrap", num_bootstrap=300, generator=torch.Generator().manual_seed(2))
    assert (a.ci_low, a.ci_high) == (b.ci_low, b.ci_high) != (c.ci_low, c.ci_high)
    d, e = (tpr_at_fpr(s, lab, fpr=0.05, ci="bootstrap", num_bootstrap=300) for _ in range(2))
    assert (d.ci_low, d.ci_high) == (e.ci_low, e.ci_high)   # generator=None is seeded too
    # the point estimate and every field but the interval are those of the default
    cp = tpr_at_fpr(s, lab, fpr=0.05)
    assert (a.tpr, a.fpr, a.threshold, a.achievable) == (cp.tpr, cp.fpr, cp.threshold, cp.achievable)
    assert a.ci_low < a.tpr < a.ci_high
    # perfectly separated groups: every resample finds every member above its own threshold
    sep = torch.cat([torch.arange(10.0, 20.0), torch.arange(10.0)])
    lab2 = torch.cat([torch.ones(10), torch.zeros(10)]).bool()
    r = tpr_at_fpr(sep, lab2, fpr=0.1, ci="bootstrap", num_bootstrap=50)
    assert (r.ci_low, r.ci_high) == (1.0, 1.0)
    # fpr = 1: every non-member may pass, so every member does
    r = tpr_at_fpr(s, lab, fpr=1.0, ci="bootstrap", num_bootstrap=20)
    assert (r.tpr, r.ci_low, r.ci_high) == (1.0, 1.0, 1.0)


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
    roc(s, lab), tpr_at_fpr(s, lab, fpr=0.01, ci="bootstrap", num_bootstrap=20)
    balanced_accuracy(s, lab, threshold=0.0), best_balanced_accuracy(s, lab)
    assert torch.equal(s, s0) and torch.equal(lab, lab0)
    assert auc(s.numpy(), lab.numpy().astype(int)) == auc(s, lab)


def test_float_labels_that_are_exactly_0_or_1_are_accepted():
    s, lab = draw(4)
    for as_float in (lab.double(), lab.float(), lab.numpy().astype(np.float32)):
        assert auc(s, as_float) == auc(s, lab)
        assert tpr_at_fpr(s, as_float, fpr=0.1) == tpr_at_fpr(s, lab, fpr=0.1)
    with pytest.raises(ValueError, match="float64 value 0.5"):
        roc(s, torch.where(lab, 1.0, 0.5).double())
    with pytest.raises(ValueError, match="complex"):
        roc(s, lab.numpy().astype(np.complex64))


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
    (lambda: balanced_accuracy(torch.zeros(2), torch.tensor([0, 1]), threshold=float("nan")), "threshold"),
    (lambda: tpr_at_fpr(torch.zeros(2), torch.tensor([0, 1]), fpr=0.5, ci="wald"), "ci must be"),
    (lambda: tpr_at_fpr(torch.zeros(2), torch.tensor([0, 1]), fpr=0.5, ci="bootstrap", num_bootstrap=0),
     "num_bootstrap"),
    (lambda: auc_chance_interval(0, 5), "num_members"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_non_tensor_input_is_a_type_error():
    with pytest.raises(TypeError, match="scores"):
        roc([0.1, 0.2], torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="generator"):
        tpr_at_fpr(torch.zeros(2), torch.tensor([0, 1]), fpr=0.5, ci="bootstrap", generator=np.random.default_rng(0))
