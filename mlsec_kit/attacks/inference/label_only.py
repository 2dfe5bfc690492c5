"""Label-only membership inference: tell training members from other records when the model answers with a
label and nothing else (Choquette-Choo, Tramèr, Carlini & Papernot, ICML 2021).

Hiding the confidences does not hide membership. A model fits its training points with a margin: they sit
further from the decision boundary than points it never saw, so their label survives more perturbation. Two
ways to measure that margin with label queries only, both against the chapter-4
:class:`~mlsec_kit.attacks.evasion.oracle.Oracle`:

* ``"noise"``: the fraction of randomly perturbed copies (Gaussian noise, the paper's augmentation for
  inputs that have no natural augmentations) that keep the true label;
* ``"boundary"``: the L2 distance from the record to the closest misclassified point HopSkipJump finds (the
  paper's decision-boundary-distance attack, with a decision-based adversarial example), 0 for a misclassified
  record.

The paper's *gap attack* is the baseline both must beat: "correctly classified means member", the score
``oracle(x) == y``; its advantage over chance is half the generalisation gap.

Either score is a membership score: higher means more likely a member; threshold it or plot its ROC.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from ..evasion._validate import check_inputs, check_int, check_positive
from ..evasion.decision_based import hop_skip_jump
from ..evasion.oracle import Oracle, check_oracle, labels_of

__all__ = ["label_only_membership", "METHODS"]

METHODS = ("noise", "boundary")


def _noise_scores(oracle: Oracle, x: torch.Tensor, y: torch.Tensor, sigma: float, num_queries: int,
                  generator: Optional[torch.Generator]) -> torch.Tensor:
    n = len(x)
    rows = torch.arange(n)
    correct = (labels_of(oracle(x, index=rows)) == y).to(x.dtype)  # the clean record counts as one copy
    for _ in range(num_queries):  # one noisy copy of every record per round: memory stays O(N)
        noise = torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
        x_noisy = (x + sigma * noise).clamp(oracle.clip_min, oracle.clip_max)
        correct += (labels_of(oracle(x_noisy, index=rows)) == y).to(x.dtype)
    return correct / (num_queries + 1)


def _boundary_scores(oracle: Oracle, x: torch.Tensor, y: torch.Tensor, steps: int, num_queries: int,
                     generator: Optional[torch.Generator]) -> torch.Tensor:
    x_adv = hop_skip_jump(oracle, x, y, norm="l2", steps=steps, max_queries=num_queries, generator=generator,
                          clip_min=oracle.clip_min, clip_max=oracle.clip_max)
    dist = (x_adv - x).flatten(1).norm(dim=1)
    # HopSkipJump returns the record itself when it is misclassified (distance 0: the least member-like) and
    # when no misclassified point was found within the budget: that record is as robust as the attack can
    # tell, so it gets the largest distance possible inside the input range.
    robust = (dist == 0) & (labels_of(oracle(x)) == y)
    diameter = math.sqrt(x[0].numel()) * (oracle.clip_max - oracle.clip_min)
    return torch.where(robust, torch.full_like(dist, diameter), dist)


def label_only_membership(oracle: Oracle, x: torch.Tensor, y: torch.Tensor, *, method: str = "noise",
                          sigma: float = 0.1, num_queries: int = 50, steps: int = 20,
                          generator: Optional[torch.Generator] = None) -> torch.Tensor:
    r"""Membership scores from top-1 labels only (Choquette-Choo et al. 2021).

    ``method="noise"``: query the record and ``num_queries`` copies
    :math:`\mathrm{clip}(x + \sigma\,\varepsilon_i)`, :math:`\varepsilon_i \sim \mathcal N(0, I)`; the score is
    the fraction of the ``num_queries + 1`` answers that equal the true label ``y``. ``method="boundary"``:
    run :func:`~mlsec_kit.attacks.evasion.decision_based.hop_skip_jump` (L2, at most ``num_queries`` queries and
    ``steps`` iterations per record); the score is the distance to the misclassified point it finds, 0 when the
    record is already misclassified, and the diameter of the input range when none was found.

    The scores separate members from non-members only as far as the model fits its training set better than
    other data: against an overfit model they beat chance, against a model whose training data are
    independent of the records (or a model that generalises perfectly) they are at chance.

    Args:
        oracle: the target behind an :class:`~mlsec_kit.attacks.evasion.oracle.Oracle`; any ``output`` works,
            since only the top-1 label of each answer is used. Its ``clip_min``/``clip_max`` bound the inputs
            and the perturbed copies. Queries are charged to the records' rows ``0..N-1``.
        x: the records whose membership is tested.
        y: their true labels.
        method: ``"noise"`` or ``"boundary"``.
        sigma: the noise's standard deviation for ``"noise"``, > 0, in input units.
        num_queries: for ``"noise"``, the noisy copies per record (one more query for the record itself); for
            ``"boundary"``, HopSkipJump's query budget per record (plus one query that checks the record's own
            label). An int >= 1.
        steps: HopSkipJump's most iterations for ``"boundary"``, an int >= 1.
        generator: source of every random draw (CPU); ``None`` uses torch's global one.

    Returns:
        Membership scores ``(N,)``, higher = more likely a member: in ``[0, 1]`` for ``"noise"``, distances in
        ``[0, sqrt(D) * (clip_max - clip_min)]`` for ``"boundary"`` (D = the number of input entries).

    Shape:
        ``x`` float ``(N, ...)`` in ``[clip_min, clip_max]``, ``y`` int64 ``(N,)`` → scores float ``(N,)``
        on ``x``'s device.
    """
    check_oracle(oracle)
    check_inputs(x, y, clip_min=oracle.clip_min, clip_max=oracle.clip_max)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    check_positive("sigma", sigma)
    check_int("num_queries", num_queries)
    check_int("steps", steps)
    x, y = x.detach(), y.to(x.device)
    if method == "noise":
        return _noise_scores(oracle, x, y, float(sigma), num_queries, generator)
    return _boundary_scores(oracle, x, y, steps, num_queries, generator)
