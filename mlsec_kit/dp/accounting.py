"""Privacy accounting for DP-SGD: the Rényi DP of the Poisson-subsampled Gaussian, composed over the steps.

One step of DP-SGD releases a noisy sum of clipped per-example gradients over a Poisson sample (each record
joins the batch independently with probability ``q = sample_rate``): it is the subsampled Gaussian mechanism
with noise multiplier ``σ`` (noise std / clipping norm). Its RDP curve ``ρ_α`` (Mironov, Talwar and Zhang 2019)
adds up over ``T`` steps to ``T ρ_α``, and one conversion turns the curve into (ε, δ)-DP, minimising over a
grid of orders α. This is the "moments accountant" of Abadi et al. 2016 in the language of Mironov 2017.

* :func:`rdp_epsilon` / :func:`rdp_epsilon_with_order`: ε after ``steps`` steps (Opacus's ``RDPAccountant``);
* :func:`noise_multiplier_for`: the smallest σ (up to a tolerance) that keeps ε within a target;
* :func:`prv_epsilon`: a tighter, numerical accountant (Gopi, Lee and Wutschitz 2021) through Opacus's
  ``PRVAccountant``, for comparison;
* :class:`RDPAccountant`: a ledger of phases with different σ or q (a noise schedule, a change of batch size),
  composed order by order over the same functions.

**Two published numbers for one run.** TF Privacy's MNIST tutorial (σ = 1.1, batches of 256 out of 60,000, 60
epochs, δ = 1e-5, i.e. q = 256/60000 and 14,063 steps) published ε ≈ 3.0; Opacus's RDP accountant reports
ε ≈ 2.6 for the same run. Both use the same RDP curve and the same grid of orders (:data:`TF_PRIVACY_ORDERS`
equals :data:`DEFAULT_ORDERS`); they differ only in the RDP-to-(ε, δ) conversion. TF Privacy used Mironov's
``ε = ρ_α + ln(1/δ)/(α - 1)`` (``conversion="mironov"``, 3.008 at α = 8.8); Opacus uses Balle et al. 2020's
``ε = ρ_α + ln((α-1)/α) - (ln δ + ln α)/(α - 1)`` (``conversion="balle2020"``, 2.597 at α = 8.1), which is
never larger. The training run and its privacy are the same: only the proof got tighter. The grid matters
too, in the other direction: a coarser grid (integers only) can only report a larger ε, since the minimum is
over fewer orders. Neither number is the true ε of the run: the numerical accountant (:func:`prv_epsilon`) is
tighter still.

All functions assume add/remove neighbours (the relation Poisson sampling is analysed under) and sensitivity
1 after clipping (σ is the noise multiplier, not the noise std).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ._validate import check_delta, check_epsilon, check_int
from .renyi import DEFAULT_ORDERS, Orders, _orders, rdp_to_dp, subsampled_gaussian_rdp

__all__ = ["DEFAULT_ORDERS", "TF_PRIVACY_ORDERS", "CONVERSIONS", "rdp_curve", "rdp_epsilon",
           "rdp_epsilon_with_order", "noise_multiplier_for", "prv_epsilon", "RDPAccountant"]

#: the orders of TF Privacy's ``compute_dp_sgd_privacy`` (``[1 + x / 10 for x in 1..99] + list(range(12, 64))``),
#: the same grid as Opacus's ``RDPAccountant.DEFAULT_ALPHAS`` (:data:`DEFAULT_ORDERS`)
TF_PRIVACY_ORDERS = tuple([1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)))

#: the RDP-to-(ε, δ) conversions :func:`rdp_to_dp` offers
CONVERSIONS = ("balle2020", "mironov")

#: the largest noise multiplier :func:`noise_multiplier_for` tries (as Opacus's ``get_noise_multiplier``)
MAX_NOISE_MULTIPLIER = 1e6


def _noise_multiplier(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"noise_multiplier must be a real number, got {type(value).__name__}")
    value = float(value)
    if not (0 < value < math.inf):
        raise ValueError(f"noise_multiplier must be a finite number > 0 (noise std / clipping norm), got {value!r}")
    return value


def _sample_rate(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"sample_rate must be a real number, got {type(value).__name__}")
    value = float(value)
    if not (0 < value <= 1):
        raise ValueError(f"sample_rate must be in (0, 1] (the probability that a record joins a batch), "
                         f"got {value!r}")
    return value


def _conversion(value: object) -> str:
    if value not in CONVERSIONS:
        raise ValueError(f"conversion must be one of {CONVERSIONS}, got {value!r}")
    return str(value)


@functools.lru_cache(maxsize=512)
def _one_step_rdp(sigma: float, q: float, orders: tuple) -> np.ndarray:
    """The RDP curve of one step, read-only and cached: a training loop asks for the same curve after every epoch
    (only the number of steps changes), and the fractional orders' series costs tens of milliseconds."""
    curve = subsampled_gaussian_rdp(q=q, sigma=sigma, orders=np.array(orders, dtype=np.float64))
    curve.setflags(write=False)
    return curve


def rdp_curve(*, noise_multiplier: float, sample_rate: float, steps: int,
              orders: Optional[Orders] = None) -> np.ndarray:
    """The RDP curve of ``steps`` steps of the Poisson-subsampled Gaussian: ``steps · ρ_α`` at each order.

    Args:
        noise_multiplier: σ, noise std / clipping norm, > 0.
        sample_rate: q, in (0, 1].
        steps: number of steps, an int >= 0.
        orders: the orders α > 1; ``None`` takes :data:`DEFAULT_ORDERS`.

    Returns:
        float64 array, one value per order.
    """
    sigma, q = _noise_multiplier(noise_multiplier), _sample_rate(sample_rate)
    steps = check_int("steps", steps, minimum=0)
    a = _orders(DEFAULT_ORDERS if orders is None else orders)
    return steps * _one_step_rdp(sigma, q, tuple(a.tolist()))


def rdp_epsilon_with_order(*, noise_multiplier: float, sample_rate: float, steps: int, delta: float,
                           orders: Optional[Orders] = None, conversion: str = "balle2020") -> tuple[float, float]:
    """ε of DP-SGD after ``steps`` steps, and the order α at which the conversion attains it.

    ``ε = min_α conv(steps · ρ_α, α, δ)`` with ``ρ_α`` the RDP of the Poisson-subsampled Gaussian
    (:func:`~mlsec_kit.dp.renyi.subsampled_gaussian_rdp`, Mironov, Talwar and Zhang 2019) and ``conv`` one of
    :func:`~mlsec_kit.dp.renyi.rdp_to_dp`'s conversions. With the defaults this is Opacus's
    ``RDPAccountant().get_privacy_spent`` (tested to 1e-6 relative). When the best order is the first or last
    of the grid a wider grid could give a smaller ε (Opacus warns then; here the caller sees the order).

    Args:
        noise_multiplier: σ, noise std / clipping norm, > 0.
        sample_rate: q, in (0, 1].
        steps: number of steps, an int >= 0 (0 steps cost ε = 0).
        delta: in (0, 1).
        orders: the orders α > 1; ``None`` takes :data:`DEFAULT_ORDERS` (Opacus's grid).
        conversion: ``"balle2020"`` (Balle et al. 2020, Thm 21; Opacus) or ``"mironov"`` (Mironov 2017,
            Prop. 3; TF Privacy's tutorial-era accountant).

    Returns:
        ``(epsilon, order)``; ``(0.0, nan)`` for 0 steps.
    """
    delta = check_delta(delta)
    conversion = _conversion(conversion)
    curve = rdp_curve(noise_multiplier=noise_multiplier, sample_rate=sample_rate, steps=steps, orders=orders)
    if steps == 0:
        return 0.0, math.nan
    a = _orders(DEFAULT_ORDERS if orders is None else orders)
    return rdp_to_dp(orders=a, rdp=curve, delta=delta, method=conversion)


def rdp_epsilon(*, noise_multiplier: float, sample_rate: float, steps: int, delta: float,
                orders: Optional[Orders] = None, conversion: str = "balle2020") -> float:
    """ε of DP-SGD (Poisson sampling at rate ``sample_rate``, noise multiplier σ) after ``steps`` steps.

    The RDP of the subsampled Gaussian composed over the steps and converted to (ε, δ)-DP; see
    :func:`rdp_epsilon_with_order` for the arguments and the module docstring for why TF Privacy's tutorial
    published ε ≈ 3.0 where this function (and Opacus) report ≈ 2.6 for the same run.

    Returns:
        ε >= 0 (0.0 for 0 steps).
    """
    return rdp_epsilon_with_order(noise_multiplier=noise_multiplier, sample_rate=sample_rate, steps=steps,
                                  delta=delta, orders=orders, conversion=conversion)[0]


def _smallest_epsilon(delta: float, orders: np.ndarray, conversion: str) -> float:
    """The ε the conversion gives for an RDP curve of zeros: no σ, however large, gets below it on this grid."""
    return rdp_to_dp(orders=orders, rdp=np.zeros_like(orders), delta=delta, method=conversion)[0]


def noise_multiplier_for(*, epsilon: float, delta: float, sample_rate: float, steps: int,
                         orders: Optional[Orders] = None, conversion: str = "balle2020",
                         rtol: float = 1e-4) -> float:
    """The noise multiplier σ that spends at most ``epsilon`` in ``steps`` steps at rate ``sample_rate``.

    ε is decreasing in σ, so a doubling search brackets the answer and bisection narrows the bracket
    ``[lo, hi]`` (ε(lo) > target >= ε(hi)) until ``hi - lo <= rtol · hi``. The returned ``hi`` always
    satisfies ``rdp_epsilon(σ=hi, ...) <= epsilon`` (tested), and is within ``rtol`` of the smallest σ that
    does. Opacus's ``get_noise_multiplier`` does the same bisection but stops on a tolerance in ε (0.01), so its
    σ is slightly larger.

    Args:
        epsilon: the target ε, > 0.
        delta: in (0, 1).
        sample_rate: q, in (0, 1].
        steps: number of steps, an int >= 1.
        orders, conversion: as in :func:`rdp_epsilon`.
        rtol: relative width of the final bracket, in (0, 0.1].

    Returns:
        σ > 0.

    Raises:
        ValueError: when no σ <= 1e6 reaches ``epsilon`` (the grid of orders cannot certify so small an ε
            for this δ; the message gives the smallest reachable one).
    """
    epsilon, delta = check_epsilon(epsilon), check_delta(delta)
    q = _sample_rate(sample_rate)
    steps = check_int("steps", steps, minimum=1)
    conversion = _conversion(conversion)
    a = _orders(DEFAULT_ORDERS if orders is None else orders)
    if isinstance(rtol, bool) or not isinstance(rtol, (int, float)) or not 0 < rtol <= 0.1:
        raise ValueError(f"rtol must be in (0, 0.1], got {rtol!r}")
    floor = _smallest_epsilon(delta, a, conversion)
    if epsilon <= floor:
        raise ValueError(f"epsilon must exceed {floor:.4g}: with delta={delta:g} and these orders (largest "
                         f"{a.max():g}) no noise multiplier certifies less; got {epsilon!r}")

    def eps(sigma: float) -> float:
        return rdp_epsilon(noise_multiplier=sigma, sample_rate=q, steps=steps, delta=delta, orders=a,
                           conversion=conversion)

    lo, hi = 0.0, 1.0
    while eps(hi) > epsilon:
        lo, hi = hi, 2 * hi
        if hi > MAX_NOISE_MULTIPLIER:
            raise ValueError(f"epsilon={epsilon!r} is out of reach: even noise_multiplier={MAX_NOISE_MULTIPLIER:g} "
                             f"spends more")
    while hi - lo > rtol * hi:
        mid = (lo + hi) / 2
        if eps(mid) > epsilon:
            lo = mid
        else:
            hi = mid
    return hi


def prv_epsilon(*, noise_multiplier: float, sample_rate: float, steps: int, delta: float,
                eps_error: float = 0.01) -> float:
    """ε of the same DP-SGD run from the privacy-loss-random-variable accountant (Gopi, Lee and Wutschitz 2021).

    The privacy loss of one step is a random variable; composing ``steps`` steps convolves its distribution
    (numerically, with FFTs), and ε is read off the composed distribution for the given δ. No conversion
    through Rényi divergences is lost, so the result is close to the exact ε of the subsampled Gaussian; Opacus
    returns the upper end of its error interval (estimate + discretisation error ``eps_error``), so it remains
    an upper bound. It is smaller than :func:`rdp_epsilon` except for tiny ``steps`` where the error margin
    dominates.

    Args:
        noise_multiplier: σ, > 0.
        sample_rate: q, in (0, 1].
        steps: number of steps, an int >= 1.
        delta: in (0, 1).
        eps_error: the accountant's tolerated error on ε, > 0.

    Returns:
        ε (an upper bound).

    Raises:
        ImportError: when Opacus is not installed.
    """
    sigma, q = _noise_multiplier(noise_multiplier), _sample_rate(sample_rate)
    steps = check_int("steps", steps, minimum=1)
    delta = check_delta(delta)
    eps_error = check_epsilon(eps_error, name="eps_error")
    try:
        from opacus.accountants import PRVAccountant
    except ImportError as err:   # pragma: no cover - Opacus is a requirement of the book
        raise ImportError("prv_epsilon needs Opacus (pip install opacus); rdp_epsilon does not") from err
    accountant = PRVAccountant()
    accountant.history = [(sigma, q, steps)]
    with np.errstate(divide="ignore", invalid="ignore"):     # log(0) inside Opacus's PRV for q = 1
        return float(accountant.get_epsilon(delta=delta, eps_error=eps_error))


@dataclass
class RDPAccountant:
    """The privacy ledger of a DP-SGD run whose noise or sampling rate may change between phases.

    Each call of :meth:`step` records ``steps`` steps at ``(noise_multiplier, sample_rate)`` (consecutive calls
    with the same pair are merged, as in Opacus's ``RDPAccountant``); :meth:`epsilon` adds the phases' RDP
    curves order by order and converts once. Converting each phase separately and adding the ε's would be
    valid too, but much looser.

    Attributes:
        orders: the orders α > 1 (default :data:`DEFAULT_ORDERS`).
        history: ``[(noise_multiplier, sample_rate, steps), ...]``, one entry per phase.
    """

    orders: tuple = DEFAULT_ORDERS
    history: list = field(default_factory=list)

    def step(self, *, noise_multiplier: float, sample_rate: float, steps: int = 1) -> None:
        """Record ``steps`` steps (an int >= 1) with noise multiplier σ > 0 at sampling rate q in (0, 1]."""
        sigma, q = _noise_multiplier(noise_multiplier), _sample_rate(sample_rate)
        steps = check_int("steps", steps, minimum=1)
        if self.history and self.history[-1][:2] == (sigma, q):
            self.history[-1] = (sigma, q, self.history[-1][2] + steps)
        else:
            self.history.append((sigma, q, steps))

    def rdp(self) -> np.ndarray:
        """The composed RDP curve at :attr:`orders` (zeros before any step)."""
        a = _orders(self.orders)
        total = np.zeros_like(a)
        for sigma, q, steps in self.history:
            total += rdp_curve(noise_multiplier=sigma, sample_rate=q, steps=steps, orders=a)
        return total

    def epsilon_with_order(self, delta: float, *, conversion: str = "balle2020") -> tuple[float, float]:
        """``(ε, best order)`` spent so far at ``delta``; ``(0.0, nan)`` before any step."""
        delta, conversion = check_delta(delta), _conversion(conversion)
        if not self.history:
            return 0.0, math.nan
        return rdp_to_dp(orders=_orders(self.orders), rdp=self.rdp(), delta=delta, method=conversion)

    def epsilon(self, delta: float, *, conversion: str = "balle2020") -> float:
        """ε spent so far at ``delta`` (0.0 before any step)."""
        return self.epsilon_with_order(delta, conversion=conversion)[0]
