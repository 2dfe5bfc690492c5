"""The sparse vector technique: AboveThreshold (Dwork and Roth 2014, Algorithm 1; Dwork et al. 2009).

Asked a stream of queries, it reports only the *first* whose noisy answer clears a noisy threshold, and pays
for that single "above" answer, however many queries came before it below the threshold.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import torch

from ._validate import (Neighbours, TensorLike, as_float_tensor, check_epsilon, check_generator,
                        check_sensitivity)
from .mechanisms import _charge, laplace

if TYPE_CHECKING:
    from .budget import PrivacyBudget

__all__ = ["above_threshold"]


def above_threshold(values: TensorLike, *, threshold: float, sensitivity: float, epsilon: float,
                    neighbours: Optional[Neighbours] = None, budget: Optional["PrivacyBudget"] = None,
                    generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """AboveThreshold: the index of the first query with ``q_i + Lap(4Δ/ε) >= T + Lap(2Δ/ε)``, or -1 if none.

    Privacy: ε-DP under the relation ``neighbours`` for any number of queries (Dwork and Roth 2014,
    Theorem 3.23), when ``sensitivity`` bounds how much one record changes each query's answer under it.
    Only the index is released; the noisy answers are not. The queries may be chosen adaptively; here they
    are given at once and scanned in order, which is the same distribution.

    Args:
        values: the exact answers ``q_1, ..., q_K`` (last dimension); leading dimensions are independent runs.
        threshold: the public threshold T.
        sensitivity: Δ of every query, >= 0.
        epsilon: privacy budget, > 0.
        neighbours: the relation Δ is computed for (``None``: the caller vouches for it).
        budget: charged ``(epsilon, 0)`` under ``neighbours`` before drawing (once, whatever the batch shape).
        generator: source of randomness.

    Returns:
        int64 index in ``[0, K)``, or -1 when no query clears the threshold; on the values' device.

    Shape:
        ``values`` ``(*, K)`` -> ``(*)`` in ``[-1, K)``.
    """
    check_generator(generator)
    q = as_float_tensor(values, name="values")
    if q.dim() == 0 or q.shape[-1] == 0:
        raise ValueError(f"values must have a last dimension of at least one query, got shape {tuple(q.shape)}")
    sensitivity, epsilon = check_sensitivity(sensitivity), check_epsilon(epsilon)
    threshold = float(as_float_tensor(threshold, name="threshold"))
    _charge(budget, neighbours, epsilon, 0.0, "above_threshold")
    # rho ~ Lap(2Δ/ε) once per run, nu_i ~ Lap(4Δ/ε) per query: the budget splits ε/2 + ε/2
    noisy_threshold = laplace(torch.full(q.shape[:-1] + (1,), threshold, dtype=torch.float64, device=q.device),
                              sensitivity=2 * sensitivity, epsilon=epsilon, generator=generator)
    noisy = laplace(q.double(), sensitivity=4 * sensitivity, epsilon=epsilon, generator=generator)
    above = noisy >= noisy_threshold
    first = above.long().argmax(-1)  # argmax returns the first maximal index
    return torch.where(above.any(-1), first, torch.full_like(first, -1))
