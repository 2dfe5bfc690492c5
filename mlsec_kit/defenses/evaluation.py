"""Robust evaluation: the accuracy a model keeps under the worst of an ensemble of attacks, example by example.

One attack gives an upper bound on robust accuracy, and a loose one when the attack is weak or the defence
masks its gradient. Croce & Hein ("Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks", ICML 2020) and Carlini et al. ("On evaluating adversarial robustness", 2019) therefore
ask for an ensemble of diverse attacks (gradient-based with two losses, score-based, decision-based) and
count an example as robust only if *no* attack flips it: the per-example worst case, never the best of the
per-attack accuracies.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch
from torch import nn

from mlsec_kit.attacks.evasion import Oracle, apgd, fgsm, hop_skip_jump, pgd, square_attack
from mlsec_kit.attacks.evasion._validate import check_inputs, check_int, check_norm, check_positive

__all__ = ["RobustReport", "robust_accuracy", "ATTACKS"]

ATTACKS = ("fgsm", "pgd", "apgd-ce", "apgd-dlr", "square", "hsj")
LINF_ONLY = ("square",)


@dataclass
class RobustReport:
    """The result of :func:`robust_accuracy`.

    Attributes:
        clean: accuracy on the clean inputs.
        per_attack: accuracy under each attack alone (an example counts if it is clean-correct and the
            attack does not flip it), keyed by attack name.
        robust: the per-example worst case: the fraction of examples that are clean-correct and that no
            attack of the ensemble flips. Never above any entry of ``per_attack``.
        robust_mask: ``(N,)`` bool, which examples are robust in that sense (``robust`` is its mean).
        seconds: wall-clock seconds each attack took, keyed by attack name.
        masks: ``(N,)`` bool per attack, the examples counted in ``per_attack``; ``robust_mask`` is their AND.
    """

    clean: float
    per_attack: dict[str, float]
    robust: float
    robust_mask: torch.Tensor
    seconds: dict[str, float]
    masks: dict[str, torch.Tensor] = field(default_factory=dict)

    def __str__(self) -> str:
        parts = [f"clean {self.clean:.3f}"] + [f"{name} {acc:.3f}" for name, acc in self.per_attack.items()]
        return ", ".join(parts) + f"; worst case {self.robust:.3f}"


def _labels(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = torch.cat([model(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])
    model.train(was_training)
    return out


def _num_classes(model: nn.Module, x: torch.Tensor) -> int:
    """The number of logits the model returns, asked in eval mode, its mode restored."""
    was_training = model.training
    with torch.no_grad():
        classes = model.eval()(x[:1]).shape[1]
    model.train(was_training)
    return classes


def _distance(a: torch.Tensor, b: torch.Tensor, norm: str) -> torch.Tensor:
    diff = (a - b).flatten(1)
    return diff.abs().amax(1) if norm == "linf" else diff.norm(dim=1)


def robust_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, norm: str = "linf",
                    attacks: Sequence[str] = ("fgsm", "pgd", "apgd-ce", "apgd-dlr", "square"),
                    generator: Optional[torch.Generator] = None, pgd_steps: int = 20, apgd_steps: int = 50,
                    restarts: int = 1, max_queries: int = 1000, clip_min: float = 0.0,
                    clip_max: float = 1.0) -> RobustReport:
    r"""Clean accuracy, accuracy under each attack, and the per-example worst case over the ensemble.

    Every attack runs only on the examples the model classifies correctly (the others are lost already),
    and an example is robust only if it is clean-correct and *every* attack leaves it correctly classified:
    ``robust_mask = clean_correct & mask_1 & ... & mask_m``. The attacks, all untargeted and within
    ``eps`` in ``norm``:

    - ``"fgsm"``: one step of size ``eps`` (along the gradient's sign for Linf, along the normalised
      gradient for L2);
    - ``"pgd"``: PGD (Madry et al. 2018) with a random start, ``pgd_steps`` steps of ``2.5 eps / pgd_steps``,
      ``restarts`` times;
    - ``"apgd-ce"``, ``"apgd-dlr"``: :func:`~mlsec_kit.attacks.evasion.apgd` with the cross-entropy or the
      DLR loss (Croce & Hein 2020), ``apgd_steps`` iterations, ``restarts`` restarts (DLR needs >= 3 classes);
    - ``"square"``: the score-based Square Attack (Linf only) through a score oracle, ``max_queries`` queries
      per example;
    - ``"hsj"``: the decision-based HopSkipJump through a label-only oracle, ``max_queries`` queries per
      example; its point counts only if it is within ``eps`` in ``norm`` (checked here).

    Args:
        model: a classifier returning logits ``(N, K)``; attacks run it in eval mode.
        x: the clean inputs.
        y: the true labels, ``(N,)`` int.
        eps: the budget, >= 0, in the units of ``x``.
        norm: ``"linf"`` or ``"l2"``.
        attacks: names from ``("fgsm", "pgd", "apgd-ce", "apgd-dlr", "square", "hsj")``, at least one, no
            repeats; ``"square"`` only with ``"linf"``.
        generator: the source of every random draw (CPU); ``None`` uses torch's global one.
        pgd_steps: PGD steps, >= 1.
        apgd_steps: APGD iterations, >= 1.
        restarts: random restarts of PGD and APGD, >= 1.
        max_queries: queries per example for the black-box attacks, >= 1.
        clip_min: smallest valid input value.
        clip_max: largest valid input value.

    Returns:
        a :class:`RobustReport`; ``seconds`` holds each attack's wall-clock time.

    Shape:
        ``x`` ``(N, ...)`` in ``[clip_min, clip_max]``, ``y`` ``(N,)`` → masks ``(N,)`` bool on ``x``'s device.
    """
    check_inputs(x, y, clip_min=clip_min, clip_max=clip_max)
    check_positive("eps", eps, allow_zero=True)
    norm = check_norm(norm)
    for name, value in (("pgd_steps", pgd_steps), ("apgd_steps", apgd_steps), ("restarts", restarts),
                        ("max_queries", max_queries)):
        check_int(name, value, minimum=1)
    if isinstance(attacks, str) or not isinstance(attacks, Sequence) or len(attacks) == 0:
        raise ValueError(f"attacks must be a non-empty list of names from {ATTACKS}, got {attacks!r}")
    unknown = [a for a in attacks if a not in ATTACKS]
    if unknown:
        raise ValueError(f"attacks: unknown attack name(s) {unknown}; accepted names are {ATTACKS}")
    if len(set(attacks)) != len(attacks):
        raise ValueError(f"attacks must not repeat a name, got {list(attacks)}")
    if norm != "linf" and any(a in LINF_ONLY for a in attacks):
        raise ValueError(f"attacks: {[a for a in attacks if a in LINF_ONLY]} support only norm 'linf', "
                         f"got norm {norm!r}")

    x, y = x.detach(), y
    classes = _num_classes(model, x)
    if "apgd-dlr" in attacks and classes < 3:
        raise ValueError(f"attacks: 'apgd-dlr' uses the DLR loss, which needs >= 3 classes; this model has "
                         f"{classes} (drop 'apgd-dlr' or use 'apgd-ce')")
    clean_mask = _labels(model, x) == y
    idx = clean_mask.nonzero().squeeze(1)
    xs, ys = x[idx], y[idx]
    box = dict(clip_min=clip_min, clip_max=clip_max)

    def run(name: str) -> torch.Tensor:
        """The adversarial points of one attack for the clean-correct examples ``xs``."""
        if name == "fgsm":
            if norm == "linf":
                return fgsm(model, xs, ys, eps=eps, **box)
            return pgd(model, xs, ys, eps=eps, alpha=eps, steps=1, norm="l2", **box)
        if name == "pgd":
            out = xs.clone()
            for _ in range(restarts):  # keep, per example, a point that fools the model if any restart finds one
                cand = pgd(model, xs, ys, eps=eps, alpha=2.5 * eps / pgd_steps, steps=pgd_steps, norm=norm,
                           random_start=True, generator=generator, **box)
                fooled = _labels(model, cand) != ys
                out[fooled] = cand[fooled]
            return out
        if name in ("apgd-ce", "apgd-dlr"):
            return apgd(model, xs, ys, eps=eps, steps=apgd_steps, norm=norm, loss=name[5:], restarts=restarts,
                        generator=generator, **box)
        if name == "square":
            return square_attack(Oracle(model, output="scores", **box), xs, ys, eps=eps, max_queries=max_queries,
                                 generator=generator, **box)
        cand = hop_skip_jump(Oracle(model, output="label", **box), xs, ys, norm=norm, eps=eps,
                             max_queries=max_queries, generator=generator, **box)
        inside = _distance(cand, xs, norm) <= eps * (1 + 1e-5) + 1e-7  # the budget, checked here, not trusted
        return torch.where(inside.view(-1, *([1] * (xs.dim() - 1))), cand, xs)

    per_attack, seconds, masks = {}, {}, {}
    robust_mask = clean_mask.clone()
    for name in attacks:
        start = time.perf_counter()
        mask = clean_mask.clone()
        if len(idx):
            mask[idx] = _labels(model, run(name)) == ys
        seconds[name] = time.perf_counter() - start
        masks[name], per_attack[name] = mask, mask.float().mean().item()
        robust_mask &= mask
    return RobustReport(clean=clean_mask.float().mean().item(), per_attack=per_attack,
                        robust=robust_mask.float().mean().item(), robust_mask=robust_mask, seconds=seconds,
                        masks=masks)
