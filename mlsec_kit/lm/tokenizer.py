"""A byte-level tokenizer: the 256 byte values of the UTF-8 text plus three special tokens.

A byte vocabulary needs no training and no download, never meets an unknown character, and makes a 6-digit secret
exactly six tokens, so the exposure of a canary (Carlini et al. 2019, "The Secret Sharer") is a sum over its digits.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

__all__ = ["ByteTokenizer", "BOS", "EOS", "PAD", "VOCAB_SIZE"]

#: beginning of sequence: every row of :meth:`ByteTokenizer.batch` starts with it, so the first byte is predicted
BOS = 256
#: end of sequence: appended after the text when there is room, so a sampler learns where a line ends
EOS = 257
#: padding after EOS; the training loss ignores it
PAD = 258
VOCAB_SIZE = 259


class ByteTokenizer:
    """Bytes 0..255 of the UTF-8 encoding, plus ``BOS = 256``, ``EOS = 257``, ``PAD = 258``; ``vocab_size = 259``."""

    bos = BOS
    eos = EOS
    pad = PAD
    vocab_size = VOCAB_SIZE

    def encode(self, text: str) -> torch.Tensor:
        """The UTF-8 bytes of ``text`` as a LongTensor ``(T,)``, without BOS or EOS."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        return torch.tensor(list(text.encode("utf-8")), dtype=torch.long)

    def decode(self, ids: torch.Tensor | Sequence[int]) -> str:
        """The text of ``ids``: BOS and PAD are skipped, decoding stops at the first EOS; a byte sequence that is
        not valid UTF-8 (a sampler may produce one) is decoded with replacement characters."""
        if isinstance(ids, torch.Tensor):
            if ids.dim() != 1:
                raise ValueError(f"ids must be one-dimensional, got shape {tuple(ids.shape)}")
            if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
                raise TypeError(f"ids must be an integer tensor of token ids, got dtype {ids.dtype}")
            ids = ids.tolist()
        elif isinstance(ids, (str, bytes)) or not isinstance(ids, Sequence):
            raise TypeError(f"ids must be a 1-D integer tensor or a list of ints, got {type(ids).__name__}")
        out = bytearray()
        for i in ids:
            if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
                raise TypeError(f"ids must contain ints (token ids in [0, {VOCAB_SIZE})), got {type(i).__name__}")
            i = int(i)
            if not 0 <= i < VOCAB_SIZE:
                raise ValueError(f"ids must be token ids in [0, {VOCAB_SIZE}), got {i}")
            if i == EOS:
                break
            if i < 256:
                out.append(i)
        return out.decode("utf-8", errors="replace")

    def batch(self, texts: Sequence[str], *, length: int) -> torch.Tensor:
        """Rows ``[BOS, bytes..., EOS, PAD, ...]`` of exactly ``length`` tokens; a text longer than ``length - 1``
        bytes is cut (and gets no EOS).

        Args:
            texts: the strings.
            length: tokens per row, >= 2.

        Returns:
            LongTensor ``(B, length)``.

        Shape:
            ``(len(texts), length)``, values in ``[0, 259)``; column 0 is BOS.
        """
        texts = _check_texts(texts)
        if isinstance(length, bool) or not isinstance(length, int) or length < 2:
            raise ValueError(f"length must be an int >= 2, got {length!r}")
        out = torch.full((len(texts), length), PAD, dtype=torch.long)
        out[:, 0] = BOS
        for r, t in enumerate(texts):
            b = list(t.encode("utf-8"))[: length - 1] + [EOS]
            b = b[: length - 1]
            out[r, 1:1 + len(b)] = torch.tensor(b, dtype=torch.long)
        return out


def _check_texts(texts: object, name: str = "texts", allow_empty: bool = False) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise TypeError(f"{name} must be a list of strings, got {type(texts).__name__}")
    texts = list(texts)
    for t in texts:
        if not isinstance(t, str):
            raise TypeError(f"{name} must contain only strings, got {type(t).__name__}")
    if not texts and not allow_empty:
        raise ValueError(f"{name} is empty")
    return texts
