"""Training-data extraction from a language model's samples alone (Carlini, Tramèr, Wallace, Jagielski,
Herbert-Voss, Lee, Roberts, Brown, Song, Erlingsson, Oprea & Raffel 2021, "Extracting training data from large
language models").

The attack has two steps. **Generate**: draw many samples from the model (:func:`mlsec_kit.lm.generate`), with
no knowledge of the training set. **Rank**: order the distinct samples by a membership metric and keep the ``k``
most suspicious; whatever of the training set appears among them has been extracted. Every metric here is *lower
= more likely memorised*, as in the paper (which sorts ascending):

* ``"perplexity"``: the model's log-perplexity of the sample in bits per token
  (:func:`mlsec_kit.lm.log_perplexity` divided by the token count). Low perplexity alone mostly finds dull,
  repetitive text that any model finds likely;
* ``"zlib"``: the model's bits for the whole sample divided by its **zlib entropy**, the bits of
  ``zlib.compress`` of its UTF-8 bytes (:func:`zlib_entropy`). zlib knows nothing of the training set, so text it
  compresses well (repetition) is discounted, and a sample the model compresses far better than zlib can
  (a secret number it has seen) stands out. This is NOT exactly the paper's score: the paper's code divides the
  log of the perplexity (nats per token) by the zlib length in bytes. The two differ by the factor
  ``T / (8 ln 2)``, T the sample's token count, so they rank alike only samples of equal length (the paper's
  samples were all 256 tokens); here samples end at EOS and differ in length, and the paper's form would favour
  long samples (more zlib bytes) for no reason to do with memorisation. The kit divides one code length by
  another — the model's bits for the text by zlib's bits for it, "model bits per zlib bit" — which is
  dimensionless and does not depend on length that way (a very short sample still pays zlib's few bytes of
  header, which lowers its ratio a little);
* ``"reference"``: the ratio of the target's log-perplexity to a *reference* model's: text both models find
  likely is generic, text only the target finds likely is memorised. The paper's references (GPT-2 Small and
  Medium) were trained on the SAME data as the target (GPT-2 XL); the ratio works there because a smaller model
  memorises less. The book's reference is the same architecture trained on *disjoint* text of the same kind — the
  membership-inference kind of reference (Mireshghallah et al. 2022; LiRA's OUT models), which assumes more of
  the attacker (text of the same distribution known to lie outside the training set) and separates memorised
  text more sharply. The "reference" numbers are therefore not the paper's small-model ratio;

The paper has three more metrics, omitted here: the ratio to a *medium* reference model (one reference model is
enough to show the idea), the ratio to the perplexity of the *lowercased* sample (vacuous: the synthetic corpus is
all lower case) and the minimum perplexity over a sliding *window* (for long samples; these are at most the
model's context, 64 bytes by default).

Before ranking, identical samples are merged. The paper also removes *near*-duplicates from its top lists (two
samples whose word trigrams overlap by at least half), so the k guesses are not k variants of one memorised string;
:func:`extract` does so when ``near_duplicates`` is given (character trigrams, see there) and not by default.

:func:`extract` runs both steps and counts how many inserted canaries or records appear in the top ``k`` of each
ranking, beside two baselines: how many appear in *any* sample (the ceiling a perfect ranking reaches) and how
many ``k`` samples picked at random would contain on average (chance).
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import torch
from torch import nn

__all__ = ["zlib_entropy", "extraction_scores", "contains", "extract", "ExtractionResult", "METRICS"]

METRICS = ("perplexity", "zlib", "reference")


def _lm():
    # mlsec_kit.lm re-exports this module, so the package is imported when a function runs, not at import time
    from mlsec_kit import lm
    return lm


def _check_texts(texts: object, name: str = "texts", *, allow_empty: bool = False,
                 nonempty_strings: bool = False) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
        raise TypeError(f"{name} must be a list or tuple of strings, got {type(texts).__name__}")
    if not texts and not allow_empty:
        raise ValueError(f"{name} must contain at least one string, got an empty {type(texts).__name__}")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"{name}[{i}] must be a string, got {type(t).__name__}")
        if nonempty_strings and not t:
            # an empty text has no token to score: its log-perplexity 0 would rank it first as "memorised"
            raise ValueError(f"{name}[{i}] is the empty string: every text must have at least one byte to score")
    return list(texts)


def _check_fit(model: nn.Module, texts: list[str], name: str) -> None:
    """Each text is scored in one forward pass: its byte length must be at most the model's context."""
    context = getattr(model, "context", None)
    if context is None:
        return
    for i, t in enumerate(texts):
        if len(t.encode("utf-8")) > int(context):
            raise ValueError(f"{name}[{i}] has {len(t.encode('utf-8'))} bytes, more than the model's context of "
                             f"{context}: cut the texts to at most {context} bytes")


def _check_model(name: str, model: object) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name} must be a language model (a torch nn.Module, e.g. lm.tiny_lm(...)), "
                        f"got {type(model).__name__}")


def _check_int(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def zlib_entropy(text: str) -> int:
    """The zlib entropy of ``text``: ``8 · len(zlib.compress(text.encode("utf-8")))``, in bits (level 6, zlib's
    default). Always > 0: even the empty string compresses to a few bytes of header."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    return 8 * len(zlib.compress(text.encode("utf-8")))


def _num_tokens(texts: list[str]) -> torch.Tensor:
    tok = _lm().ByteTokenizer()
    return torch.tensor([max(int(tok.encode(t).numel()), 1) for t in texts], dtype=torch.float64)


def extraction_scores(model: nn.Module, texts: Sequence[str], *, metric: str = "zlib",
                      reference: Optional[nn.Module] = None) -> torch.Tensor:
    """Score samples for extraction: lower = more likely memorised training text (Carlini et al. 2021, §5.1).

    Args:
        model: the target language model.
        texts: the samples (e.g. from :func:`mlsec_kit.lm.generate`); not modified.
        metric: ``"perplexity"`` (bits per token), ``"zlib"`` (model bits / zlib bits) or ``"reference"`` (target
            bits / reference bits); see the module docstring.
        reference: the reference model, required by (and only used by) ``metric="reference"``.

    Returns:
        A float64 tensor of scores, one per text.

    Shape:
        ``texts``: ``N`` strings → ``(N,)``; all three metrics are > 0 for non-empty texts.
    """
    _check_model("model", model)
    texts = _check_texts(texts, nonempty_strings=True)
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if metric == "reference":
        if reference is None:
            raise ValueError("reference must be a language model when metric='reference', got None")
        _check_model("reference", reference)
    _check_fit(model, texts, "texts")
    if metric == "reference":
        _check_fit(reference, texts, "texts")
    bits = _lm().log_perplexity(model, texts).detach().to(torch.float64).cpu()
    if metric == "perplexity":
        return bits / _num_tokens(texts)
    if metric == "zlib":
        return bits / torch.tensor([zlib_entropy(t) for t in texts], dtype=torch.float64)
    ref_bits = _lm().log_perplexity(reference, texts).detach().to(torch.float64).cpu()
    return bits / ref_bits.clamp_min(1e-12)


def _target_text(target: object, i: int) -> str:
    if isinstance(target, str):
        text = target
    elif hasattr(target, "template") and hasattr(target, "secret"):   # an lm.Canary
        text = getattr(target, "text", None) or str(target.template).format(secret=target.secret)
    else:
        raise TypeError(f"targets[{i}] must be a string or an lm.Canary, got {type(target).__name__}")
    if not text:
        raise ValueError(f"targets[{i}] must be a non-empty string")
    return text


def contains(samples: Sequence[str], targets: Sequence[object]) -> torch.Tensor:
    """Which samples contain which targets, verbatim.

    Args:
        samples: generated texts.
        targets: the training sequences looked for: strings (records) or :class:`mlsec_kit.lm.Canary` objects
            (their full text, template with the secret filled in).

    Returns:
        A bool tensor ``hit`` with ``hit[i, j]`` True when target ``j`` is a substring of sample ``i``.

    Shape:
        ``(len(samples), len(targets))``.
    """
    samples = _check_texts(samples, "samples", allow_empty=True)
    if isinstance(targets, str) or not isinstance(targets, (list, tuple)):
        raise TypeError(f"targets must be a list or tuple of strings or lm.Canary objects, got "
                        f"{type(targets).__name__}")
    wanted = [_target_text(t, i) for i, t in enumerate(targets)]
    return torch.tensor([[w in s for w in wanted] for s in samples], dtype=torch.bool).reshape(len(samples),
                                                                                               len(wanted))


def _fit(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` UTF-8 bytes (never inside a character)."""
    b = text.encode("utf-8")
    return text if len(b) <= max_bytes else b[:max_bytes].decode("utf-8", errors="ignore")


def _chance(hit: torch.Tensor, k: int) -> float:
    """Expected number of targets found in ``k`` of the ``N`` samples drawn uniformly without replacement:
    ``Σ_j 1 - C(N - m_j, k) / C(N, k)``, ``m_j`` the number of samples containing target ``j``."""
    n = hit.shape[0]
    total = 0.0
    for m in hit.sum(dim=0).tolist():
        if m > 0:
            total += 1.0 - (math.comb(n - m, k) / math.comb(n, k) if n - m >= k else 0.0)
    return total


def _spread(texts: list[str], order: list[int], k: int, fraction: float) -> list[int]:
    """The first ``k`` indices of ``order`` whose text shares less than ``fraction`` of its character trigrams with
    every text taken before it."""
    from .dedup import ngrams
    taken: list[int] = []
    grams: list[set[str]] = []
    for i in order:
        g = ngrams(texts[i], n=3)
        # a text with no trigram at all (only punctuation) is a near-duplicate only of another such text
        if all(len(g & h) < fraction * len(g) if g else h for h in grams):
            taken.append(i)
            grams.append(g)
            if len(taken) == k:
                break
    return taken


@dataclass
class ExtractionResult:
    """What :func:`extract` generated, how it ranked it, and what it recovered.

    Attributes:
        samples: the distinct generated samples (first occurrence order); exact duplicates of a sample are
            dropped before ranking (near-duplicates only from the top lists, and only with ``near_duplicates``).
        scores: per metric, the score of each sample (lower = more likely memorised).
        ranking: per metric, the sample indices from most to least suspicious (``k`` first are the guesses).
        top: per metric, the ``k`` top-ranked samples (with ``near_duplicates``: the first ``k`` in ranking order
            that are not near-duplicates of one taken before; fewer if the samples run out).
        recovered: per metric, how many targets appear verbatim in its top ``k`` samples.
        found: per metric, the indices of those targets.
        ceiling: how many targets appear in any sample (what a perfect ranking would recover).
        chance: how many targets ``k`` samples drawn at random would contain, in expectation.
        num_generated: how many samples were drawn before removing duplicates.
        k: the number of guesses.
        hits: ``hits[i, j]`` is True when sample ``i`` contains target ``j`` (:func:`contains`).
    """

    samples: list[str]
    scores: dict[str, torch.Tensor]
    ranking: dict[str, list[int]]
    top: dict[str, list[str]]
    recovered: dict[str, int]
    found: dict[str, list[int]]
    ceiling: int
    chance: float
    num_generated: int
    k: int
    hits: Optional[torch.Tensor] = field(repr=False, default=None)


def extract(model: nn.Module, *, n: int, length: int, k: int, targets: Sequence[object] = (), prompt: str = "",
            temperature: float = 1.0, top_k: Optional[int] = None, reference: Optional[nn.Module] = None,
            metrics: Union[str, Sequence[str], None] = None, samples: Optional[Sequence[str]] = None,
            generator: Optional[torch.Generator] = None,
            near_duplicates: Optional[float] = None) -> ExtractionResult:
    """The extraction attack of Carlini et al. (2021): sample, deduplicate, rank, keep the top ``k``.

    Args:
        model: the target language model; only sampled from and scored, never modified.
        n: the number of samples to draw, an int >= 1.
        length: tokens per sample, an int >= 1 (passed to :func:`mlsec_kit.lm.generate`). Samples are scored in
            one forward pass, so a sample longer than the model's ``context`` bytes (prompt included) is cut to it.
        k: how many top-ranked samples the attacker keeps as guesses, an int >= 1 (capped at the number of
            distinct samples).
        targets: the training sequences the evaluator looks for (strings or ``lm.Canary`` objects); the attack
            never sees them, they only count what it recovered. May be empty.
        prompt, temperature, top_k: sampling settings of :func:`mlsec_kit.lm.generate` (``prompt=""``: samples
            from the start-of-text token, as the paper's first setting).
        reference: a reference model for the ``"reference"`` metric (see :func:`extraction_scores`).
        metrics: one metric name or several; ``None``: all of :data:`METRICS` (``"reference"`` only when
            ``reference`` is given).
        samples: samples drawn earlier, to rank instead of generating (then ``n``, ``length``, ``prompt``,
            ``temperature``, ``top_k`` and ``generator`` are not used; ``n`` must still be an int >= 1).
        generator: the seeded source of the sampling.
        near_duplicates: None (default): only identical samples are merged. A fraction in (0, 1]: walking down
            each ranking, a sample is skipped when at least this fraction of its character trigrams
            (:func:`mlsec_kit.lm.ngrams` with n = 3, after :func:`~mlsec_kit.lm.normalize`) occur in a sample
            already taken, so the k guesses are k different strings (Carlini et al. 2021 use word trigrams and
            0.5 on long web text; one-line samples call for characters). ``recovered`` counts the guesses so
            chosen, so a threshold that merges DIFFERENT secrets lowers it: on short templated lines do not use
            0.5 — two random 6-digit secrets after "my pin is " share 8 of their 14 trigrams (0.57) and would be
            merged — but about 0.8, which merges only strings that differ in their last one or two characters.

    Returns:
        An :class:`ExtractionResult`.
    """
    _check_model("model", model)
    n = _check_int("n", n)
    length = _check_int("length", length)
    k = _check_int("k", k)
    if metrics is None:
        metrics = [m for m in METRICS if m != "reference" or reference is not None]
    elif isinstance(metrics, str):
        metrics = [metrics]
    metrics = list(metrics)
    if not metrics or any(m not in METRICS for m in metrics):
        raise ValueError(f"metrics must be a non-empty list of names from {METRICS}, got {metrics!r}")
    if "reference" in metrics and reference is None:
        raise ValueError("reference must be a language model when metrics include 'reference', got None")
    if reference is not None:
        _check_model("reference", reference)
    if near_duplicates is not None and (isinstance(near_duplicates, bool) or
                                        not isinstance(near_duplicates, (int, float)) or
                                        not 0 < near_duplicates <= 1):
        raise ValueError(f"near_duplicates must be None or a fraction in (0, 1], got {near_duplicates!r}")
    contains([], targets)   # validates targets before any sampling
    if samples is None:
        drawn = _lm().generate(model, n=n, length=length, prompt=prompt, temperature=temperature, top_k=top_k,
                               generator=generator)
    else:
        drawn = _check_texts(samples, "samples")
    context = getattr(model, "context", None)
    if context is not None:   # a replacement character (3 bytes) can make a decoded sample outgrow the context
        drawn = [_fit(s, int(context)) for s in drawn]
    distinct = list(dict.fromkeys(s for s in drawn if s))
    if not distinct:
        raise ValueError("samples must contain at least one non-empty text; every sample was empty")
    k = min(k, len(distinct))
    hit = contains(distinct, targets)
    scores, ranking, top, recovered, found = {}, {}, {}, {}, {}
    for m in metrics:
        s = extraction_scores(model, distinct, metric=m, reference=reference)
        order = sorted(range(len(distinct)), key=lambda i: (s[i].item(), i))
        scores[m], ranking[m] = s, order
        chosen = order[:k] if near_duplicates is None else _spread(distinct, order, k, float(near_duplicates))
        top[m] = [distinct[i] for i in chosen]
        got = hit[chosen].any(dim=0) if hit.shape[1] else torch.zeros(0, dtype=torch.bool)
        found[m] = torch.nonzero(got).flatten().tolist()
        recovered[m] = len(found[m])
    return ExtractionResult(samples=distinct, scores=scores, ranking=ranking, top=top, recovered=recovered,
                            found=found, ceiling=int(hit.any(dim=0).sum()) if hit.shape[1] else 0,
                            chance=_chance(hit, k), num_generated=len(drawn), k=k, hits=hit)
