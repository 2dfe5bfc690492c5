"""Exact discrete samplers: each agrees with its probability mass function (chi-square), and the central
step of each algorithm matters."""
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from scipy import stats

from mlsec_kit.dp import discrete


def _chi_square_pvalue(draws, pmf, reach):
    support = torch.arange(-reach, reach + 1)
    probs = pmf(support).numpy()
    observed = np.array([(draws == k).sum().item() for k in support.tolist()], dtype=float)
    tail_obs, tail_p = len(draws) - observed.sum(), 1 - probs.sum()
    observed, expected = np.append(observed, tail_obs), np.append(probs, tail_p) * len(draws)
    keep = expected >= 5
    observed = np.append(observed[keep], observed[~keep].sum())
    expected = np.append(expected[keep], expected[~keep].sum())
    return stats.chisquare(observed, expected).pvalue


@pytest.mark.parametrize("scale", [0.5, 1, 2.5, Fraction(7, 3)])
def test_discrete_laplace_matches_its_pmf(scale):
    draws = discrete.discrete_laplace(scale=scale, size=20_000, generator=torch.Generator().manual_seed(1))
    assert draws.dtype == torch.int64
    p = _chi_square_pvalue(draws, lambda x: discrete.discrete_laplace_pmf(x, scale=float(scale)), 40)
    assert p > 1e-3


@pytest.mark.parametrize("sigma_squared", [0.3, 1, 4.0, Fraction(25, 2)])
def test_discrete_gaussian_matches_its_pmf(sigma_squared):
    draws = discrete.discrete_gaussian(sigma_squared=sigma_squared, size=20_000,
                                       generator=torch.Generator().manual_seed(2))
    p = _chi_square_pvalue(draws, lambda x: discrete.discrete_gaussian_pmf(x, sigma_squared=float(sigma_squared)), 30)
    assert p > 1e-3


def test_the_pmf_is_a_distribution_and_the_chi_square_has_power():
    x = torch.arange(-200, 201)
    assert discrete.discrete_laplace_pmf(x, scale=3.0).sum().item() == pytest.approx(1, abs=1e-12)
    assert discrete.discrete_gaussian_pmf(x, sigma_squared=9.0).sum().item() == pytest.approx(1, abs=1e-12)
    # the check rejects a wrong scale: draws with scale 2 against the pmf of scale 2.3
    draws = discrete.discrete_laplace(scale=2, size=20_000, generator=torch.Generator().manual_seed(3))
    assert _chi_square_pvalue(draws, lambda x: discrete.discrete_laplace_pmf(x, scale=2.3), 40) < 1e-6


@pytest.mark.parametrize("gamma", [0.0, 0.3, 1.0, 2.7])
def test_bernoulli_exp_has_mean_exp_minus_gamma(gamma):
    coins = discrete.bernoulli_exp(gamma, size=20_000, generator=torch.Generator().manual_seed(4)).double()
    sd = math.sqrt(math.exp(-gamma) * (1 - math.exp(-gamma)) / 20_000)
    assert abs(coins.mean().item() - math.exp(-gamma)) <= 5 * sd + 1e-12


def test_seeded_draws_repeat_and_differ_across_seeds():
    a = discrete.discrete_gaussian(sigma_squared=2.0, size=200, generator=torch.Generator().manual_seed(5))
    b = discrete.discrete_gaussian(sigma_squared=2.0, size=200, generator=torch.Generator().manual_seed(5))
    c = discrete.discrete_gaussian(sigma_squared=2.0, size=200, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="scale"):
        discrete.discrete_laplace(scale=0)
    with pytest.raises(ValueError, match="sigma_squared"):
        discrete.discrete_gaussian(sigma_squared=float("inf"))
    with pytest.raises(TypeError, match="scale"):
        discrete.discrete_laplace(scale="1")
    with pytest.raises(ValueError, match="gamma"):
        discrete.bernoulli_exp(-0.1)
    with pytest.raises(ValueError, match="size"):
        discrete.discrete_laplace(scale=1, size=0)
