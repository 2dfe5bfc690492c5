"""Rényi DP and zCDP: closed forms, Opacus's RDP accountant functions, and the conversions' ordering."""
import math

import numpy as np
import pytest
from opacus.accountants.analysis import rdp as opacus_rdp

from mlsec_kit.dp import renyi

ORDERS = np.array([1.5, 2, 3, 4, 8, 16, 32, 64])
INT_ORDERS = [2, 3, 4, 5, 8, 16, 32, 63]


@pytest.mark.parametrize("sigma", [0.5, 1.0, 4.0])
def test_gaussian_rdp_matches_opacus_without_subsampling(sigma):
    ours = renyi.gaussian_rdp(sigma=sigma, orders=ORDERS)
    theirs = opacus_rdp.compute_rdp(q=1.0, noise_multiplier=sigma, steps=1, orders=ORDERS)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    assert renyi.gaussian_zcdp(sigma=sigma) == pytest.approx(ours[1] / 2)   # rho = rdp(alpha) / alpha


@pytest.mark.parametrize("q,sigma", [(0.01, 1.1), (0.05, 0.8), (0.2, 2.0), (0.5, 1.0)])
def test_subsampled_gaussian_matches_opacus(q, sigma):
    ours = renyi.subsampled_gaussian_rdp(q=q, sigma=sigma, orders=INT_ORDERS)
    theirs = opacus_rdp.compute_rdp(q=q, noise_multiplier=sigma, steps=1, orders=INT_ORDERS)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9)
    assert np.all(ours <= renyi.gaussian_rdp(sigma=sigma, orders=INT_ORDERS) + 1e-15)   # subsampling never hurts


def test_conversion_matches_opacus_and_mironov_is_looser():
    rdp = 100 * renyi.subsampled_gaussian_rdp(q=0.01, sigma=1.0, orders=INT_ORDERS)   # 100 steps compose
    eps, order = renyi.rdp_to_dp(orders=INT_ORDERS, rdp=rdp, delta=1e-5)
    eps_o, order_o = opacus_rdp.get_privacy_spent(orders=INT_ORDERS, rdp=rdp, delta=1e-5)
    assert eps == pytest.approx(eps_o, rel=1e-12) and order == order_o
    eps_m, _ = renyi.rdp_to_dp(orders=INT_ORDERS, rdp=rdp, delta=1e-5, method="mironov")
    assert eps < eps_m


def test_zcdp_conversion_closed_form_and_gaussian_composition():
    # k Gaussian releases with sigma: rho = k / (2 sigma^2); epsilon grows like sqrt(k)
    rho1 = renyi.gaussian_zcdp(sigma=10.0)
    e1 = renyi.zcdp_to_dp(rho=rho1, delta=1e-6)
    assert e1 == pytest.approx(rho1 + 2 * math.sqrt(rho1 * math.log(1e6)))
    e100 = renyi.zcdp_to_dp(rho=100 * rho1, delta=1e-6)
    assert 9 < e100 / e1 < 12   # about sqrt(100) (plus the linear rho term), far below 100


def test_laplace_rdp_closed_form_limits():
    b = 2.0
    r = renyi.laplace_rdp(scale=b, orders=ORDERS)
    assert np.all(np.diff(r) > 0) and np.all(r < 1 / b)          # increasing in alpha, below pure epsilon
    assert renyi.laplace_rdp(scale=b, orders=[1e6])[0] == pytest.approx(1 / b, rel=1e-3)
    # order 2 by direct numerical integration of E_{P}[(p/q)^(alpha-1)]
    x = np.linspace(-60, 60, 2_000_001)
    p, q = np.exp(-np.abs(x) / b) / (2 * b), np.exp(-np.abs(x - 1) / b) / (2 * b)
    direct = np.log(np.trapezoid(p ** 2 / q, x))
    assert r[1] == pytest.approx(direct, rel=1e-5)


def test_amplification_by_subsampling():
    e, d = renyi.amplify_by_subsampling(epsilon=1.0, delta=1e-6, q=0.01)
    assert e == pytest.approx(math.log(1 + 0.01 * (math.e - 1))) and d == pytest.approx(1e-8)
    assert e < 0.01 * 2 and renyi.amplify_by_subsampling(epsilon=1.0, delta=0.0, q=1.0)[0] == pytest.approx(1.0)


@pytest.mark.parametrize("kwargs", [dict(sigma=0.0, orders=[2]), dict(sigma=1.0, orders=[1.0]),
                                    dict(sigma=1.0, orders=[]), dict(sigma=-1.0, orders=[2])])
def test_bad_input_is_refused(kwargs):
    with pytest.raises(ValueError):
        renyi.gaussian_rdp(**kwargs)
    with pytest.raises(ValueError, match="q must be"):
        renyi.amplify_by_subsampling(epsilon=1.0, delta=0.0, q=1.5)
    with pytest.raises(ValueError, match="orders"):
        renyi.subsampled_gaussian_rdp(q=0.1, sigma=1.0, orders=[1.0])   # fractional orders > 1 are fine now
    with pytest.raises(ValueError, match="q must be"):
        renyi.subsampled_gaussian_rdp(q=1.5, sigma=1.0, orders=[2.5])
    with pytest.raises(ValueError, match="method"):
        renyi.rdp_to_dp(orders=[2], rdp=[0.1], delta=1e-5, method="x")
