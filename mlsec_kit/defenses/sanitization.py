"""Data sanitisation against performance-degrading poisoning: drop the training rows that look least like
the rest, then train on what is left.

Two scores, both computed on the (possibly poisoned) training set itself, so the defender needs no clean data:

- :func:`loss_sanitize`: the loss of a model trained on all of it (a flipped or displaced row disagrees with
  the fit the clean majority pulls it towards: the loss defence that Koh, Steinhardt & Liang 2022,
  "Stronger data poisoning attacks break data sanitization defenses", evaluate and break; Steinhardt, Koh &
  Liang 2017 analyse the sphere and slab defences, not this one);
- :func:`outlier_sanitize`: the distance to its labelled class's centroid (the sphere defence of Steinhardt,
  Koh & Liang 2017; Paudice, Munoz-Gonzalez, Gyorgy & Lupu 2018, "Detection of adversarial training examples in
  poisoning attacks through anomaly detection" (paudice2018detection), filter each class with a distance-based
  outlier detector trained on trusted data, which is the closer relative). Paudice et al.'s *label-flip*
  defence (Label sanitization, 2018, paudice2018label) is a different rule, kNN relabelling: a point whose
  neighbours mostly carry another label is given their label; it is not implemented here.

Both remove ``round(fraction * n)`` rows (Python's rounding) and cost clean accuracy when there is nothing to
remove; :func:`mlsec_kit.defenses.scoring.flag_scores` scores what they removed.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ..attacks.poisoning.label_flip import check_training_set

__all__ = ["loss_sanitize", "outlier_sanitize"]


def _count(fraction: float, n: int) -> int:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise TypeError(f"fraction must be a number in [0, 1), got {type(fraction).__name__}")
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1) (removing every row leaves nothing to train on), "
                         f"got {fraction!r}")
    return int(round(fraction * n))


def _split_top(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the ``k`` largest scores (ties to the lower index) and of the rest, each sorted."""
    order = torch.sort(-scores.detach().cpu().double(), stable=True).indices
    return order[k:].sort().values, order[:k].sort().values


def loss_sanitize(model_fn: Callable[[torch.Tensor, torch.Tensor], Callable[[torch.Tensor], torch.Tensor]],
                  x: torch.Tensor, y: torch.Tensor, *, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Remove the ``round(fraction * n)`` rows with the highest cross-entropy under a model trained on all rows.

    Args:
        model_fn: ``model_fn(x, y)`` trains a classifier on the data and returns it (anything mapping
            inputs to logits ``(N, K)``), e.g. ``lambda x, y: fit_logistic_regression(x, y, l2=1e-2)``.
        x: the training inputs ``(N, ...)`` (not modified).
        y: their labels ``(N,)``.
        fraction: the share of rows to remove, in ``[0, 1)``.

    Returns:
        ``(kept_indices, removed_indices)``, sorted ``int64`` CPU tensors that partition ``range(N)``.

    Shape:
        ``x`` ``(N, ...)``, ``y`` ``(N,)`` → ``(N - k,)``, ``(k,)`` with ``k = round(fraction * N)``.
    """
    check_training_set(x, y)
    k = _count(fraction, len(y))
    if not callable(model_fn):
        raise TypeError("model_fn must be a callable model_fn(x, y) returning a trained classifier")
    model = model_fn(x, y)
    with torch.no_grad():
        logits = model(x)
    if logits.dim() != 2 or logits.shape[0] != len(y) or int(y.max()) >= logits.shape[1]:
        raise ValueError(f"model_fn's model must return logits (N, K) covering every label, got {tuple(logits.shape)}")
    return _split_top(F.cross_entropy(logits.float(), y.long(), reduction="none"), k)


def outlier_sanitize(x: torch.Tensor, y: torch.Tensor, *, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Remove the ``round(fraction * n)`` rows furthest (Euclidean) from the mean of the rows sharing their label.

    Args:
        x: the training inputs ``(N, ...)``, compared flattened (not modified).
        y: their labels ``(N,)``.
        fraction: the share of rows to remove, in ``[0, 1)``.

    Returns:
        ``(kept_indices, removed_indices)``, sorted ``int64`` CPU tensors that partition ``range(N)``.

    Shape:
        ``x`` ``(N, ...)``, ``y`` ``(N,)`` → ``(N - k,)``, ``(k,)`` with ``k = round(fraction * N)``.
    """
    check_training_set(x, y)
    k = _count(fraction, len(y))
    flat = x.reshape(len(x), -1).double()
    dist = torch.empty(len(y), dtype=torch.float64, device=x.device)
    for c in torch.unique(y):
        rows = y == c
        dist[rows] = (flat[rows] - flat[rows].mean(0)).norm(dim=1)
    return _split_top(dist, k)
