"""The private quantile: its output law is the exponential mechanism's, it is accurate at large ε, and it
does not leave the public bounds."""
import math

import numpy as np
import pytest
import torch
from scipy import stats

from mlsec_kit.dp import private_quantile, quantile_interval_probabilities


def test_gap_probabilities_follow_the_exponential_mechanism_formula():
    x = torch.tensor([3.0, 1.0, 7.0, 4.0, 9.0])
    edges, probs = quantile_interval_probabilities(x, q=0.5, lower=0.0, upper=10.0, epsilon=0.8)
    assert torch.equal(edges, torch.tensor([0.0, 1.0, 3.0, 4.0, 7.0, 9.0, 10.0], dtype=torch.float64))
    w = torch.tensor([(edges[i + 1] - edges[i]) * math.exp(-0.8 * abs(i - 2.5) / 2) for i in range(6)])
    torch.testing.assert_close(probs, (w / w.sum()).double())


def test_draws_follow_the_gap_probabilities():
    x = torch.randn(30, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    edges, probs = quantile_interval_probabilities(x, lower=-3.0, upper=3.0, epsilon=0.5)
    draws = private_quantile(x, lower=-3.0, upper=3.0, epsilon=0.5, size=50_000,
                             generator=torch.Generator().manual_seed(1))
    assert bool(((draws >= -3) & (draws <= 3)).all())
    observed = np.bincount(np.searchsorted(edges.numpy(), draws.numpy(), side="right") - 1, minlength=len(probs))
    expected = probs.numpy() * len(draws)
    keep = expected > 5
    assert stats.chisquare(observed[keep], expected[keep] * observed[keep].sum() / expected[keep].sum()).pvalue > 1e-3
    # uniform within a gap: the position inside the widest gap is uniform
    i = int((edges[1:] - edges[:-1]).argmax())
    inside = draws[(draws >= edges[i]) & (draws < edges[i + 1])]
    assert stats.kstest(((inside - edges[i]) / (edges[i + 1] - edges[i])).numpy(), "uniform").pvalue > 1e-3


@pytest.mark.parametrize("q", [0.1, 0.5, 0.9])
def test_accurate_with_much_data_and_noisy_with_little(q):
    g = torch.Generator().manual_seed(2)
    x = torch.rand(5000, generator=g, dtype=torch.float64) * 100
    est = private_quantile(x, q=q, lower=0.0, upper=100.0, epsilon=1.0, size=200, generator=g)
    assert (est - 100 * q).abs().median() < 1.0
    small = private_quantile(x[:10], q=q, lower=0.0, upper=100.0, epsilon=0.1, size=200, generator=g)
    assert (small - 100 * q).abs().median() > 5.0


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="q must"):
        private_quantile(torch.ones(3), q=1.5, lower=0.0, upper=1.0, epsilon=1.0)
    with pytest.raises(ValueError, match="finite"):
        private_quantile(torch.tensor([1.0, float("nan")]), lower=0.0, upper=1.0, epsilon=1.0)
    with pytest.raises(ValueError, match="lower and upper"):
        private_quantile(torch.ones(3), lower=1.0, upper=0.0, epsilon=1.0)


def test_the_budget_is_charged_under_the_declared_relation():
    from mlsec_kit.dp import BudgetExceededError, PrivacyBudget
    budget = PrivacyBudget(epsilon=1.0, neighbours="replace")
    private_quantile(torch.arange(10.0), lower=0.0, upper=10.0, epsilon=0.4, size=2, neighbours="replace",
                     budget=budget)
    assert budget.spent[0] == pytest.approx(0.8)
    with pytest.raises(BudgetExceededError):
        private_quantile(torch.arange(10.0), lower=0.0, upper=10.0, epsilon=0.4, neighbours="replace", budget=budget)
    with pytest.raises(ValueError):
        private_quantile(torch.arange(10.0), lower=0.0, upper=10.0, epsilon=0.1, budget=budget)   # no relation
