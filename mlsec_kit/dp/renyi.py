"""Rényi differential privacy and zero-concentrated DP: the accounting that makes the Gaussian compose well.

A mechanism is (α, ρ_α)-Rényi DP (Mironov 2017) when the Rényi divergence of order α > 1 between its outputs
on any two neighbours is at most ρ_α; it is ρ-zCDP (Bun and Steinke 2016) when that holds with
``ρ_α = ρ α`` for every α. Both add up under composition (order by order), and convert to (ε, δ)-DP at the
end. The Gaussian mechanism's RDP curve is exactly linear in α, which is why k Gaussian releases cost
about ``√k`` times one, with no (e^ε - 1) penalty term as in advanced composition.

* :func:`gaussian_rdp`, :func:`laplace_rdp`: the RDP curves of the two noise mechanisms (closed forms);
* :func:`gaussian_zcdp`: the zCDP parameter ``ρ = Δ² / (2σ²)``;
* :func:`rdp_to_dp` and :func:`zcdp_to_dp`: conversions to (ε, δ)-DP;
* :func:`subsampled_gaussian_rdp`: the Poisson-subsampled Gaussian (the step of DP-SGD), at integer and
  fractional orders;
* :func:`amplify_by_subsampling`: privacy amplification by Poisson subsampling for (ε, δ)-DP.

The neighbouring relation is the one under which the sensitivity was computed; the subsampling results
(Poisson sampling) are for add/remove neighbours. The full accountant of DP-SGD builds on these in the
DP-SGD chapter.
"""
from __future__ import annotations

import math
from typing import Sequence, Union

import numpy as np
from scipy.special import gammaln, log_ndtr, logsumexp

from ._validate import check_delta, check_epsilon, check_sensitivity

__all__ = ["gaussian_rdp", "laplace_rdp", "gaussian_zcdp", "rdp_to_dp", "zcdp_to_dp",
           "subsampled_gaussian_rdp", "amplify_by_subsampling", "DEFAULT_ORDERS"]

#: the orders Opacus's RDP accountant uses by default (1 + k/10 for k < 100, then 12..63)
DEFAULT_ORDERS = tuple([1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)))

Orders = Union[float, Sequence[float], np.ndarray]


def _orders(orders: Orders) -> np.ndarray:
    a = np.atleast_1d(np.asarray(orders, dtype=np.float64))
    if a.ndim != 1 or a.size == 0 or not np.all(np.isfinite(a)) or not np.all(a > 1):
        raise ValueError(f"orders must be finite numbers > 1, got {orders!r}")
    return a


def _sigma(sigma: float) -> float:
    value = check_sensitivity(sigma, name="sigma")
    if value <= 0:
        raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}")
    return value


def gaussian_rdp(*, sigma: float, orders: Orders, sensitivity: float = 1.0) -> np.ndarray:
    """The Gaussian mechanism's Rényi DP at each order: ``ρ_α = α Δ² / (2σ²)`` (Mironov 2017, Prop. 7).

    Args:
        sigma: noise standard deviation, > 0.
        orders: the orders α, each > 1.
        sensitivity: L2 sensitivity Δ₂ of the query, >= 0.

    Returns:
        float64 array, one RDP value per order.
    """
    a, s, d = _orders(orders), _sigma(sigma), check_sensitivity(sensitivity)
    return a * d ** 2 / (2 * s ** 2)


def laplace_rdp(*, scale: float, orders: Orders, sensitivity: float = 1.0) -> np.ndarray:
    """The Laplace mechanism's Rényi DP at each order (Mironov 2017, Table II), with ``λ = scale / Δ₁``:
    ``ρ_α = log( α/(2α-1) e^{(α-1)/λ} + (α-1)/(2α-1) e^{-α/λ} ) / (α - 1)``.

    It never exceeds the pure-DP cost ``1/λ`` and tends to it as α grows.

    Args:
        scale: the Laplace scale b, > 0.
        orders: the orders α, each > 1.
        sensitivity: L1 sensitivity Δ₁, > 0.

    Returns:
        float64 array, one RDP value per order.
    """
    a, b, d = _orders(orders), _sigma(scale), check_sensitivity(sensitivity)
    if d == 0:
        return np.zeros_like(a)
    inv = d / b  # 1/λ
    terms = np.stack([np.log(a / (2 * a - 1)) + (a - 1) * inv, np.log((a - 1) / (2 * a - 1)) - a * inv])
    return logsumexp(terms, axis=0) / (a - 1)


def gaussian_zcdp(*, sigma: float, sensitivity: float = 1.0) -> float:
    """The Gaussian mechanism is ρ-zCDP with ``ρ = Δ² / (2σ²)`` (Bun and Steinke 2016, Prop. 1.6).

    Composition adds the ρ's.
    """
    return check_sensitivity(sensitivity) ** 2 / (2 * _sigma(sigma) ** 2)


def zcdp_to_dp(*, rho: float, delta: float) -> float:
    """ρ-zCDP implies (ε, δ)-DP with ``ε = ρ + 2√(ρ ln(1/δ))`` (Bun and Steinke 2016, Prop. 1.3).

    Args:
        rho: the zCDP parameter, >= 0.
        delta: in (0, 1).

    Returns:
        ε.
    """
    rho, delta = check_sensitivity(rho, name="rho"), check_delta(delta)
    return rho + 2 * math.sqrt(rho * math.log(1 / delta))


def rdp_to_dp(*, orders: Orders, rdp: Orders, delta: float, method: str = "balle2020") -> tuple[float, float]:
    """Convert an RDP curve to (ε, δ)-DP, minimising over the orders.

    ``"mironov"``: ``ε = ρ_α + ln(1/δ)/(α - 1)`` (Mironov 2017, Prop. 3). ``"balle2020"`` (the default, and
    what Opacus uses): ``ε = ρ_α + ln((α-1)/α) - (ln δ + ln α)/(α - 1)`` (Balle et al. 2020, Thm 21), which is
    never larger.

    Args:
        orders: the orders α, each > 1.
        rdp: the RDP value at each order, >= 0 (``inf`` allowed).
        delta: in (0, 1).
        method: ``"balle2020"`` or ``"mironov"``.

    Returns:
        ``(epsilon, best_order)``.
    """
    a = _orders(orders)
    r = np.atleast_1d(np.asarray(rdp, dtype=np.float64))
    if r.shape != a.shape or np.any(np.isnan(r)) or np.any(r < 0):
        raise ValueError(f"rdp must hold one value >= 0 per order ({a.size}), got {rdp!r}")
    delta = check_delta(delta)
    if method == "mironov":
        eps = r + math.log(1 / delta) / (a - 1)
    elif method == "balle2020":
        eps = r - (math.log(delta) + np.log(a)) / (a - 1) + np.log((a - 1) / a)
    else:
        raise ValueError(f"method must be 'balle2020' or 'mironov', got {method!r}")
    i = int(np.nanargmin(eps))
    return max(float(eps[i]), 0.0), float(a[i])


def _log_a_fractional(q: float, sigma: float, alpha: float, *, threshold: float = -36.0,
                      max_terms: int = 10_000_000) -> float:
    """``log A_α`` of the Poisson-subsampled Gaussian at a fractional order α (Mironov, Talwar and Zhang 2019,
    Sec. 3.3).

    ``A_α = E_{z~N(0,σ²)}[((1-q) + q e^{(2z-1)/(2σ²)})^α]``. The integral is split at
    ``z₀ = σ² ln(1/q - 1) + 1/2``, where the two summands are equal; on each side the binomial series in the
    smaller summand converges, which gives ``A_α = Σ_{i>=0} C(α, i) (s0_i + s1_i)`` with ``j = α - i``,
    ``s0_i = q^i (1-q)^j e^{(i²-i)/(2σ²)} Φ((z₀-i)/σ)`` and ``s1_i = q^j (1-q)^i e^{(j²-j)/(2σ²)} Φ((j-z₀)/σ)``
    (``Φ(x) = erfc(-x/√2)/2``). The generalised binomial coefficients ``C(α, i)`` alternate in sign once
    ``i > α``; terms decay polynomially, so they are summed in growing chunks (signed log-sum-exp) until a whole
    chunk is below ``e^threshold``.
    """
    z0 = sigma ** 2 * math.log(1 / q - 1) + 0.5
    log_q, log_1q = math.log(q), math.log1p(-q)
    fl = float(math.floor(alpha))
    frac = alpha - fl                                   # exact in floating point, in (0, 1)
    log_pi_over_sin = math.log(math.pi) - math.log(math.sin(math.pi * min(frac, 1 - frac)))  # accurate near 0, 1
    logs: list[np.ndarray] = []
    signs: list[np.ndarray] = []
    start, size = 0, 512
    while True:
        i = np.arange(start, start + size, dtype=np.float64)
        j = alpha - i
        # log |C(alpha, i)| = log Γ(α+1) - log Γ(i+1) - log |Γ(j+1)|, with j + 1 = frac + m written as an exact
        # fraction plus an exact integer m: for m <= 0 the reflection Γ(x)Γ(1-x) = π / sin(πx) gives
        # log |Γ(x)| = log π - log sin(π frac) - log Γ(1 - x) and sign (-1)^m, without evaluating Γ near its poles
        # (α - i rounds to an integer once i is large, which would make gammaln infinite)
        m = fl + 1 - i
        x = frac + m
        neg = m <= 0
        log_abs_gamma = np.where(neg, log_pi_over_sin - gammaln(np.where(neg, 1 - x, 1.0)),
                                 gammaln(np.maximum(x, frac)))
        sign = np.where(neg & (np.mod(-m, 2) == 1), -1.0, 1.0)                # sign of C(alpha, i)
        log_coef = gammaln(alpha + 1) - gammaln(i + 1) - log_abs_gamma
        log_s0 = log_coef + i * log_q + j * log_1q + (i * i - i) / (2 * sigma ** 2) + log_ndtr((z0 - i) / sigma)
        log_s1 = log_coef + j * log_q + i * log_1q + (j * j - j) / (2 * sigma ** 2) + log_ndtr((j - z0) / sigma)
        logs += [log_s0, log_s1]
        signs += [sign, sign]
        start += size
        if max(log_s0.max(), log_s1.max()) < threshold:
            break
        if start >= max_terms:
            raise RuntimeError(f"the series for A_alpha did not converge in {max_terms} terms "
                               f"(q={q}, sigma={sigma}, alpha={alpha})")
        size *= 2
    value, sgn = logsumexp(np.concatenate(logs), b=np.concatenate(signs), return_sign=True)
    if sgn <= 0:
        raise RuntimeError(f"A_alpha came out non-positive (q={q}, sigma={sigma}, alpha={alpha}): rounding")
    return float(value)


def subsampled_gaussian_rdp(*, q: float, sigma: float, orders: Orders) -> np.ndarray:
    """RDP of the Poisson-subsampled Gaussian mechanism (sensitivity 1, add/remove neighbours) at any orders
    α > 1: ``ρ_α = log A_α / (α - 1)`` with ``A_α = E_{z~N(0,σ²)}[((1-q) + q e^{(2z-1)/(2σ²)})^α]``
    (Mironov, Talwar and Zhang 2019, Sec. 3.3).

    At an integer order the binomial expansion is finite:
    ``A_α = Σ_{k=0}^{α} C(α, k) (1-q)^{α-k} q^k exp((k² - k) / (2σ²))``. At a fractional order it is an infinite
    series of Gaussian tail terms (see :func:`_log_a_fractional`), summed until its terms fall below ``e^-36``;
    these are the values Opacus's and TF Privacy's RDP accountants compute (tested against Opacus's
    ``compute_rdp``).

    Each record joins the batch independently with probability ``q``; one step of DP-SGD is this mechanism.

    Args:
        q: sampling rate in [0, 1].
        sigma: noise multiplier (noise std / sensitivity), > 0.
        orders: the orders α, each > 1 (integers or not).

    Returns:
        float64 array, one RDP value per order.
    """
    a, s = _orders(orders), _sigma(sigma)
    if isinstance(q, bool) or not isinstance(q, (int, float, np.floating)) or not 0 <= q <= 1:
        raise ValueError(f"q must be a sampling rate in [0, 1], got {q!r}")
    q = float(q)
    if q == 0:
        return np.zeros_like(a)
    if q == 1:
        return a / (2 * s ** 2)
    out = np.empty_like(a)
    for j, alpha in enumerate(a):
        if alpha != round(alpha):
            out[j] = _log_a_fractional(q, s, float(alpha)) / (alpha - 1)
            continue
        alpha = int(alpha)
        k = np.arange(alpha + 1, dtype=np.float64)
        log_binom = gammaln(alpha + 1) - gammaln(k + 1) - gammaln(alpha - k + 1)
        log_terms = log_binom + (alpha - k) * math.log1p(-q) + k * math.log(q) + (k * k - k) / (2 * s ** 2)
        out[j] = logsumexp(log_terms) / (alpha - 1)
    return out


def amplify_by_subsampling(*, epsilon: float, delta: float, q: float) -> tuple[float, float]:
    """Privacy amplification by Poisson subsampling: run an (ε, δ)-DP mechanism on a random subset where each
    record is kept independently with probability q; the whole is (ε', qδ)-DP with
    ``ε' = ln(1 + q (e^ε - 1))`` (Li, Qardaji and Su 2012; Balle, Barthe and Gaboardi 2018, Thm 8),
    for add/remove neighbours. For small ε, ε' ≈ qε.

    Args:
        epsilon: ε of the mechanism on the subsample, > 0.
        delta: its δ, in [0, 1).
        q: sampling rate, in (0, 1].

    Returns:
        ``(epsilon', delta')``.
    """
    epsilon, delta = check_epsilon(epsilon), check_delta(delta, allow_zero=True)
    if isinstance(q, bool) or not isinstance(q, (int, float, np.floating)) or not 0 < q <= 1:
        raise ValueError(f"q must be a sampling rate in (0, 1], got {q!r}")
    return math.log1p(q * math.expm1(epsilon)), q * delta
