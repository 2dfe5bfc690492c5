"""Figures the chapters share: image grids, training curves, confusion matrices, the taxonomy tree.

Every function draws on a Matplotlib ``Axes`` (made when not given) and returns its ``Figure``, so a
notebook can show it, save it, or draw several on one figure.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = ["image_grid", "image_row", "plot_curves", "confusion_matrix", "plot_confusion_matrix", "taxonomy_figure"]


def _to_numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def image_grid(images, *, labels: Optional[Sequence] = None, ncols: int = 8, title: Optional[str] = None,
               cmap: str = "gray", vmin: float = 0.0, vmax: float = 1.0):
    """Show images ``(N, C, H, W)`` (or ``(N, H, W)``) with values in ``[vmin, vmax]`` in a grid.

    Args:
        images: a tensor or array of ``N >= 1`` images, 1 or 3 channels.
        labels: optional captions, one per image.
        ncols: images per row, at least 1.
    """
    arr = _to_numpy(images)
    if arr.ndim == 3:
        arr = arr[:, None]
    if arr.ndim != 4 or arr.shape[1] not in (1, 3) or arr.shape[0] == 0:
        raise ValueError(f"images must be (N, C, H, W) with N >= 1 and C in (1, 3), got {arr.shape}")
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"ncols must be an int >= 1, got {ncols!r}")
    if labels is not None and len(labels) != len(arr):
        raise ValueError(f"labels must have one entry per image ({len(arr)}), got {len(labels)}")
    n = len(arr)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.3 * ncols, 1.45 * nrows + (0.3 if title else 0)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = arr[i].transpose(1, 2, 0)
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap=cmap, vmin=vmin, vmax=vmax)
        if labels is not None:
            ax.set_title(str(labels[i]), fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def image_row(images, *, labels: Optional[Sequence] = None, title: Optional[str] = None, ax=None,
              cmap: str = "gray", vmin: float = 0.0, vmax: float = 1.0):
    """Show images ``(N, C, H, W)`` side by side as *one* picture on one ``Axes``, each captioned above.

    The light-weight sibling of :func:`image_grid` for figures drawn many times (the frames of an
    interactive figure): one ``imshow`` instead of ``N`` axes, so a frame draws several times faster.
    Images are separated by a one-pixel white gap.

    Args:
        images: a tensor or array of ``N >= 1`` images, 1 or 3 channels, values in ``[vmin, vmax]``.
        labels: optional captions, one per image.
        title: optional title above the captions.
        ax: the ``Axes`` to draw on (a new figure when ``None``).
    """
    arr = _to_numpy(images)
    if arr.ndim == 3:
        arr = arr[:, None]
    if arr.ndim != 4 or arr.shape[1] not in (1, 3) or arr.shape[0] == 0:
        raise ValueError(f"images must be (N, C, H, W) with N >= 1 and C in (1, 3), got {arr.shape}")
    if labels is not None and len(labels) != len(arr):
        raise ValueError(f"labels must have one entry per image ({len(arr)}), got {len(labels)}")
    n, c, h, w = arr.shape
    row = np.full((h, n * (w + 1) - 1, c), vmax, dtype=float)
    for i, img in enumerate(arr):
        row[:, i * (w + 1): i * (w + 1) + w] = img.transpose(1, 2, 0)
    if ax is None:
        _, ax = plt.subplots(figsize=(1.3 * n, 1.9 if title else 1.6))
    ax.imshow(row[..., 0] if c == 1 else row, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    for i, label in enumerate(labels or []):
        ax.text(i * (w + 1) + (w - 1) / 2, -0.04 * h, str(label), ha="center", va="bottom", fontsize=9)
    if title:
        ax.set_title(title, pad=16)
    ax.axis("off")
    return ax.figure


def plot_curves(curves: Mapping[str, Sequence[float]], *, xlabel: str = "epoch", ylabel: str = "",
                title: Optional[str] = None, ax=None):
    """Plot named curves against their index (starting at 1), e.g. ``History.as_dict()`` entries."""
    if not curves:
        raise ValueError("curves must hold at least one named sequence")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.2))
    for name, values in curves.items():
        values = list(values)
        ax.plot(range(1, len(values) + 1), values, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.figure.tight_layout()
    return ax.figure


def confusion_matrix(y_true, y_pred, *, num_classes: int) -> np.ndarray:
    """Counts ``C[i, j]`` of examples of true class ``i`` predicted as ``j``; shape ``(K, K)``."""
    t, p = _to_numpy(y_true).astype(int).ravel(), _to_numpy(y_pred).astype(int).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {t.shape[0]} and {p.shape[0]}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
    if t.size and (min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= num_classes):
        raise ValueError(f"labels must be in [0, {num_classes}), got values in "
                         f"[{min(t.min(), p.min())}, {max(t.max(), p.max())}]")
    return np.bincount(t * num_classes + p, minlength=num_classes**2).reshape(num_classes, num_classes)


def plot_confusion_matrix(matrix: np.ndarray, *, classes: Optional[Sequence[str]] = None,
                          title: Optional[str] = None, ax=None):
    """Draw a confusion matrix with its counts written in the cells."""
    m = np.asarray(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"matrix must be square (K, K), got {m.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(0.45 * len(m) + 2, 0.45 * len(m) + 1.6))
    ax.imshow(m, cmap="Blues")
    k = len(m)
    names = list(classes) if classes is not None else [str(i) for i in range(k)]
    ax.set_xticks(range(k), names)
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(k):
        for j in range(k):
            if m[i, j]:
                ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if m[i, j] > m.max() / 2 else "black")
    if title:
        ax.set_title(title)
    ax.figure.tight_layout()
    return ax.figure


def taxonomy_figure(tree: Mapping, *, title: Optional[str] = None, width: float = 13.0):
    """Draw a nested mapping ``{node: {child: {...}}}`` as a left-to-right tree of labelled boxes.

    Leaves may map to ``None`` or ``{}``. Used for the book's map of attacks and defences.
    """
    if not isinstance(tree, Mapping) or not tree:
        raise ValueError("tree must be a non-empty mapping of node names to sub-trees")
    rows: list[tuple[int, str, int]] = []  # (depth, label, parent row)

    def walk(node: Mapping, depth: int, parent: int) -> None:
        for label, sub in node.items():
            rows.append((depth, str(label), parent))
            here = len(rows) - 1
            if sub:
                walk(sub, depth + 1, here)

    walk(tree, 0, -1)
    max_depth = max(d for d, _, _ in rows)
    fig, ax = plt.subplots(figsize=(width, 0.36 * len(rows) + 0.6))
    ax.set_xlim(-0.2, max_depth + 1.2)
    ax.set_ylim(len(rows), -1)
    ax.axis("off")
    colors = plt.cm.Set2(np.linspace(0, 1, max_depth + 1))
    for i, (depth, label, parent) in enumerate(rows):
        if parent >= 0:
            pd = rows[parent][0]
            ax.plot([pd + 0.05, pd + 0.05, depth], [parent + 0.25, i, i], color="0.6", lw=0.8, zorder=0)
        ax.text(depth, i, label, va="center", ha="left", fontsize=9,
                bbox=dict(boxstyle="round,pad=0.25", fc=colors[depth], ec="0.4", lw=0.6))
    if title:
        ax.set_title(title, loc="left")
    fig.tight_layout()
    return fig
