"""robust_accuracy: the per-example worst case over an ensemble of attacks, and its bad input."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from mlsec_kit.attacks.evasion import apgd, fgsm
from mlsec_kit.defenses.evaluation import ATTACKS, RobustReport, robust_accuracy
from mlsec_kit.train import predict


@pytest.fixture(scope="module")
def batch(digits):
    return digits.X_test[:120], digits.y_test[:120]


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def report(cnn, batch):
    x, y = batch
    return robust_accuracy(cnn, x, y, eps=0.1, attacks=ATTACKS, generator=gen(), pgd_steps=10, apgd_steps=20,
                           max_queries=200)


def test_worst_case_is_the_and_of_clean_and_every_attack(cnn, batch, report):
    x, y = batch
    assert isinstance(report, RobustReport)
    clean = predict(cnn, x).argmax(1) == y
    assert report.clean == pytest.approx(clean.float().mean().item())
    assert list(report.per_attack) == list(ATTACKS) == list(report.masks) == list(report.seconds)
    expected = clean.clone()
    for name, mask in report.masks.items():
        assert mask.dtype == torch.bool and mask.shape == (len(x),)
        assert not (mask & ~clean).any()                       # a clean mistake is never counted robust
        assert report.per_attack[name] == pytest.approx(mask.float().mean().item())
        expected &= mask
    assert torch.equal(report.robust_mask, expected)
    assert report.robust == pytest.approx(expected.float().mean().item())
    assert report.robust <= min(report.per_attack.values())
    # a weak attack alone overstates robustness: the ensemble is strictly worse than FGSM or HopSkipJump
    assert report.robust < report.per_attack["fgsm"] and report.robust < report.per_attack["hsj"]
    assert all(s > 0 for s in report.seconds.values())


def test_per_attack_accuracy_matches_the_attack_run_alone(cnn, batch, report):
    x, y = batch
    clean = predict(cnn, x).argmax(1) == y
    alone = clean & (predict(cnn, fgsm(cnn, x, y, eps=0.1)).argmax(1) == y)
    assert torch.equal(report.masks["fgsm"], alone)
    # APGD with the DLR loss, same budget and seed, on the clean-correct examples only
    idx = clean.nonzero().squeeze(1)
    x_adv = apgd(cnn, x[idx], y[idx], eps=0.1, steps=20, loss="dlr", generator=gen())
    expected = clean.clone()
    expected[idx] = predict(cnn, x_adv).argmax(1) == y[idx]
    report_dlr = robust_accuracy(cnn, x, y, eps=0.1, attacks=("apgd-dlr",), generator=gen(), apgd_steps=20)
    assert torch.equal(report_dlr.robust_mask, expected)


def test_eps_zero_leaves_the_clean_accuracy(cnn, batch):
    x, y = batch
    r = robust_accuracy(cnn, x[:40], y[:40], eps=0.0, attacks=("fgsm", "pgd", "apgd-ce", "square"),
                        generator=gen(), pgd_steps=3, apgd_steps=3, max_queries=20)
    assert all(v == r.clean for v in r.per_attack.values()) and r.robust == r.clean


def test_l2_ensemble_and_larger_eps_is_no_easier(cnn, batch):
    x, y = batch
    small = robust_accuracy(cnn, x, y, eps=0.5, norm="l2", attacks=("fgsm", "pgd", "apgd-ce"), generator=gen(),
                            pgd_steps=10, apgd_steps=10)
    large = robust_accuracy(cnn, x, y, eps=1.5, norm="l2", attacks=("fgsm", "pgd", "apgd-ce"), generator=gen(),
                            pgd_steps=10, apgd_steps=10)
    assert large.robust < small.robust < small.clean


@pytest.mark.parametrize("kwargs, name", [
    (dict(eps=-0.1), "eps"), (dict(eps=0.1, attacks=("pgd", "autoattack")), "attacks"),
    (dict(eps=0.1, attacks=()), "attacks"), (dict(eps=0.1, attacks="pgd"), "attacks"),
    (dict(eps=0.1, attacks=("pgd", "pgd")), "attacks"), (dict(eps=0.1, norm="l2", attacks=("square",)), "attacks"),
    (dict(eps=0.1, pgd_steps=0), "pgd_steps"), (dict(eps=0.1, apgd_steps=0), "apgd_steps"),
    (dict(eps=0.1, restarts=0), "restarts"), (dict(eps=0.1, max_queries=0), "max_queries"),
    (dict(eps=0.1, norm="l0"), "norm"),
])
def test_bad_input_names_the_argument(cnn, batch, kwargs, name):
    x, y = batch
    with pytest.raises(ValueError, match=name):
        robust_accuracy(cnn, x[:4], y[:4], **kwargs)


def test_unknown_attack_lists_the_accepted_names(cnn, batch):
    x, y = batch
    with pytest.raises(ValueError, match="apgd-dlr") as err:
        robust_accuracy(cnn, x[:4], y[:4], eps=0.1, attacks=("cw",))
    assert all(name in str(err.value) for name in ATTACKS)


def test_dlr_on_two_classes_names_attacks_and_loss(batch):
    x, y = batch
    two = nn.Sequential(nn.Flatten(), nn.Linear(64, 2)).eval()
    with pytest.raises(ValueError, match="attacks.*DLR loss"):
        robust_accuracy(two, x[:8], y[:8] % 2, eps=0.1, attacks=("apgd-dlr",), apgd_steps=2)


def test_decision_based_points_outside_eps_are_not_counted(cnn, batch, monkeypatch):
    """HopSkipJump's budget is checked by robust_accuracy itself: a misclassified point outside the ball
    does not count as a success (here a stand-in attack that returns far-away, misclassified points)."""
    import mlsec_kit.defenses.evaluation as evaluation

    x, y = batch
    x, y = x[:40], y[:40]
    labels = predict(cnn, x).argmax(1)

    def far(oracle, xs, ys, **kwargs):  # another digit the model puts in another class: far, and fooling
        return torch.stack([x[(labels != label).nonzero()[0, 0]] for label in ys.tolist()])

    monkeypatch.setattr(evaluation, "hop_skip_jump", far)
    r = robust_accuracy(cnn, x, y, eps=0.05, attacks=("hsj",))
    assert r.per_attack["hsj"] == r.clean          # every returned point is > eps away: none counted
    r = robust_accuracy(cnn, x, y, eps=100.0, attacks=("hsj",))
    assert r.per_attack["hsj"] == 0.0              # the same points inside a huge ball: all counted
