"""Tiny random problems for property checks, all drawn from a generator the check passes in.

Models are initialised from that generator too (not from torch's global one), so a check's instances
depend only on its seed. Loaders are plain torch, so the checks do not import scikit-learn.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

__all__ = ["randint", "blobs", "init_normal", "linear", "batches", "params", "max_diff"]


def randint(rng: torch.Generator, low: int, high: int) -> int:
    """A uniform int in ``[low, high]``."""
    return int(torch.randint(low, high + 1, (1,), generator=rng))


def blobs(rng: torch.Generator, n: int, d: int, c: int, *, spread: float = 3.0
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points in ``d`` dimensions around ``c`` random centres (unit noise), with their centre's label.

    Shape:
        ``X`` ``(n, d)`` float32, ``y`` ``(n,)`` int64 in ``[0, c)``.
    """
    centres = torch.randn(c, d, generator=rng) * spread
    y = torch.randint(0, c, (n,), generator=rng)
    return centres[y] + torch.randn(n, d, generator=rng), y


def init_normal(module: nn.Module, rng: torch.Generator, scale: float = 0.5) -> nn.Module:
    """Draw every parameter of ``module`` from ``N(0, scale^2)`` with ``rng``; return the module."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=rng) * scale)
    return module


def linear(rng: torch.Generator, d: int, c: int) -> nn.Module:
    """A linear classifier ``d -> c`` with random weights from ``rng``."""
    return init_normal(nn.Linear(d, c), rng)


def batches(X: torch.Tensor, y: torch.Tensor, *, batch_size: int) -> DataLoader:
    """Batches of ``(X, y)`` in order."""
    return DataLoader(TensorDataset(X, y), batch_size=batch_size)


def params(model: nn.Module) -> list[torch.Tensor]:
    """Copies of the model's parameters."""
    return [p.detach().clone() for p in model.parameters()]


def max_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """The largest absolute difference between two lists of tensors of matching shapes."""
    return max(float((x - y).abs().max()) for x, y in zip(a, b))
