"""Label-flipping poisoning: the attacker changes the labels of a fraction of the training rows and nothing else.

The weakest kind of training-set access (the attacker only mislabels, as a careless or malicious annotator
would) and the baseline every stronger degradation attack is measured against. Random flips cost a
regularised linear model little; flips chosen with a model (the rows it is most sure of) cost more
(Xiao, Xiao & Eckert 2012 search for the worst flips against SVMs).

Both functions return ``(x_poisoned, y_poisoned, poisoned_indices)``, leave their inputs unchanged and
poison ``round(rate * n)`` rows, where ``round`` is Python's (halves go to the even integer: 2.5 → 2).
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

__all__ = ["random_label_flip", "targeted_label_flip", "num_poisoned"]


def check_training_set(x: torch.Tensor, y: torch.Tensor, *, name_x: str = "x", name_y: str = "y") -> None:
    """``x`` is a non-empty float batch ``(N, ...)`` and ``y`` its ``(N,)`` integer labels, all >= 0."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{name_x} must be a floating-point torch tensor, got {type(x).__name__}"
                        + (f" of dtype {x.dtype}" if isinstance(x, torch.Tensor) else ""))
    if x.dim() < 2 or x.shape[0] == 0:
        raise ValueError(f"{name_x} must be a non-empty batch (N, ...), got shape {tuple(x.shape)}")
    if not isinstance(y, torch.Tensor) or y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise TypeError(f"{name_y} must be an integer torch tensor of labels")
    if y.shape != (x.shape[0],):
        raise ValueError(f"{name_y} must have shape ({x.shape[0]},) to match {name_x}'s batch size, "
                         f"got {tuple(y.shape)}")
    if int(y.min()) < 0:
        raise ValueError(f"{name_y} must hold class indices >= 0, got {int(y.min())}")


def num_poisoned(rate: float, n: int) -> int:
    """``round(rate * n)`` (Python's rounding, halves to even) after checking ``rate`` is in ``[0, 1]``."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)):
        raise TypeError(f"rate must be a number in [0, 1], got {type(rate).__name__}")
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate!r}")
    return int(round(rate * n))


def _check_class(name: str, value: Optional[int], num_classes: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < num_classes:
        raise ValueError(f"{name} must be a class index in [0, {num_classes}), got {value!r}")


def _other_class(y: torch.Tensor, num_classes: int, generator: Optional[torch.Generator]) -> torch.Tensor:
    """A class drawn uniformly from the ``num_classes - 1`` classes other than each entry of ``y``."""
    shift = torch.randint(1, num_classes, (len(y),), generator=generator).to(y.device)
    return (y + shift) % num_classes


def random_label_flip(x: torch.Tensor, y: torch.Tensor, *, rate: float, num_classes: Optional[int] = None,
                      generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random label flipping: ``round(rate * n)`` rows drawn uniformly without replacement get a label drawn
    uniformly from the *other* classes (never their own).

    Args:
        x: the training inputs (returned as a copy, unchanged).
        y: the training labels, ``(N,)`` int in ``[0, num_classes)``.
        rate: the fraction of rows to poison, in ``[0, 1]``.
        num_classes: the number of classes, >= 2; ``None`` takes ``y.max() + 1``.
        generator: a CPU ``torch.Generator`` for the rows and the new labels; ``None`` uses torch's global one.

    Returns:
        ``(x_poisoned, y_poisoned, poisoned_indices)``: a copy of ``x``, the labels with the chosen rows
        flipped, and the sorted ``int64`` indices of those rows (length ``round(rate * n)``).

    Shape:
        ``x`` ``(N, ...)``, ``y`` ``(N,)`` → ``(N, ...)``, ``(N,)``, ``(round(rate * N),)``.
    """
    check_training_set(x, y)
    k = num_poisoned(rate, len(y))
    num_classes = int(y.max()) + 1 if num_classes is None else num_classes
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    if int(y.max()) >= num_classes:
        raise ValueError(f"y must hold labels in [0, {num_classes}), got label {int(y.max())}")
    idx = torch.randperm(len(y), generator=generator)[:k].sort().values.to(y.device)
    y_poisoned = y.clone()
    y_poisoned[idx] = _other_class(y[idx], num_classes, generator).to(y.dtype)
    return x.clone(), y_poisoned, idx.long()


def targeted_label_flip(x: torch.Tensor, y: torch.Tensor, *, rate: float, source: Optional[int] = None,
                        target: Optional[int] = None, model: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
                        generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Label flipping that chooses which rows to flip and to which class.

    The rule, in order:

    1. Candidates: the rows whose label is ``source`` (every row when ``source`` is ``None``), minus the
       rows already labelled ``target``.
    2. Which candidates: with a ``model``, the ``round(rate * n)`` candidates with the largest *margin*
       (true-class logit minus the largest other logit): the points the clean model is surest of, which pull
       the retrained boundary furthest when they change sides. This is a furthest-first-style heuristic (flip
       the points furthest on their own side of the boundary), not Xiao, Xiao & Eckert's ALFA (2012), which is
       the stronger, optimisation-based method: it alternates between retraining and choosing the flips that
       maximise the loss. Without a model: drawn uniformly at random.
    3. New label: ``target`` when given; otherwise, with a model, each row's runner-up class (the wrong
       class the model finds likeliest); otherwise uniform over the other classes.

    ``n`` is the length of the whole training set, so the poisoned fraction is comparable with
    :func:`random_label_flip`; a ``rate`` needing more rows than there are candidates is an error.

    Args:
        x: the training inputs (returned as a copy, unchanged).
        y: the training labels, ``(N,)`` int.
        rate: the fraction of the *whole* training set to poison, in ``[0, 1]``.
        source: only flip rows of this class; ``None`` for any class.
        target: flip to this class; ``None`` for the runner-up (with a model) or a uniform other class.
        model: a classifier returning logits ``(N, K)`` on ``x``, e.g. trained on the clean data.
        generator: a CPU ``torch.Generator`` for the random choices (rows without a model, labels without
            a model or target, ties never need it).

    Returns:
        ``(x_poisoned, y_poisoned, poisoned_indices)`` as :func:`random_label_flip`; no flipped label equals
        the original.

    Shape:
        ``x`` ``(N, ...)``, ``y`` ``(N,)`` → ``(N, ...)``, ``(N,)``, ``(round(rate * N),)``.
    """
    check_training_set(x, y)
    k = num_poisoned(rate, len(y))
    logits = None
    if model is not None:
        with torch.no_grad():
            logits = model(x)
        if logits.dim() != 2 or logits.shape[0] != len(y) or logits.shape[1] < 2:
            raise ValueError(f"model must return logits (N, K) with K >= 2 on x, got shape {tuple(logits.shape)}")
        if int(y.max()) >= logits.shape[1]:
            raise ValueError(f"model must return one logit per class: y has labels up to {int(y.max())} but the "
                             f"model returns K = {logits.shape[1]} logits (labels must be in [0, K))")
    num_classes = max(int(y.max()) + 1, logits.shape[1] if logits is not None else 2)
    _check_class("source", source, num_classes)
    _check_class("target", target, num_classes)
    if source is not None and source == target:
        raise ValueError(f"target must differ from source, got both {source}")
    candidate = torch.ones_like(y, dtype=torch.bool) if source is None else y == source
    if target is not None:
        candidate &= y != target
    pool = candidate.nonzero().flatten()
    if k > len(pool):
        raise ValueError(f"rate={rate} asks for {k} flips but only {len(pool)} rows can be flipped "
                         f"(source={source}, target={target}); rate must be <= {len(pool) / len(y):.4f}")
    if logits is not None:
        true = logits.gather(1, y[:, None]).squeeze(1)
        others = logits.scatter(1, y[:, None], float("-inf"))
        margin = true - others.max(1).values
        # stable sort: equal margins keep index order, so the choice is deterministic without a generator
        chosen = pool[torch.sort(-margin[pool], stable=True).indices[:k]]
    else:
        chosen = pool[torch.randperm(len(pool), generator=generator)[:k].to(pool.device)]
    idx = chosen.sort().values
    if target is not None:
        new = torch.full_like(y[idx], target)
    elif logits is not None:
        new = logits[idx].scatter(1, y[idx, None], float("-inf")).argmax(1)
    else:
        new = _other_class(y[idx], num_classes, generator)
    y_poisoned = y.clone()
    y_poisoned[idx] = new.to(y.dtype)
    return x.clone(), y_poisoned, idx.long()
