"""Transfer attacks: craft white-box on a surrogate model you own, then send the result to the victim.

The attacker trains (or downloads) a surrogate for the same task, runs PGD on it, and spends a single query
per example to learn whether the adversarial example also fools the victim (Papernot et al. 2017). That one
query is the whole cost; the examples it did not fool can go on to a query-based attack.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ._validate import check_inputs, check_int, check_norm, check_positive
from .gradient import pgd
from .oracle import Oracle, check_oracle

__all__ = ["transfer_attack"]


def transfer_attack(surrogate: nn.Module, oracle: Oracle, x: torch.Tensor, y: torch.Tensor, *, eps: float,
                    norm: str = "linf", alpha: Optional[float] = None, steps: int = 20, random_start: bool = False,
                    generator: Optional[torch.Generator] = None, clip_min: float = 0.0,
                    clip_max: float = 1.0) -> torch.Tensor:
    r"""Transfer attack (Papernot et al., AsiaCCS 2017; Szegedy et al. 2014): PGD on a surrogate, one query.

    Runs :func:`~mlsec_kit.attacks.evasion.pgd` on ``surrogate`` (white-box: the attacker owns it), then
    queries the victim's oracle once per example with the result, so ``oracle.queries[i]`` grows by exactly
    one. The victim's answer is for the attacker to act on; the examples are returned either way.

    Args:
        surrogate: the attacker's own classifier returning logits ``(N, K)``, for the same labels as the victim.
        oracle: the victim behind any oracle.
        x: the clean inputs.
        y: their true labels, ``(N,)`` int.
        eps: radius of the ball, >= 0.
        norm: ``"linf"`` or ``"l2"``.
        alpha: PGD's step, >= 0; ``None`` uses ``2.5 * eps / steps``.
        steps: PGD steps on the surrogate, >= 1.
        random_start: start PGD from a random point of the ball.
        generator: the random start's source (CPU).
        clip_min: smallest valid input value.
        clip_max: largest valid input value.

    Returns:
        ``x_adv`` in the eps-ball and the input range; same shape, dtype and device as ``x``.

    Shape:
        ``x`` ``(N, ...)`` in ``[clip_min, clip_max]`` (default ``[0, 1]``), ``y`` ``(N,)`` → ``x_adv`` like ``x``.
    """
    check_oracle(oracle)
    if not isinstance(surrogate, nn.Module):
        raise TypeError(f"surrogate must be a torch.nn.Module (the attacker's own model), got {type(surrogate).__name__}")
    check_inputs(x, y, clip_min=clip_min, clip_max=clip_max)
    check_positive("eps", eps, allow_zero=True)
    check_int("steps", steps)
    norm = check_norm(norm)
    if alpha is None:
        alpha = 2.5 * eps / steps
    check_positive("alpha", alpha, allow_zero=True)
    x_adv = pgd(surrogate, x, y, eps=eps, alpha=alpha, steps=steps, norm=norm, random_start=random_start,
                generator=generator, clip_min=clip_min, clip_max=clip_max)
    oracle(x_adv, index=torch.arange(len(x)))
    return x_adv
