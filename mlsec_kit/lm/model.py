"""A tiny causal language model in plain torch: a decoder-only transformer (or an LSTM) over bytes.

Small enough to train in seconds on a CPU, and built for DP-SGD (:func:`mlsec_kit.dp.train_dp_sgd`): no batch
norm, no dropout (the model is deterministic given its weights), and every linear map is an ``nn.Linear`` called
once per forward pass, so chapter 11's ghost clipping finds its per-example gradient norms from activations
(the embeddings and layer norms go through ``vmap``). Attention is written out (query/key/value projections, a
causal mask, softmax) rather than taken from ``nn.MultiheadAttention``, whose packed weight ghost clipping cannot
see. The transformer is GPT-2's pre-norm block (Radford et al. 2019, "Language models are unsupervised multitask
learners") at toy size.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..dp._validate import check_generator, check_int
from .tokenizer import VOCAB_SIZE

__all__ = ["tiny_lm", "TinyTransformer", "TinyLSTM", "KINDS"]

KINDS = ("transformer", "lstm")


class _Block(nn.Module):
    def __init__(self, d_model: int, heads: int, context: int):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d_model)
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.ln2 = nn.LayerNorm(d_model)
        self.fc1 = nn.Linear(d_model, 4 * d_model)
        self.fc2 = nn.Linear(4 * d_model, d_model)
        self.register_buffer("mask", torch.ones(context, context, dtype=torch.bool).tril(), persistent=False)

    def forward(self, x: torch.Tensor, past: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
                keep: Optional[list] = None) -> torch.Tensor:
        """``past``: keys and values ``(1, H, P, hd)`` of P earlier positions, shared by every row; ``keep``: a
        list the block appends this call's keys and values to."""
        B, T, D = x.shape
        h = self.ln1(x)
        hd = D // self.heads
        q, k, v = (m(h).view(B, T, self.heads, hd).transpose(1, 2) for m in (self.q, self.k, self.v))
        if keep is not None:
            keep.append((k, v))
        P = 0
        if past is not None:
            P = past[0].shape[2]
            k = torch.cat([past[0].expand(B, -1, -1, -1), k], 2)
            v = torch.cat([past[1].expand(B, -1, -1, -1), v], 2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hd)  # (B, H, T, P + T)
        att = att.masked_fill(~self.mask[P:P + T, :P + T], float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, D)
        x = x + self.proj(y)
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class TinyTransformer(nn.Module):
    """Token and position embeddings, ``layers`` pre-norm causal self-attention blocks, a final layer norm and a
    linear head to ``vocab_size`` logits. Input ``(B, T)`` token ids with ``T <= context``; output ``(B, T, V)``
    logits, position t predicting token t + 1."""

    def __init__(self, *, vocab_size: int = VOCAB_SIZE, d_model: int = 64, layers: int = 2, heads: int = 4,
                 context: int = 64):
        super().__init__()
        self.context = context
        self.vocab_size = vocab_size
        self.tok = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(context, d_model)
        self.blocks = nn.ModuleList([_Block(d_model, heads, context) for _ in range(layers)])
        self.ln = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T = x.shape[-1]
        if T > self.context:
            raise ValueError(f"input has {T} tokens, more than the model's context of {self.context}")
        h = self.tok(x) + self.pos(torch.arange(T, device=x.device))
        for b in self.blocks:
            h = b(h)
        return self.head(self.ln(h))

    @torch.no_grad()
    def prefix_cache(self, prefix: torch.Tensor) -> list:
        """Each block's keys and values of one prefix ``(1, P)``, for :meth:`forward_cached`."""
        if prefix.dim() != 2 or prefix.shape[0] != 1:
            raise ValueError(f"prefix must have shape (1, P), got {tuple(prefix.shape)}")
        keep: list = []
        h = self.tok(prefix) + self.pos(torch.arange(prefix.shape[1], device=prefix.device))
        for b in self.blocks:
            h = b(h, keep=keep)
        return keep

    @torch.no_grad()
    def forward_cached(self, x: torch.Tensor, cache: list) -> torch.Tensor:
        """The logits of ``x`` ``(B, T)`` continuing the prefix of ``cache`` (:meth:`prefix_cache`): the same
        numbers as ``forward(cat(prefix, x))[:, P:]`` without recomputing the prefix for every row."""
        P = cache[0][0].shape[2]
        T = x.shape[1]
        if P + T > self.context:
            raise ValueError(f"prefix and input have {P + T} tokens, more than the model's context of "
                             f"{self.context}")
        h = self.tok(x) + self.pos(torch.arange(P, P + T, device=x.device))
        for b, past in zip(self.blocks, cache):
            h = b(h, past=past)
        return self.head(self.ln(h))


class TinyLSTM(nn.Module):
    """Embedding, a ``layers``-layer LSTM, a linear head (the kind of model Carlini et al. 2019 tested).
    ``context`` only bounds the input length, as for the transformer."""

    def __init__(self, *, vocab_size: int = VOCAB_SIZE, d_model: int = 64, layers: int = 2, context: int = 64):
        super().__init__()
        self.context = context
        self.vocab_size = vocab_size
        self.tok = nn.Embedding(vocab_size, d_model)
        self.lstm = nn.LSTM(d_model, d_model, num_layers=layers, batch_first=True)
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] > self.context:
            raise ValueError(f"input has {x.shape[-1]} tokens, more than the model's context of {self.context}")
        h, _ = self.lstm(self.tok(x))
        return self.head(h)


def tiny_lm(*, kind: str = "transformer", d_model: int = 64, layers: int = 2, heads: int = 4, context: int = 64,
            generator: Optional[torch.Generator] = None) -> nn.Module:
    """A freshly initialised byte-level language model (vocabulary :data:`~mlsec_kit.lm.tokenizer.VOCAB_SIZE`).

    Args:
        kind: ``"transformer"`` (:class:`TinyTransformer`) or ``"lstm"`` (:class:`TinyLSTM`).
        d_model: width, >= 1 (a multiple of ``heads`` for the transformer).
        layers: blocks (or LSTM layers), >= 1.
        heads: attention heads, >= 1 (transformer only).
        context: the longest input in tokens, >= 2.
        generator: seeds the initialisation (then torch's global generator is left untouched); None: unseeded
            (a seed is drawn from torch's global generator, which advances).

    Returns:
        the model in eval mode, on the CPU.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    d_model = check_int("d_model", d_model)
    layers = check_int("layers", layers)
    heads = check_int("heads", heads)
    context = check_int("context", context, minimum=2)
    check_generator(generator)
    if kind == "transformer" and d_model % heads:
        raise ValueError(f"d_model must be a multiple of heads = {heads}, got {d_model}")
    seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if kind == "transformer":
            model: nn.Module = TinyTransformer(d_model=d_model, layers=layers, heads=heads, context=context)
        else:
            model = TinyLSTM(d_model=d_model, layers=layers, context=context)
    return model.eval()
