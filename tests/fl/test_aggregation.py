"""The pure aggregation rules: weighted mean, coordinate median, trimmed mean, Krum and multi-Krum."""
import pytest
import torch

from mlsec_kit.fl import METHODS, aggregate, flatten_update, krum_scores, krum_select, unflatten_update
from mlsec_kit.models import mlp


def _updates(n=7, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(d, generator=g) for _ in range(n)]


def test_mean_uses_the_weights():
    u = [torch.tensor([0.0, 2.0]), torch.tensor([4.0, 6.0])]
    assert torch.allclose(aggregate(u, [3, 1], method="mean"), torch.tensor([1.0, 3.0]))
    assert torch.allclose(aggregate(u, None, method="mean"), torch.tensor([2.0, 4.0]))


def test_median_is_the_middle_value_per_coordinate():
    u = [torch.tensor([1.0, 10.0]), torch.tensor([2.0, -5.0]), torch.tensor([100.0, 0.0])]
    assert torch.equal(aggregate(u, [1, 1, 1], method="median"), torch.tensor([2.0, 0.0]))
    # an even count averages the two middle values
    u4 = u + [torch.tensor([3.0, 1.0])]
    assert torch.equal(aggregate(u4, None, method="median"), torch.tensor([2.5, 0.5]))


def test_median_and_trimmed_mean_ignore_a_huge_outlier_and_its_weight():
    honest = _updates(9)
    evil = torch.full((5,), 1e6)
    for method in ("median", "trimmed_mean"):
        out = aggregate(honest + [evil], [1] * 9 + [1000], method=method, trim=0.1)
        assert out.abs().max() < 3, method
    assert aggregate(honest + [evil], None, method="mean").min() > 1e4


def test_trimmed_mean_drops_floor_trim_n_from_each_end():
    u = [torch.tensor([float(v)]) for v in [0, 1, 2, 3, 4, 5, 6, 7, 8, 100]]
    assert aggregate(u, None, method="trimmed_mean", trim=0.1).item() == pytest.approx(4.5)   # drops 0 and 100
    assert aggregate(u, None, method="trimmed_mean", trim=0.2).item() == pytest.approx(4.5)   # drops 0,1 and 8,100
    assert aggregate(u, None, method="trimmed_mean", trim=0.0).item() == pytest.approx(13.6)  # the plain mean
    assert aggregate(u, None, method="trimmed_mean", trim=0.3).item() == pytest.approx(4.5)


def test_krum_picks_the_honest_cluster():
    g = torch.Generator().manual_seed(3)
    centre = torch.randn(20, generator=g)
    honest = [centre + 0.1 * torch.randn(20, generator=g) for _ in range(8)]
    attackers = [-5 * centre + 0.01 * torch.randn(20, generator=g) for _ in range(2)]
    updates = attackers + honest  # the attackers first: a rule that returns index 0 would fail
    assert krum_select(updates, byzantine=2)[0] >= 2
    chosen = krum_select(updates, byzantine=2, select=6)
    assert all(i >= 2 for i in chosen)
    out = aggregate(updates, None, method="krum", byzantine=2)
    assert any(torch.equal(out, h) for h in honest)
    multi = aggregate(updates, None, method="multi_krum", byzantine=2)  # select = n - f = 8: the honest ones
    assert torch.allclose(multi, torch.stack(honest).mean(0), atol=1e-6)
    assert (aggregate(updates, None, method="mean") - centre).norm() > (multi - centre).norm() * 10


def test_krum_score_is_the_sum_over_the_n_minus_f_minus_2_nearest():
    u = [torch.tensor([float(v)]) for v in (0, 1, 3, 10, 30)]
    scores = krum_scores(u, byzantine=1)  # n - f - 2 = 2 nearest
    assert scores.tolist() == pytest.approx([1 + 9, 1 + 4, 4 + 9, 49 + 81, 400 + 729])


def test_structures_are_kept_and_inputs_not_modified():
    a = {"w": torch.ones(2, 3), "b": torch.zeros(3)}
    b = {"w": 3 * torch.ones(2, 3), "b": torch.ones(3)}
    copies = [{k: v.clone() for k, v in x.items()} for x in (a, b)]
    out = aggregate([a, b], [1, 1], method="mean")
    assert set(out) == {"w", "b"} and out["w"].shape == (2, 3) and torch.allclose(out["w"], 2 * torch.ones(2, 3))
    for x, c in zip((a, b), copies):
        assert all(torch.equal(x[k], c[k]) for k in x)
    lists = aggregate([[torch.ones(2), torch.ones(1)], [torch.zeros(2), torch.ones(1)]], None, method="median")
    assert isinstance(lists, list) and torch.equal(lists[0], torch.full((2,), 0.5))


def test_flatten_and_unflatten_round_trip():
    model = mlp((4,), 3, hidden=(5,))
    flat = flatten_update(model)
    parts = unflatten_update(flat, model)
    assert [p.shape for p in parts] == [p.shape for p in model.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(parts, model.parameters()))


@pytest.mark.parametrize("kwargs, match", [
    (dict(updates=[torch.ones(3), torch.ones(4)]), "same shapes"),
    (dict(updates=[torch.ones(3)] * 2, weights=[1]), "one entry per update"),
    (dict(updates=[torch.ones(3)] * 2, weights=[1, -1]), ">= 0"),
    (dict(updates=[torch.ones(3)] * 2, weights=[0, 0]), "not all 0"),
    (dict(updates=[], weights=None), "at least one"),
    (dict(updates=[torch.ones(3)] * 2, method="average"), "method must be one of"),
    (dict(updates=[torch.ones(3)] * 5, method="krum", byzantine=2), "byzantine"),
    (dict(updates=[torch.ones(3)] * 5, method="trimmed_mean", trim=0.5), "trim"),
    (dict(updates=[torch.ones(3)] * 5, method="multi_krum", byzantine=1, select=6), "select"),
])
def test_bad_input(kwargs, match):
    kwargs.setdefault("weights", None)
    with pytest.raises(ValueError, match=match):
        aggregate(kwargs.pop("updates"), kwargs.pop("weights"), **kwargs)


def test_integer_updates_refused():
    with pytest.raises(TypeError, match="floating"):
        aggregate([torch.ones(3, dtype=torch.long)] * 2, None)


def test_every_method_runs():
    for m in METHODS:
        assert aggregate(_updates(), None, method=m, byzantine=1).shape == (5,)


def test_unflatten_refuses_the_wrong_size():
    with pytest.raises(ValueError, match="entries"):
        unflatten_update(torch.zeros(5), [torch.zeros(2), torch.zeros(2)])


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("method", ["krum", "multi_krum", "median", "trimmed_mean"])
def test_a_non_finite_byzantine_update_is_set_aside(method, bad):
    # one Byzantine client sends NaN (or inf), at every position among 5 honest updates: Krum must pick an honest
    # update, multi-Krum must leave it out, median and trimmed mean must stay finite; the mean refuses it
    honest = [torch.randn(3, generator=torch.Generator().manual_seed(i)) for i in range(5)]
    opts = dict(byzantine=1) if "krum" in method else {}
    if method == "multi_krum":
        opts["select"] = 3
    if method == "trimmed_mean":
        opts["trim"] = 0.2  # floor(0.2 * 6) = 1 value trimmed from each end (the default 0.1 trims none of 6)
    for pos in range(6):
        ups = honest[:pos] + [torch.full((3,), bad)] + honest[pos:]
        out = aggregate(ups, method=method, **opts)
        assert torch.isfinite(out).all()
        if method == "krum":
            assert any(torch.equal(out, h) for h in honest)
        if method == "multi_krum":
            chosen = krum_select(ups, byzantine=1, select=3)
            assert pos not in chosen
    with pytest.raises(ValueError, match=r"updates\[2\] holds a non-finite value"):
        aggregate(honest[:2] + [torch.full((3,), bad)] + honest[2:], method="mean")
