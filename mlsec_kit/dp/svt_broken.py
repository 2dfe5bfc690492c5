"""BROKEN ON PURPOSE: published variants of the sparse vector technique that are NOT differentially private.

Do not use these for anything but teaching. Lyu, Su and Li (2017) collected variants of the sparse vector
technique from the literature, each claimed ε-DP, and showed that several are not private at all. Two are
implemented here so that the chapter can show the empirical audit catching them, next to the correct
:func:`~mlsec_kit.dp.svt.above_threshold`, which passes the same audit:

* :func:`svt_without_query_noise` (a variant of their Algorithm 5, from Stoddard, Chen and Machanavajjhala
  2014, that stops at the first ⊤): noise on the threshold only, none on the queries. Algorithm 5 itself
  answers ⊤ or ⊥ for every query without stopping; the index returned here is the position of its first ⊤,
  a post-processing of its output, so this variant's failure is Algorithm 5's too. Its true privacy loss is
  infinite: an output can be possible on one dataset and impossible on its neighbour.
* :func:`svt_without_cutoff` (their Algorithm 6, from Chen et al. 2015): noise on both, but it never stops:
  it answers above/below for *every* query. Its privacy loss grows with the number of queries.

The neighbouring relation is the one under which each query's sensitivity was computed, as for
AboveThreshold; the claimed guarantee (ε-DP) is false under either.
"""
from __future__ import annotations

from typing import Optional

import torch

from ._validate import TensorLike, as_float_tensor, check_epsilon, check_generator, check_sensitivity
from .mechanisms import laplace

__all__ = ["svt_without_query_noise", "svt_without_cutoff"]


def _inputs(values: TensorLike, sensitivity: float, epsilon: float, threshold: float):
    q = as_float_tensor(values, name="values")
    if q.dim() == 0 or q.shape[-1] == 0:
        raise ValueError(f"values must have a last dimension of at least one query, got shape {tuple(q.shape)}")
    return (q.double(), check_sensitivity(sensitivity), check_epsilon(epsilon),
            float(as_float_tensor(threshold, name="threshold")))


def svt_without_query_noise(values: TensorLike, *, threshold: float, sensitivity: float, epsilon: float,
                            generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """BROKEN (not DP): the index of the first query with ``q_i >= T + Lap(2Δ/ε)``, or -1 if none.

    A variant of Lyu, Su and Li (2017), Algorithm 5 (claimed ε-DP), that stops at the first ⊤: Algorithm 5
    answers every query; the first ⊤ of its answers is this output. In truth ∞-DP. With ``q = (0, 1)`` on D and
    ``(1, 0)`` on D' and T = 0.5, the answer "the second query" has positive probability on D and zero on D'.

    Shape:
        ``values`` ``(*, K)`` -> ``(*)`` in ``[-1, K)``.
    """
    check_generator(generator)
    q, sensitivity, epsilon, threshold = _inputs(values, sensitivity, epsilon, threshold)
    noisy_threshold = laplace(torch.full(q.shape[:-1] + (1,), threshold, dtype=torch.float64, device=q.device),
                              sensitivity=2 * sensitivity, epsilon=epsilon, generator=generator)
    above = q >= noisy_threshold  # the bug: the queries carry no noise of their own
    first = above.long().argmax(-1)
    return torch.where(above.any(-1), first, torch.full_like(first, -1))


def svt_without_cutoff(values: TensorLike, *, threshold: float, sensitivity: float, epsilon: float,
                       generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """BROKEN (not DP): above/below for *every* query, ``q_i + Lap(2Δ/ε) >= T + Lap(2Δ/ε)``, never stopping.

    Claimed ε-DP (Lyu, Su and Li 2017, Algorithm 6); in truth its privacy loss grows with the number of
    queries, because every "above" answer reveals something and none is paid for.

    Shape:
        ``values`` ``(*, K)`` -> bool ``(*, K)``.
    """
    check_generator(generator)
    q, sensitivity, epsilon, threshold = _inputs(values, sensitivity, epsilon, threshold)
    noisy_threshold = laplace(torch.full(q.shape[:-1] + (1,), threshold, dtype=torch.float64, device=q.device),
                              sensitivity=2 * sensitivity, epsilon=epsilon, generator=generator)
    noisy = laplace(q, sensitivity=2 * sensitivity, epsilon=epsilon, generator=generator)
    return noisy >= noisy_threshold  # the bug: no cutoff after the first "above"
