"""Gradient attacks: the fast gradient sign method and projected gradient descent, with their projections.

Both follow the gradient of the classifier's cross-entropy loss with respect to the *input*. FGSM takes
one step of size ``eps`` along its sign; PGD takes ``steps`` small steps and projects back onto the
eps-ball (and the input range) after each one.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ._validate import check_inputs, check_int, check_norm, check_positive

__all__ = ["fgsm", "pgd", "project_linf", "project_l2", "input_gradient"]


def _per_example_norm(t: torch.Tensor) -> torch.Tensor:
    """L2 norm of each example of a batch, shaped ``(N, 1, ..., 1)`` so it broadcasts against ``t``."""
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))


def project_linf(delta: torch.Tensor, *, eps: float) -> torch.Tensor:
    """The nearest point of the Linf ball of radius ``eps``: clip every coordinate to ``[-eps, eps]``.

    Shape:
        ``delta`` ``(N, ...)`` → same shape.
    """
    check_positive("eps", eps, allow_zero=True)
    return delta.clamp(-eps, eps)


def project_l2(delta: torch.Tensor, *, eps: float) -> torch.Tensor:
    """The nearest point of the L2 ball of radius ``eps``, for each example of the batch on its own.

    An example with ``||delta_i||_2 <= eps`` is unchanged; one outside is scaled down onto the sphere,
    ``delta_i * eps / ||delta_i||_2``.

    Shape:
        ``delta`` ``(N, ...)`` → same shape; norms are taken over all dimensions but the first.
    """
    check_positive("eps", eps, allow_zero=True)
    norm = _per_example_norm(delta)
    return delta * torch.where(norm > eps, eps / norm.clamp_min(1e-12), torch.ones_like(norm))


def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Gradient of the summed cross-entropy ``sum_i l(model(x)_i, y_i)`` with respect to ``x``.

    Summing (not averaging) makes each example's gradient independent of the batch size. Only ``x`` gets
    a gradient: the model's parameters and their ``.grad`` are left alone. Works under ``torch.no_grad()``.
    """
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        loss = F.cross_entropy(model(x), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    return grad


class _EvalMode:
    """Run an attack with the model in eval mode (dropout off, batch-norm frozen) and gradients on, even
    when called under ``torch.no_grad()``; restore the model's mode afterwards."""

    def __init__(self, model: nn.Module) -> None:
        self.model, self.was_training, self.grad = model, model.training, torch.enable_grad()

    def __enter__(self) -> nn.Module:
        self.grad.__enter__()
        return self.model.eval()

    def __exit__(self, *exc) -> None:
        self.model.train(self.was_training)
        self.grad.__exit__(*exc)


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, targeted: bool = False,
         clip_min: float = 0.0, clip_max: float = 1.0) -> torch.Tensor:
    r"""Fast gradient sign method (Goodfellow, Shlens & Szegedy, ICLR 2015), Linf.

    One step of size ``eps`` along the sign of the loss gradient:
    :math:`x' = \mathrm{clip}(x + \varepsilon\,\mathrm{sign}(\nabla_x \ell(f(x), y)))`; with ``targeted``,
    ``y`` holds the target labels and the step goes *down* the loss towards them.

    Args:
        model: a classifier returning logits ``(N, K)``; run in eval mode, its mode restored afterwards.
        x: the clean inputs.
        y: the true labels (untargeted) or the target labels (targeted), ``(N,)`` int.
        eps: the Linf budget, >= 0, in the units of ``x``.
        targeted: move towards ``y`` instead of away from it.
        clip_min: smallest valid input value.
        clip_max: largest valid input value.

    Returns:
        ``x_adv``, with ``||x_adv - x||_inf <= eps``; same shape, dtype and device as ``x``.

    Shape:
        ``x`` ``(N, ...)`` in ``[clip_min, clip_max]`` (default ``[0, 1]``), ``y`` ``(N,)`` → ``x_adv`` like ``x``.
    """
    check_inputs(x, y, clip_min=clip_min, clip_max=clip_max)
    check_positive("eps", eps, allow_zero=True)
    with _EvalMode(model):
        grad = input_gradient(model, x, y)
    step = -eps if targeted else eps
    return (x + step * grad.sign()).clamp(clip_min, clip_max).detach()


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, alpha: float, steps: int,
        norm: str = "linf", random_start: bool = False, targeted: bool = False,
        generator: Optional[torch.Generator] = None, clip_min: float = 0.0, clip_max: float = 1.0) -> torch.Tensor:
    r"""Projected gradient descent (Madry et al., ICLR 2018), Linf or L2.

    Repeats ``steps`` times: a step of size ``alpha`` along the steepest-ascent direction of the loss for
    the norm (the gradient's sign for Linf, the gradient over its L2 norm for L2), then back into the
    feasible set, the eps-ball around ``x`` intersected with the input range: first clip ``x + delta`` to the
    range, then project ``delta`` onto the ball (ART's order). The result satisfies both constraints, because
    the ball's projection only scales ``delta`` towards 0 (L2) or clips each coordinate towards 0 (Linf), and
    the range is convex and holds ``x``, so ``x + delta`` stays in it. For Linf this *is* the exact projection
    onto the intersection (both sets are boxes); for L2 it is not the exact Euclidean projection onto the
    intersection, but a cheap feasible point close to it, and it is what ART computes. With ``random_start``
    it starts from a uniform point of the ball instead of ``x``. With ``targeted``, ``y`` holds the targets
    and the steps go down the loss.

    Args:
        model: a classifier returning logits ``(N, K)``; run in eval mode, its mode restored afterwards.
        x: the clean inputs.
        y: the true labels (untargeted) or the target labels (targeted), ``(N,)`` int.
        eps: radius of the ball, >= 0, in the units of ``x``.
        alpha: step size, >= 0 (a common choice is ``2.5 * eps / steps``).
        steps: number of steps, >= 1.
        norm: ``"linf"`` or ``"l2"``.
        random_start: start from a uniform random point of the ball.
        targeted: move towards ``y`` instead of away from it.
        generator: the source of the random start (a CPU ``torch.Generator``); ``None`` uses torch's
            global generator.
        clip_min: smallest valid input value.
        clip_max: largest valid input value.

    Returns:
        ``x_adv`` inside the eps-ball around ``x`` and the input range; same shape, dtype and device as ``x``.

    Shape:
        ``x`` ``(N, ...)`` in ``[clip_min, clip_max]`` (default ``[0, 1]``), ``y`` ``(N,)`` → ``x_adv`` like ``x``.
    """
    check_inputs(x, y, clip_min=clip_min, clip_max=clip_max)
    check_positive("eps", eps, allow_zero=True)
    check_positive("alpha", alpha, allow_zero=True)
    check_int("steps", steps, minimum=1)
    norm = check_norm(norm)
    project = project_linf if norm == "linf" else project_l2
    x = x.detach()
    delta = torch.zeros_like(x)
    if random_start:
        delta = _uniform_in_ball(x, eps, norm, generator)
        delta = (x + delta).clamp(clip_min, clip_max) - x
    sign = -1.0 if targeted else 1.0
    with _EvalMode(model):
        for _ in range(steps):
            grad = input_gradient(model, x + delta, y)
            if norm == "linf":
                direction = grad.sign()
            else:
                direction = grad / _per_example_norm(grad).clamp_min(1e-12)
            delta = (x + delta + sign * alpha * direction).clamp(clip_min, clip_max) - x  # a valid input...
            delta = project(delta, eps=eps)  # ...then the ball: shrinking delta towards 0 keeps x + delta valid
    return (x + delta).detach()


def _uniform_in_ball(x: torch.Tensor, eps: float, norm: str, generator: Optional[torch.Generator]) -> torch.Tensor:
    """A point drawn uniformly from the eps-ball of the norm, per example; drawn on the CPU, then moved."""
    shape, n = x.shape, x[0].numel()
    if norm == "linf":
        delta = (torch.rand(shape, generator=generator) * 2 - 1) * eps
    else:  # a uniform direction, and a radius with density proportional to r^(n-1)
        direction = torch.randn(shape, generator=generator)
        direction = direction / _per_example_norm(direction).clamp_min(1e-12)
        radius = torch.rand(shape[0], generator=generator) ** (1.0 / n) * eps
        delta = direction * radius.view(-1, *([1] * (len(shape) - 1)))
    return delta.to(device=x.device, dtype=x.dtype)
