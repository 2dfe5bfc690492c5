"""Scoring a training-set inspection defence: how many of the rows it flagged were poisons, and how many
poisons it found. Shared by the sanitisation defences (chapter *Poisoning*) and the backdoor detectors."""
from __future__ import annotations

from typing import Sequence, Union

import torch

__all__ = ["flag_scores"]

Indices = Union[torch.Tensor, Sequence[int]]


def _index_set(name: str, idx: Indices, n: int) -> set[int]:
    if isinstance(idx, torch.Tensor):
        if idx.is_floating_point() or idx.dim() > 1:
            raise TypeError(f"{name} must be a 1-D integer tensor or a sequence of ints")
        idx = idx.flatten().tolist()
    out = set()
    for i in idx:
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n:
            raise ValueError(f"{name} must hold row indices in [0, {n}), got {i!r}")
        out.add(i)
    return out


def flag_scores(removed: Indices, poisoned: Indices, n: int) -> dict[str, float]:
    """Precision, recall and false-positive rate of a defence's flagged rows against the true poisons.

    ``precision = |removed ∩ poisoned| / |removed|`` (1.0 when nothing is removed: no row was wrongly
    flagged), ``recall = |removed ∩ poisoned| / |poisoned|`` (1.0 when there are no poisons: none was
    missed), ``false_positive_rate = |removed \\ poisoned| / (n - |poisoned|)`` (0.0 when every row is a
    poison). Duplicate indices count once.

    Args:
        removed: indices the defence flagged or removed.
        poisoned: indices of the rows the attacker poisoned (an attack's ``poisoned_indices``).
        n: the number of rows of the training set, >= 1.

    Returns:
        ``{"precision", "recall", "false_positive_rate", "flagged", "poisoned", "true_positives"}``; the
        first three in ``[0, 1]``, the others counts (as floats).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    flagged, bad = _index_set("removed", removed, n), _index_set("poisoned", poisoned, n)
    tp = len(flagged & bad)
    clean = n - len(bad)
    return {
        "precision": tp / len(flagged) if flagged else 1.0,
        "recall": tp / len(bad) if bad else 1.0,
        "false_positive_rate": (len(flagged) - tp) / clean if clean else 0.0,
        "flagged": float(len(flagged)),
        "poisoned": float(len(bad)),
        "true_positives": float(tp),
    }
