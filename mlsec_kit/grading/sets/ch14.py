"""Checks of the chapter-14 exercise set: the log-perplexity of a canary's secret, exposure from ranks (Carlini et
al. 2019), the zlib-ratio score and the ranking of samples by it (Carlini et al. 2021), and what memorisation,
extraction and the defences do and do not mean.

Student functions: ``secret_log_perplexity(token_logprobs, secret_start) -> float``,
``exposure(secret_logperp, candidate_logperps) -> float``, ``zlib_ratio(log_perplexity_bits, text) -> float``,
``zlib_top_k(log_perplexities, texts, k) -> list of ints`` and ``lm_statements() -> letters``.

**No model crosses the grading wire.** The student's functions run in a separate process that receives tensors,
numbers and strings only, so every question is posed on the numbers a model would give: natural-log probabilities
of each token of a canary (``token_logprobs[t] = ln Pr(x_t | BOS, x_0 .. x_{t-1})``, one per byte of the canary),
log-perplexities in bits of every candidate secret, the model's bits for a sample. The grader draws them at random:
each token's probability uniform in [0.02, 0.9] (so every token costs between 0.15 and 5.6 bits), candidate
log-perplexities distinct multiples of 2^-10 in [12, 24) bits (exact in float32, so a float32 comparison
ranks them as float64 does; a 5-digit secret's log2 |R| is 16.6), samples from the kit's record
generator plus repetitive and non-ASCII lines. The notebook's last cell runs the functions on a real tiny model.

**Conventions the checks fix (and the notebook states).** The secret runs from ``secret_start`` to the end of the
canary (the paper's canaries end with their secret), and its log-perplexity is ``-sum_{t >= secret_start} log2 p_t``
in bits. The rank counts from 1 (the likeliest candidate has rank 1); candidates tied with the secret count half
above it: ``rank = 1 + #(strictly lower) + #(other candidates with exactly the secret's score) / 2``, the expected
rank when ties are put in a random order, as the kit's :func:`mlsec_kit.lm.exposure` and chapter 14's definition do
(``rank_of(..., ties="average")``). Carlini et al. 2019's Definition 3 counts every tie against the secret (rank =
the number of candidates with a log-perplexity <= the secret's); on a trained model's float64 scores ties do not
occur and the conventions agree. Then a model that scores every candidate alike, and so knows nothing, gets
``log2(2 |R| / (|R| + 1))``, about 1 bit, like a never-seen secret; counting ties for the secret would give it the
maximum ``log2 |R|``. ``|R|`` is the number of candidates, the secret's own entry included. The zlib entropy is
``8 * len(zlib.compress(text.encode("utf-8")))`` bits (zlib's default level, 6), and the zlib ratio is the model's
bits for the text divided by it: dimensionless, lower = the model finds the text far likelier than a generic
compressor does = a likelier memorised sample. This is the book's (and the kit's ``extraction_scores(metric="zlib")``)
variant of Carlini et al.'s: their code ranks by the compressed length in bytes over the per-token log-perplexity in
nats, highest first, the same order as this ratio, lowest first, only for samples of one token length (theirs: 256).

How the instances make each typical mistake fail on every seed:

- ``secret_log_perplexity`` summed over the whole canary (prefix included): every prefix has 3 or more tokens,
  each costing at least 0.15 bits; natural log instead of log2 (``-sum ln p``): off by the factor ln 2 on a sum of
  at least 0.45 bits; the secret's first token dropped (``secret_start + 1``, "position 0 is BOS") or one prefix
  token added (``secret_start - 1``): off by at least 0.15 bits; the mean per token instead of the sum: every secret
  has 3 or more tokens; the sign forgotten: the value is negative; a negative ``secret_start`` accepted (Python
  slicing counts from the end) or one beyond the canary (an empty slice sums to 0): the bad-input property. Every
  value check's tolerance is 1e-5 relative to ``max(1, |expected|)`` (float32 arithmetic passes), while each of
  these mistakes is off by at least 7e-4 relative (0.15 bits of at most 40 tokens of 5.6 bits).
- ``exposure`` with the rank counted from 0 (the number of strictly lower candidates): a secret of rank 1 (the
  first property: a canary the model would emit first) gives ``log2 0``, and ranks 2-8 (the second) are off by
  ``log2(r / (r - 1)) >= 0.19`` bits; ranked by descending log-perplexity (the likeliest last): the secret ranks
  near the top, so ``r' = |R| + 1 - r`` differs from ``r``; natural logs: off by the factor ln 2 on the first two
  properties' exposures of at least ``log2 64 - log2 8 = 3`` bits; ``log2 |R|`` over ``|R| - 1`` (the candidates
  other than the secret) or ``|R| + 1``: off by at least ``log2(4096 / 4095) = 3.5e-4`` bits, three times the
  tolerance (at most 1.2e-4 bits on exposures of at most 12 bits; the candidate sets have 64 to 4096 entries); ties
  counted for the secret (``1 + (c < s).sum()``, right without ties), against it (``(c <= s).sum()``, the paper's
  convention), half of them rounded down or up (``//``, ``ceil``) or ``|R|`` as the number of distinct scores: the
  tie property always has 1 to 3 other candidates with exactly the secret's value, an odd number (1 or 3) in its
  first instance (a rank off by at least 1/2 at ranks 1-8: at least ``log2(9 / 8.5) = 0.082`` bits), and the
  know-nothing property scores an even number of candidates alike (rank ``(|R| + 1) / 2`` is not whole); a secret
  missing from the candidates or an empty set accepted: the bad-input property.
- ``zlib_ratio`` inverted (zlib bits over model bits): every instance's ratio is drawn in [0.02, 0.7] or [1.5, 3.5],
  so its inverse is at least 1.4 times away; the zlib length in bytes, not bits: off by the factor 8; the
  uncompressed length (``8 * len(text)`` or ``8 * len(text.encode())``): every instance is redrawn until zlib's
  length differs from both (short lines grow by zlib's header and checksum, repetitive ones shrink); ``len(text)``
  characters where the UTF-8 bytes were asked: one instance of the second property is non-ASCII; a negative
  ``log_perplexity_bits`` accepted: the bad-input property.
- ``zlib_top_k`` ordered by the highest ratio first, by the model's bits alone (lowest log-perplexity first), by
  bits per byte, or by the inverted ratio (the same as the highest first): every instance holds 2-4 repetitive
  lines (zlib shrinks them, so they get the fewest model bits at a middling ratio of 0.12-0.3) among 8-16 records
  (ratios 0.03-0.3), and is redrawn until each of these orders gives another top ``k`` list than the ratio's; the
  indices returned sorted instead of likeliest first: the instance is redrawn until the top ``k`` in ratio order is
  not increasing; ``k`` outside ``[1, len(texts)]`` accepted: the bad-input property.

Forbidden while a question is graded: :func:`mlsec_kit.lm.exposure_from_rank` and :func:`mlsec_kit.lm.rank_of`
(they compute the exposure and, with ``ties="average"``, the rank the question asks for), and
:func:`mlsec_kit.lm.exposure` and :func:`mlsec_kit.lm.exposures` (they need a model, so they cannot answer from the
grader's numbers, but blocking them costs nothing) for ``exposure``; :func:`mlsec_kit.lm.zlib_entropy` (the
denominator of the ratio) and this module's ``_zlib_bits`` (the same function) for ``zlib_ratio`` and ``zlib_top_k``;
this module's ``_reference_*`` helpers for every question. The kit's :func:`mlsec_kit.lm.log_perplexity`,
:func:`~mlsec_kit.lm.candidate_scores` and :func:`~mlsec_kit.lm.extraction_scores` stay allowed: each needs a
model, and none crosses the wire. Blocking happens in the submission's process only, so the grader, which calls
``_zlib_bits`` and the references itself, is unaffected. (The statements' answer key, :data:`TRUE_STATEMENTS`, is
importable, as every set's is: data cannot be blocked.)
"""
from __future__ import annotations

import math
import operator
import zlib

import numpy as np
import torch

from ..core import ExerciseSet
from ..expect import call, describe, expect_float, expect_value_error, fail, fmt, statement_checks, to_float
from ..instances import randint

SET = ExerciseSet("14_language_models", "Exercises: memorisation in language models", chapter=14)

_CHECKER = "mlsec_kit.grading.sets.ch14"
REL_TOL = 1e-5  # every value check: |got - want| <= REL_TOL * max(1, |want|) (float32 arithmetic passes)
P_LOW, P_HIGH = 0.02, 0.9  # each token's probability in secret_log_perplexity's instances
SIZES = (64, 4096)  # candidate sets in exposure's instances
RATIO_BANDS = ((0.02, 0.7), (1.5, 3.5))  # zlib ratios of zlib_ratio's instances: never near 1


def _uniform(rng: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=rng, dtype=torch.float64))


def _close(got: float, want: float) -> bool:
    return math.isfinite(got) and abs(got - want) <= REL_TOL * max(1.0, abs(want))


def _hint(got: float, candidates: dict[str, float]) -> str:
    """``"; <why>"`` for the first named wrong value ``got`` equals, else ``""``."""
    return next((f"; {why}" for why, value in candidates.items() if math.isfinite(value) and _close(got, value)), "")


def _zlib_bits(text: str) -> int:
    """The grader's own zlib entropy (the kit's zlib_entropy is blocked while a submission runs)."""
    return 8 * len(zlib.compress(text.encode("utf-8")))


# ---- reference solutions (forbidden to submissions) ----------------------------------------------------------
def _reference_secret_log_perplexity(token_logprobs: torch.Tensor, secret_start: int) -> float:
    n = int(token_logprobs.numel())
    if isinstance(secret_start, bool) or not isinstance(secret_start, int) or not 0 <= secret_start <= n:
        raise ValueError(f"secret_start must be an int in [0, len(token_logprobs)] = [0, {n}], got {secret_start!r}")
    return float(-token_logprobs[secret_start:].double().sum() / math.log(2))


def _reference_exposure(secret_logperp: float, candidate_logperps: torch.Tensor) -> float:
    c = candidate_logperps.double().reshape(-1)
    if c.numel() == 0 or not bool((c == secret_logperp).any()):
        raise ValueError("candidate_logperps must be non-empty and hold secret_logperp (the secret is a candidate)")
    rank = 1 + int((c < secret_logperp).sum()) + (int((c == secret_logperp).sum()) - 1) / 2
    return math.log2(c.numel()) - math.log2(rank)


def _reference_zlib_ratio(log_perplexity_bits: float, text: str) -> float:
    if log_perplexity_bits < 0:
        raise ValueError(f"log_perplexity_bits must be >= 0 (a sum of -log2 p), got {log_perplexity_bits}")
    return log_perplexity_bits / _zlib_bits(text)


def _reference_zlib_top_k(log_perplexities: torch.Tensor, texts: list, k: int) -> list:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(texts):
        raise ValueError(f"k must be an int in [1, len(texts)] = [1, {len(texts)}], got {k!r}")
    ratios = [_reference_zlib_ratio(float(b), t) for b, t in zip(log_perplexities, texts)]
    return sorted(range(len(texts)), key=lambda i: (ratios[i], i))[:k]


def _forbid(*names: str) -> tuple[str, ...]:
    return tuple(names) + tuple(f"{_CHECKER}._reference_{q}" for q in
                                ("secret_log_perplexity", "exposure", "zlib_ratio", "zlib_top_k"))


# ---- (a) secret_log_perplexity -------------------------------------------------------------------------------
secret_log_perplexity = SET.question(
    "secret_log_perplexity", "secret_log_perplexity(token_logprobs, secret_start) -> float", forbid=_forbid())


def _canary_logprobs(rng: torch.Generator, *, prefix: int | None = None, secret: int | None = None):
    """Natural-log probabilities of a canary's tokens: ``prefix`` (>= 3) tokens, then ``secret`` (>= 3)."""
    prefix = randint(rng, 3, 24) if prefix is None else prefix
    secret = randint(rng, 3, 8) if secret is None else secret
    p = P_LOW + (P_HIGH - P_LOW) * torch.rand(prefix + secret, generator=rng, dtype=torch.float64)
    return torch.log(p), prefix


def _slp(fn, logprobs: torch.Tensor, start: int) -> float:
    what = f"secret_log_perplexity(token_logprobs {describe(logprobs)}, secret_start={start})"
    return to_float(call(fn, logprobs.clone(), start, name="secret_log_perplexity"), what)


def _expect_slp(fn, logprobs: torch.Tensor, start: int) -> None:
    got = _slp(fn, logprobs, start)
    want = _reference_secret_log_perplexity(logprobs, start)
    if not _close(got, want):
        nats = -logprobs[start:].sum().item()
        bits = lambda part: -part.sum().item() / math.log(2)  # noqa: E731
        hints = {
            "that is the whole canary: sum over the secret's tokens only (from secret_start on); the prefix is the "
            "same for every candidate": bits(logprobs),
            "that is in nats: divide the natural-log sum by ln 2 to get bits": nats,
            "the secret's first token is missing: token_logprobs[t] is the log-probability of byte t itself, so the "
            "secret starts at index secret_start": bits(logprobs[start + 1:]),
            "one prefix token too many: the secret starts at index secret_start": bits(logprobs[start - 1:]),
            "that is the prefix: the secret is from secret_start to the end": bits(logprobs[:start]),
            "that is the mean per token: the log-perplexity is the sum over the secret's tokens":
                want / (len(logprobs) - start),
            "the sign: log-probabilities are <= 0, so -sum log2 p is >= 0": -want,
        }
        fail(f"secret_log_perplexity on a canary of {len(logprobs)} tokens with secret_start={start} gave "
             f"{fmt(got)}; expected {fmt(want)} bits{_hint(got, hints)}")


@secret_log_perplexity.prop("returns a Python float")
def _slp_float(fn, rng):
    logprobs, start = _canary_logprobs(rng)
    expect_float(call(fn, logprobs, start, name="secret_log_perplexity"), "secret_log_perplexity")


@secret_log_perplexity.prop("is -sum log2 p over the secret's tokens only, in bits")
def _slp_value(fn, rng):
    for _ in range(4):
        _expect_slp(fn, *_canary_logprobs(rng))


@secret_log_perplexity.prop("counts every token from secret_start to the end (a 1-token secret; a 40-token canary)")
def _slp_edges(fn, rng):
    logprobs, _ = _canary_logprobs(rng, prefix=randint(rng, 3, 12), secret=3)
    _expect_slp(fn, logprobs, len(logprobs) - 1)  # the secret is the last token alone
    logprobs, start = _canary_logprobs(rng, prefix=30, secret=10)
    _expect_slp(fn, logprobs, start)


@secret_log_perplexity.prop("raises a ValueError naming secret_start outside [0, len(token_logprobs)]")
def _slp_bad(fn, rng):
    logprobs, _ = _canary_logprobs(rng)
    n = len(logprobs)
    for bad, why in ((-randint(rng, 1, 3), "a negative index counts from the end in Python slicing: it would "
                                            "silently score the last tokens"),
                     (n + randint(rng, 1, 3), "the canary has no token there: an empty slice sums to 0 bits")):
        expect_value_error(fn, (logprobs.clone(), bad),
                           f"secret_log_perplexity(token_logprobs of {n} tokens, secret_start={bad})", why,
                           "secret_start")


# ---- (a) exposure ---------------------------------------------------------------------------------------------
exposure = SET.question(
    "exposure", "exposure(secret_logperp, candidate_logperps) -> float",
    forbid=_forbid("mlsec_kit.lm.exposure_from_rank", "mlsec_kit.lm.rank_of", "mlsec_kit.lm.exposure",
                   "mlsec_kit.lm.exposures"))


def _candidates(rng: torch.Generator, rank: int, size: int, ties: int = 0) -> tuple[float, torch.Tensor]:
    """``size`` distinct log-perplexities (bits) with the secret's of rank ``rank`` (from 1) and ``ties`` other
    candidates with exactly its value, shuffled; the secret's value is returned as a Python float."""
    grid = torch.randperm(12 * 1024, generator=rng)[:size]  # distinct, exact in float32 too
    values, _ = torch.sort(12.0 + grid.double() / 1024)
    secret = float(values[rank - 1])
    for j in range(ties):  # replace candidates ranked below the secret by copies of its value
        values[rank + j] = secret
    return secret, values[torch.randperm(size, generator=rng)]


def _exposure(fn, secret: float, cands: torch.Tensor) -> float:
    what = f"exposure(secret_logperp={secret:.4f}, candidate_logperps {describe(cands)})"
    return to_float(call(fn, secret, cands.clone(), name="exposure"), what)


def _expect_exposure(fn, secret: float, cands: torch.Tensor, why: str) -> None:
    got = _exposure(fn, secret, cands)
    want = _reference_exposure(secret, cands)
    size = cands.numel()
    lower, equal = int((cands < secret).sum()), int((cands == secret).sum())
    rank = 1 + lower + (equal - 1) / 2
    if not _close(got, want):
        hints = {
            "the rank counts from 1 (the likeliest candidate has rank 1), not from 0":
                math.log2(size) - math.log2(rank - 1) if rank > 1 else math.inf,
            "ties count half above the secret: rank = 1 + #lower + #(other ties) / 2; counting them all for the "
            "secret gives a model that scores every candidate alike the maximum exposure":
                math.log2(size) - math.log2(1 + lower),
            "the rank is by ascending log-perplexity: the likeliest candidate (lowest) has rank 1":
                math.log2(size) - math.log2(1 + int((cands > secret).sum()) + (equal - 1) / 2),
            "that is in nats: exposure uses log2": math.log(size) - math.log(rank),
            "|R| is the number of candidates, the secret's own entry included (not one fewer)":
                math.log2(size - 1) - math.log2(rank),
            "|R| is the number of candidates, the secret's own entry included (not one more)":
                math.log2(size + 1) - math.log2(rank),
            "that counts every tie against the secret, as Carlini et al.'s Definition 3 does (a conservative "
            "choice that gives a model that knows nothing exposure 0); this question uses the expected rank under a "
            "random order of the ties: rank = 1 + #lower + #(other ties) / 2":
                math.log2(size) - math.log2(lower + equal),
            "half of the other ties, exactly: #(other ties) / 2 is not a whole number here (no // or rounding)":
                math.log2(size) - math.log2(1 + lower + (equal - 1) // 2),
            "half of the other ties, exactly: #(other ties) / 2 is not a whole number here (no rounding up)":
                math.log2(size) - math.log2(1 + lower + math.ceil((equal - 1) / 2)),
            "that is log2 of the rank; exposure is log2 |R| - log2 rank": math.log2(rank),
        }
        hint = _hint(got, hints)
        if not hint and not math.isfinite(got) and rank == 1:
            hint = "; that is log2 of rank 0: the rank counts from 1 (the likeliest candidate has rank 1)"
        fail(f"exposure of a secret of rank {rank:g} among {size} candidates gave {fmt(got)}; expected "
             f"log2 {size} - log2 {rank:g} = {fmt(want)} bits ({why}){hint}")


@exposure.prop("returns a Python float")
def _exp_float(fn, rng):
    secret, cands = _candidates(rng, randint(rng, 1, 8), randint(rng, *SIZES))
    expect_float(call(fn, secret, cands, name="exposure"), "exposure")


@exposure.prop("is log2 |R| for the likeliest candidate (rank 1)")
def _exp_top(fn, rng):
    for _ in range(2):
        secret, cands = _candidates(rng, 1, randint(rng, *SIZES))
        _expect_exposure(fn, secret, cands, "a canary the model would emit first")


@exposure.prop("is log2 |R| - log2 rank, the rank counted from 1, for a secret near the top (ranks 2-8)")
def _exp_near_top(fn, rng):
    for _ in range(3):
        secret, cands = _candidates(rng, randint(rng, 2, 8), randint(rng, *SIZES))
        _expect_exposure(fn, secret, cands, "a well-memorised canary")


@exposure.prop("is right wherever the secret ranks (a never-inserted canary ranks anywhere)")
def _exp_any(fn, rng):
    for _ in range(3):
        size = randint(rng, *SIZES)
        secret, cands = _candidates(rng, randint(rng, 1, size), size)
        _expect_exposure(fn, secret, cands, "any rank")


@exposure.prop("counts ties half above the secret: rank = 1 + #lower + #(other candidates tied with it) / 2")
def _exp_ties(fn, rng):
    # the first instance has an odd number of other ties (1 or 3), so a floor or ceil of #ties / 2 shows too
    for ties in (2 * randint(rng, 0, 1) + 1, randint(rng, 1, 3)):
        secret, cands = _candidates(rng, randint(rng, 1, 8), randint(rng, *SIZES), ties=ties)
        _expect_exposure(fn, secret, cands, "other candidates tie with the secret")


@exposure.prop("gives a model that scores every candidate alike about 1 bit, not log2 |R|")
def _exp_constant(fn, rng):
    size = 2 * randint(rng, SIZES[0] // 2, SIZES[1] // 2)  # even: an odd number of other ties, (|R| - 1) / 2 not whole
    value = 12.0 + randint(rng, 0, 12 * 1024 - 1) / 1024
    _expect_exposure(fn, value, torch.full((size,), value, dtype=torch.float64),
                     "a model that knows nothing: its rank is (|R| + 1) / 2, like a never-seen secret's on average")


@exposure.prop("raises a ValueError naming candidate_logperps when it is empty or lacks the secret")
def _exp_bad(fn, rng):
    secret, cands = _candidates(rng, randint(rng, 2, 8), randint(rng, 64, 256))
    expect_value_error(fn, (secret, torch.zeros(0, dtype=torch.float64)),
                       "exposure(secret_logperp, candidate_logperps empty)", "there is no candidate to rank",
                       "candidate_logperps")
    lower = float(torch.sort(cands).values[0])  # the secret replaced by a value between two candidates
    outside = cands.clone()
    outside[outside == secret] = lower - 1.0
    expect_value_error(fn, (secret, outside),
                       f"exposure(secret_logperp={secret:.4f}, candidate_logperps without that value)",
                       "the secret is one of the candidates (R is its randomness space); a secret outside R has "
                       "no rank", "candidate_logperps")


# ---- (b) zlib_ratio -------------------------------------------------------------------------------------------
zlib_ratio = SET.question("zlib_ratio", "zlib_ratio(log_perplexity_bits, text) -> float",
                          forbid=_forbid("mlsec_kit.lm.zlib_entropy", f"{_CHECKER}._zlib_bits"))

_NON_ASCII = ("zoë paid {n} euros to élodie in zürich", "søren met ana in são paulo on day {n}",
              "the account of josé in köln is {n}")


def _records(rng: torch.Generator, n: int) -> list[str]:
    from ...lm import make_records  # the kit's synthetic lines: names, cities and numbers

    return make_records(n, generator=torch.Generator().manual_seed(randint(rng, 0, 2 ** 31 - 1)))


def _repetitive(rng: torch.Generator) -> str:
    """A unit repeated 8-30 times, redrawn while zlib's length equals the text's (``"0" * 11``: 11 bytes both)."""
    while True:
        text = ("ha", "la ", "0", "abc ", "the the ", "12")[randint(rng, 0, 5)] * randint(rng, 8, 30)
        if _zlib_text_ok(text):
            return text


def _zlib_text_ok(text: str) -> bool:
    """zlib's length differs from the uncompressed character and byte counts (so either mistake shows)."""
    z = _zlib_bits(text)
    return z != 8 * len(text) and z != 8 * len(text.encode("utf-8"))


def _zlib_instance(rng: torch.Generator, text: str) -> tuple[float, str]:
    low, high = RATIO_BANDS[randint(rng, 0, 1)]
    return _uniform(rng, low, high) * _zlib_bits(text), text


def _expect_ratio(fn, bits: float, text: str) -> None:
    what = f"zlib_ratio({bits:.4f}, {text!r})"
    got = to_float(call(fn, bits, text, name="zlib_ratio"), what)
    z = _zlib_bits(text)
    want = bits / z
    if not _close(got, want):
        hints = {"the ratio is inverted: the model's bits over the zlib bits": z / bits,
                 "the zlib length is in bytes: the zlib entropy is 8 bits per compressed byte": bits / (z / 8),
                 "that is the uncompressed length: compress the text with zlib first": bits / (8 * len(text)),
                 "that is the uncompressed length in bytes: compress them with zlib first":
                     bits / (8 * len(text.encode("utf-8"))),
                 "zlib compresses the UTF-8 bytes of the text (text.encode('utf-8'))":
                     bits / (8 * len(zlib.compress(text.encode("latin-1", "replace"))))}
        fail(f"{what} gave {fmt(got)}; expected {fmt(bits)} / (8 * {z // 8}) = {fmt(want)} (zlib compresses the text "
             f"to {z // 8} bytes){_hint(got, hints)}")


@zlib_ratio.prop("returns a Python float")
def _zr_float(fn, rng):
    bits, text = _zlib_instance(rng, _records(rng, 1)[0])
    expect_float(call(fn, bits, text, name="zlib_ratio"), "zlib_ratio")


@zlib_ratio.prop("is the model's bits over the zlib entropy, 8 * len(zlib.compress(utf-8 bytes)), on records")
def _zr_records(fn, rng):
    texts = [t for t in _records(rng, 12) if _zlib_text_ok(t)][:4]
    for text in texts:
        _expect_ratio(fn, *_zlib_instance(rng, text))


@zlib_ratio.prop("is right on repetitive text (zlib shrinks it) and on non-ASCII text (UTF-8 bytes)")
def _zr_special(fn, rng):
    text = _repetitive(rng)
    _expect_ratio(fn, *_zlib_instance(rng, text))
    text = _NON_ASCII[randint(rng, 0, len(_NON_ASCII) - 1)].format(n=randint(rng, 1000, 999999))
    _expect_ratio(fn, *_zlib_instance(rng, text))


@zlib_ratio.prop("raises a ValueError naming log_perplexity_bits when it is negative")
def _zr_bad(fn, rng):
    text = _records(rng, 1)[0]
    bad = -_uniform(rng, 1.0, 100.0)
    expect_value_error(fn, (bad, text), f"zlib_ratio({bad:.3f}, {text!r})",
                       "a log-perplexity in bits is -sum log2 p >= 0; a negative one is not a model's score",
                       "log_perplexity_bits")


# ---- (b) zlib_top_k -------------------------------------------------------------------------------------------
zlib_top_k = SET.question("zlib_top_k", "zlib_top_k(log_perplexities, texts, k) -> list of ints",
                          forbid=_forbid("mlsec_kit.lm.zlib_entropy", f"{_CHECKER}._zlib_bits"))


def _top(scores: list[float], k: int) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: (scores[i], i))[:k]


def _wrong_orders(bits: torch.Tensor, texts: list[str], k: int) -> dict[str, list[int]]:
    ratios = [float(b) / _zlib_bits(t) for b, t in zip(bits, texts)]
    return {
        "that is the highest ratios first; a low ratio (the model finds the text far likelier than zlib does) "
        "marks a likely memorised sample": _top([-r for r in ratios], k),
        "that ranks by the model's bits alone; divide by the zlib entropy, so that text that is merely repetitive "
        "(easy for any compressor) is not taken for memorised": _top([float(b) for b in bits], k),
        "that ranks by bits per byte; divide by the zlib entropy of each text":
            _top([float(b) / len(t.encode("utf-8")) for b, t in zip(bits, texts)], k),
        "the indices are sorted; return them likeliest memorised (lowest ratio) first": sorted(_top(ratios, k)),
    }


def _top_k_instance(rng: torch.Generator) -> tuple[torch.Tensor, list[str], int]:
    """Records (ratio 0.03-0.3: a few memorised, most not), repetitive lines (ratio 0.12-0.3, but few bits since zlib
    shrinks them: the lowest log-perplexities), redrawn
    until every wrong order in :func:`_wrong_orders` gives another top-k list than the ratio's."""
    while True:
        texts = _records(rng, randint(rng, 8, 16)) + [_repetitive(rng) for _ in range(randint(rng, 2, 4))]
        texts = [texts[i] for i in torch.randperm(len(texts), generator=rng).tolist()]
        if len(set(texts)) < len(texts):  # a deterministic model gives one text one score: no repeated samples
            continue
        bits = []
        for t in texts:
            z = _zlib_bits(t)
            ratio = _uniform(rng, 0.03, 0.3) if len(set(t)) > 6 else _uniform(rng, 0.12, 0.3)
            bits.append(ratio * z)
        bits = torch.tensor(bits, dtype=torch.float64)
        k = randint(rng, 3, 5)
        right = _reference_zlib_top_k(bits, texts, k)
        if all(w != right for w in _wrong_orders(bits, texts, k).values()):
            return bits, texts, k


def _expect_top(fn, bits: torch.Tensor, texts: list[str], k: int) -> None:
    what = f"zlib_top_k(log_perplexities {describe(bits)}, {len(texts)} texts, k={k})"
    out = call(fn, bits.clone(), list(texts), k, name="zlib_top_k")
    if isinstance(out, (torch.Tensor, np.ndarray)) and out.ndim == 1:
        out = out.tolist()
    try:
        if not isinstance(out, (list, tuple)) or any(isinstance(i, (bool, np.bool_)) for i in out):
            raise TypeError
        out = [operator.index(i) for i in out]  # ints, NumPy ints
    except TypeError:
        fail(f"{what} returned {describe(out)}; expected a list of {k} int indices into texts")
    want = _reference_zlib_top_k(bits, texts, k)
    if out != want:
        hint = _hint_top(out, _wrong_orders(bits, texts, k))
        fail(f"{what} gave {out}; expected {want} (the {k} lowest zlib ratios, lowest first){hint}")


def _hint_top(out: list[int], wrong: dict[str, list[int]]) -> str:
    return next((f"; {why}" for why, order in wrong.items() if order == out), "")


@zlib_top_k.prop("returns the k indices of the lowest zlib ratios, lowest first")
def _top_value(fn, rng):
    for _ in range(2):
        _expect_top(fn, *_top_k_instance(rng))


@zlib_top_k.prop("ranks every sample when k = len(texts)")
def _top_all(fn, rng):
    bits, texts, _ = _top_k_instance(rng)
    _expect_top(fn, bits, texts, len(texts))


@zlib_top_k.prop("raises a ValueError naming k outside [1, len(texts)]")
def _top_bad(fn, rng):
    bits, texts, _ = _top_k_instance(rng)
    for bad, why in ((0, "no sample would be returned"),
                     (len(texts) + randint(rng, 1, 3), "there are not that many samples")):
        expect_value_error(fn, (bits.clone(), list(texts), bad),
                           f"zlib_top_k(log_perplexities, {len(texts)} texts, k={bad})", why, "k")


# ---- (c) statements (conceptual) ------------------------------------------------------------------------------
lm_statements = SET.question("lm_statements", "lm_statements() -> str of letters, e.g. 'ac'")
STATEMENTS = {
    "a": "A canary has exposure log2 |R| exactly when its secret has rank 1: the model finds it likelier than every "
         "other candidate of the randomness space.",
    "b": "A canary that was never inserted in the training data has exposure close to log2 |R| - 1, since its "
         "secret ranks about |R| / 2 among the candidates.",
    "c": "When the training loss and the held-out loss are nearly equal, the model has not memorised any "
         "individual training sequence.",
    "d": "Training-data extraction as Carlini et al. (2021) run it needs no access to the training set: the "
         "attacker samples from the model and ranks the samples (by perplexity, zlib ratio or a reference model); "
         "the training set is needed only to verify what was found.",
    "e": "Exact deduplication of whole lines (a line is dropped only when it is identical to an earlier one, as "
         "lm.deduplicate(method=\"exact\") does) keeps one copy of a canary inserted many times verbatim, but "
         "keeps every near-copy that differs in a few characters; those need a near-duplicate method such as "
         "n-gram Jaccard similarity estimated with MinHash (Lee et al. 2022).",
    "f": "A model trained with DP-SGD at (epsilon, delta) for adding or removing one training line gives the same "
         "(epsilon, delta) to a canary inserted 16 times, since each copy is one line.",
    "g": "The zlib ratio is designed to flag text that zlib compresses well, such as a word repeated many times, "
         "as likely memorised.",
    "h": "A reference-model (LiRA-style) membership score compares a sequence's loss under the target model with "
         "its loss under models not trained on it, so a sequence that is easy for every model (low loss "
         "everywhere) is not taken for a member just for being easy.",
}
TRUE_STATEMENTS = frozenset("adeh")
_WHY_NOT = {
    "b": "log2 of its rank is about log2 |R| - 1; its exposure, log2 |R| minus that, is about 1 bit (a uniform "
         "rank gives 1/ln 2 = 1.44 bits on average)",
    "c": "memorisation of rare sequences (a canary seen a few times) happens while the average train and held-out "
         "losses agree: the gap averages over all sequences, exposure measures one",
    "f": "the 16 copies are a group of 16 lines: group privacy gives at best (16 epsilon, delta (1 + e^epsilon + "
         "... + e^(15 epsilon))), a delta that is larger than 1 (no promise at all) unless epsilon is small; a canary "
         "repeated k times is protected far less than one line",
    "g": "the ratio divides by the zlib entropy, so text any compressor finds easy (repetition) gets a middling "
         "ratio and is discounted; a low ratio marks text the model finds far likelier than zlib does",
}
statement_checks(lm_statements, "lm_statements", STATEMENTS, TRUE_STATEMENTS, _WHY_NOT, exact=True,
                 hint="think about what a rank of |R| / 2 gives, what an average loss gap hides, what extraction "
                 "needs, what each defence removes, and what a reference model corrects")
