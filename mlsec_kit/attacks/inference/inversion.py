"""Model inversion: reconstruct what a class looks like from a classifier's confidences (Fredrikson et al. 2015).

The attacker knows a class label (a person's name in a face recogniser) and searches the input space for the
input the model is most confident belongs to it: gradient descent on ``1 - p_class(x) + lam * ||x||^2 / d``,
projected onto the valid input range after every step. With the model in hand (white box) the gradient comes
from autograd; through a prediction API (black box) it is estimated from the returned confidences by central
finite differences, one pair of queries per input coordinate, which is where the defences bite: confidences
rounded to a few decimals make most differences exactly 0, and noised confidences drown them.

The defences, as functions on probabilities: :func:`round_confidences` and :func:`noisy_confidences`;
:func:`defended_query` wraps a model into an API that applies them.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from torch import nn

from ..evasion._validate import check_int, check_positive
from ._checks import _check_logits, sum_tolerance
from .extraction import check_probabilities

__all__ = ["model_inversion", "model_inversion_black_box", "round_confidences", "noisy_confidences",
           "defended_query"]

Query = Callable[[torch.Tensor], torch.Tensor]


def _check_common(target_class: int, input_shape: Sequence[int], steps: int, lr: float, lam: float,
                  clip_min: float, clip_max: float) -> tuple[int, ...]:
    check_int("target_class", target_class, minimum=0)
    shape = tuple(input_shape)
    if not shape or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise ValueError(f"input_shape must be a non-empty tuple of ints >= 1, got {input_shape!r}")
    check_int("steps", steps, minimum=1)
    check_positive("lr", lr)
    check_positive("lam", lam, allow_zero=True)
    if not clip_min < clip_max:
        raise ValueError(f"clip_min must be < clip_max, got [{clip_min}, {clip_max}]")
    return shape


def _start(shape: tuple[int, ...], init: Optional[torch.Tensor], clip_min: float, clip_max: float,
           device: Optional[torch.device | str], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The starting input ``(1, *shape)`` in ``dtype`` (the model's, so a float64 model gets float64 inputs)."""
    if init is None:   # Fredrikson et al. start from zeros
        return torch.full((1, *shape), float(clip_min), device=device, dtype=dtype)
    if not isinstance(init, torch.Tensor) or tuple(init.shape) not in (shape, (1, *shape)):
        raise ValueError(f"init must be a tensor of shape {shape} (input_shape), got "
                         f"{tuple(init.shape) if isinstance(init, torch.Tensor) else type(init).__name__}")
    return init.detach().to(device or init.device, dtype).reshape(1, *shape).clamp(clip_min, clip_max).clone()


def model_inversion(model: nn.Module, target_class: int, *, input_shape: Sequence[int], steps: int = 300,
                    lr: float = 0.1, lam: float = 0.0, clip_min: float = 0.0, clip_max: float = 1.0,
                    init: Optional[torch.Tensor] = None) -> torch.Tensor:
    r"""White-box model inversion (Fredrikson, Jha & Ristenpart, CCS 2015, MI-Face).

    Gradient descent on the cost ``c(x) = 1 - p_target(x) + lam * mean(x^2)``, each step projected onto
    ``[clip_min, clip_max]``; the cost's gradient by autograd through the model. Deterministic given ``init``.

    Args:
        model: a classifier returning logits ``(N, K)``; used in eval mode (its mode is restored), not modified.
            A model that returns labels raises ``ValueError`` (the attack differentiates its confidences).
        target_class: the class to reconstruct, an int in ``[0, K)``.
        input_shape: the shape of one input, e.g. ``(1, 8, 8)``.
        steps: gradient steps, an int >= 1.
        lr: step size, > 0.
        lam: weight of the ``mean(x^2)`` prior (favours dark, sparse images), >= 0.
        clip_min: smallest valid input value.
        clip_max: largest valid input value, > ``clip_min``.
        init: the starting input ``input_shape`` (default: every value ``clip_min``); not modified.

    Returns:
        The reconstruction ``(1, *input_shape)`` in ``[clip_min, clip_max]``, on the model's device and in the
        dtype of its parameters (float32 for a model without parameters).

    Shape:
        ``model`` maps ``(N, *input_shape)`` to logits ``(N, K)`` → the reconstruction ``(1, *input_shape)``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module returning logits, got {type(model).__name__}; use "
                        "model_inversion_black_box for a prediction API")
    shape = _check_common(target_class, input_shape, steps, lr, lam, clip_min, clip_max)
    param = next(model.parameters(), None)
    x = _start(shape, init, clip_min, clip_max, param.device if param is not None else None,
               param.dtype if param is not None and param.is_floating_point() else torch.float32)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            num_classes = _check_logits("model", model(x), 1).shape[1]
        if target_class >= num_classes:
            raise ValueError(f"target_class must be in [0, {num_classes}), got {target_class}")
        for _ in range(steps):
            x.requires_grad_(True)
            cost = 1 - torch.softmax(model(x), 1)[0, target_class] + lam * x.pow(2).mean()
            (grad,) = torch.autograd.grad(cost, x)
            x = (x.detach() - lr * grad).clamp(clip_min, clip_max)   # the projection onto the input range
    finally:
        model.train(was_training)
    return x.detach()


def model_inversion_black_box(query: Query, target_class: int, *, input_shape: Sequence[int], steps: int = 300,
                              lr: float = 0.1, lam: float = 0.0, fd_step: float = 1e-2, clip_min: float = 0.0,
                              clip_max: float = 1.0, init: Optional[torch.Tensor] = None,
                              device: Optional[torch.device | str] = None,
                              sum_atol: Optional[float] = None) -> torch.Tensor:
    r"""Black-box model inversion: the same descent with the gradient estimated from returned confidences.

    Fredrikson et al. 2015 approximate the gradient numerically when only an API is available; here by central
    differences ``(p(x + h e_i) - p(x - h e_i)) / 2h`` for every coordinate ``i``, so each step costs
    ``2 * prod(input_shape)`` queries (sent as one batch). Rounded confidences turn most differences into 0
    and noisy ones into noise: the defences measured in chapter 9.

    Args:
        query: the API: maps inputs ``(N, *input_shape)`` to probabilities ``(N, K)``.
        target_class: the class to reconstruct, an int in ``[0, K)``.
        input_shape: the shape of one input.
        steps: gradient steps, an int >= 1.
        lr: step size, > 0.
        lam: weight of the ``mean(x^2)`` prior, >= 0 (its gradient is computed exactly: the attacker's own).
        fd_step: the finite-difference step ``h``, > 0.
        clip_min: smallest valid input value.
        clip_max: largest valid input value, > ``clip_min``.
        init: the starting input (default: every value ``clip_min``); not modified.
        device: where the queries are built and sent (default: ``init``'s device, else the CPU).
        sum_atol: how far a row of the answer may sum from 1, > 0. ``None`` derives it from the API's rounding:
            ``max(K * 0.5 * 10**-decimals, 1e-3)`` for a :func:`defended_query` with ``decimals`` (or an
            ``Oracle`` with ``output="rounded"``), where rounding legitimately breaks the sum (at ``decimals=0``
            a row may be all zeros), and 1e-3 otherwise, so scaled scores or logits are rejected.

    Returns:
        The reconstruction ``(1, *input_shape)`` in ``[clip_min, clip_max]``.

    Shape:
        ``query`` maps ``(2 * prod(input_shape), *input_shape)`` to probabilities ``(N, K)`` in ``[0, 1]`` →
        the reconstruction ``(1, *input_shape)``.
    """
    if not callable(query):
        raise TypeError(f"query must be callable (inputs -> probabilities), got {type(query).__name__}")
    shape = _check_common(target_class, input_shape, steps, lr, lam, clip_min, clip_max)
    check_positive("fd_step", fd_step)
    x = _start(shape, init, clip_min, clip_max, device)
    d = x.numel()
    basis = torch.eye(d, device=x.device).reshape(d, *shape) * fd_step
    for _ in range(steps):
        probe = torch.cat([x + basis, x - basis]).clamp(clip_min, clip_max)   # queries must stay valid
        with torch.no_grad():
            answer = query(probe)
        width = answer.shape[-1] if isinstance(answer, torch.Tensor) and answer.dim() == 2 else 2
        probs = check_probabilities(answer, num_rows=2 * d, sum_atol=sum_tolerance(query, width, sum_atol))
        if target_class >= probs.shape[1]:
            raise ValueError(f"target_class must be in [0, {probs.shape[1]}), got {target_class}")
        p = probs[:, target_class].float()
        width = (probe[:d] - probe[d:]).reshape(d, -1).sum(1)             # 2h, less where clamped
        grad_p = (p[:d] - p[d:]) / width.clamp_min(1e-12)
        grad = -grad_p.reshape(1, *shape) + lam * 2 * x / d
        x = (x - lr * grad).clamp(clip_min, clip_max)
    return x


def round_confidences(probs: torch.Tensor, *, decimals: int) -> torch.Tensor:
    """The rounding defence: confidences rounded to ``decimals`` decimal places (Fredrikson et al. 2015 §7).

    Args:
        probs: the confidences, rows of probabilities (``ValueError`` for logits or rows not summing to 1 within
            0.05); not modified.
        decimals: decimal places kept, an int >= 0.

    Returns:
        The rounded confidences.

    Shape:
        ``probs`` ``(N, K)`` in ``[0, 1]`` → the same shape, multiples of ``10**-decimals``; not renormalised.
    """
    if not isinstance(probs, torch.Tensor) or not probs.is_floating_point():
        raise TypeError(f"probs must be a floating-point tensor, got {type(probs).__name__}")
    check_int("decimals", decimals, minimum=0)
    check_probabilities(probs, num_rows=len(probs), name="probs")
    return torch.round(probs, decimals=decimals)


def noisy_confidences(probs: torch.Tensor, *, sigma: float,
                      generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """The noise defence: Gaussian noise of standard deviation ``sigma`` on every confidence, then clipped to
    ``[0, 1]`` and renormalised so each row is again a probability vector. The noise is drawn on the CPU.

    Args:
        probs: the confidences, rows of probabilities (``ValueError`` for logits or rows not summing to 1 within
            0.05); not modified.
        sigma: the noise's standard deviation, >= 0.
        generator: CPU ``torch.Generator`` for the noise.

    Returns:
        The noised confidences (a row the noise zeroed entirely becomes uniform).

    Shape:
        ``probs`` ``(N, K)`` in ``[0, 1]`` → the same shape, rows summing to 1.
    """
    if not isinstance(probs, torch.Tensor) or not probs.is_floating_point():
        raise TypeError(f"probs must be a floating-point tensor, got {type(probs).__name__}")
    check_positive("sigma", sigma, allow_zero=True)
    check_probabilities(probs, num_rows=len(probs), name="probs")
    noise = torch.randn(probs.shape, generator=generator, dtype=probs.dtype).to(probs.device) * sigma
    noisy = (probs + noise).clamp(0, 1)
    total = noisy.sum(-1, keepdim=True)
    # A row the noise pushed entirely to 0 carries no information: answer the uniform distribution.
    return torch.where(total > 0, noisy / total.clamp_min(1e-12), torch.full_like(noisy, 1 / probs.shape[-1]))


def defended_query(model: nn.Module, *, decimals: Optional[int] = None, sigma: float = 0.0,
                   generator: Optional[torch.Generator] = None) -> Query:
    """A prediction API in front of ``model``: softmax confidences, noised by ``sigma`` (if > 0), then rounded
    to ``decimals`` (if given). The returned function runs the model in eval mode without gradients, and
    carries ``decimals`` as its attribute ``decimals``, so the attacks that check its answers
    (:func:`model_inversion_black_box`, :func:`~mlsec_kit.attacks.inference.extraction.extract_by_training`,
    :func:`~mlsec_kit.attacks.inference.extraction.extract_softmax_regression`) know how far a rounded row may
    legitimately sum from 1.

    Args:
        model: a classifier returning logits ``(N, K)`` (one that returns labels makes the API raise
            ``ValueError``).
        decimals: decimal places kept, an int >= 0, or ``None`` for no rounding.
        sigma: standard deviation of the noise on each confidence, >= 0.
        generator: CPU ``torch.Generator`` for the noise (drawn afresh on every call).

    Returns:
        The API, a function from inputs to confidences, with the attribute ``decimals``.

    Shape:
        the API maps ``(N, ...)`` to probabilities ``(N, K)``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module returning logits, got {type(model).__name__}")
    if decimals is not None:
        check_int("decimals", decimals, minimum=0)
    check_positive("sigma", sigma, allow_zero=True)

    @torch.no_grad()
    def query(x: torch.Tensor) -> torch.Tensor:
        was_training = model.training
        try:
            probs = torch.softmax(_check_logits("model", model.eval()(x), len(x)), 1)
        finally:
            model.train(was_training)
        if sigma > 0:
            probs = noisy_confidences(probs, sigma=sigma, generator=generator)
        if decimals is not None:
            probs = round_confidences(probs, decimals=decimals)
        return probs

    query.decimals = decimals   # type: ignore[attr-defined]
    return query
