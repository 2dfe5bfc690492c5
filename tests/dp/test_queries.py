"""Clipped queries: the stated sensitivities bound (and are attained by) the change between neighbours, and
the private versions add the intended noise; the private mean agrees with diffprivlib's."""
import math

import numpy as np
import pytest
import torch
from scipy import stats

from mlsec_kit import dp


def neighbours(x, g, lower, upper):
    """Random replace-one and add/remove-one neighbours of x, some with values far outside the bounds."""
    i = int(torch.randint(len(x), (1,), generator=g))
    wild = float(torch.randn(1, generator=g) * 10 * (upper - lower))
    replaced = x.clone()
    replaced[i] = wild
    return replaced, torch.cat([x[:i], x[i + 1:]]), torch.cat([x, torch.tensor([wild], dtype=x.dtype)])


def test_stated_sensitivities_bound_the_change_between_neighbours_and_are_tight():
    g = torch.Generator().manual_seed(0)
    lower, upper = -2.0, 5.0
    worst = {"sum_replace": 0.0, "sum_add_remove": 0.0, "mean": 0.0, "hist_replace": 0.0, "hist_add_remove": 0.0}
    for _ in range(300):
        x = torch.randn(int(torch.randint(2, 30, (1,), generator=g)), generator=g, dtype=torch.float64) * 4
        replaced, removed, added = neighbours(x, g, lower, upper)
        s = lambda v: dp.clipped_sum(v, lower=lower, upper=upper).item()
        h = lambda v: dp.histogram(v, bins=7, lower=lower, upper=upper)
        worst["sum_replace"] = max(worst["sum_replace"], abs(s(x) - s(replaced)))
        worst["sum_add_remove"] = max(worst["sum_add_remove"], abs(s(x) - s(removed)), abs(s(x) - s(added)))
        ratio = abs(dp.clipped_mean(x, lower=lower, upper=upper) - dp.clipped_mean(replaced, lower=lower, upper=upper))
        stated_mean = dp.mean_sensitivity(lower=lower, upper=upper, n=len(x), neighbours="replace")
        worst["mean"] = max(worst["mean"], ratio.item() / stated_mean)
        worst["hist_replace"] = max(worst["hist_replace"], (h(x) - h(replaced)).abs().sum().item())
        worst["hist_add_remove"] = max(worst["hist_add_remove"], (h(x) - h(added)).abs().sum().item())
    stated = {"sum_replace": dp.sum_sensitivity(lower=lower, upper=upper, neighbours="replace"),
              "sum_add_remove": dp.sum_sensitivity(lower=lower, upper=upper, neighbours="add_remove"), "mean": 1.0,
              "hist_replace": dp.histogram_sensitivity(neighbours="replace"),
              "hist_add_remove": dp.histogram_sensitivity(neighbours="add_remove")}
    assert stated["sum_replace"] == 7.0 and stated["sum_add_remove"] == 5.0
    for key in worst:
        assert worst[key] <= stated[key] + 1e-9, key
        assert worst[key] >= 0.9 * stated[key], key  # the random search gets close: the bound is tight


def test_private_mean_is_the_clipped_mean_plus_laplace_noise_of_the_stated_scale():
    x = torch.linspace(0, 10, 50, dtype=torch.float64)
    x[0] = 1000.0  # an outlier, clipped to 10
    g = torch.Generator().manual_seed(1)
    draws = torch.stack([dp.private_mean(x, lower=0.0, upper=10.0, epsilon=0.5, neighbours="replace", generator=g)
                         for _ in range(4000)])
    centre = dp.clipped_mean(x, lower=0.0, upper=10.0).item()
    scale = 10.0 / (50 * 0.5)
    assert stats.kstest(draws.numpy(), "laplace", args=(centre, scale)).pvalue > 0.01
    assert stats.kstest(draws.numpy(), "laplace", args=(x.mean().item(), scale)).pvalue < 1e-6


def test_private_sum_and_histogram_add_noise_of_the_stated_scale():
    x = torch.arange(20, dtype=torch.float64)
    g = torch.Generator().manual_seed(2)
    sums = torch.stack([dp.private_sum(x, lower=0.0, upper=4.0, epsilon=2.0, neighbours="add_remove", generator=g)
                        for _ in range(3000)])
    assert stats.kstest(sums.numpy(), "laplace", args=(dp.clipped_sum(x, lower=0.0, upper=4.0).item(), 2.0)).pvalue > 0.01
    counts = dp.histogram(x, bins=4, lower=0.0, upper=20.0)
    assert counts.tolist() == [5.0, 5.0, 5.0, 5.0]
    noisy = torch.stack([dp.private_histogram(x, bins=4, lower=0.0, upper=20.0, epsilon=1.0, neighbours="replace",
                                              generator=g) for _ in range(1500)])
    assert stats.kstest((noisy - counts).flatten().numpy(), "laplace", args=(0.0, 2.0)).pvalue > 0.01


def test_kit_private_mean_agrees_with_diffprivlib_tools_mean():
    tools = pytest.importorskip("diffprivlib.tools")
    rng = np.random.default_rng(3)
    x = rng.uniform(20, 60, size=200)
    g = torch.Generator().manual_seed(3)
    ours = np.array([dp.private_mean(torch.from_numpy(x), lower=0.0, upper=100.0, epsilon=1.0, neighbours="replace",
                                     generator=g).item()
                     for _ in range(2000)])
    theirs = np.array([tools.mean(x, epsilon=1.0, bounds=(0.0, 100.0), random_state=i) for i in range(2000)])
    assert stats.ks_2samp(ours, theirs).pvalue > 0.01
    assert stats.ks_2samp(ours, theirs + 0.1).pvalue < 1e-3


def test_bad_query_arguments_are_refused():
    with pytest.raises(ValueError, match="lower and upper must be finite with lower < upper"):
        dp.clipped_sum(torch.ones(3), lower=1.0, upper=1.0)
    with pytest.raises(ValueError, match="neighbours must be one of"):
        dp.sum_sensitivity(lower=0.0, upper=1.0, neighbours="swap")
    with pytest.raises(ValueError, match="x must be a 1-D torch tensor"):
        dp.private_mean(torch.ones(2, 2), lower=0.0, upper=1.0, epsilon=1.0, neighbours="replace")
    with pytest.raises(ValueError, match=r"epsilon must be in \(0, inf\)"):
        dp.private_histogram(torch.ones(3), bins=2, lower=0.0, upper=1.0, epsilon=0.0, neighbours="add_remove")
    with pytest.raises(ValueError, match="bins must be an int >= 1"):
        dp.histogram(torch.ones(3), bins=0, lower=0.0, upper=1.0)


def test_the_mean_under_add_remove_has_the_worst_case_bound_of_a_one_and_a_two_record_dataset():
    lower, upper = -2.0, 5.0
    bound = dp.mean_sensitivity(lower=lower, upper=upper, n=100, neighbours="add_remove")
    assert bound == 3.5 == dp.mean_sensitivity(lower=lower, upper=upper, n=1, neighbours="add_remove")
    one, two = torch.tensor([lower]), torch.tensor([lower, upper])
    change = (dp.clipped_mean(two, lower=lower, upper=upper) - dp.clipped_mean(one, lower=lower, upper=upper)).item()
    assert change == bound  # attained
    assert dp.mean_sensitivity(lower=lower, upper=upper, n=100, neighbours="replace") == pytest.approx(0.07)
    with pytest.raises(TypeError):
        dp.mean_sensitivity(lower=lower, upper=upper, n=100)  # the relation must be declared


def test_nan_records_count_as_the_lower_bound_everywhere_and_never_poison_a_release():
    lower, upper = 0.0, 10.0
    x = torch.tensor([1.0, math.nan, 4.0, math.inf, -math.inf, math.nan], dtype=torch.float64)
    as_lower = torch.tensor([1.0, lower, 4.0, upper, lower, lower], dtype=torch.float64)
    assert torch.equal(dp.clip(x, lower=lower, upper=upper), as_lower)
    assert dp.clipped_sum(x, lower=lower, upper=upper).item() == as_lower.sum().item()
    assert dp.clipped_mean(x, lower=lower, upper=upper).item() == as_lower.mean().item()
    assert torch.equal(dp.histogram(x, bins=5, lower=lower, upper=upper),
                       dp.histogram(as_lower, bins=5, lower=lower, upper=upper))
    assert dp.histogram(x, bins=5, lower=lower, upper=upper).sum().item() == len(x)  # every record counted once
    for nb in dp.NEIGHBOURS:
        same = []
        for data in (x, as_lower):  # the release is a function of the mapped data: same seed, same output
            g = torch.Generator().manual_seed(5)
            same.append(torch.cat([
                dp.private_sum(data, lower=lower, upper=upper, epsilon=1.0, neighbours=nb, generator=g).reshape(1),
                dp.private_mean(data, lower=lower, upper=upper, epsilon=1.0, neighbours=nb, generator=g).reshape(1),
                dp.private_histogram(data, bins=5, lower=lower, upper=upper, epsilon=1.0, neighbours=nb,
                                     generator=g)]))
        assert torch.isfinite(same[0]).all() and torch.equal(same[0], same[1])
    # a NaN record is one more possible value: replacing a record by NaN stays within the stated sensitivity
    y = torch.linspace(2, 8, 20, dtype=torch.float64)
    z = y.clone()
    z[3] = math.nan
    change = abs(dp.clipped_sum(y, lower=lower, upper=upper) - dp.clipped_sum(z, lower=lower, upper=upper)).item()
    assert change <= dp.sum_sensitivity(lower=lower, upper=upper, neighbours="replace")
    assert (dp.histogram(y, bins=5, lower=lower, upper=upper) - dp.histogram(z, bins=5, lower=lower, upper=upper)
            ).abs().sum().item() <= dp.histogram_sensitivity(neighbours="replace")


def test_kit_private_sum_under_replace_one_agrees_with_diffprivlib_tools_sum():
    """diffprivlib calibrates its sum to upper - lower: the replace-one sensitivity (its truncation at
    n * bounds is far from a sum of values in the middle of the range)."""
    tools = pytest.importorskip("diffprivlib.tools")
    rng = np.random.default_rng(4)
    x = rng.uniform(1, 3, size=100)
    g = torch.Generator().manual_seed(4)
    ours = np.array([dp.private_sum(torch.from_numpy(x), lower=-1.0, upper=4.0, epsilon=0.5, neighbours="replace",
                                    generator=g).item() for _ in range(2000)])
    theirs = np.array([tools.sum(x, epsilon=0.5, bounds=(-1.0, 4.0), random_state=i) for i in range(2000)])
    assert stats.ks_2samp(ours, theirs).pvalue > 0.01
    assert stats.ks_2samp(ours, theirs + 2.0).pvalue < 1e-3
    assert dp.sum_sensitivity(lower=-1.0, upper=4.0, neighbours="replace") == 5.0
