"""The empirical privacy audit: a correct mechanism stays under its epsilon, a broken one is caught."""
import pytest
import torch

from mlsec_kit import dp

EDGES = torch.linspace(-6, 7, 53)


def test_laplace_stays_under_epsilon_and_the_point_estimate_is_close_to_it():
    g = torch.Generator().manual_seed(0)
    n = 200_000
    a = dp.laplace(torch.zeros(n, dtype=torch.float64), sensitivity=1.0, epsilon=1.0, generator=g)
    b = dp.laplace(torch.ones(n, dtype=torch.float64), sensitivity=1.0, epsilon=1.0, generator=g)
    lower = dp.epsilon_lower_bound(a, b, edges=EDGES)
    assert 0.7 < lower <= 1.0
    assert dp.empirical_epsilon(a, b, edges=EDGES, min_count=2000) == pytest.approx(1.0, abs=0.1)


def test_a_broken_mechanism_is_caught():
    g = torch.Generator().manual_seed(1)
    n = 200_000
    # Laplace noise calibrated to half the true sensitivity: claims epsilon 1, is epsilon 2
    a = dp.laplace(torch.zeros(n, dtype=torch.float64), sensitivity=0.5, epsilon=1.0, generator=g)
    b = dp.laplace(torch.ones(n, dtype=torch.float64), sensitivity=0.5, epsilon=1.0, generator=g)
    assert dp.epsilon_lower_bound(a, b, edges=EDGES) > 1.5


def test_identical_mechanisms_give_a_zero_bound_and_counts_cover_every_sample():
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(5000, generator=g), torch.randn(5000, generator=g)
    assert dp.epsilon_lower_bound(a, b, edges=torch.linspace(-2, 2, 9)) == 0.0
    counts = dp.bin_counts(torch.tensor([-10.0, 0.0, 0.5, 10.0]), torch.tensor([0.0, 1.0]))
    assert counts.tolist() == [1, 2, 1]
    with pytest.raises(ValueError, match="strictly increasing"):
        dp.bin_counts(a, torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="confidence must be a float in"):
        dp.epsilon_lower_bound(a, b, edges=torch.tensor([0.0]), confidence=1.0)
