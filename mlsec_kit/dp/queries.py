"""Clipped sums, means and histograms: queries whose sensitivity is known because the data are clipped.

Two notions of *neighbouring datasets* appear in the literature, and the sensitivity depends on which:

* ``"add_remove"``: D' is D with one record added or removed (the size n is itself private);
* ``"replace"``: D' is D with one record replaced by another (n is public).

Clipping every value to ``[lower, upper]`` is what bounds the sensitivity; the bounds must be chosen
without looking at the data, or choosing them leaks too.

| query | ``add_remove`` | ``replace`` |
| --- | --- | --- |
| clipped sum | ``max(|lower|, |upper|)`` | ``upper - lower`` |
| clipped mean (n public) | — | ``(upper - lower) / n`` |
| histogram (L1) | 1 | 2 |
"""
from __future__ import annotations

from typing import Literal, Optional

import torch

from ._validate import TensorLike, check_bounds, check_int
from .mechanisms import laplace

__all__ = ["NEIGHBOURS", "clip", "sum_sensitivity", "mean_sensitivity", "histogram_sensitivity",
           "clipped_sum", "clipped_mean", "histogram", "private_sum", "private_mean", "private_histogram"]

NEIGHBOURS = ("add_remove", "replace")
Neighbours = Literal["add_remove", "replace"]


def _check_neighbours(neighbours: str) -> str:
    if neighbours not in NEIGHBOURS:
        raise ValueError(f"neighbours must be one of {NEIGHBOURS}, got {neighbours!r}")
    return neighbours


def _check_data(x: TensorLike) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() != 1:
        raise ValueError(f"x must be a 1-D torch tensor of values, got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    return x if x.is_floating_point() else x.double()


def clip(x: torch.Tensor, *, lower: float, upper: float) -> torch.Tensor:
    """``x`` with every value clamped to ``[lower, upper]`` (a new tensor)."""
    lower, upper = check_bounds(lower, upper)
    return _check_data(x).clamp(lower, upper)


def sum_sensitivity(*, lower: float, upper: float, neighbours: Neighbours = "add_remove") -> float:
    """L1 sensitivity of the sum of values clipped to ``[lower, upper]``.

    Adding or removing one record changes the sum by at most ``max(|lower|, |upper|)``; replacing one
    changes it by at most ``upper - lower``.
    """
    lower, upper = check_bounds(lower, upper)
    if _check_neighbours(neighbours) == "replace":
        return upper - lower
    return max(abs(lower), abs(upper))


def mean_sensitivity(*, lower: float, upper: float, n: int) -> float:
    """L1 sensitivity ``(upper - lower) / n`` of the mean of ``n`` clipped values, for replace-one neighbours
    (n public). Under add/remove the mean has no useful bound; release a noisy sum and a noisy count instead."""
    lower, upper = check_bounds(lower, upper)
    return (upper - lower) / check_int("n", n)


def histogram_sensitivity(*, neighbours: Neighbours = "add_remove") -> float:
    """L1 sensitivity of a histogram: one record moves one count by 1 (add/remove) or two counts (replace)."""
    return 2.0 if _check_neighbours(neighbours) == "replace" else 1.0


def clipped_sum(x: torch.Tensor, *, lower: float, upper: float) -> torch.Tensor:
    """Exact sum of ``x`` clipped to ``[lower, upper]``. Shape: ``(n,)`` -> ``()``."""
    return clip(x, lower=lower, upper=upper).sum()


def clipped_mean(x: torch.Tensor, *, lower: float, upper: float) -> torch.Tensor:
    """Exact mean of ``x`` clipped to ``[lower, upper]``. Shape: ``(n,)`` -> ``()``, n >= 1."""
    x = clip(x, lower=lower, upper=upper)
    if x.numel() == 0:
        raise ValueError("x must hold at least one value")
    return x.mean()


def histogram(x: torch.Tensor, *, bins: int, lower: float, upper: float) -> torch.Tensor:
    """Exact counts of ``x`` in ``bins`` equal-width bins over ``[lower, upper]``; values outside are clipped
    into the first or last bin (so every record is counted once). Shape: ``(n,)`` -> ``(bins,)`` float64."""
    lower, upper = check_bounds(lower, upper)
    bins = check_int("bins", bins)
    x = _check_data(x).double()
    idx = ((x - lower) / (upper - lower) * bins).floor().clamp(0, bins - 1).long()
    return torch.bincount(idx, minlength=bins).double()


def private_sum(x: torch.Tensor, *, lower: float, upper: float, epsilon: float,
                neighbours: Neighbours = "add_remove", generator: Optional[torch.Generator] = None
                ) -> torch.Tensor:
    """The Laplace mechanism on the clipped sum.

    Privacy: ε-DP under the chosen ``neighbours`` relation (sensitivity from :func:`sum_sensitivity`).

    Shape:
        ``x`` ``(n,)`` -> ``()``.
    """
    sens = sum_sensitivity(lower=lower, upper=upper, neighbours=neighbours)
    return laplace(clipped_sum(x, lower=lower, upper=upper), sensitivity=sens, epsilon=epsilon, generator=generator)


def private_mean(x: torch.Tensor, *, lower: float, upper: float, epsilon: float,
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """The Laplace mechanism on the clipped mean, ``mean(clip(x)) + Lap((upper - lower) / (n ε))``.

    Privacy: ε-DP for replace-one neighbours (the size n is public). The result is not clipped back into
    the bounds, so it stays unbiased for data inside them.

    Shape:
        ``x`` ``(n,)`` -> ``()``.
    """
    sens = mean_sensitivity(lower=lower, upper=upper, n=_check_data(x).numel())
    return laplace(clipped_mean(x, lower=lower, upper=upper), sensitivity=sens, epsilon=epsilon,
                   generator=generator)


def private_histogram(x: torch.Tensor, *, bins: int, lower: float, upper: float, epsilon: float,
                      neighbours: Neighbours = "add_remove", generator: Optional[torch.Generator] = None
                      ) -> torch.Tensor:
    """The Laplace mechanism on every count of a histogram at once: ``Lap(Δ/ε)`` per bin, Δ from
    :func:`histogram_sensitivity`. The bins partition the data, so the whole histogram costs ε, not ``bins · ε``
    (parallel composition).

    Privacy: ε-DP under the chosen ``neighbours`` relation.

    Shape:
        ``x`` ``(n,)`` -> ``(bins,)`` float64 (counts can come out negative or fractional).
    """
    counts = histogram(x, bins=bins, lower=lower, upper=upper)
    return laplace(counts, sensitivity=histogram_sensitivity(neighbours=neighbours), epsilon=epsilon,
                   generator=generator)
