"""Exposure of a canary (Carlini et al. 2019, "The Secret Sharer", Definitions 3-4 and Section 4.3).

For a canary ``template`` with secret s drawn uniformly from a space R, rank the candidates r ∈ R by the
log-perplexity the model gives them (here: of the secret's tokens, given the template's prefix:
:func:`mlsec_kit.lm.log_perplexity` with ``start = len(prefix)``; the prefix's own log-perplexity is the same for
every candidate, so leaving it out changes no rank); the rank of s counts from 1 (the likeliest candidate has
rank 1). Text AFTER the slot is not scored: the paper scores the whole filled canary, and the suffix's probability
does depend on the secret, so for a template with a suffix the two exposures differ (they are the same when the
secret ends the line, as in "my pin is {secret}"). Then

    exposure(s) = log2 |R| − log2 rank(s),

between 0 (s is the least likely candidate) and log2 |R| (the likeliest: the model would emit it first). A
candidate tied with s counts as half above it (:func:`rank_of` with ``ties="average"``), so a model that cannot
tell the candidates apart gives about 1 bit, never the maximum. A secret
the model never saw has a uniformly random rank, so its exposure is about 1 (rank ≈ |R| / 2; mean 1/ln 2 ≈ 1.44).

* ``method="exact"`` scores every candidate. Over the whole space of ``digits``-digit secrets the scores are
  found digit by digit (one forward pass per prefix of the secret: ``(10**digits − 1) / 9`` rows instead of
  ``10**digits``); a :class:`~mlsec_kit.lm.TinyTransformer` computes the template prefix's keys and values once
  and runs only the digits (:meth:`~mlsec_kit.lm.TinyTransformer.forward_cached`). Measured on one CPU core with
  the default model: 4 digits 0.04 s, 5 digits 0.7 s, 6 digits 5.9 s (0.07, 1.8 and 20 s on a loaded machine).
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
from .model import TinyTransformer
from .scoring import _check_model, log_perplexity, next_token_logprobs
from .tokenizer import BOS

__all__ = ["exposure", "exposures", "candidate_scores", "exposure_from_rank", "rank_of", "METHODS", "EXACT_LIMIT",
           "TIES"]

METHODS = ("exact", "estimate")
#: the largest candidate set ``method="exact"`` scores (10**6 digit strings: about 6 s on one CPU core)
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


#: how :func:`rank_of` ranks scores equal to the secret's
TIES = ("secret_first", "average")


def rank_of(scores: torch.Tensor, index: int, *, ties: str = "secret_first") -> Union[int, float]:
    """Rank from 1 of ``scores[index]`` among ``scores`` (lower log-perplexity = better rank).

    Args:
        scores: a 1-D real tensor of log-perplexities without NaN, at least one value.
        index: the position of the secret, an int in ``[-len(scores), len(scores))`` (negative: from the end).
        ties: ``"secret_first"`` (default): ties count for the secret, the rank is the int 1 + the number of
            strictly lower scores; ``"average"``: the expected rank under a uniformly random order of the tied
            candidates, ``1 + #lower + #(other scores equal to the secret's) / 2`` (a float). The two differ only
            when another candidate has exactly the secret's score; :func:`exposure` uses ``"average"``, so a model
            that scores every candidate alike (it knows nothing) gets the exposure of a never-seen secret, about
            1 bit, not the maximum log2 |R|.
    """
    if ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}, got {ties!r}")
    if not isinstance(scores, torch.Tensor) or scores.dim() != 1 or scores.dtype == torch.bool or \
            scores.dtype.is_complex:
        raise TypeError(f"scores must be a 1-D real tensor, got "
                        f"{tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__}")
    if len(scores) == 0:
        raise ValueError("scores is empty: give at least the secret's score")
    if bool(torch.isnan(scores.double()).any()):
        raise ValueError("scores must not contain NaN (a NaN would rank nowhere)")
    n = len(scores)
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not -n <= index < n:
        raise ValueError(f"index must be an int in [-{n}, {n}) (a position in scores), got {index!r}")
    lower = int((scores < scores[index]).sum())
    if ties == "secret_first":
        return 1 + lower
    return 1 + lower + (int((scores == scores[index]).sum()) - 1) / 2


def _check_canary(canary: object) -> Canary:
    if not isinstance(canary, Canary):
        raise TypeError(f"canary must be a mlsec_kit.lm.Canary, got {type(canary).__name__}")
    return canary


def _digit_tree_scores(model: nn.Module, canary: Canary, digits: int) -> torch.Tensor:
    """Log-perplexity (bits) of every ``digits``-digit secret after the canary's prefix, in the order of
    :func:`secret_space`: level j scores the 10**j prefixes' next digit in one batched pass."""
    prefix = [BOS] + list(canary.prefix.encode("utf-8"))
    digit_ids = torch.arange(48, 58)
    if isinstance(model, TinyTransformer):  # the prefix's keys and values once, then only the digits per row
        return _cached_tree(model, torch.tensor([prefix]), digits, digit_ids)
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


@torch.no_grad()
def _cached_tree(model: TinyTransformer, prefix: torch.Tensor, digits: int, digit_ids: torch.Tensor) -> torch.Tensor:
    was = model.training
    model.eval()
    try:
        dev = next(model.parameters()).device
        cache = model.prefix_cache(prefix.to(dev))
        first = torch.log_softmax(model(prefix.to(dev))[0, -1].double(), -1)[digit_ids].cpu()  # (10,)
        scores = -first
        space = digit_ids.unsqueeze(1)  # the 1-digit strings
        chunk = max(1, 2 ** 17 // digits)
        for _ in range(digits - 1):
            parts = []
            for i in range(0, len(space), chunk):
                out = model.forward_cached(space[i:i + chunk].to(dev), cache)[:, -1].double()
                parts.append(torch.log_softmax(out, -1)[:, digit_ids].cpu())
            lp = torch.cat(parts)
            scores = (scores.unsqueeze(1) - lp).reshape(-1)
            space = torch.cat([space.repeat_interleave(10, 0), digit_ids.repeat(len(space)).unsqueeze(1)], 1)
        return scores / math.log(2)
    finally:
        model.train(was)


def candidate_scores(model: nn.Module, canary: Canary, candidates: Sequence[str]) -> torch.Tensor:
    """Log-perplexity in bits of each candidate secret in the canary's slot, over the secret's tokens only
    (:func:`~mlsec_kit.lm.log_perplexity` of ``prefix + candidate`` from ``start = len(prefix)``; over a whole
    :class:`~mlsec_kit.lm.SecretSpace` by the digit tree, the same numbers). The template's suffix is not scored
    (see the module docstring).

    Shape:
        ``(len(candidates),)`` float64 on the CPU, values >= 0, in the order of ``candidates``.
    """
    model = _check_model(model)
    canary = _check_canary(canary)
    if isinstance(candidates, str) or not isinstance(candidates, Sequence):
        raise TypeError(f"candidates must be a sequence of strings, got {type(candidates).__name__}")
    if len(candidates) == 0:
        raise ValueError("candidates is empty: give at least one candidate secret")
    if not isinstance(candidates, SecretSpace):
        for c in candidates:
            if not isinstance(c, str):
                raise TypeError(f"candidates must contain strings, got {type(c).__name__}")
    _check_fits(model, canary, max(len(c.encode("utf-8")) for c in candidates)
                if not isinstance(candidates, SecretSpace) else candidates.digits)
    if isinstance(candidates, SecretSpace) and len(canary.prefix.encode("utf-8")) + candidates.digits <= \
            getattr(model, "context", 10 ** 9):
        return _digit_tree_scores(model, canary, candidates.digits)
    start = len(canary.prefix.encode("utf-8"))
    lengths = {len(c.encode("utf-8")) for c in candidates}
    if isinstance(model, TinyTransformer) and len(lengths) == 1 and 0 not in lengths and \
            start + 1 + max(lengths) <= model.context:
        return _cached_scores(model, canary, candidates)
    return log_perplexity(model, [canary.prefix + c for c in candidates], start=start)


@torch.no_grad()
def _cached_scores(model: TinyTransformer, canary: Canary, candidates: Sequence[str]) -> torch.Tensor:
    """:func:`log_perplexity` of the secret part for equal-length candidates, the prefix computed once."""
    was = model.training
    model.eval()
    try:
        dev = next(model.parameters()).device
        prefix = torch.tensor([[BOS] + list(canary.prefix.encode("utf-8"))], device=dev)
        cache = model.prefix_cache(prefix)
        first = torch.log_softmax(model(prefix)[0, -1].double(), -1).cpu()  # (V,)
        ids = torch.tensor([list(c.encode("utf-8")) for c in candidates], dtype=torch.long)  # (N, k)
        out = torch.empty(len(ids), dtype=torch.float64)
        chunk = max(1, 2 ** 17 // ids.shape[1])
        for i in range(0, len(ids), chunk):
            part = ids[i:i + chunk]
            lp = first[part[:, 0]]
            if part.shape[1] > 1:
                rest = torch.log_softmax(model.forward_cached(part[:, :-1].to(dev), cache).double(), -1).cpu()
                lp = lp + rest.gather(-1, part[:, 1:].unsqueeze(-1)).squeeze(-1).sum(-1)
            out[i:i + chunk] = -lp
        return out / math.log(2)
    finally:
        model.train(was)


def _check_fits(model: nn.Module, canary: Canary, secret_bytes: int) -> None:
    """The model reads BOS, the prefix and the secret but its last byte: they must fit its context."""
    context = getattr(model, "context", None)
    need = len(canary.prefix.encode("utf-8")) + secret_bytes
    if context is not None and need > int(context):
        raise ValueError(f"canary: its prefix and a {secret_bytes}-byte secret take {need} tokens, more than the "
                         f"model's context of {context}; use a shorter template or a model with a longer context")


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

    Other canaries: a canary scored after the same prefix as other inserted canaries (one shared template) is
    ranked against their secrets too, which the model has also learnt; its exposure then measures "this secret
    beats the others after this prefix", not memorisation of this line alone. Give each canary its own template
    (:func:`~mlsec_kit.lm.random_canaries` takes a list) when measuring exposure against insertions.

    Ties: a candidate whose log-perplexity equals the secret's exactly counts as half above and half below it
    (the expected rank under a random order of the tied candidates, :func:`rank_of` with ``ties="average"``), so
    a model that scores every candidate alike gets ``log2 |R| − log2((|R| + 1) / 2) ≈ 1`` bit, like a secret it
    never saw. A trained model's float64 scores are practically never tied; then this is the plain rank.

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
    if len(R) < 2:
        raise ValueError("candidates must hold at least 2 secrets (the secret and one alternative): with |R| = 1 "
                         "the exposure is 0 whatever the model")
    if method == "estimate" and len(R) < 10:
        raise ValueError(f"candidates: method='estimate' fits a distribution to at least 10 candidates, got |R| = "
                         f"{len(R)}; use method='exact'")
    if method == "exact":
        if len(R) > EXACT_LIMIT:
            raise ValueError(f"candidates: an exact exposure scores all |R| = {len(R)} candidates, more than "
                             f"EXACT_LIMIT = {EXACT_LIMIT}; use method='estimate'")
        scores = candidate_scores(model, canary, R)
        idx = R.index(canary.secret)
        return math.log2(len(R)) - math.log2(rank_of(scores, idx, ties="average"))
    return _estimate(model, canary, R, samples, generator)


def exposures(model: nn.Module, canaries: Sequence[Canary], *, candidates: Union[None, int, Sequence[str]] = None,
              method: str = "exact", samples: int = ESTIMATE_SAMPLES,
              generator: Optional[torch.Generator] = None) -> list[float]:
    """:func:`exposure` of each canary, ``[exposure(model, c, ...) for c in canaries]`` — the same numbers, but
    with ``candidates=None`` and ``method="exact"`` the whole space is scored ONCE per distinct (prefix, number of
    digits): canaries that share a template share the model's scores of every candidate, so e.g. eight
    never-inserted canaries after "my pin is " cost one digit tree instead of eight.

    Args:
        model, candidates, method, samples, generator: as for :func:`exposure` (the generator is used by the
            canaries in order).
        canaries: a list of :class:`~mlsec_kit.lm.Canary`, non-empty.

    Returns:
        list of exposures in bits, in the order of ``canaries``.
    """
    model = _check_model(model)
    if isinstance(canaries, Canary) or not isinstance(canaries, Sequence) or isinstance(canaries, str):
        raise TypeError(f"canaries must be a list of Canary objects, got {type(canaries).__name__}")
    canaries = [_check_canary(c) for c in canaries]
    if not canaries:
        raise ValueError("canaries is empty: give at least one Canary")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if candidates is not None or method != "exact":
        return [exposure(model, c, candidates=candidates, method=method, samples=samples, generator=generator)
                for c in canaries]
    check_int("samples", samples, minimum=10)
    check_generator(generator)
    trees: dict[tuple[str, int], torch.Tensor] = {}
    out = []
    for c in canaries:
        R = _candidate_set(c, None, generator)   # checks the secret is a digit string
        key = (c.prefix, len(c.secret))
        if key not in trees:
            if len(R) > EXACT_LIMIT:
                raise ValueError(f"candidates: an exact exposure scores all |R| = {len(R)} candidates, more than "
                                 f"EXACT_LIMIT = {EXACT_LIMIT}; use method='estimate'")
            trees[key] = candidate_scores(model, c, R)
        out.append(math.log2(len(R)) - math.log2(rank_of(trees[key], R.index(c.secret), ties="average")))
    return out


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
    if float(np.ptp(x)) <= 1e-12 * max(1.0, float(np.abs(x).max())):
        # every sampled candidate scores the same: no distribution to fit. A secret with that score too is tied
        # with all of them (half rank above: 1 bit, as the exact exposure's tie rule gives)
        if abs(s - float(x[0])) <= 1e-12 * max(1.0, abs(s)):
            return 1.0
        raise ValueError("model: every sampled candidate has the same log-perplexity and the secret another one; "
                         "no distribution can be fitted to a constant: use method='exact'")
    try:
        a, loc, scale = stats.skewnorm.fit(x)
        log_cdf = float(stats.skewnorm.logcdf(s, a, loc=loc, scale=scale))
    except stats.FitError:  # the optimiser left the skew-normal's parameter range: the normal fit instead
        log_cdf = -math.inf
    if not math.isfinite(log_cdf):  # far in the tail (or no skew-normal fit): fall back to the normal fit's tail
        log_cdf = float(stats.norm.logcdf(s, loc=float(np.mean(x)), scale=float(np.std(x)) or 1e-12))
    return max(0.0, -log_cdf / math.log(2))
