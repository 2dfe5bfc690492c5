"""Exact samplers for the discrete Laplace and discrete Gaussian distributions (Canonne, Kamath and Steinke 2020).

Floating-point noise leaks (Mironov 2012; Casacuberta et al. 2022): the set of outputs ``f(D) + Z`` that a
float sampler can reach depends on ``f(D)``. The fix the production libraries adopted is to release
*integers* (or a fixed grid) with noise drawn *exactly* from a discrete distribution, using only uniform
random integers and exact rational arithmetic: no floating-point number is ever formed. This module follows
the algorithms of Canonne, Kamath and Steinke (2020) line by line:

* :func:`bernoulli_exp`: a Bernoulli(exp(-γ)) coin for rational γ >= 0 (their Algorithm 1);
* :func:`discrete_laplace`: ``P[X = x] ∝ exp(-|x| / t)`` on the integers (Algorithm 2);
* :func:`discrete_gaussian`: ``P[X = x] ∝ exp(-x² / (2σ²))`` on the integers (Algorithm 3);
* :func:`discrete_laplace_pmf`, :func:`discrete_gaussian_pmf`: the exact probability mass functions.

Privacy, for an integer-valued query with sensitivity Δ (an integer): adding discrete Laplace noise of scale
``t = Δ/ε`` is ε-DP; adding discrete Gaussian noise of variance parameter σ² is ``Δ²/(2σ²)``-zCDP
(Canonne, Kamath and Steinke 2020, Thm 14), under whichever neighbouring relation Δ was computed for.

The random bits come from a ``torch.Generator`` (64-bit words drawn in blocks), so a seeded generator gives
reproducible draws. Python loops: fast enough for thousands of draws, not for millions.
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Optional, Union

import torch

from ._validate import check_generator

__all__ = ["bernoulli_exp", "discrete_laplace", "discrete_gaussian", "discrete_laplace_pmf",
           "discrete_gaussian_pmf"]

Rational = Union[int, float, Fraction]
_WORD = 62  # bits per random word taken from torch.randint (its upper bound must fit in int64)


class _Bits:
    """Uniform random integers below any n, from blocks of 62-bit words of a torch generator."""

    def __init__(self, generator: Optional[torch.Generator]) -> None:
        self.generator = generator
        self.buffer: list[int] = []

    def word(self) -> int:
        if not self.buffer:
            self.buffer = torch.randint(0, 2 ** _WORD, (1024,), generator=self.generator).tolist()
        return self.buffer.pop()

    def below(self, n: int) -> int:
        """Uniform on {0, ..., n-1}, by rejection (exact)."""
        bits = (n - 1).bit_length()
        while True:
            value, have = 0, 0
            while have < bits:
                value, have = (value << _WORD) | self.word(), have + _WORD
            value >>= have - bits
            if value < n:
                return value

    def bernoulli(self, p: Fraction) -> bool:
        """True with probability exactly p (rational in [0, 1])."""
        return self.below(p.denominator) < p.numerator


def _rational(name: str, value: Rational, *, positive: bool = True) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, (int, float, Fraction)):
        raise TypeError(f"{name} must be an int, float or Fraction, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    r = Fraction(value)  # a float is an exact binary rational: no rounding here
    if (r <= 0) if positive else (r < 0):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'}, got {value!r}")
    return r


def _bernoulli_exp(gamma: Fraction, bits: _Bits) -> bool:
    if gamma <= 1:
        # K = the first k with a failed Bernoulli(γ/k); P[K odd] = exp(-γ) (von Neumann's trick)
        k = 1
        while bits.bernoulli(gamma / k):
            k += 1
        return k % 2 == 1
    for _ in range(math.floor(gamma)):  # exp(-γ) = exp(-1)^floor(γ) * exp(-(γ - floor(γ)))
        if not _bernoulli_exp(Fraction(1), bits):
            return False
    return _bernoulli_exp(gamma - math.floor(gamma), bits)


def bernoulli_exp(gamma: Rational, *, size: int = 1, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """``size`` independent exact Bernoulli(exp(-γ)) coins (Canonne, Kamath and Steinke 2020, Algorithm 1).

    Args:
        gamma: rational γ >= 0 (a float is taken as the exact binary rational it stores).
        size: number of coins, >= 1.
        generator: source of randomness.

    Returns:
        bool tensor ``(size,)``.
    """
    check_generator(generator)
    g = _rational("gamma", gamma, positive=False)
    bits = _Bits(generator)
    return torch.tensor([_bernoulli_exp(g, bits) for _ in range(_size(size))], dtype=torch.bool)


def _size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be an int >= 1, got {size!r}")
    return size


def _discrete_laplace(scale: Fraction, bits: _Bits) -> int:
    s, t = scale.denominator, scale.numerator  # scale = t / s
    while True:
        u = bits.below(t)
        if not _bernoulli_exp(Fraction(u, t), bits):
            continue
        v = 0
        while _bernoulli_exp(Fraction(1), bits):
            v += 1
        y = (u + t * v) // s  # X = u + t v is geometric with ratio exp(-1/t); dividing by s gives scale t/s
        negative = bits.below(2) == 1
        if negative and y == 0:
            continue  # reject -0 so that 0 is not counted twice
        return -y if negative else y


def discrete_laplace(*, scale: Rational, size: int = 1, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Exact draws from the discrete Laplace distribution ``P[X = x] ∝ exp(-|x| / scale)``, x an integer
    (Canonne, Kamath and Steinke 2020, Algorithm 2).

    Privacy: adding it to an integer query of sensitivity Δ with ``scale = Δ/ε`` is ε-DP.

    Args:
        scale: t > 0, rational (a float is taken exactly).
        size: number of draws, >= 1.
        generator: source of randomness.

    Returns:
        int64 tensor ``(size,)``.
    """
    check_generator(generator)
    t = _rational("scale", scale)
    bits = _Bits(generator)
    return torch.tensor([_discrete_laplace(t, bits) for _ in range(_size(size))], dtype=torch.int64)


def discrete_gaussian(*, sigma_squared: Rational, size: int = 1,
                      generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Exact draws from the discrete Gaussian ``P[X = x] ∝ exp(-x² / (2σ²))``, x an integer (Canonne, Kamath
    and Steinke 2020, Algorithm 3): propose discrete Laplace with ``t = floor(σ) + 1``, accept with
    probability ``exp(-(|Y| - σ²/t)² / (2σ²))``.

    Privacy: adding it to an integer query of L2 sensitivity Δ is ``Δ²/(2σ²)``-zCDP (their Theorem 14).

    Args:
        sigma_squared: σ² > 0, rational (a float is taken exactly).
        size: number of draws, >= 1.
        generator: source of randomness.

    Returns:
        int64 tensor ``(size,)``.
    """
    check_generator(generator)
    s2 = _rational("sigma_squared", sigma_squared)
    t = math.isqrt(s2.numerator // s2.denominator)  # floor(σ) ...
    while (t + 1) ** 2 <= s2:
        t += 1
    t += 1  # ... + 1
    bits = _Bits(generator)
    out = []
    for _ in range(_size(size)):
        while True:
            y = _discrete_laplace(Fraction(t), bits)
            gamma = (abs(y) - s2 / t) ** 2 / (2 * s2)
            if _bernoulli_exp(gamma, bits):
                out.append(y)
                break
    return torch.tensor(out, dtype=torch.int64)


def discrete_laplace_pmf(x: torch.Tensor, *, scale: float) -> torch.Tensor:
    """``P[X = x] = (e^{1/t} - 1)/(e^{1/t} + 1) · e^{-|x|/t}`` for the discrete Laplace with scale t, float64."""
    t = float(_rational("scale", scale))
    x = torch.as_tensor(x, dtype=torch.float64)
    return math.tanh(1 / (2 * t)) * torch.exp(-x.abs() / t)


def discrete_gaussian_pmf(x: torch.Tensor, *, sigma_squared: float) -> torch.Tensor:
    """``P[X = x] = exp(-x²/(2σ²)) / Σ_y exp(-y²/(2σ²))`` for the discrete Gaussian, float64 (the normaliser is
    summed over ``|y| <= 40σ + 40``, where the rest is below double precision)."""
    s2 = float(_rational("sigma_squared", sigma_squared))
    reach = int(40 * math.sqrt(s2)) + 40
    y = torch.arange(-reach, reach + 1, dtype=torch.float64)
    norm = torch.exp(-y ** 2 / (2 * s2)).sum()
    x = torch.as_tensor(x, dtype=torch.float64)
    return torch.exp(-x ** 2 / (2 * s2)) / norm
