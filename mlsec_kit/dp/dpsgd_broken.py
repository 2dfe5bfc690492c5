"""BROKEN ON PURPOSE: two plausible mistakes in DP-SGD that void its privacy claim. Teaching and auditing only.

Each has the signature of :func:`~mlsec_kit.dp.dpsgd.dp_sgd_step` and claims the same guarantee; an empirical
audit (a membership game with a canary) tells them apart from the correct step.

* :func:`dp_sgd_step_clip_after_averaging`: averages the batch's gradients first and clips the *average* to C,
  then adds the noise the correct step would add to the average, ``N(0, σ²C²) / B̄``. The average of B
  unclipped gradients is not bounded per example: one example with a large gradient moves it by up to C (after
  clipping), not by C/B̄, so the noise is about B̄ times too small for the stated σ.
* :func:`dp_sgd_step_noise_divided_twice`: clips per example correctly but divides the noise by the batch size
  twice, ``(Σ_i clip(g_i) + N(0, σ²C²)/B̄) / B̄``: the effective noise multiplier is σ/B̄.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ._validate import check_generator
from .dpsgd import (LossFn, StepInfo, _check_data, _check_method, _check_noise, _clipped_sum, _default_loss,
                    _noise_like, _positive, check_dp_model)

__all__ = ["dp_sgd_step_clip_after_averaging", "dp_sgd_step_noise_divided_twice"]


def dp_sgd_step_clip_after_averaging(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, max_grad_norm: float,
                                     noise_multiplier: float, expected_batch_size: float,
                                     generator: Optional[torch.Generator] = None,
                                     loss_fn: Optional[LossFn] = None) -> StepInfo:
    """BROKEN (not DP at the claimed σ): ``p.grad = clip_C(mean_i g_i) + N(0, σ²C² I) / B̄``.

    The mean gradient, over all parameters together, is clipped to norm C; the noise is the correct step's
    noise on the average. Its sensitivity is C (one example can move the clipped mean by up to C), not C/B̄.
    """
    params = check_dp_model(model)
    _check_data(x, y)
    c = _positive("max_grad_norm", max_grad_norm)
    sigma = _check_noise(noise_multiplier, False)
    bbar = _positive("expected_batch_size", expected_batch_size)
    check_generator(generator)
    loss_fn = loss_fn or _default_loss
    if x.shape[0] > 0:
        outputs = model(x)
        losses = loss_fn(outputs, y)
        grads = torch.autograd.grad(losses.mean(), list(params.values()), allow_unused=True)
        grads = [g if g is not None else torch.zeros_like(p) for g, p in zip(grads, params.values())]
        norm = torch.sqrt(sum(g.pow(2).sum() for g in grads))
        factor = (c / (norm + 1e-6)).clamp(max=1.0)   # the bug: one norm for the whole batch
        info = StepInfo(losses.detach(), outputs.detach(), norm.detach().expand(x.shape[0]))
    else:
        grads = [torch.zeros_like(p) for p in params.values()]
        factor = torch.tensor(0.0)
        empty = torch.zeros(0)
        info = StepInfo(empty, empty, empty)
    for g, p in zip(grads, params.values()):
        p.grad = g.detach() * factor + _noise_like(p, sigma * c, generator) / bbar
    return info


def dp_sgd_step_noise_divided_twice(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, max_grad_norm: float,
                                    noise_multiplier: float, expected_batch_size: float,
                                    generator: Optional[torch.Generator] = None, method: str = "ghost",
                                    loss_fn: Optional[LossFn] = None) -> StepInfo:
    """BROKEN (not DP at the claimed σ): ``p.grad = (Σ_i clip_C(g_i) + N(0, σ²C² I) / B̄) / B̄``.

    Per-example clipping is right; the noise is divided by the expected batch size twice, so its effective
    multiplier is σ/B̄.
    """
    params = check_dp_model(model)
    _check_data(x, y)
    c = _positive("max_grad_norm", max_grad_norm)
    sigma = _check_noise(noise_multiplier, False)
    bbar = _positive("expected_batch_size", expected_batch_size)
    check_generator(generator)
    sums, info = _clipped_sum(model, params, x, y, max_grad_norm=c, method=_check_method(method),
                              loss_fn=loss_fn or _default_loss)
    for n, p in params.items():
        p.grad = (sums[n].detach() + _noise_like(p, sigma * c, generator) / bbar) / bbar   # the bug: / B̄ twice
    return info
