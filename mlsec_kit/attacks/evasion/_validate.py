"""Argument checks shared by every evasion attack, so each error names the argument and its range."""
from __future__ import annotations

import torch

NORMS = ("linf", "l2")


def check_inputs(x: torch.Tensor, y: torch.Tensor | None = None, *, clip_min: float = 0.0,
                 clip_max: float = 1.0) -> None:
    """``x`` is a float batch inside ``[clip_min, clip_max]``; ``y`` (if given) has one int label per row."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point torch tensor, got {type(x).__name__}"
                        + (f" of dtype {x.dtype}" if isinstance(x, torch.Tensor) else ""))
    if x.dim() < 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty batch (N, ...), got shape {tuple(x.shape)}")
    if not clip_min < clip_max:
        raise ValueError(f"clip_min must be < clip_max, got [{clip_min}, {clip_max}]")
    lo, hi = x.min().item(), x.max().item()
    if lo < clip_min - 1e-6 or hi > clip_max + 1e-6:
        raise ValueError(f"x must lie in the input range [{clip_min}, {clip_max}], got values in [{lo:.4g}, {hi:.4g}]")
    if y is not None:
        if not isinstance(y, torch.Tensor) or y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise TypeError("y must be an integer torch tensor of labels")
        if y.shape != (x.shape[0],):
            raise ValueError(f"y must have shape ({x.shape[0]},) to match x's batch size, got {tuple(y.shape)}")


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    """``value`` is a real number > 0 (or >= 0 with ``allow_zero``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not (value >= 0 if allow_zero else value > 0):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def check_int(name: str, value: int, *, minimum: int = 1) -> None:
    """``value`` is an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def check_norm(norm: str) -> str:
    """``norm`` is one of ``NORMS`` (case-insensitive); returns it lower-cased."""
    if not isinstance(norm, str) or norm.lower() not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    return norm.lower()
