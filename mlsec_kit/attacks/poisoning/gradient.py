r"""Gradient-based poisoning of an L2-regularised logistic regression (performance degradation).

The attacker controls ``k`` training rows and moves them so that the model *retrained* on the poisoned set
does as badly as possible on validation data: a bilevel problem (Biggio, Nelson & Laskov 2012 for SVMs;
Muñoz-González et al. 2017 for any learner trained by gradient descent)

.. math::
    \max_{X_p} \; V(\theta^\star) = \tfrac{1}{m}\sum_{j} \ell(x^{val}_j, y^{val}_j; \theta^\star)
    \quad\text{s.t.}\quad \theta^\star = \arg\min_\theta L(\theta; D_{clean} \cup (X_p, y_p)).

The learner here is multinomial logistic regression with an L2 penalty on every parameter (weights *and*
biases), ``L(θ) = mean cross-entropy + l2/2 ||θ||²``: strictly convex, so ``θ*`` is unique, Newton's method
finds it to machine precision, and its optimality condition ``G(θ*, X_p) = ∇_θ L = 0`` holds exactly.
Differentiating that condition (the implicit function theorem) gives
``dθ*/dX_p = -H^{-1} ∂G/∂X_p`` with ``H = ∇²_θ L``, so

.. math::
    \nabla_{X_p} V = -\left(\partial G/\partial X_p\right)^{\top} v, \qquad H v = \nabla_\theta V(\theta^\star),

one linear solve with the exact Hessian and one vector-Jacobian product (autograd) per step, whatever the
number of poisons. Muñoz-González et al. replace the solve by back-gradient descent for learners that are not
trained to optimality; for a small convex model the exact solve is cheaper and has no truncation error.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ...models import logistic_regression
from ..evasion._validate import check_int, check_positive
from .label_flip import check_training_set, num_poisoned

__all__ = ["gradient_poisoning", "fit_logistic_regression", "implicit_poison_gradient", "logreg_hessian"]

DTYPE = torch.float64  # the bilevel gradient is a difference of near-equal terms: float32 loses it


def _augment(x: torch.Tensor) -> torch.Tensor:
    """Flatten and append a column of ones (the bias), in float64: ``(N, ...)`` → ``(N, D + 1)``."""
    x = x.reshape(len(x), -1).to(DTYPE)
    return torch.cat([x, torch.ones(len(x), 1, dtype=DTYPE, device=x.device)], 1)


def _loss(theta: torch.Tensor, xa: torch.Tensor, y: torch.Tensor, l2: float) -> torch.Tensor:
    """Mean cross-entropy of the linear model ``theta`` ``(K, D+1)`` plus ``l2/2 ||theta||²``."""
    return F.cross_entropy(xa @ theta.T, y) + 0.5 * l2 * theta.pow(2).sum()


def _grad(theta: torch.Tensor, xa: torch.Tensor, y: torch.Tensor, l2: float) -> torch.Tensor:
    """``∇_θ L`` in closed form, ``(P - Y)^T X / N + l2 θ``; differentiable in ``xa`` (the implicit gradient
    needs ``∂G/∂X_p``)."""
    p = torch.softmax(xa @ theta.T, 1)
    p = p - F.one_hot(y, theta.shape[0]).to(p.dtype)
    return p.T @ xa / len(xa) + l2 * theta


def logreg_hessian(theta: torch.Tensor, xa: torch.Tensor, l2: float) -> torch.Tensor:
    """The exact Hessian of the training loss in the flattened parameters (row-major ``(K, D+1)``):
    ``H = (1/N) Σ_i (diag(p_i) - p_i p_iᵀ) ⊗ x_i x_iᵀ + l2 I``.

    Shape:
        ``theta`` ``(K, D+1)``, ``xa`` ``(N, D+1)`` (inputs with a ones column) → ``(K(D+1), K(D+1))``.
    """
    n, d = xa.shape
    k = theta.shape[0]
    p = torch.softmax(xa @ theta.T, 1)
    h = torch.zeros(k, d, k, d, dtype=xa.dtype, device=xa.device)
    for c in range(k):
        h[c, :, c, :] = (xa * p[:, c:c + 1]).T @ xa
    m = (p[:, :, None] * xa[:, None, :]).reshape(n, k * d)
    h = h.reshape(k * d, k * d) - m.T @ m
    return h / n + l2 * torch.eye(k * d, dtype=xa.dtype, device=xa.device)


def _newton(xa: torch.Tensor, y: torch.Tensor, num_classes: int, l2: float, theta: Optional[torch.Tensor] = None,
            *, max_iter: int = 100, tol: float = 1e-10) -> torch.Tensor:
    """Minimise the strictly convex training loss by Newton's method with Armijo backtracking."""
    theta = torch.zeros(num_classes, xa.shape[1], dtype=DTYPE, device=xa.device) if theta is None else theta.clone()
    for _ in range(max_iter):
        g = _grad(theta, xa, y, l2)
        if g.norm() < tol:
            break
        step = torch.linalg.solve(logreg_hessian(theta, xa, l2), g.flatten()).view_as(theta)
        loss, t, slope = _loss(theta, xa, y, l2), 1.0, (g * step).sum()
        while _loss(theta - t * step, xa, y, l2) > loss - 0.25 * t * slope and t > 1e-8:
            t *= 0.5
        theta = theta - t * step
    return theta


def fit_logistic_regression(x: torch.Tensor, y: torch.Tensor, *, l2: float,
                            num_classes: Optional[int] = None) -> nn.Sequential:
    """Train the learner the poisoning attacks target, to optimality: the kit's
    :func:`~mlsec_kit.models.logistic_regression` minimising mean cross-entropy ``+ l2/2 ||θ||²`` (weights
    and biases), by Newton's method in float64.

    Args:
        x: training inputs ``(N, ...)``.
        y: labels ``(N,)`` in ``[0, num_classes)``.
        l2: the L2 penalty, > 0 (it makes the problem strictly convex).
        num_classes: >= 2; ``None`` takes ``y.max() + 1`` (at least 2).

    Returns:
        A float32 ``logistic_regression(x.shape[1:], num_classes)`` on ``x``'s device, in eval mode.
    """
    check_training_set(x, y)
    check_positive("l2", l2)
    k = max(int(y.max()) + 1, 2) if num_classes is None else num_classes
    if isinstance(k, bool) or not isinstance(k, int) or k < 2 or int(y.max()) >= k:
        raise ValueError(f"num_classes must be an int >= 2 above every label, got {num_classes!r}")
    theta = _newton(_augment(x), y.long(), k, l2)
    model = logistic_regression(tuple(x.shape[1:]), k).to(x.device)
    with torch.no_grad():
        model[1].weight.copy_(theta[:, :-1])
        model[1].bias.copy_(theta[:, -1])
    return model.eval()


def _implicit(theta: torch.Tensor, xa_clean: torch.Tensor, y_clean: torch.Tensor, xp: torch.Tensor,
              yp: torch.Tensor, xa_val: torch.Tensor, y_val: torch.Tensor, l2: float) -> torch.Tensor:
    """``∇_{X_p} V(θ*(X_p))`` at the optimum ``theta`` of the training set ``clean ∪ poisons``."""
    xa_all = torch.cat([xa_clean, _augment(xp)])
    y_all = torch.cat([y_clean, yp])
    with torch.enable_grad():
        th = theta.detach().requires_grad_(True)
        (grad_v,) = torch.autograd.grad(F.cross_entropy(xa_val @ th.T, y_val), th)
    v = torch.linalg.solve(logreg_hessian(theta, xa_all, l2), grad_v.flatten()).view_as(theta)
    with torch.enable_grad():
        xp = xp.detach().requires_grad_(True)
        g = _grad(theta, torch.cat([xa_clean, _augment(xp)]), y_all, l2)
        (gx,) = torch.autograd.grad((g * v).sum(), xp)
    return -gx


def _check_num_classes(num_classes: Optional[int], labels) -> int:
    """``num_classes`` (``None``: the largest label + 1), checked to be an int >= 2 above every label."""
    nc = max(int(t.max()) + 1 for t in labels) if num_classes is None else num_classes
    if isinstance(nc, bool) or not isinstance(nc, int) or nc < 2 or any(int(t.max()) >= nc for t in labels):
        raise ValueError(f"num_classes must be an int >= 2 above every label, got {num_classes!r}")
    return nc


def implicit_poison_gradient(x_clean: torch.Tensor, y_clean: torch.Tensor, x_poison: torch.Tensor,
                             y_poison: torch.Tensor, *, x_val: torch.Tensor, y_val: torch.Tensor, l2: float,
                             num_classes: Optional[int] = None) -> torch.Tensor:
    r"""The gradient of the validation loss of the retrained learner with respect to the poison inputs,
    :math:`\nabla_{X_p} V(\theta^\star(X_p)) = -(\partial G/\partial X_p)^\top H^{-1} \nabla_\theta V`
    (implicit differentiation of the optimality condition ``G = ∇_θ L = 0``).

    Args:
        x_clean: the clean training rows ``(N, ...)``; ``y_clean`` their labels.
        x_poison: the poison rows ``(k, ...)``; ``y_poison`` their (fixed) labels.
        x_val: validation inputs ``(M, ...)``; ``y_val`` their labels.
        l2: the learner's L2 penalty, > 0.
        num_classes: >= 2; ``None`` takes the largest label + 1.

    Returns:
        ``(k, ...)`` float64, like ``x_poison``: the direction that raises the validation loss fastest.
    """
    for a, b, na, nb in ((x_clean, y_clean, "x_clean", "y_clean"), (x_poison, y_poison, "x_poison", "y_poison"),
                         (x_val, y_val, "x_val", "y_val")):
        check_training_set(a, b, name_x=na, name_y=nb)
    check_positive("l2", l2)
    k = _check_num_classes(num_classes, (y_clean, y_poison, y_val))
    xa_clean = _augment(x_clean)
    xp = x_poison.reshape(len(x_poison), -1).to(DTYPE)
    theta = _newton(torch.cat([xa_clean, _augment(xp)]), torch.cat([y_clean, y_poison]).long(), k, l2)
    g = _implicit(theta, xa_clean, y_clean.long(), xp, y_poison.long(), _augment(x_val), y_val.long(), l2)
    return g.view(x_poison.shape)


def gradient_poisoning(x: torch.Tensor, y: torch.Tensor, *, rate: float, x_val: torch.Tensor, y_val: torch.Tensor,
                       steps: int, step_size: float, l2: float = 1e-2,
                       surrogate: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
                       num_classes: Optional[int] = None,
                       generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradient-based poisoning of L2-regularised logistic regression (Biggio, Nelson & Laskov 2012;
    Muñoz-González et al. 2017), with the gradient through training by implicit differentiation.

    Start (Muñoz-González et al.'s initialisation): ``k = round(rate * n)`` rows of ``x`` are chosen at
    random and their labels flipped to a uniform other class, exactly as :func:`random_label_flip` does with
    the same generator state, so ``steps=0`` returns the random flip. Then, ``steps`` times: retrain the
    learner to optimality on ``clean ∪ poisons`` (Newton, warm-started), take the implicit gradient of the
    validation cross-entropy with respect to the poison inputs, move each poison ``step_size`` along its own
    unit-L2 gradient direction (Biggio et al.'s normalised step) and clip each feature to the range it
    takes in the attacker's data (poisons must look like data). Labels stay fixed. The iterate with the
    highest validation loss is kept (gradient ascent on a non-concave objective is not monotone).

    Knowledge (the survey's white-/black-box axis):

    - white box (``surrogate=None``): the attacker knows the victim's clean training rows ``x, y`` and
      optimises against the learner trained on them;
    - black box (``surrogate=(x_s, y_s)``): the attacker knows only its own data from the same
      distribution. It starts from ``k`` random rows of ``x_s`` with flipped labels, optimises against the
      learner trained on the other rows of ``x_s`` plus the poisons, and writes the poisons into ``k`` random
      rows of the victim's set. ``x`` then only says where the poisons go and how many there are.

    Both assume the learner (logistic regression) and its ``l2`` are known; ``x_val, y_val`` are the
    attacker's validation data (keep them apart from the data the victim is evaluated on).

    Args:
        x: the victim's training inputs ``(N, ...)`` (unchanged; a poisoned copy is returned).
        y: their labels ``(N,)`` int.
        rate: fraction of rows replaced by poisons, in ``[0, 1]``; ``round(rate * N)`` rows (Python's round).
        x_val: the attacker's validation inputs ``(M, ...)``; ``y_val`` their labels.
        steps: gradient-ascent steps, >= 0.
        step_size: L2 length of each poison's step, > 0, in the units of ``x``.
        l2: the learner's L2 penalty, > 0.
        surrogate: the attacker's own ``(x_s, y_s)`` for the black-box variant; ``None`` for white box.
        num_classes: >= 2; ``None`` takes the largest label + 1.
        generator: a CPU ``torch.Generator`` for the rows and the initial labels.

    Returns:
        ``(x_poisoned, y_poisoned, poisoned_indices)``: the victim's training set with ``round(rate * N)``
        rows replaced by the poisons (same length as ``x``), and the sorted ``int64`` indices of those rows.

    Shape:
        ``x`` ``(N, ...)``, ``y`` ``(N,)`` → ``(N, ...)`` (``x``'s dtype), ``(N,)``, ``(round(rate * N),)``.
    """
    check_training_set(x, y)
    check_training_set(x_val, y_val, name_x="x_val", name_y="y_val")
    if x_val.shape[1:] != x.shape[1:]:
        raise ValueError(f"x_val must have rows shaped like x's {tuple(x.shape[1:])}, got {tuple(x_val.shape[1:])}")
    check_int("steps", steps, minimum=0)
    check_positive("step_size", step_size)
    check_positive("l2", l2)
    k = num_poisoned(rate, len(y))
    labels = [y, y_val]
    if surrogate is not None:
        if not isinstance(surrogate, (tuple, list)) or len(surrogate) != 2:
            raise TypeError("surrogate must be a pair (x_s, y_s) of the attacker's training data, or None")
        xs, ys = surrogate
        check_training_set(xs, ys, name_x="surrogate x", name_y="surrogate y")
        if xs.shape[1:] != x.shape[1:]:
            raise ValueError(f"surrogate x must have rows shaped like x's {tuple(x.shape[1:])}, "
                             f"got {tuple(xs.shape[1:])}")
        if k > len(xs):
            raise ValueError(f"rate={rate} needs {k} poisons but the surrogate data has only {len(xs)} rows")
        labels.append(ys)
    nc = _check_num_classes(num_classes, labels)

    if surrogate is None:  # same draws as random_label_flip: rows, then their new labels
        idx = torch.randperm(len(y), generator=generator)[:k].sort().values.to(y.device)
        base_x, base_y, start = x, y, idx
    else:
        idx = torch.randperm(len(y), generator=generator)[:k].sort().values.to(y.device)
        start = torch.randperm(len(xs), generator=generator)[:k].sort().values.to(ys.device)
        base_x, base_y = xs, ys
    shift = torch.randint(1, nc, (k,), generator=generator).to(base_y.device)
    yp = (base_y[start].long() + shift) % nc
    keep = torch.ones(len(base_y), dtype=torch.bool, device=base_y.device)
    keep[start] = False
    flat = base_x.reshape(len(base_x), -1).to(DTYPE)
    lo, hi = flat.min(0).values, flat.max(0).values
    xp = flat[start].clone()
    if steps > 0 and k > 0:
        xp = _ascend(xp, yp, _augment(flat[keep]), base_y[keep].long(), _augment(x_val), y_val.long(),
                     nc=nc, l2=l2, steps=steps, step_size=step_size, lo=lo, hi=hi)
    x_poisoned, y_poisoned = x.clone(), y.clone()
    x_poisoned[idx] = xp.to(x.dtype).view(k, *x.shape[1:])
    y_poisoned[idx] = yp.to(y.dtype)
    return x_poisoned, y_poisoned, idx.long()


def _ascend(xp: torch.Tensor, yp: torch.Tensor, xa_clean: torch.Tensor, y_clean: torch.Tensor, xa_val: torch.Tensor,
            y_val: torch.Tensor, *, nc: int, l2: float, steps: int, step_size: float, lo: torch.Tensor,
            hi: torch.Tensor) -> torch.Tensor:
    """Projected, normalised gradient ascent on the validation loss; returns the best iterate."""
    y_all = torch.cat([y_clean, yp])
    theta, best, best_loss = None, xp, float("-inf")
    for step in range(steps + 1):
        theta = _newton(torch.cat([xa_clean, _augment(xp)]), y_all, nc, l2, theta)
        val_loss = F.cross_entropy(xa_val @ theta.T, y_val).item()
        if val_loss > best_loss:
            best, best_loss = xp, val_loss
        if step == steps:
            break
        g = _implicit(theta, xa_clean, y_clean, xp, yp, xa_val, y_val, l2)
        xp = torch.maximum(torch.minimum(xp + step_size * g / g.norm(dim=1, keepdim=True).clamp_min(1e-12), hi), lo)
    return best
