"""DP-SGD accounting: the subsampled Gaussian's RDP at fractional orders, ε against Opacus's accountants, the
two published numbers of TF Privacy's MNIST tutorial, the inverse (σ for a target ε), and bad input."""
import math
import warnings

import mpmath
import numpy as np
import pytest
from opacus.accountants import PRVAccountant, RDPAccountant
from opacus.accountants.analysis import rdp as opacus_rdp
from opacus.accountants.utils import get_noise_multiplier

from mlsec_kit.dp import accounting, renyi
from mlsec_kit.dp.calibration import gaussian_delta

MNIST_Q = 256 / 60_000
MNIST_STEPS = math.ceil(60 * 60_000 / 256)      # 14,063: TF Privacy's compute_dp_sgd_privacy rounds up


def _opacus_epsilon(sigma, q, steps, delta, alphas=None):
    acc = RDPAccountant()
    acc.history = [(sigma, q, steps)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # "optimal order is the largest alpha"
        return acc.get_privacy_spent(delta=delta, alphas=alphas)


def _exact_rdp(q, sigma, alpha):
    """log E_{z~N(0,σ²)}[((1-q) + q e^{(2z-1)/(2σ²)})^α] / (α-1) by quadrature at 40 digits."""
    mpmath.mp.dps = 40
    q, s, a = mpmath.mpf(q), mpmath.mpf(sigma), mpmath.mpf(alpha)
    f = lambda z: mpmath.npdf(z, 0, s) * ((1 - q) + q * mpmath.e ** ((2 * z - 1) / (2 * s ** 2))) ** a  # noqa: E731
    return float(mpmath.log(mpmath.quad(f, [-mpmath.inf, -20 * s, 0, 0.5, 20 * s, mpmath.inf])) / (a - 1))


def test_default_orders_are_opacus_and_tf_privacy_grids():
    assert list(accounting.DEFAULT_ORDERS) == list(RDPAccountant.DEFAULT_ALPHAS)
    assert accounting.TF_PRIVACY_ORDERS == accounting.DEFAULT_ORDERS
    assert any(a != int(a) for a in accounting.DEFAULT_ORDERS)      # fractional orders included


@pytest.mark.parametrize("sigma", [0.5, 1.1, 3.0])
@pytest.mark.parametrize("q", [0.001, 0.02, 0.3, 0.9])
def test_fractional_order_rdp_matches_opacus(sigma, q):
    orders = [a for a in accounting.DEFAULT_ORDERS if a != int(a)]
    ours = renyi.subsampled_gaussian_rdp(q=q, sigma=sigma, orders=orders)
    theirs = opacus_rdp.compute_rdp(q=q, noise_multiplier=sigma, steps=1, orders=orders)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)


@pytest.mark.parametrize("q,sigma,alpha", [(1e-5, 10.0, 1.5), (1e-3, 5.0, 1.1), (0.01, 1.1, 3.3), (0.5, 0.5, 1.7)])
def test_fractional_order_rdp_matches_quadrature(q, sigma, alpha):
    # an independent check of the series (and where rho is ~1e-12, Opacus's e^-30 truncation is off by ~1e-3)
    ours = renyi.subsampled_gaussian_rdp(q=q, sigma=sigma, orders=[alpha])[0]
    assert ours == pytest.approx(_exact_rdp(q, sigma, alpha), rel=1e-6)


def test_fractional_orders_lie_between_their_integer_neighbours():
    # the RDP curve is non-decreasing in alpha (Rényi divergences are), so the series must fit in between
    orders = np.arange(2, 8.01, 0.1)
    r = renyi.subsampled_gaussian_rdp(q=0.05, sigma=0.9, orders=orders)
    assert np.all(np.diff(r) > 0)
    # orders a hair off an integer agree with the integer formula (no blow-up near the poles of Gamma)
    near = renyi.subsampled_gaussian_rdp(q=0.05, sigma=0.9, orders=[3 - 1e-12, 3 + 1e-12, 5 - 1e-9])
    exact = renyi.subsampled_gaussian_rdp(q=0.05, sigma=0.9, orders=[3, 3, 5])
    np.testing.assert_allclose(near, exact, rtol=1e-8)


@pytest.mark.parametrize("sigma", [0.7, 1.1, 2.5])
@pytest.mark.parametrize("q", [0.004, 0.05, 0.5])
@pytest.mark.parametrize("steps,delta", [(1, 1e-3), (3000, 1e-5)])
def test_rdp_epsilon_matches_opacus_rdp_accountant(sigma, q, steps, delta):
    eps, order = accounting.rdp_epsilon_with_order(noise_multiplier=sigma, sample_rate=q, steps=steps, delta=delta)
    eps_o, order_o = _opacus_epsilon(sigma, q, steps, delta)
    assert eps == pytest.approx(eps_o, rel=1e-6) and order == order_o
    assert accounting.rdp_epsilon(noise_multiplier=sigma, sample_rate=q, steps=steps, delta=delta) == eps


def test_composition_over_steps_is_linear_in_the_rdp_curve():
    one = accounting.rdp_curve(noise_multiplier=1.0, sample_rate=0.01, steps=1)
    np.testing.assert_allclose(accounting.rdp_curve(noise_multiplier=1.0, sample_rate=0.01, steps=250), 250 * one,
                               rtol=1e-12)
    assert accounting.rdp_epsilon(noise_multiplier=1.0, sample_rate=0.01, steps=0, delta=1e-5) == 0.0


def test_the_one_step_curve_is_cached_and_the_cache_cannot_be_corrupted():
    """A training loop asks for epsilon after every epoch: the one-step curve is computed once per (sigma, q,
    orders), and what callers get is a fresh array that they may modify."""
    accounting._one_step_rdp.cache_clear()
    kw = dict(noise_multiplier=1.3, sample_rate=0.02)
    ten = accounting.rdp_curve(**kw, steps=10)
    thirty = accounting.rdp_curve(**kw, steps=30)
    info = accounting._one_step_rdp.cache_info()
    assert info.misses == 1 and info.hits == 1
    fresh = renyi.subsampled_gaussian_rdp(q=0.02, sigma=1.3, orders=accounting.DEFAULT_ORDERS)
    np.testing.assert_allclose(ten, 10 * fresh, rtol=1e-12)
    np.testing.assert_allclose(thirty, 30 * fresh, rtol=1e-12)
    ten[:] = -1.0                                       # the caller's copy, not the cache
    np.testing.assert_allclose(accounting.rdp_curve(**kw, steps=1), fresh, rtol=1e-12)
    other = accounting.rdp_curve(noise_multiplier=1.3, sample_rate=0.02, steps=1, orders=(2, 3))
    assert other.shape == (2,) and accounting._one_step_rdp.cache_info().misses == 2


@pytest.mark.parametrize("sigma,steps", [(1.0, 1), (2.0, 50), (5.0, 400)])
def test_full_batch_case_is_the_gaussian_and_never_below_its_exact_epsilon(sigma, steps):
    # q = 1: T Gaussian steps with noise sigma are one Gaussian with noise sigma / sqrt(T) (RDP exactly T a/(2s^2))
    delta = 1e-5
    orders = np.array(accounting.DEFAULT_ORDERS)
    eps = accounting.rdp_epsilon(noise_multiplier=sigma, sample_rate=1.0, steps=steps, delta=delta)
    closed = renyi.rdp_to_dp(orders=orders, rdp=steps * orders / (2 * sigma ** 2), delta=delta)[0]
    assert eps == pytest.approx(closed, rel=1e-12)
    # the exact (eps, delta) curve of that Gaussian (Balle and Wang 2018): the accountant's eps is valid (its
    # delta is at most delta) but not exact (a slightly smaller eps would also be valid)
    sigma_eff = sigma / math.sqrt(steps)
    assert gaussian_delta(sigma=sigma_eff, sensitivity=1.0, epsilon=eps) <= delta
    assert gaussian_delta(sigma=sigma_eff, sensitivity=1.0, epsilon=0.95 * eps) <= delta   # RDP: >= 5% loose
    prv = accounting.prv_epsilon(noise_multiplier=sigma, sample_rate=1.0, steps=steps, delta=delta)
    assert gaussian_delta(sigma=sigma_eff, sensitivity=1.0, epsilon=prv) <= delta * 1.01    # PRV: upper end too
    assert prv < eps


def test_epsilon_is_monotone_in_noise_steps_and_sample_rate():
    base = dict(noise_multiplier=1.0, sample_rate=0.01, steps=500, delta=1e-5)
    e0 = accounting.rdp_epsilon(**base)
    assert accounting.rdp_epsilon(**{**base, "noise_multiplier": 1.5}) < e0
    assert accounting.rdp_epsilon(**{**base, "steps": 1000}) > e0
    assert accounting.rdp_epsilon(**{**base, "sample_rate": 0.02}) > e0
    assert accounting.rdp_epsilon(**{**base, "delta": 1e-7}) > e0
    # subsampling amplifies: q = 0.01 costs far less than the full batch with the same noise
    assert e0 < 0.2 * accounting.rdp_epsilon(**{**base, "sample_rate": 1.0})


def test_tf_privacy_mnist_tutorial_both_published_numbers():
    """TF Privacy published eps ~= 3.0 for this run, Opacus reports ~= 2.6: same RDP curve, same orders,
    different conversion (Mironov 2017 vs Balle et al. 2020)."""
    run = dict(noise_multiplier=1.1, sample_rate=MNIST_Q, steps=MNIST_STEPS, delta=1e-5)
    tf_eps, tf_order = accounting.rdp_epsilon_with_order(**run, orders=accounting.TF_PRIVACY_ORDERS,
                                                         conversion="mironov")
    op_eps, op_order = accounting.rdp_epsilon_with_order(**run)
    assert round(tf_eps, 2) == 3.01 and tf_order == pytest.approx(8.8)
    assert round(op_eps, 2) == 2.60 and op_order == pytest.approx(8.1)
    assert op_eps == pytest.approx(_opacus_epsilon(1.1, MNIST_Q, MNIST_STEPS, 1e-5)[0], rel=1e-6)
    # the integer-only grid changes the Opacus figure only in the 4th digit: the conversion is the difference
    int_eps = accounting.rdp_epsilon(**run, orders=range(2, 64))
    assert op_eps <= int_eps < op_eps + 0.01
    # the numerical PRV accountant is tighter still
    prv = accounting.prv_epsilon(**run)
    assert 2.0 < prv < op_eps


def test_noise_multiplier_for_reaches_the_target_tightly_and_agrees_with_opacus():
    target, q, steps, delta = 2.0, 0.01, 1000, 1e-5
    sigma = accounting.noise_multiplier_for(epsilon=target, delta=delta, sample_rate=q, steps=steps)
    assert accounting.rdp_epsilon(noise_multiplier=sigma, sample_rate=q, steps=steps, delta=delta) <= target
    assert accounting.rdp_epsilon(noise_multiplier=sigma * (1 - 2e-4), sample_rate=q, steps=steps,
                                  delta=delta) > target
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opacus_sigma = get_noise_multiplier(target_epsilon=target, target_delta=delta, sample_rate=q, steps=steps)
    assert sigma <= opacus_sigma < sigma * 1.02          # Opacus stops at a 0.01 tolerance in eps, above ours
    # the Mironov conversion needs more noise for the same target
    assert accounting.noise_multiplier_for(epsilon=target, delta=delta, sample_rate=q, steps=steps,
                                           conversion="mironov") > sigma


def test_noise_multiplier_for_refuses_unreachable_targets():
    with pytest.raises(ValueError, match="epsilon must exceed"):
        accounting.noise_multiplier_for(epsilon=0.05, delta=1e-5, sample_rate=0.01, steps=10)


def test_prv_accountant_is_below_rdp_and_matches_opacus():
    run = dict(noise_multiplier=0.9, sample_rate=0.02, steps=2000, delta=1e-5)
    prv = accounting.prv_epsilon(**run)
    acc = PRVAccountant()
    acc.history = [(0.9, 0.02, 2000)]
    assert prv == pytest.approx(acc.get_epsilon(delta=1e-5, eps_error=0.01), rel=1e-9)
    assert prv < accounting.rdp_epsilon(**run)


def test_accountant_composes_phases_like_opacus():
    ours = accounting.RDPAccountant()
    assert ours.epsilon(1e-5) == 0.0
    theirs = RDPAccountant()
    for sigma, q, steps in [(1.0, 0.01, 300), (1.0, 0.01, 200), (2.0, 0.05, 100)]:
        ours.step(noise_multiplier=sigma, sample_rate=q, steps=steps)
        for _ in range(steps):
            theirs.step(noise_multiplier=sigma, sample_rate=q)
    assert ours.history == [(1.0, 0.01, 500), (2.0, 0.05, 100)] == theirs.history
    assert ours.epsilon(1e-5) == pytest.approx(theirs.get_epsilon(delta=1e-5), rel=1e-6)
    # composing the curves is tighter than adding the phases' epsilons
    separate = sum(accounting.rdp_epsilon(noise_multiplier=s, sample_rate=q, steps=t, delta=1e-5 / 2)
                   for s, q, t in ours.history)
    assert ours.epsilon(1e-5) < separate
    with pytest.raises(ValueError, match="sample_rate"):
        ours.step(noise_multiplier=1.0, sample_rate=0.0)


@pytest.mark.parametrize("kwargs,match", [
    (dict(noise_multiplier=0.0), "noise_multiplier"), (dict(noise_multiplier=-1.0), "noise_multiplier"),
    (dict(noise_multiplier=math.inf), "noise_multiplier"), (dict(sample_rate=0.0), "sample_rate"),
    (dict(sample_rate=1.5), "sample_rate"), (dict(delta=1.0), "delta"), (dict(delta=0.0), "delta"),
    (dict(steps=-1), "steps"), (dict(steps=2.5), "steps"), (dict(conversion="exact"), "conversion"),
    (dict(orders=[1.0, 2.0]), "orders")])
def test_bad_input_is_refused(kwargs, match):
    run = dict(noise_multiplier=1.0, sample_rate=0.01, steps=10, delta=1e-5)
    with pytest.raises(ValueError, match=match):
        accounting.rdp_epsilon(**{**run, **kwargs})
    with pytest.raises(TypeError, match="noise_multiplier"):
        accounting.rdp_epsilon(**{**run, "noise_multiplier": "1"})
    with pytest.raises(ValueError, match="epsilon"):
        accounting.noise_multiplier_for(epsilon=0.0, delta=1e-5, sample_rate=0.01, steps=10)
    with pytest.raises(ValueError, match="steps"):
        accounting.prv_epsilon(noise_multiplier=1.0, sample_rate=0.01, steps=0, delta=1e-5)
