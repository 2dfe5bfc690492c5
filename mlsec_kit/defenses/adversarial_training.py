r"""Adversarial training: train on the worst case inside the eps-ball instead of on the clean inputs.

Madry et al. (2018) cast robustness as a min–max problem,

.. math:: \min_\theta \; \mathbb{E}_{(x, y)} \Big[ \max_{\|\delta\|_\infty \le \varepsilon} \ell(f_\theta(x + \delta), y) \Big],

and solve the inner maximisation approximately with an attack on every batch. Three recipes:

- ``"pgd"``: PGD with a random start (Madry et al. 2018), default step ``2.5 * eps / steps``;
- ``"fast"``: one FGSM step of ``1.25 * eps`` from a uniform random point of the ball (Wong, Rice &
  Kolter 2020): about ``steps`` times cheaper than PGD-AT, nearly as robust on small budgets;
- ``"trades"``: ``CE(f(x), y) + beta * KL(f(x) || f(x'))`` with ``x'`` maximising the KL term, started at
  ``x + 0.001 * N(0, I)`` (Zhang et al. 2019): ``beta`` trades clean accuracy for robustness.

The attack runs with the model in eval mode (dropout off, batch-norm statistics frozen, as in TRADES'
reference code and the kit's attacks); the update runs in train mode. Linf only.
"""
from __future__ import annotations

import time
from typing import Iterable, Optional

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..attacks.evasion._validate import check_inputs, check_int, check_positive
from ..attacks.evasion.gradient import _EvalMode, pgd, project_linf
from ..train import History, _model_device, _record_epoch, _show_progress, make_optimizer

__all__ = ["METHODS", "inner_max", "adversarial_training_step", "adversarial_fit"]

METHODS = ("fast", "pgd", "trades")


def _check_method(method: str) -> str:
    if not isinstance(method, str) or method.lower() not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return method.lower()


def _default_alpha(method: str, eps: float, steps: int) -> float:
    """The papers' step sizes: 1.25·eps for fast AT, 2.5·eps/steps for PGD-AT and TRADES."""
    return 1.25 * eps if method == "fast" else 2.5 * eps / steps


def _kl(logits_clean: torch.Tensor, logits_adv: torch.Tensor, reduction: str) -> torch.Tensor:
    """``KL(softmax(logits_clean) || softmax(logits_adv))``, summed over classes."""
    return F.kl_div(F.log_softmax(logits_adv, dim=1), F.log_softmax(logits_clean, dim=1), reduction=reduction,
                    log_target=True)


def _trades_inner(model: nn.Module, x: torch.Tensor, *, eps: float, alpha: float, steps: int,
                  generator: Optional[torch.Generator], clip_min: float, clip_max: float) -> torch.Tensor:
    """Sign-gradient ascent on ``KL(f(x) || f(x'))`` from ``x + 0.001 * N(0, I)``, projected on ball and range."""
    with _EvalMode(model):
        with torch.no_grad():
            target = model(x)
        start = 0.001 * torch.randn(x.shape, generator=generator).to(device=x.device, dtype=x.dtype)
        x_adv = (x + project_linf(start, eps=eps)).clamp(clip_min, clip_max)
        for _ in range(steps):
            x_adv = x_adv.detach().requires_grad_(True)
            # summed, so each example's step does not depend on the batch size
            (grad,) = torch.autograd.grad(_kl(target, model(x_adv), "sum"), x_adv)
            delta = (x_adv.detach() + alpha * grad.sign()).clamp(clip_min, clip_max) - x
            x_adv = x + project_linf(delta, eps=eps)
    return x_adv.detach()


def inner_max(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, method: str = "pgd", eps: float,
              alpha: Optional[float] = None, steps: int = 7, generator: Optional[torch.Generator] = None,
              clip_min: float = 0.0, clip_max: float = 1.0) -> torch.Tensor:
    """The training inputs a method's inner maximisation finds for one batch (the model is not changed).

    ``"pgd"`` is the kit's :func:`~mlsec_kit.attacks.evasion.pgd` with a random start; ``"fast"`` is the same
    with one step of ``alpha`` (default ``1.25 * eps``) from the uniform start; ``"trades"`` maximises the KL
    divergence between the predictions at ``x`` and ``x'`` (it ignores ``y``).

    Args: as :func:`adversarial_training_step`.

    Returns:
        ``x_adv`` with ``||x_adv - x||_inf <= eps`` inside ``[clip_min, clip_max]``; same shape as ``x``.
    """
    method = _check_method(method)
    check_inputs(x, y, clip_min=clip_min, clip_max=clip_max)
    check_positive("eps", eps, allow_zero=True)
    check_int("steps", steps, minimum=1)
    if alpha is None:
        alpha = _default_alpha(method, eps, steps)
    check_positive("alpha", alpha, allow_zero=True)
    if method == "trades":
        return _trades_inner(model, x.detach(), eps=eps, alpha=alpha, steps=steps, generator=generator,
                             clip_min=clip_min, clip_max=clip_max)
    return pgd(model, x, y, eps=eps, alpha=alpha, steps=1 if method == "fast" else steps, random_start=True,
               generator=generator, clip_min=clip_min, clip_max=clip_max)


def _step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, *, method: str,
          eps: float, alpha: Optional[float], steps: int, beta: float, generator: Optional[torch.Generator],
          clip_min: float, clip_max: float) -> tuple[float, int]:
    """One update; returns the loss and how many of the training inputs the model got right before it."""
    x_adv = inner_max(model, x, y, method=method, eps=eps, alpha=alpha, steps=steps, generator=generator,
                      clip_min=clip_min, clip_max=clip_max)
    model.train()
    optimizer.zero_grad()
    logits_adv = model(x_adv)
    if method == "trades":
        logits = model(x)  # the clean term and the KL's reference both carry gradient, as in the paper's code
        loss = F.cross_entropy(logits, y) + beta * _kl(logits, logits_adv, "batchmean")
    else:
        loss = F.cross_entropy(logits_adv, y)
    loss.backward()
    optimizer.step()
    return loss.item(), (logits_adv.argmax(1) == y).sum().item()


def _check_hyper(method: str, eps: float, steps: int, beta: float) -> str:
    method = _check_method(method)
    check_positive("eps", eps, allow_zero=True)
    check_int("steps", steps, minimum=1)
    check_positive("beta", beta, allow_zero=True)
    return method


def adversarial_training_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                              y: torch.Tensor, *, method: str = "pgd", eps: float, alpha: Optional[float] = None,
                              steps: int = 7, beta: float = 6.0, generator: Optional[torch.Generator] = None,
                              clip_min: float = 0.0, clip_max: float = 1.0) -> float:
    r"""One adversarial-training update on a batch: attack the current model, then descend on the result.

    ``"pgd"`` (Madry et al., ICLR 2018) and ``"fast"`` (Wong, Rice & Kolter, ICLR 2020) minimise the
    cross-entropy at the adversarial point :math:`x' = x + \delta`; ``"trades"`` (Zhang et al., ICML 2019)
    minimises :math:`\mathrm{CE}(f(x), y) + \beta\,\mathrm{KL}(f(x) \,\|\, f(x'))`. Linf threat model.

    Args:
        model: a classifier returning logits ``(N, K)``; attacked in eval mode, updated in train mode.
        optimizer: the optimiser over ``model``'s parameters.
        x: a batch of training inputs on the model's device.
        y: their labels, ``(N,)`` int.
        method: ``"fast"``, ``"pgd"`` or ``"trades"``.
        eps: the Linf radius, >= 0, in the units of ``x``.
        alpha: the attack's step size, >= 0; ``None`` takes ``1.25 * eps`` (fast) or ``2.5 * eps / steps``.
        steps: attack steps, >= 1 (fast always takes one).
        beta: TRADES' weight on the KL term, >= 0 (ignored by the other methods).
        generator: source of the random starts (CPU); ``None`` uses torch's global generator.
        clip_min: smallest valid input value.
        clip_max: largest valid input value.

    Returns:
        The training loss of this step (before the update), a float.

    Shape:
        ``x`` ``(N, ...)`` in ``[clip_min, clip_max]``, ``y`` ``(N,)``.
    """
    method = _check_hyper(method, eps, steps, beta)
    return _step(model, optimizer, x, y, method=method, eps=eps, alpha=alpha, steps=steps, beta=beta,
                 generator=generator, clip_min=clip_min, clip_max=clip_max)[0]


def adversarial_fit(model: nn.Module, train_loader: Iterable, *, method: str = "pgd", eps: float, epochs: int,
                    alpha: Optional[float] = None, steps: int = 7, beta: float = 6.0, lr: float = 1e-3,
                    optimizer: str = "adam", eval_loader: Optional[Iterable] = None,
                    progress: Optional[bool] = None, generator: Optional[torch.Generator] = None,
                    eps_warmup_epochs: int = 0, clip_min: float = 0.0, clip_max: float = 1.0) -> History:
    """Adversarial training: :func:`mlsec_kit.train.fit`'s loop with :func:`adversarial_training_step` inside.

    Args:
        model: a classifier returning logits ``(N, K)``; trained in place on its own device.
        train_loader: yields ``(X, y)`` batches, e.g. ``DataSplit.train_loader()``.
        method: ``"fast"``, ``"pgd"`` or ``"trades"`` (see :func:`adversarial_training_step`).
        eps: the Linf radius trained against, >= 0.
        epochs: passes over the training data, >= 1.
        alpha: attack step size; ``None`` takes the method's default (scaled with eps during warm-up).
        steps: attack steps, >= 1.
        beta: TRADES' weight, >= 0.
        lr: learning rate, > 0.
        optimizer: ``"adam"`` or ``"sgd"`` (momentum 0.9).
        eval_loader: when given, clean test loss and accuracy are recorded after every epoch.
        progress: show a progress bar; ``None`` shows it in Colab and terminals only.
        generator: source of the attacks' random starts (CPU); ``None`` uses torch's global generator.
        eps_warmup_epochs: ramp eps linearly over this many first epochs (epoch ``e`` uses
            ``eps * (e + 1) / (eps_warmup_epochs + 1)``), >= 0; 0 trains at ``eps`` from the start.
        clip_min: smallest valid input value.
        clip_max: largest valid input value.

    Returns:
        A :class:`~mlsec_kit.train.History`: ``train_loss`` is the mean training loss of each epoch,
        ``train_acc`` the accuracy on the adversarial training inputs (before each update), ``seconds``
        the wall-clock training time (evaluation excluded).
    """
    method = _check_hyper(method, eps, steps, beta)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    check_int("eps_warmup_epochs", eps_warmup_epochs, minimum=0)
    if alpha is not None:
        check_positive("alpha", alpha, allow_zero=True)
    opt = make_optimizer(model, optimizer=optimizer, lr=lr)
    dev = _model_device(model)
    history = History()
    bar = tqdm(range(epochs), desc=f"{method} AT epochs", disable=not _show_progress(progress), leave=False)
    for epoch in bar:
        start = time.perf_counter()
        scale = min(1.0, (epoch + 1) / (eps_warmup_epochs + 1))
        eps_e = eps * scale
        alpha_e = None if alpha is None else alpha * scale
        total_loss, correct, seen = 0.0, 0, 0
        for X, y in train_loader:
            X, y = X.to(dev), y.to(dev)
            loss, right = _step(model, opt, X, y, method=method, eps=eps_e, alpha=alpha_e, steps=steps, beta=beta,
                                generator=generator, clip_min=clip_min, clip_max=clip_max)
            total_loss += loss * len(y)
            correct += right
            seen += len(y)
        _record_epoch(history, model, total_loss=total_loss, correct=correct, seen=seen, start=start,
                      eval_loader=eval_loader)
        bar.set_postfix(loss=f"{history.train_loss[-1]:.3f}", eps=f"{eps_e:.3g}")
    model.eval()
    return history
