"""Clipped sums, means and histograms: queries whose sensitivity is known because the data are clipped.

**Neighbouring relation.** Every query here is private with respect to a relation the analyst declares with
``neighbours`` (there is no default: one analysis, one relation, stated once and carried everywhere):

* ``"add_remove"``: D' is D with one record added or removed (the size n is itself private);
* ``"replace"``: D' is D with one record replaced by another (n is public).

Clipping every value to ``[lower, upper]`` is what bounds the sensitivity; the bounds must be chosen
without looking at the data, or choosing them leaks too (and clipping biases the answer towards the bounds).

| query | ``add_remove`` | ``replace`` |
| --- | --- | --- |
| clipped sum | ``max(|lower|, |upper|)`` | ``upper - lower`` |
| clipped mean | ``(upper - lower) / 2`` (n >= 1; useless: release a noisy sum and count) | ``(upper - lower) / n`` |
| histogram (L1) | 1 | 2 (a replaced record leaves one bin and enters another) |

**NaN policy.** A NaN record is mapped to ``lower`` before clipping (into the first bin of a histogram): a fixed
value inside the bounds, so a NaN is one more possible record value, the sensitivity is unchanged, and nothing
about the data (not even whether it holds a NaN) changes whether a release is made. ``±inf`` clip to the bounds.
Refusing NaN with an error would instead reveal, by the error, that some record is NaN.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import torch

from ._validate import NEIGHBOURS, Neighbours, TensorLike, check_bounds, check_int, check_neighbours
from .mechanisms import laplace

if TYPE_CHECKING:
    from .budget import PrivacyBudget

__all__ = ["NEIGHBOURS", "clip", "sum_sensitivity", "mean_sensitivity", "histogram_sensitivity",
           "clipped_sum", "clipped_mean", "histogram", "private_sum", "private_mean", "private_histogram"]


def _check_data(x: TensorLike) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() != 1:
        raise ValueError(f"x must be a 1-D torch tensor of values, got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    return x if x.is_floating_point() else x.double()


def clip(x: torch.Tensor, *, lower: float, upper: float) -> torch.Tensor:
    """``x`` with NaN mapped to ``lower`` and every value clamped to ``[lower, upper]`` (a new tensor).

    Shape: ``(n,)`` -> ``(n,)``. Not a release: it is the step that bounds the sensitivity of the queries below.
    """
    lower, upper = check_bounds(lower, upper)
    x = _check_data(x)
    return torch.nan_to_num(x, nan=lower).clamp(lower, upper)


def sum_sensitivity(*, lower: float, upper: float, neighbours: Neighbours) -> float:
    """L1 sensitivity of the sum of values clipped to ``[lower, upper]`` under the declared relation.

    ``"add_remove"``: one record added or removed changes the sum by at most ``max(|lower|, |upper|)``;
    ``"replace"``: one record replaced changes it by at most ``upper - lower``.
    """
    lower, upper = check_bounds(lower, upper)
    if check_neighbours(neighbours) == "replace":
        return upper - lower
    return max(abs(lower), abs(upper))


def mean_sensitivity(*, lower: float, upper: float, n: int, neighbours: Neighbours) -> float:
    """L1 sensitivity of the mean of ``n`` values clipped to ``[lower, upper]`` under the declared relation.

    ``"replace"``: ``(upper - lower) / n`` (n is public). ``"add_remove"``: n is private and the worst pair is a
    one-record dataset and a two-record one, so the bound is ``(upper - lower) / 2`` whatever ``n``: valid but
    useless; release a noisy sum and a noisy count instead.
    """
    lower, upper = check_bounds(lower, upper)
    n = check_int("n", n)
    if check_neighbours(neighbours) == "add_remove":
        return (upper - lower) / 2
    return (upper - lower) / n


def histogram_sensitivity(*, neighbours: Neighbours) -> float:
    """L1 sensitivity of a histogram: one record added or removed moves one count by 1 (``"add_remove"``);
    one record replaced can move out of one bin and into another, two counts (``"replace"``)."""
    return 2.0 if check_neighbours(neighbours) == "replace" else 1.0


def clipped_sum(x: torch.Tensor, *, lower: float, upper: float) -> torch.Tensor:
    """Exact sum of ``x`` clipped to ``[lower, upper]`` (NaN counts as ``lower``). Shape: ``(n,)`` -> ``()``.

    Privacy: none, it is the exact answer; release it through :func:`private_sum`."""
    return clip(x, lower=lower, upper=upper).sum()


def clipped_mean(x: torch.Tensor, *, lower: float, upper: float) -> torch.Tensor:
    """Exact mean of ``x`` clipped to ``[lower, upper]`` (NaN counts as ``lower``). Shape: ``(n,)`` -> ``()``,
    n >= 1.

    Privacy: none, it is the exact answer; release it through :func:`private_mean`."""
    x = clip(x, lower=lower, upper=upper)
    if x.numel() == 0:
        raise ValueError("x must hold at least one value")
    return x.mean()


def histogram(x: torch.Tensor, *, bins: int, lower: float, upper: float) -> torch.Tensor:
    """Exact counts of ``x`` in ``bins`` equal-width bins over ``[lower, upper]``; values outside are clipped
    into the first or last bin and NaN counts in the first (so every record is counted once).
    Shape: ``(n,)`` -> ``(bins,)`` float64.

    Privacy: none, it is the exact answer; release it through :func:`private_histogram`."""
    lower, upper = check_bounds(lower, upper)
    bins = check_int("bins", bins)
    x = clip(x, lower=lower, upper=upper).double()
    idx = ((x - lower) / (upper - lower) * bins).floor().clamp(0, bins - 1).long()
    return torch.bincount(idx, minlength=bins).double()


def private_sum(x: torch.Tensor, *, lower: float, upper: float, epsilon: float, neighbours: Neighbours,
                budget: Optional["PrivacyBudget"] = None, generator: Optional[torch.Generator] = None
                ) -> torch.Tensor:
    """The Laplace mechanism on the clipped sum: ``sum(clip(x)) + Lap(Δ/ε)``, Δ from :func:`sum_sensitivity`.

    Privacy: ε-DP under the declared ``neighbours`` relation. With ``budget``, ε is charged to it first
    (under the same relation; nothing is released if it does not fit).

    Shape:
        ``x`` ``(n,)`` -> ``()``.
    """
    sens = sum_sensitivity(lower=lower, upper=upper, neighbours=neighbours)
    return laplace(clipped_sum(x, lower=lower, upper=upper), sensitivity=sens, epsilon=epsilon,
                   neighbours=neighbours, budget=budget, generator=generator)


def private_mean(x: torch.Tensor, *, lower: float, upper: float, epsilon: float, neighbours: Neighbours,
                 budget: Optional["PrivacyBudget"] = None, generator: Optional[torch.Generator] = None
                 ) -> torch.Tensor:
    """The Laplace mechanism on the clipped mean, ``mean(clip(x)) + Lap(Δ/ε)``, Δ from :func:`mean_sensitivity`
    (``(upper - lower) / n`` for ``"replace"``, where n is public).

    Privacy: ε-DP under the declared ``neighbours`` relation. With ``budget``, ε is charged to it first.
    The result is not clipped back into the bounds, so it stays unbiased for data inside them.

    Shape:
        ``x`` ``(n,)`` -> ``()``.
    """
    sens = mean_sensitivity(lower=lower, upper=upper, n=_check_data(x).numel(), neighbours=neighbours)
    return laplace(clipped_mean(x, lower=lower, upper=upper), sensitivity=sens, epsilon=epsilon,
                   neighbours=neighbours, budget=budget, generator=generator)


def private_histogram(x: torch.Tensor, *, bins: int, lower: float, upper: float, epsilon: float,
                      neighbours: Neighbours, budget: Optional["PrivacyBudget"] = None,
                      generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """The Laplace mechanism on every count of a histogram at once: ``Lap(Δ/ε)`` per bin, Δ from
    :func:`histogram_sensitivity` (1 under add/remove, 2 under replace-one). The bins partition the data, so
    the whole histogram costs ε, not ``bins · ε``.

    Privacy: ε-DP under the declared ``neighbours`` relation. With ``budget``, ε is charged to it first.

    Shape:
        ``x`` ``(n,)`` -> ``(bins,)`` float64 (counts can come out negative or fractional).
    """
    counts = histogram(x, bins=bins, lower=lower, upper=upper)
    return laplace(counts, sensitivity=histogram_sensitivity(neighbours=neighbours), epsilon=epsilon,
                   neighbours=neighbours, budget=budget, generator=generator)
