"""Argument checks shared by the differential-privacy functions: each error names the argument and its range."""
from __future__ import annotations

import math
from typing import Literal, Optional, Union

import numpy as np
import torch

Number = Union[int, float]
TensorLike = Union[torch.Tensor, float, int]

#: The two neighbouring relations. ``"add_remove"``: D' is D with one record added or removed (the number of
#: records is itself private). ``"replace"``: D' is D with one record replaced by another (n is public).
NEIGHBOURS: tuple[str, ...] = ("add_remove", "replace")
Neighbours = Literal["add_remove", "replace"]


def check_neighbours(neighbours: object, *, name: str = "neighbours") -> str:
    """``neighbours`` is one of :data:`NEIGHBOURS`; returns it."""
    if not isinstance(neighbours, str) or neighbours not in NEIGHBOURS:
        raise ValueError(f"{name} must be one of {NEIGHBOURS} (the neighbouring relation the analysis declares), "
                         f"got {neighbours!r}")
    return neighbours


def _real(name: str, value: object) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{name} must be a real number, got nan")
    return value


def check_epsilon(epsilon: object, *, name: str = "epsilon", maximum: float = math.inf) -> float:
    """``epsilon`` is a finite real number in (0, maximum]; returns it as a float."""
    value = _real(name, epsilon)
    if not (0 < value <= maximum) or math.isinf(value):
        upper = "inf)" if math.isinf(maximum) else f"{maximum:g}]"
        raise ValueError(f"{name} must be in (0, {upper}, got {epsilon!r}")
    return value


def check_delta(delta: object, *, name: str = "delta", allow_zero: bool = False) -> float:
    """``delta`` is a probability in (0, 1) (or [0, 1) with ``allow_zero``); returns it as a float."""
    value = _real(name, delta)
    if not ((0 <= value if allow_zero else 0 < value) and value < 1):
        raise ValueError(f"{name} must be in {'[0' if allow_zero else '(0'}, 1), got {delta!r}")
    return value


def check_sensitivity(sensitivity: object, *, name: str = "sensitivity") -> float:
    """``sensitivity`` is a finite real number >= 0; returns it as a float."""
    value = _real(name, sensitivity)
    if not 0 <= value < math.inf:
        raise ValueError(f"{name} must be a finite number >= 0, got {sensitivity!r}")
    return value


def check_bounds(lower: object, upper: object) -> tuple[float, float]:
    """``lower < upper``, both finite; returns them as floats."""
    lo, hi = _real("lower", lower), _real("upper", upper)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"lower and upper must be finite with lower < upper, got [{lower!r}, {upper!r}]")
    return lo, hi


def check_int(name: str, value: object, *, minimum: int = 1) -> int:
    """``value`` is an int >= ``minimum``; returns it."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_generator(generator: Optional[torch.Generator]) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")


def as_float_tensor(value: TensorLike, *, name: str = "value") -> torch.Tensor:
    """A tensor of ``value``: floating tensors keep their dtype and device; numbers and integer tensors
    become float64 (on the same device)."""
    if isinstance(value, torch.Tensor):
        return value if value.is_floating_point() else value.to(torch.float64)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a torch tensor or a real number, got {type(value).__name__}")
    return torch.tensor(float(value), dtype=torch.float64)


def noise_device(value: torch.Tensor, generator: Optional[torch.Generator]) -> torch.device:
    """Where to draw noise: on the generator's device when one is given (torch requires it), else the value's."""
    return generator.device if generator is not None else value.device
