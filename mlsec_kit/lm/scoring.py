"""Scoring and sampling with a trained language model: log-perplexity in bits, and generation.

Carlini et al. (2019) measure memorisation by the log-perplexity of a sequence, ``Px(x_1..x_n) = −Σ_t log2
Pr(x_t | x_1..x_{t−1})``; Carlini et al. (2021) rank generated samples by it. :func:`log_perplexity` sums over the
tokens from ``start`` on (the secret of a canary, given its prefix), :func:`generate` samples with temperature and
top-k.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from ..dp._validate import _real, check_generator, check_int
from .tokenizer import BOS, EOS, PAD, VOCAB_SIZE, ByteTokenizer, _check_texts

__all__ = ["log_perplexity", "generate", "next_token_logprobs"]

#: rows per forward pass when scoring many texts
CHUNK = 1024


def _check_model(model: object) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch nn.Module, got {type(model).__name__}")
    return model


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def _eval_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    was = model.training
    model.eval()
    try:
        return model(x.to(_device(model))).float().cpu()
    finally:
        model.train(was)


def _as_int(value: object) -> Optional[int]:
    """``value`` as an int when it is one (a Python, numpy or 0-d integer tensor int; not a bool), else None."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, torch.Tensor):
        if value.dim() != 0 or value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool:
            return None
        return int(value)
    return int(value) if isinstance(value, (int, np.integer)) else None


def log_perplexity(model: nn.Module, texts: Sequence[str], *,
                   start: Union[int, Sequence[int], None] = None) -> torch.Tensor:
    """``−Σ_{t >= start} log2 Pr(x_t | BOS, x_1..x_{t−1})`` for each text, in bits (no EOS term).

    Args:
        model: a byte-level LM (``(B, T)`` ids to ``(B, T, V)`` logits) with at most ``model.context`` tokens in.
        texts: N strings; each must fit the context (its byte length <= ``model.context``).
        start: the first byte position counted (0: the whole text): one int for all texts or one per text, in
            ``[0, len]``; None = 0. For a canary, ``len(prefix bytes)`` scores the secret alone.

    Returns:
        Tensor ``(N,)`` float64 of bits, on the CPU.

    Shape:
        ``(len(texts),)``, values >= 0 (0 for a text whose ``start`` is its length).
    """
    model = _check_model(model)
    texts = _check_texts(texts)
    enc = [t.encode("utf-8") for t in texts]
    lens = [len(b) for b in enc]
    context = getattr(model, "context", None)
    if context is not None and max(lens) > context:
        raise ValueError(f"texts must be at most the model's context of {context} bytes, got one of {max(lens)}")
    if start is None:
        starts: list = [0] * len(texts)
    elif _as_int(start) is not None:
        starts = [_as_int(start)] * len(texts)
    elif isinstance(start, (Sequence, torch.Tensor, np.ndarray)) and not isinstance(start, (str, bytes)) and \
            getattr(start, "ndim", 1) == 1:
        starts = [_as_int(s) if _as_int(s) is not None else s for s in start]
        if len(starts) != len(texts):
            raise ValueError(f"start must be an int or one int per text ({len(texts)}), got {len(starts)} values")
    else:
        raise TypeError(f"start must be None, an int or a sequence of ints, got {type(start).__name__}")
    for s, n in zip(starts, lens):
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= n:
            raise ValueError(f"start must be an int in [0, len(text)] (here [0, {n}]), got {s!r}")
    out = torch.zeros(len(texts), dtype=torch.float64)
    # group by length so rows need no padding inside a forward pass
    by_len: dict[int, list[int]] = {}
    for i, n in enumerate(lens):
        by_len.setdefault(n, []).append(i)
    for n, idx in by_len.items():
        if n == 0:
            continue
        for j in range(0, len(idx), CHUNK):
            part = idx[j:j + CHUNK]
            rows = torch.tensor([[BOS] + list(enc[i]) for i in part], dtype=torch.long)
            logp = torch.log_softmax(_eval_logits(model, rows[:, :-1]).double(), -1)
            tok = logp.gather(-1, rows[:, 1:].unsqueeze(-1)).squeeze(-1)  # (b, n) ln p of byte t
            pos = torch.arange(n)
            st = torch.tensor([starts[i] for i in part]).unsqueeze(1)
            out[part] = -(tok * (pos >= st)).sum(-1) / math.log(2)
    return out


def next_token_logprobs(model: nn.Module, prefixes: torch.Tensor) -> torch.Tensor:
    """Natural-log next-token distribution after each row of ``prefixes`` ``(B, T)`` (BOS included): ``(B, V)``.

    Args:
        model: a byte-level LM.
        prefixes: an integer tensor ``(B, T)`` of token ids in ``[0, 259)``, ``1 <= T <= model.context``.
    """
    model = _check_model(model)
    if not isinstance(prefixes, torch.Tensor):
        raise TypeError(f"prefixes must be a LongTensor (B, T) of token ids, got {type(prefixes).__name__}")
    if prefixes.dtype.is_floating_point or prefixes.dtype.is_complex or prefixes.dtype == torch.bool:
        raise TypeError(f"prefixes must be an integer tensor of token ids, got dtype {prefixes.dtype}")
    if prefixes.dim() != 2 or prefixes.shape[1] < 1:
        raise ValueError(f"prefixes must have shape (B, T) with T >= 1 (start each row with BOS), got "
                         f"{tuple(prefixes.shape)}")
    context = getattr(model, "context", None)
    if context is not None and prefixes.shape[1] > context:
        raise ValueError(f"prefixes must have at most the model's context of {context} tokens, got "
                         f"{prefixes.shape[1]}")
    if prefixes.numel() and not (0 <= int(prefixes.min()) and int(prefixes.max()) < VOCAB_SIZE):
        raise ValueError(f"prefixes must hold token ids in [0, {VOCAB_SIZE}), got values in "
                         f"[{int(prefixes.min())}, {int(prefixes.max())}]")
    return torch.log_softmax(_eval_logits(model, prefixes)[:, -1].double(), -1)


def generate(model: nn.Module, *, n: int, length: int, prompt: str = "", temperature: float = 1.0,
             top_k: Optional[int] = None, generator: Optional[torch.Generator] = None) -> list[str]:
    """``n`` samples of up to ``length`` new bytes after ``prompt``, each ended at the first EOS.

    Tokens are drawn from ``softmax(logits / temperature)``, restricted to the ``top_k`` likeliest when given
    (tokens tied with the k-th likeliest are kept too, so exact ties can admit more than k); BOS and PAD are never
    drawn. Beyond the context only the last ``context`` tokens are read.

    Args:
        model: a byte-level LM.
        n: samples, >= 1.
        length: new tokens at most, >= 1.
        prompt: text the samples start with (returned as part of each sample).
        temperature: > 0.
        top_k: None or an int in [1, 257] (bytes and EOS).
        generator: a CPU generator for the draws.

    Returns:
        list of ``n`` strings ``prompt + continuation`` (invalid UTF-8 decoded with replacement characters).
    """
    model = _check_model(model)
    n = check_int("n", n)
    length = check_int("length", length)
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
    t = _real("temperature", temperature)
    if not 0 < t < math.inf:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= 257):
        raise ValueError(f"top_k must be None or an int in [1, 257], got {top_k!r}")
    check_generator(generator)
    context = getattr(model, "context", None) or 10 ** 9
    tok = ByteTokenizer()
    seq = torch.cat([torch.tensor([BOS]), tok.encode(prompt)]).repeat(n, 1)
    done = torch.zeros(n, dtype=torch.bool)
    for _ in range(length):
        raw = _eval_logits(model, seq[:, -context:])[:, -1]
        logits = raw / t
        if not bool(torch.isfinite(logits).all()):
            # a tiny temperature overflows logits / t: shift the best allowed logit to 0 first, so the others
            # go to -inf at worst (the same distribution, computable); normal temperatures never take this path
            raw = raw.double()   # in float32 a temperature below ~1e-45 is 0 itself
            raw[:, [BOS, PAD]] = -math.inf
            logits = (raw - raw.amax(-1, keepdim=True)) / t
        logits[:, [BOS, PAD]] = -math.inf
        if top_k is not None:
            kth = logits.topk(top_k, -1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, -math.inf)
        nxt = torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(1)
        nxt = torch.where(done, torch.full_like(nxt, PAD), nxt)
        done |= nxt == EOS
        seq = torch.cat([seq, nxt.unsqueeze(1)], 1)
        if bool(done.all()):
            break
    return [tok.decode(r) for r in seq]
