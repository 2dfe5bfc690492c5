"""AboveThreshold: reports the first query above the threshold, -1 when none, and passes a privacy audit."""
import pytest
import torch

from mlsec_kit import dp


def test_reports_the_first_query_clearly_above_and_minus_one_when_none():
    g = torch.Generator().manual_seed(0)
    values = torch.tensor([0.0, 0.0, 100.0, 100.0, 0.0])
    assert dp.above_threshold(values, threshold=50.0, sensitivity=1.0, epsilon=5.0, generator=g).item() == 2
    runs = dp.above_threshold(torch.zeros(1000, 6), threshold=100.0, sensitivity=1.0, epsilon=5.0, generator=g)
    assert runs.shape == (1000,) and bool((runs == -1).all())
    none_noise = dp.above_threshold(torch.tensor([1.0, 3.0, 2.0]), threshold=2.5, sensitivity=0.0, epsilon=1.0)
    assert none_noise.item() == 1


def test_the_index_distribution_passes_an_empirical_privacy_audit():
    g = torch.Generator().manual_seed(1)
    values = torch.tensor([2.0, 4.0, 5.0, 7.0])
    neighbour = values + torch.tensor([1.0, -1.0, 1.0, -1.0])  # each query moved by the sensitivity
    a = dp.above_threshold(values.expand(80_000, 4), threshold=5.0, sensitivity=1.0, epsilon=1.0, generator=g)
    b = dp.above_threshold(neighbour.expand(80_000, 4), threshold=5.0, sensitivity=1.0, epsilon=1.0, generator=g)
    edges = torch.tensor([-0.5, 0.5, 1.5, 2.5])
    assert dp.epsilon_lower_bound(a.double(), b.double(), edges=edges) <= 1.0
    assert dp.empirical_epsilon(a.double(), b.double(), edges=edges) > 0.2


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match=r"epsilon must be in \(0, inf\)"):
        dp.above_threshold(torch.zeros(3), threshold=0.0, sensitivity=1.0, epsilon=-1.0)
    with pytest.raises(ValueError, match="at least one query"):
        dp.above_threshold(torch.zeros(0), threshold=0.0, sensitivity=1.0, epsilon=1.0)
