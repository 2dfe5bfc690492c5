"""Argument checks shared by the federated-learning functions: each error names the argument and its range."""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

from ..dp._validate import _real, check_generator, check_int

__all__ = ["check_int", "check_generator", "check_fraction", "check_positive", "check_nonnegative", "_real"]


def check_fraction(name: str, value: object, *, allow_zero: bool = False) -> float:
    """``value`` is a real number in (0, 1] (or [0, 1] with ``allow_zero``); returns it as a float."""
    v = _real(name, value)
    if not ((0 <= v if allow_zero else 0 < v) and v <= 1):
        raise ValueError(f"{name} must be in {'[0' if allow_zero else '(0'}, 1], got {value!r}")
    return v


def check_positive(name: str, value: object) -> float:
    """``value`` is a finite real number > 0; returns it as a float."""
    v = _real(name, value)
    if not 0 < v < math.inf:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def check_nonnegative(name: str, value: object) -> float:
    """``value`` is a finite real number >= 0; returns it as a float."""
    v = _real(name, value)
    if not 0 <= v < math.inf:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return v


def numpy_rng(generator: Optional[torch.Generator]) -> np.random.Generator:
    """A NumPy generator seeded by one draw from ``generator`` (for the few samplers torch has no seeded form of,
    e.g. the Dirichlet distribution): the same torch seed gives the same NumPy stream."""
    check_generator(generator)
    seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator).item())
    return np.random.default_rng(seed)
