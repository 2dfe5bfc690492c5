"""Checking the definition empirically: estimate a mechanism's privacy loss from its samples.

Run a mechanism many times on two neighbouring datasets D and D', split the output space into bins, and
compare how often each bin is hit. ε-DP promises ``P[M(D) ∈ S] <= e^ε P[M(D') ∈ S]`` for every set S, so
every bin's log-ratio must stay below ε. Two estimates:

* :func:`empirical_epsilon`, the largest observed log-ratio: a point estimate, noisy in both directions;
* :func:`epsilon_lower_bound`, the same with Clopper-Pearson confidence intervals: with probability at least
  ``confidence`` it does not exceed the true privacy loss, so a value above the claimed ε *proves* the
  claim false (the idea behind auditing DP implementations, Jagielski, Ullman and Oprea 2020).

Neither can prove a mechanism private: the samples only see the events they were binned into.
"""
from __future__ import annotations

import math

import torch
from scipy.stats import beta

from ._validate import check_int

__all__ = ["bin_counts", "empirical_epsilon", "epsilon_lower_bound"]


def _samples(name: str, x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() != 1 or x.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-D tensor of mechanism outputs")
    return x.detach().double().cpu()


def bin_counts(samples: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Counts of ``samples`` in the ``len(edges) + 1`` bins cut by the sorted ``edges`` (the two tails included).

    Shape:
        ``samples`` ``(n,)``, ``edges`` ``(B,)`` increasing -> ``(B + 1,)`` int64 summing to n.
    """
    edges = torch.as_tensor(edges, dtype=torch.float64).cpu()
    if edges.dim() != 1 or edges.numel() == 0 or not bool((edges[1:] > edges[:-1]).all()):
        raise ValueError("edges must be a non-empty, strictly increasing 1-D tensor")
    idx = torch.bucketize(_samples("samples", samples), edges, right=True)
    return torch.bincount(idx, minlength=edges.numel() + 1)


def empirical_epsilon(samples_0: torch.Tensor, samples_1: torch.Tensor, *, edges: torch.Tensor,
                      min_count: int = 100) -> float:
    """The largest ``|log(p̂_0(S) / p̂_1(S))|`` over bins S that both sample sets hit at least ``min_count`` times.

    Args:
        samples_0: outputs of the mechanism on D, ``(n_0,)``.
        samples_1: outputs on a neighbour D', ``(n_1,)``.
        edges: bin edges (see :func:`bin_counts`).
        min_count: bins with fewer hits in either set are ignored (their ratios are mostly noise).

    Returns:
        The estimate (0.0 when no bin qualifies).
    """
    min_count = check_int("min_count", min_count)
    c0, c1 = bin_counts(samples_0, edges).double(), bin_counts(samples_1, edges).double()
    keep = (c0 >= min_count) & (c1 >= min_count)
    if not bool(keep.any()):
        return 0.0
    ratio = (c0[keep] / c0.sum()) / (c1[keep] / c1.sum())
    return float(ratio.log().abs().max())


def epsilon_lower_bound(samples_0: torch.Tensor, samples_1: torch.Tensor, *, edges: torch.Tensor,
                        confidence: float = 0.95) -> float:
    """A lower confidence bound on the privacy loss ε from samples on two neighbouring datasets.

    For each bin, Clopper-Pearson intervals on both hit probabilities (Bonferroni-corrected over all bins),
    then ``max(log(lower_0 / upper_1), log(lower_1 / upper_0))`` over bins. With probability at least
    ``confidence`` the true ε of the mechanism is at least the value returned.

    Args:
        samples_0: outputs of the mechanism on D, ``(n_0,)``.
        samples_1: outputs on a neighbour D', ``(n_1,)``.
        edges: bin edges (see :func:`bin_counts`).
        confidence: in (0, 1).

    Returns:
        The bound, >= 0.
    """
    if not isinstance(confidence, float) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be a float in (0, 1), got {confidence!r}")
    c0, c1 = bin_counts(samples_0, edges).numpy(), bin_counts(samples_1, edges).numpy()
    alpha = (1 - confidence) / (2 * len(c0))  # every interval holds at once with probability >= confidence

    def interval(k, n):
        lo = beta.ppf(alpha / 2, k, n - k + 1)
        hi = beta.ppf(1 - alpha / 2, k + 1, n - k)
        lo[k == 0], hi[k == n] = 0.0, 1.0
        return lo, hi

    lo0, hi0 = interval(c0, c0.sum())
    lo1, hi1 = interval(c1, c1.sum())
    best = 0.0
    for lo, hi in ((lo0, hi1), (lo1, hi0)):
        ok = lo > 0
        if ok.any():
            best = max(best, float(max(math.log(a / b) for a, b in zip(lo[ok], hi[ok]))))
    return max(best, 0.0)
