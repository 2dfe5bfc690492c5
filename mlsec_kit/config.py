"""Process-wide settings a notebook needs: the device, the seed and the profile.

The book runs every notebook in one of two profiles (see ``DESIGN.md``):

* ``small`` (default): offline, CPU-sized, datasets that ship with installed packages;
* ``full`` (``MLSEC_PROFILE=full``): the papers' datasets and sizes, GPU when present.
"""
from __future__ import annotations

import os
import random
from typing import TypeVar

import numpy as np
import torch

__all__ = ["PROFILES", "device", "seed_everything", "profile", "by_profile"]

PROFILES = ("small", "full")
_PROFILE_ENV = "MLSEC_PROFILE"
T = TypeVar("T")


def device() -> torch.device:
    """The device the book's demos run on: the first CUDA GPU when there is one, else the CPU.

    ``MLSEC_DEVICE`` (e.g. ``cpu``) overrides the choice, which is how a GPU machine runs the CPU path.
    """
    forced = os.environ.get("MLSEC_DEVICE")
    if forced:
        try:
            return torch.device(forced)
        except RuntimeError as err:
            raise ValueError(f"MLSEC_DEVICE={forced!r} is not a torch device (try 'cpu' or 'cuda')") from err
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python's, NumPy's and PyTorch's global generators and make cuDNN deterministic.

    Args:
        seed: a non-negative integer below 2**32.

    Returns:
        A fresh ``torch.Generator`` (on the CPU) seeded with ``seed``, for code that takes ``generator=``.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if not 0 <= int(seed) < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    return torch.Generator().manual_seed(seed)


def profile() -> str:
    """The active profile, ``'small'`` (default) or ``'full'``, read from ``MLSEC_PROFILE``."""
    value = os.environ.get(_PROFILE_ENV, "small").strip().lower() or "small"
    if value not in PROFILES:
        raise ValueError(f"{_PROFILE_ENV} must be one of {PROFILES}, got {value!r}")
    return value


def by_profile(*, small: T, full: T) -> T:
    """Pick a knob per profile, e.g. ``num_epochs = by_profile(small=5, full=30)``."""
    return small if profile() == "small" else full
