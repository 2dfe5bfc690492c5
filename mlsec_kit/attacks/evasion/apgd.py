"""Auto-PGD (APGD): projected gradient ascent that tunes its own step size, and the DLR loss it pairs with.

Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free
attacks" (ICML 2020; ``croce2020reliable`` in the book's references). PGD with a fixed step size is
fragile: too large and it oscillates, too small and it stalls, and a weak attack makes a defence look
strong. APGD starts with a large step (``2 eps``), adds momentum, and halves the step of an example at fixed
checkpoints when its loss has stopped going up, restarting it from the best point found so far. The
*difference-of-logits-ratio* (DLR) loss is invariant to shifting and rescaling the logits, so a defence that
only rescales them (and saturates the softmax of the cross-entropy) cannot hide behind it.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ._validate import check_inputs, check_int, check_norm, check_positive
from .gradient import _EvalMode, _per_example_norm, _uniform_in_ball, project_l2, project_linf

__all__ = ["apgd", "dlr_loss"]

LOSSES = ("ce", "dlr")
MOMENTUM = 0.75  # alpha of the paper: weight of the new gradient step against the previous update


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""The difference-of-logits-ratio loss of Croce & Hein (2020), per example.

    .. math:: \mathrm{DLR}(z, y) = -\frac{z_y - \max_{i \ne y} z_i}{z_{\pi_1} - z_{\pi_3}}

    where :math:`z_{\pi_1} \ge z_{\pi_2} \ge \dots` are the logits sorted in decreasing order (a ``1e-12`` in
    the denominator avoids 0/0). It is positive exactly when the example is misclassified, and it does not
    change when all logits of an example are shifted by a constant or multiplied by a positive one.

    Args:
        logits: the classifier's logits, ``(N, K)`` float, ``K >= 3`` (with two classes the denominator is
            the numerator's absolute value and the loss is only a sign).
        y: the true labels, ``(N,)`` int in ``[0, K)``.

    Returns:
        ``(N,)`` tensor, differentiable with respect to ``logits``.

    Shape:
        ``logits`` ``(N, K)``, ``y`` ``(N,)`` → ``(N,)``.
    """
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point() or logits.dim() != 2:
        raise ValueError("logits must be a floating-point tensor of shape (N, K)")
    if logits.shape[1] < 3:
        raise ValueError(f"logits must have K >= 3 classes for the DLR loss, got K = {logits.shape[1]}")
    if not isinstance(y, torch.Tensor) or y.shape != (logits.shape[0],) or y.is_floating_point():
        raise ValueError(f"y must be an int tensor of shape ({logits.shape[0]},)")
    top = logits.sort(dim=1, descending=True).values
    z_y = logits.gather(1, y.view(-1, 1)).squeeze(1)
    z_other = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf")).amax(dim=1)
    return -(z_y - z_other) / (top[:, 0] - top[:, 2] + 1e-12)


def _checkpoints(steps: int) -> list[int]:
    r"""The iterations :math:`w_j = \lceil p_j \cdot \text{steps} \rceil` at which APGD may halve its step.

    :math:`p_0 = 0`, :math:`p_1 = 0.22`, :math:`p_{j+1} = p_j + \max(p_j - p_{j-1} - 0.03, 0.06)` while
    :math:`p_{j+1} \le 1`: the first interval is long, later ones shrink by 3% of the budget down to 6%.
    Computed in integer hundredths so that no rounding error moves a checkpoint; duplicates (few steps) dropped.
    """
    percent = [0, 22]
    while percent[-1] + max(percent[-1] - percent[-2] - 3, 6) <= 100:
        percent.append(percent[-1] + max(percent[-1] - percent[-2] - 3, 6))
    return sorted({-(-p * steps // 100) for p in percent})


def _halve(increases: torch.Tensor, interval: int, rho: float, reduced_last: torch.Tensor, f_max: torch.Tensor,
           f_max_last: torch.Tensor) -> torch.Tensor:
    """The paper's rule at a checkpoint: which examples halve their step (``(N,)`` bool).

    Condition 1: the loss went up in fewer than ``rho * interval`` of the ``interval`` iterations since the last
    checkpoint (``increases`` counts them). Condition 2: the step was not halved at the last checkpoint
    (``~reduced_last``) and the best loss is the same as it was there (``f_max == f_max_last``).
    """
    return (increases < rho * interval) | (~reduced_last & (f_max == f_max_last))


def apgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, steps: int = 100, norm: str = "linf",
         loss: str = "ce", restarts: int = 1, rho: float = 0.75, generator: Optional[torch.Generator] = None,
         clip_min: float = 0.0, clip_max: float = 1.0, return_history: bool = False):
    r"""Auto-PGD, untargeted, Linf or L2 (Croce & Hein, ICML 2020).

    Each restart starts from a uniform random point of the eps-ball and runs ``steps`` iterations of

    .. math::
        z^{(k+1)} = P\big(x^{(k)} + \eta^{(k)} s(\nabla f(x^{(k)}))\big),\qquad
        x^{(k+1)} = P\big(x^{(k)} + \alpha (z^{(k+1)} - x^{(k)}) + (1 - \alpha)(x^{(k)} - x^{(k-1)})\big)

    with :math:`\alpha = 0.75` (:math:`\alpha = 1` on the first step), :math:`s` the gradient's sign (Linf)
    or the gradient over its L2 norm (L2), and :math:`P` the map into the feasible set: clip to the input
    range, then project onto the ball (as the kit's :func:`~mlsec_kit.attacks.evasion.pgd`). The step size
    starts at :math:`\eta^{(0)} = 2\varepsilon`, one per example. At each checkpoint :math:`w_j` (at
    22%, 41%, 57%, 70%, 80%, 87%, 93%, 99% of a 100-step budget) an example's step is halved when

    1. its loss went up in fewer than a fraction ``rho`` of the iterations since the last checkpoint,
       :math:`\sum_{i=w_{j-1}}^{w_j - 1} 1[f(x^{(i+1)}) > f(x^{(i)})] < \rho\,(w_j - w_{j-1})`, or
    2. its step was not halved at the last checkpoint and its best loss has not changed since then;

    and an example whose step is halved restarts from its best point :math:`x_{\max}` (with the point before
    it as the momentum's previous iterate). The best point, the one of highest loss, is kept per example.
    The conditions are the paper's formulas, as ART implements them; the authors' code (``autopgd_base.py``
    of AutoAttack) differs in two details: condition 1 there is ``<=``, and condition 2 cannot fire at the
    first checkpoint.

    Args:
        model: a classifier returning logits ``(N, K)``; run in eval mode, its mode restored afterwards.
        x: the clean inputs.
        y: the true labels, ``(N,)`` int.
        eps: radius of the ball, >= 0, in the units of ``x``.
        steps: iterations per restart, >= 1.
        norm: ``"linf"`` or ``"l2"``.
        loss: ``"ce"`` (cross-entropy) or ``"dlr"`` (:func:`dlr_loss`, needs K >= 3 classes).
        restarts: independent runs from random starts, >= 1; every example keeps its best over all of them.
        rho: the fraction of condition 1, in (0, 1).
        generator: the source of the random starts (a CPU ``torch.Generator``); ``None`` uses torch's global one.
        clip_min: smallest valid input value.
        clip_max: largest valid input value.
        return_history: also return the best loss of every example after every iteration.

    Returns:
        ``x_adv`` inside the eps-ball around ``x`` and the input range, same shape, dtype and device as ``x``:
        for each example, a misclassified point if any iterate of any restart was misclassified (the last
        such one), otherwise the point of highest loss over all restarts. With ``return_history``,
        ``(x_adv, history)``: ``history[r, k, i]`` is the best loss of example ``i`` in restart ``r`` after
        ``k + 1`` iterations, non-decreasing in ``k`` (``history.mean(-1)`` is the curve to plot).

    Shape:
        ``x`` ``(N, ...)`` in ``[clip_min, clip_max]`` (default ``[0, 1]``), ``y`` ``(N,)`` → ``x_adv`` like ``x``;
        ``history`` ``(restarts, steps, N)`` on the CPU.
    """
    check_inputs(x, y, clip_min=clip_min, clip_max=clip_max)
    check_positive("eps", eps, allow_zero=True)
    check_int("steps", steps, minimum=1)
    norm = check_norm(norm)
    if not isinstance(loss, str) or loss.lower() not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    loss = loss.lower()
    check_int("restarts", restarts, minimum=1)
    if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not 0 < rho < 1:
        raise ValueError(f"rho must be a number in (0, 1), got {rho!r}")

    project = project_linf if norm == "linf" else project_l2
    x, n = x.detach(), x.shape[0]
    view = (-1,) + (1,) * (x.dim() - 1)  # per-example scalars against the batch
    checkpoints = set(_checkpoints(steps)[1:])

    def feasible(point: torch.Tensor) -> torch.Tensor:
        return x + project(point.clamp(clip_min, clip_max) - x, eps=eps)

    def evaluate(point: torch.Tensor):
        """Per-example loss, wrongly-classified mask and gradient of the summed loss at ``point``."""
        point = point.detach().requires_grad_(True)
        logits = model(point)
        if loss == "dlr" and logits.shape[1] < 3:
            raise ValueError(f"loss 'dlr' needs a model with >= 3 classes, this one has {logits.shape[1]}; "
                             "use loss='ce'")
        values = F.cross_entropy(logits, y, reduction="none") if loss == "ce" else dlr_loss(logits, y)
        (grad,) = torch.autograd.grad(values.sum(), point)
        return values.detach(), logits.detach().argmax(1) != y, grad

    def direction(grad: torch.Tensor) -> torch.Tensor:
        return grad.sign() if norm == "linf" else grad / _per_example_norm(grad).clamp_min(1e-12)

    best_x, best_f = x.clone(), torch.full((n,), float("-inf"), device=x.device)
    found, found_x = torch.zeros(n, dtype=torch.bool, device=x.device), x.clone()
    history = torch.empty(restarts, steps, n)
    with _EvalMode(model):
        for r in range(restarts):
            x_k = feasible(x + _uniform_in_ball(x, eps, norm, generator))
            f_k, wrong, grad = evaluate(x_k)
            found_x[wrong], found = x_k[wrong], found | wrong
            x_prev = x_k.clone()
            x_max, x_max_prev, f_max, grad_max = x_k.clone(), x_k.clone(), f_k.clone(), grad.clone()
            eta = torch.full((n,), 2.0 * eps, device=x.device, dtype=x.dtype)
            increases = torch.zeros(n, device=x.device)
            reduced_last = torch.zeros(n, dtype=torch.bool, device=x.device)  # eta(w_0) = eta(w_1) so far
            f_max_last, w_last = f_max.clone(), 0
            for k in range(steps):
                z = feasible(x_k + eta.view(view) * direction(grad))
                a = 1.0 if k == 0 else MOMENTUM
                x_new = feasible(x_k + a * (z - x_k) + (1 - a) * (x_k - x_prev))
                f_new, wrong, grad_new = evaluate(x_new)
                found_x[wrong], found = x_new[wrong], found | wrong
                increases += (f_new > f_k).float()
                better = f_new > f_max
                x_max[better], x_max_prev[better] = x_new[better], x_k[better]
                f_max[better], grad_max[better] = f_new[better], grad_new[better]
                x_prev, x_k, f_k, grad = x_k, x_new, f_new, grad_new
                if k + 1 in checkpoints and k + 1 < steps:
                    halve = _halve(increases, k + 1 - w_last, rho, reduced_last, f_max, f_max_last)
                    eta[halve] /= 2
                    x_k[halve], x_prev[halve] = x_max[halve], x_max_prev[halve]  # restart from the best point
                    f_k[halve], grad[halve] = f_max[halve], grad_max[halve]
                    reduced_last, f_max_last, w_last = halve, f_max.clone(), k + 1
                    increases.zero_()
                history[r, k] = f_max.cpu()
            better = f_max > best_f
            best_x[better], best_f[better] = x_max[better], f_max[better]
    x_adv = torch.where(found.view(view), found_x, best_x).detach()
    return (x_adv, history) if return_history else x_adv
