"""Minimum-norm attacks: Carlini–Wagner L2 and DeepFool.

Instead of spending a fixed budget, these look for the *smallest* L2 perturbation that changes the label.
The size of what they find measures how far each input is from the decision boundary.
"""
from __future__ import annotations

import torch
from torch import nn

from ._validate import check_inputs, check_int, check_positive
from .gradient import _EvalMode

__all__ = ["cw_l2", "deepfool"]


def _margin(logits: torch.Tensor, y: torch.Tensor, targeted: bool) -> torch.Tensor:
    """C&W's f: how far the label is from being changed; <= 0 once the attack has succeeded (with kappa 0).

    Untargeted: ``Z_y - max_{j != y} Z_j``; targeted: ``max_{j != t} Z_j - Z_t``.
    """
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.masked_fill(nn.functional.one_hot(y, logits.shape[1]).bool(), float("-inf")).amax(1)
    return other - true if targeted else true - other


def cw_l2(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, c: float = 1.0, kappa: float = 0.0,
          steps: int = 100, lr: float = 0.1, binary_search_steps: int = 5, targeted: bool = False,
          clip_min: float = 0.0, clip_max: float = 1.0) -> torch.Tensor:
    r"""Carlini–Wagner L2 attack (Carlini & Wagner, IEEE S&P 2017), with a binary search over ``c``.

    For each example, minimises :math:`\|x' - x\|_2^2 + c \cdot \max(f(x'), -\kappa)` with Adam, where
    ``f`` is the logit margin of the true class (or, targeted, of the best class over the target) and
    :math:`x' = \text{clip\_min} + (\tanh w + 1)/2 \cdot (\text{clip\_max} - \text{clip\_min})` keeps
    ``x'`` in range without clipping. After each of the ``binary_search_steps`` runs, ``c`` is halved
    towards the last failure on examples that succeeded and raised (x10 until a success brackets it) on
    those that failed. The smallest successful perturbation seen is kept.

    Args:
        model: a classifier returning logits ``(N, K)``; run in eval mode, its mode restored afterwards.
        x: the clean inputs.
        y: the true labels (untargeted) or the target labels (targeted), ``(N,)`` int.
        c: the first weight of the misclassification term, > 0.
        kappa: the confidence margin, >= 0; larger gives larger, more transferable perturbations.
        steps: Adam steps per value of ``c``, >= 1.
        lr: Adam's learning rate, > 0.
        binary_search_steps: values of ``c`` tried per example, >= 1.
        targeted: reach ``y`` instead of leaving it.
        clip_min: smallest valid input value.
        clip_max: largest valid input value.

    Returns:
        ``x_adv``: the smallest successful adversarial example found, or ``x`` itself where none was
        found; same shape, dtype and device as ``x``.

    Shape:
        ``x`` ``(N, ...)`` in ``[clip_min, clip_max]`` (default ``[0, 1]``), ``y`` ``(N,)`` → ``x_adv`` like ``x``.
    """
    check_inputs(x, y, clip_min=clip_min, clip_max=clip_max)
    check_positive("c", c)
    check_positive("kappa", kappa, allow_zero=True)
    check_int("steps", steps)
    check_positive("lr", lr)
    check_int("binary_search_steps", binary_search_steps)
    n, span = x.shape[0], clip_max - clip_min
    x = x.detach()
    to_input = lambda w: clip_min + (torch.tanh(w) + 1) / 2 * span  # noqa: E731
    w0 = torch.atanh(((x - clip_min) / span * 2 - 1).clamp(-1 + 1e-6, 1 - 1e-6))
    const = torch.full((n,), float(c), device=x.device)
    lower, upper = torch.zeros_like(const), torch.full_like(const, float("inf"))
    best_adv, best_dist = x.clone(), torch.full_like(const, float("inf"))
    with _EvalMode(model):
        for _ in range(binary_search_steps):
            w = w0.clone().requires_grad_(True)
            optimizer = torch.optim.Adam([w], lr=lr)
            succeeded = torch.zeros(n, dtype=torch.bool, device=x.device)
            for _ in range(steps):
                x_adv = to_input(w)
                dist = (x_adv - x).flatten(1).pow(2).sum(1)
                margin = _margin(model(x_adv), y, targeted)
                loss = (dist + const * margin.clamp_min(-kappa)).sum()
                (w.grad,) = torch.autograd.grad(loss, w)  # only w: the model's .grad stays untouched
                optimizer.step()
                with torch.no_grad():  # keep the best success of the iterate just evaluated
                    hit = margin < -kappa  # kappa 0: the label has changed
                    better = hit & (dist < best_dist)
                    best_dist = torch.where(better, dist, best_dist)
                    best_adv[better] = x_adv[better].detach()
                    succeeded |= hit
            const, lower, upper = _next_c(const, lower, upper, succeeded)
    return best_adv.detach()


def _next_c(const: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor, succeeded: torch.Tensor):
    """One step of C&W's search over ``c``, per example: a success makes ``c`` an upper bound, a failure a
    lower bound; the next ``c`` is the midpoint of the bracket, or ``10 c`` while no success bounds it above.
    Returns ``(const, lower, upper)``."""
    upper = torch.where(succeeded, torch.minimum(upper, const), upper)
    lower = torch.where(succeeded, lower, torch.maximum(lower, const))
    const = torch.where(upper < float("inf"), (lower + upper) / 2, const * 10)
    return const, lower, upper


def deepfool(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, steps: int = 50, overshoot: float = 0.02,
             clip_min: float = 0.0, clip_max: float = 1.0) -> torch.Tensor:
    r"""DeepFool (Moosavi-Dezfooli, Fawzi & Frossard, CVPR 2016), L2, untargeted.

    Linearises the classifier around the current point and steps onto the nearest linearised decision
    boundary: for each class :math:`k \ne y`, with :math:`f_k = Z_k - Z_y` and :math:`w_k = \nabla_x f_k`,
    it picks :math:`l = \arg\min_k |f_k| / \|w_k\|_2` and adds :math:`r = (|f_l| / \|w_l\|_2^2)\, w_l`.
    It stops for each example as soon as the label is no longer ``y`` (or after ``steps``); the summed
    step is scaled by ``1 + overshoot`` to land just across the boundary.

    Args:
        model: a classifier returning logits ``(N, K)``; run in eval mode, its mode restored afterwards.
        x: the clean inputs.
        y: the label to move away from, ``(N,)`` int; pass the model's own prediction for the paper's
            algorithm (an example the model already gets wrong is returned unchanged).
        steps: linearisation steps, >= 1.
        overshoot: relative overshoot of the total step, >= 0.
        clip_min: smallest valid input value.
        clip_max: largest valid input value.

    Returns:
        ``x_adv`` in the input range (the perturbation is as small as DeepFool finds, not bounded);
        same shape, dtype and device as ``x``.

    Shape:
        ``x`` ``(N, ...)`` in ``[clip_min, clip_max]`` (default ``[0, 1]``), ``y`` ``(N,)`` → ``x_adv`` like ``x``.
    """
    check_inputs(x, y, clip_min=clip_min, clip_max=clip_max)
    check_int("steps", steps)
    check_positive("overshoot", overshoot, allow_zero=True)
    x = x.detach()
    rows = torch.arange(x.shape[0], device=x.device)
    r_total, x_adv = torch.zeros_like(x), x.clone()
    with _EvalMode(model):
        for _ in range(steps):
            xa = x_adv.clone().requires_grad_(True)
            logits = model(xa)
            active = logits.argmax(1) == y
            if not active.any():
                break
            # one backward pass per class: row i of grads[:, k] is the gradient of Z_k at example i
            grads = torch.stack([torch.autograd.grad(logits[:, k].sum(), xa, retain_graph=True)[0]
                                 for k in range(logits.shape[1])], dim=1)
            f = (logits - logits[rows, y][:, None]).detach()                 # (N, K): Z_k - Z_y
            w = grads - grads[rows, y][:, None]                              # (N, K, ...)
            w_norm = w.flatten(2).norm(dim=2)                                # (N, K)
            dist = (f.abs() / w_norm.clamp_min(1e-12)).scatter(1, y[:, None], float("inf"))
            l = dist.argmin(1)
            w_l, w_l_norm = w[rows, l], w_norm[rows, l].view(-1, *([1] * (x.dim() - 1)))
            r = (dist[rows, l].view_as(w_l_norm) + 1e-4) * w_l / w_l_norm.clamp_min(1e-12)
            r_total = r_total + r * active.view_as(w_l_norm)
            x_adv = (x + (1 + overshoot) * r_total).clamp(clip_min, clip_max)
    return x_adv.detach()
