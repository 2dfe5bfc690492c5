"""Helpers for writing property checks: call the student's function, test what came back, fail in one line.

Every helper raises :class:`~mlsec_kit.grading.core.CheckFailure` with a message that names the
property's input and says what was expected and what came back, e.g.
``accuracy(logits (12, 3), y (12,)) returned a Tensor; expected a Python float (call .item())``.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, NoReturn, Optional, Sequence

import numpy as np
import torch

from .core import CheckFailure
from .limits import TimeLimitExceeded

__all__ = ["fail", "call", "describe", "fmt", "expect_float", "to_float", "expect_tensor", "expect_pair", "expect_letters",
           "expect_value_error", "statement_checks"]


def fail(message: str) -> NoReturn:
    """Fail the current property with ``message`` (one line)."""
    raise CheckFailure(message)


def describe(value: Any) -> str:
    """A short description of an argument or a result: ``tensor (12, 3) float32``, ``Linear``, ``3.5``."""
    if isinstance(value, torch.Tensor):
        shape = tuple(value.shape)
        dims = f"({shape[0]},)" if len(shape) == 1 else str(shape)
        return f"tensor {dims} {str(value.dtype).replace('torch.', '')}"
    if isinstance(value, np.ndarray):
        return f"ndarray {value.shape} {value.dtype}"
    if isinstance(value, torch.nn.Module):
        return type(value).__name__
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(describe(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, (bool, int, float)):
        return repr(value)
    return type(value).__name__


def fmt(x: Any) -> str:
    """A number with four significant digits, for messages."""
    return f"{float(x):.4g}"


def call(fn: Callable[..., Any], *args: Any, name: Optional[str] = None) -> Any:
    """Call the student's ``fn(*args)``; an exception becomes a failure that says on which input.

    ``NotImplementedError`` and the time limit pass through, so the report says "not implemented yet"
    or "took longer than ..." instead.
    """
    name = name or getattr(fn, "__name__", "the function")
    try:
        return fn(*args)
    except (NotImplementedError, CheckFailure, TimeLimitExceeded, KeyboardInterrupt):
        raise
    except Exception as err:
        text = (str(err).strip().splitlines() or [""])[0][:200]
        fail(f"raised {type(err).__name__}: {text} (on {name}({', '.join(map(describe, args))}))")


def to_float(value: Any, what: str) -> float:
    """``value`` as a float: a Python or NumPy number, or a one-element tensor; anything else fails."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.detach().reshape(()).item())
    if isinstance(value, (bool, np.bool_)):
        fail(f"{what} returned a bool ({value}); expected a number")
    if isinstance(value, (float, int, np.floating, np.integer)):
        return float(value)
    fail(f"{what} returned {describe(value)}; expected a number")


def expect_float(value: Any, what: str) -> float:
    """Fail unless ``value`` is a Python float (NumPy's float64 is one); return it."""
    if isinstance(value, torch.Tensor):
        fail(f"{what} returned {describe(value)}; expected a Python float (call .item() on the tensor)")
    if not isinstance(value, float):
        fail(f"{what} returned {describe(value)}; expected a Python float")
    return float(value)


def expect_tensor(value: Any, what: str, *, shape: Optional[Sequence[int]] = None,
                  dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """Fail unless ``value`` is a tensor (of ``shape`` and ``dtype`` when given); return it detached."""
    if not isinstance(value, torch.Tensor):
        fail(f"{what} returned {describe(value)}; expected a torch tensor")
    if shape is not None and tuple(value.shape) != tuple(shape):
        fail(f"{what} returned shape {tuple(value.shape)}; expected {tuple(shape)}")
    if dtype is not None and value.dtype != dtype:
        fail(f"{what} returned dtype {value.dtype}; expected {dtype}")
    return value.detach().as_subclass(torch.Tensor)


def expect_pair(value: Any, what: str) -> tuple[Any, Any]:
    """Fail unless ``value`` is a tuple or list of two items; return them."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        fail(f"{what} returned {describe(value)}; expected a pair (a, b)")
    return value[0], value[1]


def expect_letters(fn: Callable[[], Any], name: str, statements: Sequence[str]) -> set[str]:
    """The letters a multiple-choice answer ``fn()`` names, each one of ``statements``. An answer that names no
    statement or every statement is not an answer and fails every property (otherwise naming all would earn
    "names every true statement" and naming none "names no false statement")."""
    out = call(fn, name=name)
    if not isinstance(out, str):
        fail(f"{name}() returned {describe(out)}; expected a string of letters such as 'ac'")
    letters = {ch for ch in out.lower() if not ch.isspace() and ch not in ",;"}
    stray = sorted(letters - set(statements))
    if stray:
        fail(f"{name}() contains {', '.join(map(repr, stray))}; use only the letters {', '.join(statements)}")
    if not letters or letters == set(statements):
        fail(f"{name}() returned {out!r}, which names {'no' if not letters else 'every'} statement: "
             "that is not an answer; decide for each statement and return the letters of the true ones")
    return letters


def expect_value_error(fn: Callable[..., Any], args: tuple, what: str, why: str, argument: str) -> None:
    """``fn(*args)`` must raise a ValueError whose message names ``argument``; ``what`` is the call as the student
    reads it and ``why`` says what is wrong with its input. "Not implemented yet", a check failing inside and the
    time limit propagate and are reported as such."""
    try:
        fn(*args)
    except ValueError as err:
        if argument not in str(err):
            fail(f"{what} raised ValueError({str(err)[:80]!r}); name the argument in the message, e.g. "
                 f"\"{argument} must ...\": {why}")
        return
    except (NotImplementedError, CheckFailure, TimeLimitExceeded, KeyboardInterrupt):
        raise
    except Exception as err:  # noqa: BLE001 - any other exception is the wrong kind
        fail(f"{what} raised {type(err).__name__}: {str(err)[:60]}; expected a ValueError naming {argument}: {why}")
    fail(f"{what} returned a value; expected a ValueError naming {argument}: {why}")

def statement_checks(question, name: str, statements: Mapping[str, str], true: set[str],
                     why_not: Mapping[str, str], *, hint: str, exact: bool = True) -> None:
    """Register the three properties of a statements question on ``question``: (when ``exact``) the answer names
    exactly the true statements; it names every true one (failing with ``hint``); it names no false one (failing
    with the first false letter's reason in ``why_not``). With ``exact=False`` the first property checks only
    the answer's form. An answer naming none or all of ``statements`` fails all three (:func:`expect_letters`)."""
    if set(why_not) != set(statements) - set(true):
        raise ValueError("why_not must give a reason for each false statement and for no true one")
    span = f"{min(statements)}-{max(statements)}"

    def letters(fn) -> set[str]:
        return expect_letters(fn, name, statements)

    if exact:
        @question.prop(f"names exactly the true statements, as a string of the letters {span}")
        def _exact(fn, rng):
            got = letters(fn)
            if got != true:
                fail(f"{len(true - got)} true statement(s) missing and {len(got - true)} false one(s) named; "
                     "the other two checks say which")
    else:
        @question.prop(f"returns a string made of the letters {span}")
        def _form(fn, rng):
            letters(fn)

    @question.prop("names every true statement")
    def _complete(fn, rng):
        missing = true - letters(fn)
        if missing:
            fail(f"{len(missing)} true statement(s) missing; {hint}")

    @question.prop("names no false statement")
    def _sound(fn, rng):
        wrong = sorted(letters(fn) - true)
        if wrong:
            fail(f"statement {wrong[0]!r} is false: {why_not[wrong[0]]}")
