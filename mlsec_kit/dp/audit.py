"""Checking the definition empirically: a lower confidence bound on a mechanism's privacy loss from its samples.

Run a mechanism many times on two neighbouring datasets D and D' (neighbours under the relation the mechanism
claims), and compare how often its outputs fall in an event S. (ε, δ)-DP promises, for every S and both orders
of D and D',

    P[M(D) ∈ S] <= e^ε P[M(D') ∈ S] + δ,   so   ε >= log((P[M(D) ∈ S] - δ) / P[M(D') ∈ S]).

With a lower confidence bound p̂₀⁻ on the first probability and an upper one p̂₁⁺ on the second
(Clopper-Pearson), ``log((p̂₀⁻ - δ) / p̂₁⁺)`` is a lower confidence bound on ε: a value above the claimed ε
refutes the claim at that confidence (the idea behind auditing DP implementations, Jagielski, Ullman and
Oprea 2020). The bound is only valid if the events were fixed *before* looking at the samples they are
tested on:

* :func:`epsilon_lower_bound` tests events you give (Bonferroni-corrected over all of them and both
  directions), e.g. chosen from an earlier, independent run;
* :func:`audit_epsilon` does the split for you: it picks the most telling event on one part of the samples
  (held out) and tests only that event on the rest, so no correction for the search is needed;
* :func:`empirical_epsilon` is the largest observed log-ratio over bins: a point estimate, noisy both ways,
  not a bound.

Outputs are real numbers (reduce a vector output to a statistic first; any fixed statistic is post-processing,
so a bound for it is a bound for the mechanism). No audit can prove a mechanism private: the samples only see
the events they are tested on.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from scipy.stats import beta

from ._validate import check_delta, check_int

__all__ = ["bin_counts", "bin_events", "threshold_events", "event_counts", "empirical_epsilon",
           "epsilon_lower_bound", "audit_epsilon", "Audit"]


def _samples(name: str, x: torch.Tensor) -> np.ndarray:
    if not isinstance(x, torch.Tensor) or x.dim() != 1 or x.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-D tensor of mechanism outputs")
    out = x.detach().double().cpu().numpy()
    if np.isnan(out).any():
        raise ValueError(f"{name} must not contain NaN (an output NaN is itself an event: map it to a number)")
    return out


def _confidence(confidence: object) -> float:
    if isinstance(confidence, bool) or not isinstance(confidence, (float, int)) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be a float in (0, 1), got {confidence!r}")
    return float(confidence)


def _edges(edges: object) -> torch.Tensor:
    edges = torch.as_tensor(edges, dtype=torch.float64).cpu()
    if edges.dim() != 1 or edges.numel() == 0 or not bool((edges[1:] > edges[:-1]).all()):
        raise ValueError("edges must be a non-empty, strictly increasing 1-D tensor")
    return edges


def bin_counts(samples: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Counts of ``samples`` in the ``len(edges) + 1`` bins cut by the sorted ``edges`` (the two tails included).

    Shape:
        ``samples`` ``(n,)``, ``edges`` ``(B,)`` increasing -> ``(B + 1,)`` int64 summing to n.
    """
    edges = _edges(edges)
    idx = torch.bucketize(torch.from_numpy(_samples("samples", samples)), edges, right=True)
    return torch.bincount(idx, minlength=edges.numel() + 1)


def bin_events(edges: torch.Tensor) -> torch.Tensor:
    """The ``B + 1`` bins cut by ``B`` increasing ``edges`` as events ``[a, b)``: ``(-inf, e_0)``, ``[e_0, e_1)``,
    ..., ``[e_{B-1}, inf)``.

    Shape:
        ``(B,)`` -> ``(B + 1, 2)`` float64, one ``(a, b)`` per row.
    """
    edges = _edges(edges)
    inf = torch.tensor([math.inf], dtype=torch.float64)
    return torch.stack([torch.cat([-inf, edges]), torch.cat([edges, inf])], dim=1)


def threshold_events(thresholds: torch.Tensor) -> torch.Tensor:
    """Both tails at each threshold t, as events ``[t, inf)`` and ``(-inf, t)``.

    Shape:
        ``(T,)`` -> ``(2T, 2)`` float64.
    """
    t = torch.as_tensor(thresholds, dtype=torch.float64).cpu().reshape(-1)
    if t.numel() == 0 or bool(torch.isnan(t).any()):
        raise ValueError("thresholds must be a non-empty tensor of numbers")
    inf = torch.full_like(t, math.inf)
    return torch.cat([torch.stack([t, inf], 1), torch.stack([-inf, t], 1)])


def _check_events(events: object) -> np.ndarray:
    ev = torch.as_tensor(events, dtype=torch.float64).cpu()
    if ev.dim() != 2 or ev.shape[1] != 2 or ev.shape[0] == 0 or bool(torch.isnan(ev).any()) \
            or not bool((ev[:, 0] < ev[:, 1]).all()):
        raise ValueError("events must be a non-empty (m, 2) tensor of intervals [a, b) with a < b")
    return ev.numpy()


def _counts(sorted_samples: np.ndarray, events: np.ndarray) -> np.ndarray:
    below_b = np.searchsorted(sorted_samples, events[:, 1], side="left")
    below_b[np.isposinf(events[:, 1])] = len(sorted_samples)  # [a, inf) includes +inf outputs
    below_a = np.searchsorted(sorted_samples, events[:, 0], side="left")
    return below_b - below_a


def event_counts(samples: torch.Tensor, events: torch.Tensor) -> torch.Tensor:
    """How many ``samples`` fall in each event ``[a, b)`` (a row of ``events``; ``b = inf`` includes +inf).

    Shape:
        ``samples`` ``(n,)``, ``events`` ``(m, 2)`` -> ``(m,)`` int64.
    """
    return torch.from_numpy(_counts(np.sort(_samples("samples", samples)), _check_events(events)).astype(np.int64))


def _cp_lower(k: np.ndarray, n: int, a: float) -> np.ndarray:
    with np.errstate(all="ignore"):
        out = beta.ppf(a, k, n - k + 1)
    return np.where(k == 0, 0.0, out)


def _cp_upper(k: np.ndarray, n: int, a: float) -> np.ndarray:
    with np.errstate(all="ignore"):
        out = beta.ppf(1 - a, k + 1, n - k)
    return np.where(k == n, 1.0, out)


def _directional_bounds(c0: np.ndarray, n0: int, c1: np.ndarray, n1: int, delta: float, a: float) -> np.ndarray:
    """``(m, 2)``: column 0 bounds ε from ``P0 <= e^ε P1 + δ``, column 1 from ``P1 <= e^ε P0 + δ``; each
    one-sided Clopper-Pearson interval at level ``a``; ``-inf`` where the lower bound does not exceed δ."""
    out = np.full((len(c0), 2), -math.inf)
    for col, (ca, na, cb, nb) in enumerate(((c0, n0, c1, n1), (c1, n1, c0, n0))):
        lo, hi = _cp_lower(ca, na, a), _cp_upper(cb, nb, a)
        ok = lo > delta
        with np.errstate(divide="ignore"):
            out[ok, col] = np.log((lo[ok] - delta) / hi[ok])
    return out


def empirical_epsilon(samples_0: torch.Tensor, samples_1: torch.Tensor, *, edges: torch.Tensor,
                      min_count: int = 100) -> float:
    """The largest ``|log(p̂_0(S) / p̂_1(S))|`` over bins S that both sample sets hit at least ``min_count`` times.

    A point estimate for pure ε-DP (no δ), noisy in both directions: not a confidence bound.

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


def epsilon_lower_bound(samples_0: torch.Tensor, samples_1: torch.Tensor, *, edges: Optional[torch.Tensor] = None,
                        events: Optional[torch.Tensor] = None, delta: float = 0.0,
                        confidence: float = 0.95) -> float:
    """A lower confidence bound on ε of an (ε, δ)-DP claim, from samples on two neighbouring datasets.

    For every event S and both directions, ``log((p̂_a⁻(S) - δ) / p̂_b⁺(S))`` with one-sided Clopper-Pearson
    bounds, Bonferroni-corrected over all events and both directions (each of the ``4m`` one-sided intervals at
    level ``(1 - confidence) / (4m)``); the largest is returned. If the events were fixed independently of these
    samples, then with probability at least ``confidence`` a mechanism that is (ε, δ)-DP for these neighbours
    gets a bound <= ε. Choosing the events by looking at these same samples voids that: use
    :func:`audit_epsilon`, or events picked on another run.

    Args:
        samples_0: outputs of the mechanism on D, ``(n_0,)``.
        samples_1: outputs on a neighbour D', ``(n_1,)``.
        edges: bin edges; the events are the bins (see :func:`bin_events`). Give this or ``events``.
        events: ``(m, 2)`` intervals ``[a, b)`` (see :func:`threshold_events`, :func:`bin_events`).
        delta: the claim's δ, in [0, 1).
        confidence: in (0, 1).

    Returns:
        The bound, >= 0.
    """
    confidence = _confidence(confidence)
    delta = check_delta(delta, allow_zero=True)
    if (edges is None) == (events is None):
        raise ValueError("pass exactly one of edges (bins) or events (intervals)")
    ev = bin_events(edges).numpy() if events is None else _check_events(events)
    s0, s1 = np.sort(_samples("samples_0", samples_0)), np.sort(_samples("samples_1", samples_1))
    bounds = _directional_bounds(_counts(s0, ev), len(s0), _counts(s1, ev), len(s1), delta,
                                 (1 - confidence) / (4 * len(ev)))
    return max(0.0, float(bounds.max()))


@dataclass(frozen=True)
class Audit:
    """The result of :func:`audit_epsilon`.

    Attributes:
        epsilon: the lower confidence bound on ε from the test part (>= 0).
        event: the interval ``(a, b)`` chosen on the held-out part, or ``None`` if no event said anything.
        direction: 0 if the bound compares ``P[M(D) ∈ S]`` over ``P[M(D') ∈ S]``, 1 for the reverse.
        selection_epsilon: the (corrected) bound the event reached on the held-out part.
        n_test: the test sample sizes ``(n_0, n_1)``.
        confidence: the confidence of ``epsilon``.
        delta: the δ of the claim tested.
    """

    epsilon: float
    event: Optional[tuple[float, float]]
    direction: int
    selection_epsilon: float
    n_test: tuple[int, int]
    confidence: float
    delta: float

    def refutes(self, epsilon: float) -> bool:
        """Whether the audit refutes an (``epsilon``, δ)-DP claim at its confidence."""
        return self.epsilon > epsilon


def _candidate_events(pooled: np.ndarray, candidates: int) -> np.ndarray:
    values = np.unique(pooled)
    if len(values) <= candidates:  # discrete outputs: every value on its own, and both tails at each
        cuts = values
    else:
        cuts = np.unique(np.quantile(pooled, np.linspace(0, 1, candidates + 2)[1:-1]))
    cuts_t = torch.from_numpy(cuts)
    tails = threshold_events(cuts_t).numpy()
    if len(cuts) == 1:
        return tails
    inner = bin_events(cuts_t).numpy()[1:-1]  # [c_i, c_{i+1}): a single value when the outputs are discrete
    if len(values) <= candidates:
        last = np.array([[values[-1], np.nextafter(values[-1], math.inf)]])
        inner = np.concatenate([inner, last])
    return np.unique(np.concatenate([tails, inner]), axis=0)


def audit_epsilon(samples_0: torch.Tensor, samples_1: torch.Tensor, *, delta: float = 0.0,
                  confidence: float = 0.95, holdout: float = 0.5, candidates: int = 64) -> Audit:
    """Audit an (ε, δ)-DP claim: choose the event on held-out samples, bound ε on the others.

    The first ``holdout`` fraction of each sample set picks, among both tails at ``candidates`` quantiles of
    the pooled held-out outputs and the intervals between consecutive quantiles (every value and both tails
    at each, if the outputs take at most ``candidates`` values), the event and direction with the largest
    Bonferroni-corrected bound; the rest of the samples test that single event, so with probability at least
    ``confidence`` a mechanism that is (ε, δ)-DP for these neighbours gets ``Audit.epsilon <= ε``.

    The samples must be independent draws in an order that does not depend on their values (the split is by
    position).

    Args:
        samples_0: outputs of the mechanism on D, ``(n_0,)``.
        samples_1: outputs on a neighbour D', ``(n_1,)``.
        delta: the claim's δ, in [0, 1).
        confidence: in (0, 1).
        holdout: fraction of each sample set used to choose the event, in (0, 1).
        candidates: number of quantile cuts searched, >= 1.

    Returns:
        An :class:`Audit`; ``audit.refutes(eps)`` says whether the claim is refuted.
    """
    confidence = _confidence(confidence)
    delta = check_delta(delta, allow_zero=True)
    candidates = check_int("candidates", candidates)
    if isinstance(holdout, bool) or not isinstance(holdout, (float, int)) or not 0 < holdout < 1:
        raise ValueError(f"holdout must be a float in (0, 1), got {holdout!r}")
    s0, s1 = _samples("samples_0", samples_0), _samples("samples_1", samples_1)
    k0, k1 = int(holdout * len(s0)), int(holdout * len(s1))
    if min(k0, k1, len(s0) - k0, len(s1) - k1) < 1:
        raise ValueError("each sample set needs at least one sample in the held-out part and one in the test part")
    sel0, sel1 = np.sort(s0[:k0]), np.sort(s1[:k1])
    test0, test1 = np.sort(s0[k0:]), np.sort(s1[k1:])
    events = _candidate_events(np.concatenate([sel0, sel1]), candidates)
    scores = _directional_bounds(_counts(sel0, events), k0, _counts(sel1, events), k1, delta,
                                 (1 - confidence) / (4 * len(events)))
    n_test = (len(test0), len(test1))
    if not np.isfinite(scores).any():
        return Audit(0.0, None, 0, 0.0, n_test, confidence, delta)
    row, direction = np.unravel_index(int(np.argmax(scores)), scores.shape)
    event = events[row:row + 1]
    bound = _directional_bounds(_counts(test0, event), n_test[0], _counts(test1, event), n_test[1], delta,
                                (1 - confidence) / 2)[0, direction]
    return Audit(max(0.0, float(bound)), (float(event[0, 0]), float(event[0, 1])), int(direction),
                 max(0.0, float(scores[row, direction])), n_test, confidence, delta)
