"""Exposure of a canary (Carlini et al. 2019, "The Secret Sharer", Definitions 3-4 and Section 4.3).

For a canary ``template`` with secret s drawn uniformly from a space R, rank the candidates r ∈ R by the
log-perplexity the model gives them (here: of the secret's tokens, given the template's prefix, which is the
only part that differs between candidates: :func:`mlsec_kit.lm.log_perplexity` with ``start = len(prefix)``);
the rank of s counts from 1 (the likeliest candidate has rank 1). Then

    exposure(s) = log2 |R| − log2 rank(s),

between 0 (s is the least likely candidate) and log2 |R| (the likeliest: the model would emit it first). A secret
the model never saw has a uniformly random rank, so its exposure is about 1 (rank ≈ |R| / 2; mean 1/ln 2 ≈ 1.44).

* ``method="exact"`` scores every candidate. Over the whole space of ``digits``-digit secrets the scores are
  found digit by digit (one forward pass per prefix of the secret: ``(10**digits − 1) / 9`` rows instead of
  ``10**digits``), so 5 digits take seconds on a CPU.
* ``method="estimate"`` scores a random sample of candidates, fits a skew-normal distribution to their
  log-perplexities (the paper's Section 4.3: the distribution is close to skew-normal) and reads
  ``exposure ≈ −log2 F(Px(s))``, F the fitted CDF: the tail probability below the secret's log-perplexity, i.e.
  the fraction of R ranked above it. It can exceed log2 |R| when the secret sits beyond every sampled candidate.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from ..dp._validate import check_generator, check_int
from .corpus import Canary, SecretSpace, secret_space
from .scoring import _check_model, log_perplexity, next_token_logprobs
from .tokenizer import BOS

__all__ = ["exposure", "candidate_scores", "exposure_from_rank", "rank_of", "METHODS", "EXACT_LIMIT"]

METHODS = ("exact", "estimate")
#: the largest candidate set ``method="exact"`` scores (10**6 takes about a minute on one CPU core)
EXACT_LIMIT = 10 ** 6
#: candidates the estimate samples by default
ESTIMATE_SAMPLES = 2000


def exposure_from_rank(rank: int, size: int) -> float:
    """``log2 size − log2 rank``, rank counted from 1 (1 = the likeliest of ``size`` candidates)."""
    size = check_int("size", size)
    rank = check_int("rank", rank)
    if rank > size:
        raise ValueError(f"rank must be in [1, size = {size}], got {rank}")
    return math.log2(size) - math.log2(rank)


def rank_of(scores: torch.Tensor, index: int) -> int:
    """Rank from 1 of ``scores[index]`` among ``scores`` (lower log-perplexity = better rank; ties count for the
    secret, i.e. the rank is 1 + the number of strictly lower scores)."""
    return 1 + int((scores < scores[index]).sum())


def _check_canary(canary: object) -> Canary:
    if not isinstance(canary, Canary):
        raise TypeError(f"canary must be a mlsec_kit.lm.Canary, got {type(canary).__name__}")
    return canary


def _digit_tree_scores(model: nn.Module, canary: Canary, digits: int) -> torch.Tensor:
    """Log-perplexity (bits) of every ``digits``-digit secret after the canary's prefix, in the order of
    :func:`secret_space`: level j scores the 10**j prefixes' next digit in one batched pass."""
    prefix = [BOS] + list(canary.prefix.encode("utf-8"))
    digit_ids = torch.arange(48, 58)
    space = torch.zeros(1, 0, dtype=torch.long)  # all j-digit strings as rows of digit byte ids
    scores = torch.zeros(1, dtype=torch.float64)  # their log-perplexities in nats
    chunk = max(1, 2 ** 16 // (len(prefix) + digits))
    for _ in range(digits):
        parts = []
        for i in range(0, len(space), chunk):
            rows = torch.cat([torch.tensor(prefix).repeat(len(space[i:i + chunk]), 1), space[i:i + chunk]], 1)
            parts.append(next_token_logprobs(model, rows)[:, digit_ids])
        lp = torch.cat(parts)  # (10**j, 10)
        scores = (scores.unsqueeze(1) - lp).reshape(-1)
        space = torch.cat([space.repeat_interleave(10, 0), digit_ids.repeat(len(space)).unsqueeze(1)], 1)
    return scores / math.log(2)


def candidate_scores(model: nn.Module, canary: Canary, candidates: Sequence[str]) -> torch.Tensor:
    """Log-perplexity in bits of each candidate secret in the canary's slot, over the secret's tokens only
    (:func:`~mlsec_kit.lm.log_perplexity` of ``prefix + candidate`` from ``start = len(prefix)``; over a whole
    :class:`~mlsec_kit.lm.SecretSpace` by the digit tree, the same numbers).

    Shape:
        ``(len(candidates),)`` float64 on the CPU, values >= 0, in the order of ``candidates``.
    """
    model = _check_model(model)
    canary = _check_canary(canary)
    if isinstance(candidates, SecretSpace) and len(canary.prefix.encode("utf-8")) + candidates.digits <= \
            getattr(model, "context", 10 ** 9):
        return _digit_tree_scores(model, canary, candidates.digits)
    start = len(canary.prefix.encode("utf-8"))
    return log_perplexity(model, [canary.prefix + c for c in candidates], start=start)


def _candidate_set(canary: Canary, candidates: object, generator: Optional[torch.Generator]) -> Sequence[str]:
    """R: the whole digit space (None), a random subset of that size containing the secret (int), or the given
    strings; the secret must belong to it."""
    digits = len(canary.secret)
    if candidates is None or isinstance(candidates, int) and not isinstance(candidates, bool):
        space = secret_space(digits)
        if canary.secret not in space:
            raise ValueError(f"canary's secret {canary.secret!r} is not in the candidate space of {digits}-digit "
                             "strings; pass candidates explicitly")
        if candidates is None:
            return space
        m = check_int("candidates", candidates, minimum=1)
        if m > len(space):
            raise ValueError(f"candidates must be at most the space's size 10**{digits}, got {m}")
        if len(space) > 10 ** 7:
            raise ValueError(f"candidates as an int needs a space of at most 10**7 secrets, got 10**{digits}")
        own = int(canary.secret)
        perm = torch.randperm(len(space) - 1, generator=generator)[:m - 1]
        others = perm + (perm >= own).long()  # skip the secret's own index
        return [canary.secret] + [space[int(i)] for i in others]
    if isinstance(candidates, str) or not isinstance(candidates, Sequence):
        raise TypeError(f"candidates must be None, an int or a sequence of strings, got {type(candidates).__name__}")
    cands = list(candidates)
    if not cands:
        raise ValueError("candidates is empty: give at least the secret")
    for c in cands:
        if not isinstance(c, str):
            raise TypeError(f"candidates must contain strings, got {type(c).__name__}")
    if len(set(cands)) != len(cands):
        raise ValueError("candidates must be distinct")
    if canary.secret not in set(cands):
        raise ValueError(f"candidates must contain the canary's secret {canary.secret!r}")
    n = len(canary.secret.encode("utf-8"))
    odd = next((c for c in cands if len(c.encode("utf-8")) != n), None)
    if odd is not None:
        # the score sums over the secret's tokens only: a shorter candidate would win by having fewer terms
        raise ValueError(f"candidates must all have the secret's length of {n} bytes, got {odd!r}")
    return cands


def exposure(model: nn.Module, canary: Canary, *, candidates: Union[None, int, Sequence[str]] = None,
             method: str = "exact", samples: int = ESTIMATE_SAMPLES,
             generator: Optional[torch.Generator] = None) -> float:
    """Exposure of ``canary.secret`` (Carlini et al. 2019): ``log2 |R| − log2 rank`` by log-perplexity of the
    secret given the template's prefix.

    Args:
        model: a byte-level LM.
        canary: the :class:`~mlsec_kit.lm.Canary` (its ``secret`` is the true one).
        candidates: the randomness space R. None: every string of ``len(secret)`` digits (the secret must be
            digits); an int m: the secret plus m − 1 other digit strings drawn at random (``generator``); a
            sequence of distinct strings containing the secret, all of its byte length (the score sums over the
            secret's tokens, so candidates of other lengths would not compare).
        method: ``"exact"`` (rank among all of R; |R| <= :data:`EXACT_LIMIT`) or ``"estimate"`` (skew-normal fit
            to ``samples`` candidates drawn from R without replacement; any |R|).
        samples: candidates the estimate scores, >= 10.
        generator: a CPU generator for the draws (int ``candidates``, the estimate's sample).

    Returns:
        exposure in bits: in ``[0, log2 |R|]`` for ``"exact"``; ``"estimate"`` is >= 0 and may exceed log2 |R|.
    """
    model = _check_model(model)
    canary = _check_canary(canary)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    samples = check_int("samples", samples, minimum=10)
    check_generator(generator)
    R = _candidate_set(canary, candidates, generator)
    if method == "exact":
        if len(R) > EXACT_LIMIT:
            raise ValueError(f"candidates: an exact exposure scores all |R| = {len(R)} candidates, more than "
                             f"EXACT_LIMIT = {EXACT_LIMIT}; use method='estimate'")
        scores = candidate_scores(model, canary, R)
        idx = R.index(canary.secret)
        return exposure_from_rank(rank_of(scores, idx), len(R))
    return _estimate(model, canary, R, samples, generator)


def _estimate(model: nn.Module, canary: Canary, R: Sequence[str], samples: int,
              generator: Optional[torch.Generator]) -> float:
    from scipy import stats

    m = min(samples, len(R))
    if len(R) <= 10 ** 7:
        pick = torch.randperm(len(R), generator=generator)[:m].tolist()
    else:  # a huge space: draw with replacement (collisions are negligible)
        pick = torch.randint(0, len(R), (m,), generator=generator).tolist()
    sample = [R[i] for i in pick]
    scores = candidate_scores(model, canary, sample + [canary.secret])
    x, s = scores[:-1].numpy(), float(scores[-1])
    a, loc, scale = stats.skewnorm.fit(x)
    log_cdf = float(stats.skewnorm.logcdf(s, a, loc=loc, scale=scale))
    if not math.isfinite(log_cdf):  # far in the tail: fall back to the normal fit's tail
        log_cdf = float(stats.norm.logcdf(s, loc=float(np.mean(x)), scale=float(np.std(x)) or 1e-12))
    return max(0.0, -log_cdf / math.log(2))
