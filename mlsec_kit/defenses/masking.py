r"""Gradient masking, made and broken: defences that only hide the gradient, and the adaptive attacks that
see through them (Athalye, Carlini & Wagner, ICML 2018; Carlini et al. 2019's evaluation checklist).

Each defence wraps an undefended classifier ``.model`` and changes what a gradient attack sees:

- :class:`QuantizedInput` rounds every input value to ``levels`` levels: the gradient is zero almost
  everywhere (*shattered* gradients), so FGSM and PGD do not move;
- :class:`RandomizedInput` adds fresh random noise to the input at every forward pass: each gradient is
  of one random draw (*stochastic* gradients);
- :class:`SaturatedSoftmax` multiplies the logits by a large factor: the softmax saturates, and the
  cross-entropy gradient underflows to exactly zero on every confidently classified input (*vanishing*
  gradients), while the predicted class does not change.

None of them changes which inputs are misclassified much, only how hard they are to *find* by following
the gradient. The adaptive attacks:

- :func:`bpda` (Backward Pass Differentiable Approximation): a module whose forward pass makes the defended
  model's decisions and whose backward pass treats the preprocessing as the identity (and reads the
  undefended logits), so the kit's unchanged ``fgsm``/``pgd`` run on it;
- :func:`eot_pgd` (Expectation over Transformation): PGD on the gradient averaged over ``samples`` draws of
  the defence's randomness. Combined as ``eot_pgd(bpda(defended), ...)`` where a defence is both.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..attacks.evasion._validate import check_inputs, check_int, check_norm, check_positive
from ..attacks.evasion.gradient import (_EvalMode, _per_example_norm, _uniform_in_ball, input_gradient,
                                        project_l2, project_linf)

__all__ = ["MaskingDefense", "QuantizedInput", "RandomizedInput", "SaturatedSoftmax", "bpda", "eot_pgd"]


def _check_module(model: nn.Module) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")


def _check_range(clip_min: float, clip_max: float) -> None:
    if not clip_min < clip_max:
        raise ValueError(f"clip_min must be < clip_max, got [{clip_min}, {clip_max}]")


class MaskingDefense(nn.Module):
    """Base of the masking defences: ``forward(x) = model(preprocess(x))``; ``preprocess`` is the identity."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        _check_module(model)
        self.model = model

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.preprocess(x))


class QuantizedInput(MaskingDefense):
    r"""Round every input value to one of ``levels`` evenly spaced values of ``[clip_min, clip_max]``.

    A cheap "defence" (bit-depth reduction, as in feature squeezing): :math:`\mathrm{round}` has zero
    derivative almost everywhere, so the input gradient of the defended model is exactly zero and
    gradient attacks stall; BPDA's identity backward pass recovers a useful gradient.

    Args:
        model: the undefended classifier, returning logits ``(N, K)``.
        levels: the number of values each input coordinate can take, an int >= 2.
        clip_min: smallest valid input value.
        clip_max: largest valid input value.

    Shape:
        ``x`` ``(N, ...)`` in ``[clip_min, clip_max]`` → logits ``(N, K)``.
    """

    def __init__(self, model: nn.Module, *, levels: int = 4, clip_min: float = 0.0, clip_max: float = 1.0) -> None:
        super().__init__(model)
        check_int("levels", levels, minimum=2)
        _check_range(clip_min, clip_max)
        self.levels, self.clip_min, self.clip_max = levels, clip_min, clip_max

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        span = self.clip_max - self.clip_min
        unit = ((x - self.clip_min) / span).clamp(0, 1)
        return torch.round(unit * (self.levels - 1)) / (self.levels - 1) * span + self.clip_min


class RandomizedInput(MaskingDefense):
    r"""Add fresh uniform noise in ``[-noise, noise]`` to every input at every forward pass, then clip.

    A randomised transformation: the prediction, and every gradient, is of one random draw, so a single-draw
    attack follows a noisy direction; Expectation over Transformation averages the draws away. Wrap another
    defence (``RandomizedInput(QuantizedInput(model))``) for noise followed by rounding (random
    thresholds), whose gradient is both random and zero: then only BPDA + EOT works.

    Args:
        model: the classifier (or another masking defence) to protect.
        noise: half-width of the uniform noise, > 0, in the units of ``x``.
        generator: source of the noise (CPU); ``None`` uses torch's global generator. Seed it for
            reproducible predictions.
        clip_min: smallest valid input value.
        clip_max: largest valid input value.

    Shape:
        ``x`` ``(N, ...)`` in ``[clip_min, clip_max]`` → logits ``(N, K)``, different on every call.
    """

    def __init__(self, model: nn.Module, *, noise: float = 0.2, generator: Optional[torch.Generator] = None,
                 clip_min: float = 0.0, clip_max: float = 1.0) -> None:
        super().__init__(model)
        check_positive("noise", noise)
        _check_range(clip_min, clip_max)
        self.noise, self.generator, self.clip_min, self.clip_max = noise, generator, clip_min, clip_max

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        u = torch.rand(x.shape, generator=self.generator).to(device=x.device, dtype=x.dtype)
        return (x + (2 * u - 1) * self.noise).clamp(self.clip_min, self.clip_max)


class SaturatedSoftmax(MaskingDefense):
    r"""Multiply the classifier's logits by ``scale``: the same decisions, a saturated softmax.

    With logit gaps of hundreds, :math:`\mathrm{softmax}` rounds to an exact one-hot vector in float32, and
    the cross-entropy gradient :math:`\mathrm{softmax}(z) - e_y` is exactly zero on every correctly and
    confidently classified input (the mechanism behind defensive distillation's apparent robustness,
    Carlini & Wagner 2016). :func:`bpda` attacks the unscaled logits instead.

    Args:
        model: the undefended classifier, returning logits ``(N, K)``.
        scale: the factor, > 0 (large values mask the gradient).

    Shape:
        ``x`` ``(N, ...)`` → logits ``(N, K)``.
    """

    def __init__(self, model: nn.Module, *, scale: float = 1000.0) -> None:
        super().__init__(model)
        check_positive("scale", scale)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self.model(x)


class _StraightThrough(torch.autograd.Function):
    """Forward: the preprocessed input; backward: the identity (the gradient passes to ``x`` unchanged)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, processed: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return processed

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # noqa: D102
        return grad, None


class _BPDA(nn.Module):
    def __init__(self, defended: MaskingDefense) -> None:
        super().__init__()
        self.defended = defended
        inner = defended.model
        self.inner = _BPDA(inner) if isinstance(inner, MaskingDefense) else inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        processed = self.defended.preprocess(x)
        return self.inner(_StraightThrough.apply(x, processed.detach()))


def bpda(defended: nn.Module) -> nn.Module:
    r"""Backward Pass Differentiable Approximation of a masking defence (Athalye, Carlini & Wagner 2018).

    The returned module computes ``defended.model(g(x))`` where ``g`` is the defence's preprocessing on the
    forward pass and the identity on the backward pass (:math:`\partial g / \partial x \approx I`, since
    ``g(x) ≈ x``). Its predictions are the defended model's (its logits too, except that
    :class:`SaturatedSoftmax`'s scaling is left out, which changes no decision), and its input gradient is
    informative, so the kit's attacks run on it unchanged: ``pgd(bpda(defended), x, y, ...)``. Nested
    defences are approximated layer by layer. The module shares the defence's parameters and randomness.

    Args:
        defended: a :class:`MaskingDefense` (e.g. :class:`QuantizedInput`).

    Returns:
        An ``nn.Module`` mapping ``(N, ...)`` inputs to logits ``(N, K)``.
    """
    if not isinstance(defended, MaskingDefense):
        raise TypeError(f"defended must be a masking defence (QuantizedInput, RandomizedInput, SaturatedSoftmax), "
                        f"got {type(defended).__name__}")
    return _BPDA(defended)


def eot_pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, alpha: float, steps: int,
            samples: int = 16, norm: str = "linf", random_start: bool = False,
            generator: Optional[torch.Generator] = None, clip_min: float = 0.0, clip_max: float = 1.0) -> torch.Tensor:
    r"""PGD with Expectation over Transformation (Athalye, Engstrom, Ilyas & Kwok 2018), Linf or L2.

    :func:`~mlsec_kit.attacks.evasion.pgd` whose gradient is the mean over ``samples`` forward passes of a
    randomised model, an estimate of :math:`\nabla_x\,\mathbb{E}_t[\ell(f(t(x)), y)]`; the draws run as one
    batch of ``samples * N`` rows. With a deterministic model it is plain PGD.

    Args:
        model: a (randomised) classifier returning logits ``(N, K)``; wrap a non-differentiable defence in
            :func:`bpda` first. Run in eval mode, its mode restored afterwards.
        x: the clean inputs.
        y: their true labels, ``(N,)`` int.
        eps: radius of the ball, >= 0.
        alpha: step size, >= 0.
        steps: number of steps, >= 1.
        samples: draws of the randomness per step, >= 1.
        norm: ``"linf"`` or ``"l2"``.
        random_start: start from a uniform random point of the ball.
        generator: source of the random start (CPU); the model's own randomness is its own.
        clip_min: smallest valid input value.
        clip_max: largest valid input value.

    Returns:
        ``x_adv`` inside the eps-ball around ``x`` and the input range; same shape, dtype and device as ``x``.

    Shape:
        ``x`` ``(N, ...)`` in ``[clip_min, clip_max]``, ``y`` ``(N,)`` → ``x_adv`` like ``x``.
    """
    check_inputs(x, y, clip_min=clip_min, clip_max=clip_max)
    check_positive("eps", eps, allow_zero=True)
    check_positive("alpha", alpha, allow_zero=True)
    check_int("steps", steps, minimum=1)
    check_int("samples", samples, minimum=1)
    norm = check_norm(norm)
    project = project_linf if norm == "linf" else project_l2
    x = x.detach()
    delta = torch.zeros_like(x)
    if random_start:
        delta = (x + _uniform_in_ball(x, eps, norm, generator)).clamp(clip_min, clip_max) - x
    y_rep = y.repeat(samples)
    with _EvalMode(model):
        for _ in range(steps):
            x_rep = (x + delta).repeat(samples, *([1] * (x.dim() - 1)))
            grad = input_gradient(model, x_rep, y_rep).view(samples, *x.shape).mean(0)
            if norm == "linf":
                direction = grad.sign()
            else:
                direction = grad / _per_example_norm(grad).clamp_min(1e-12)
            delta = (x + delta + alpha * direction).clamp(clip_min, clip_max) - x
            delta = project(delta, eps=eps)
    return (x + delta).detach()
