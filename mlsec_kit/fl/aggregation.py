"""The server's aggregation step of federated learning, as one pure function: :func:`aggregate`.

Each round the server receives one update per participating client (the change of the model's parameters the
client's local training produced) and combines them into one:

* ``"mean"``: the weighted mean, weights usually the clients' example counts; FedAvg's rule (McMahan et al. 2017,
  "Communication-efficient learning of deep networks from decentralized data", Algorithm 1). One client can
  move it arbitrarily far: its breakdown point is 0.
* ``"median"``: the coordinate-wise median (Yin et al. 2018, "Byzantine-robust distributed learning: towards
  optimal statistical rates"); for an even number of updates, the mean of the two middle values.
* ``"trimmed_mean"``: per coordinate, drop the ``⌊trim·n⌋`` largest and as many smallest values and average the
  rest (Yin et al. 2018); tolerates fewer than ``trim·n`` poisoned clients per coordinate.
* ``"krum"`` / ``"multi_krum"``: score each update by the sum of its squared distances to its ``n - f - 2``
  nearest other updates (``f`` = ``byzantine``, the number of poisoned clients it must tolerate, ``n > 2f + 2``)
  and keep the best one, or average the ``select`` best (Blanchard et al. 2017, "Machine learning with
  adversaries: Byzantine tolerant gradient descent"). The scores are computed once, as in the paper's
  multi-Krum. :func:`krum_scores` and :func:`krum_select` expose the scores and the choice.

A non-finite update (NaN or inf) is refused by ``"mean"`` (``ValueError``); Krum gives it the score inf (never
chosen while enough finite updates remain); median and trimmed mean sort it last (``torch.sort``), so it is set
aside like any extreme value. The robust rules treat every client alike: ``weights`` are checked but only ``"mean"``
uses them (a poisoned client could otherwise claim a huge example count). Updates may be tensors of one shape, lists
(tuples) of tensors (one per layer, as Flower's ``NDArrays`` after ``torch.from_numpy``), or dicts of tensors with
the same keys; the result has the same structure. :func:`flatten_update` / :func:`unflatten_update` convert between
a model's parameters and one flat vector. The inputs are never modified.
"""
from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence, Union

import torch
from torch import nn

from ._validate import _real, check_int

__all__ = ["aggregate", "krum_scores", "krum_select", "flatten_update", "unflatten_update", "METHODS"]

#: the aggregation rules :func:`aggregate` knows
METHODS = ("mean", "median", "trimmed_mean", "krum", "multi_krum")

Update = Union[torch.Tensor, Sequence[torch.Tensor], Mapping[str, torch.Tensor]]


# ------------------------------------------------------------------------------------------------- structure

def _structure(update: Update, name: str):
    """(kind, keys, shapes) describing one update; ``kind`` is "tensor", "list" or "dict"."""
    if isinstance(update, torch.Tensor):
        return ("tensor", None, (tuple(update.shape),))
    if isinstance(update, Mapping):
        keys = tuple(update)
        parts = [update[k] for k in keys]
        kind = "dict"
    elif isinstance(update, (list, tuple)):
        keys, parts, kind = None, list(update), "list"
    else:
        raise TypeError(f"{name} must be a tensor, a list of tensors or a dict of tensors, "
                        f"got {type(update).__name__}")
    if not parts or not all(isinstance(p, torch.Tensor) for p in parts):
        raise TypeError(f"{name} must hold at least one tensor and only tensors")
    return (kind, keys, tuple(tuple(p.shape) for p in parts))


def _parts(update: Update, keys) -> list[torch.Tensor]:
    if isinstance(update, torch.Tensor):
        return [update]
    if isinstance(update, Mapping):
        return [update[k] for k in keys]
    return list(update)


def _stack(updates: Sequence[Update]) -> tuple[torch.Tensor, tuple]:
    """The updates as the rows of one ``(n, d)`` floating tensor, and their common structure."""
    if isinstance(updates, (torch.Tensor, Mapping)) or not isinstance(updates, (list, tuple)):
        raise TypeError("updates must be a list or tuple of client updates")
    if len(updates) == 0:
        raise ValueError("updates must hold at least one client update, got none")
    structure = _structure(updates[0], "updates[0]")
    rows = []
    for i, u in enumerate(updates):
        s = _structure(u, f"updates[{i}]")
        if s != structure:
            raise ValueError(f"updates must all have the same shapes (mismatched update shapes): updates[0] is "
                             f"{structure[2]}{' with keys ' + str(structure[1]) if structure[1] else ''}, "
                             f"updates[{i}] is {s[2]}{' with keys ' + str(s[1]) if s[1] else ''}")
        parts = _parts(u, structure[1])
        if not all(p.is_floating_point() for p in parts):
            raise TypeError(f"updates[{i}] must hold floating-point tensors")
        rows.append(torch.cat([p.detach().reshape(-1) for p in parts]))
    dtype = torch.promote_types(rows[0].dtype, torch.float32)
    for r in rows:
        dtype = torch.promote_types(dtype, r.dtype)
    device = rows[0].device
    return torch.stack([r.to(device=device, dtype=dtype) for r in rows]), structure


def _restore(vector: torch.Tensor, structure) -> Update:
    kind, keys, shapes = structure
    pieces, start = [], 0
    for shape in shapes:
        size = math.prod(shape)
        pieces.append(vector[start:start + size].reshape(shape).clone())
        start += size
    if kind == "tensor":
        return pieces[0]
    if kind == "dict":
        return dict(zip(keys, pieces))
    return pieces


def flatten_update(update: Union[nn.Module, Update]) -> torch.Tensor:
    """One flat vector from a model's trainable parameters (in ``model.parameters()`` order) or from an update.

    Returns:
        A new 1-D tensor (detached).
    """
    if isinstance(update, nn.Module):
        params = [p for p in update.parameters() if p.requires_grad]
        if not params:
            raise ValueError("model has no trainable parameter")
        return torch.cat([p.detach().reshape(-1) for p in params]).clone()
    structure = _structure(update, "update")
    return torch.cat([p.detach().reshape(-1) for p in _parts(update, structure[1])]).clone()


def unflatten_update(vector: torch.Tensor, like: Union[nn.Module, Update]) -> Update:
    """Cut a flat vector into the shapes of ``like``: a model (→ a list, one tensor per trainable parameter),
    a tensor, a list of tensors or a dict of tensors (→ the same structure)."""
    if not isinstance(vector, torch.Tensor) or vector.dim() != 1:
        raise ValueError(f"vector must be a 1-D tensor, got {getattr(vector, 'shape', type(vector).__name__)}")
    if isinstance(like, nn.Module):
        structure = ("list", None, tuple(tuple(p.shape) for p in like.parameters() if p.requires_grad))
    else:
        structure = _structure(like, "like")
    size = sum(math.prod(s) for s in structure[2])
    if vector.numel() != size:
        raise ValueError(f"vector must have {size} entries to fill like's shapes {structure[2]}, "
                         f"got {vector.numel()}")
    return _restore(vector, structure)


# ----------------------------------------------------------------------------------------------------- rules

def _check_weights(weights, n: int, device, dtype) -> torch.Tensor:
    if weights is None:
        return torch.full((n,), 1.0 / n, device=device, dtype=dtype)
    if isinstance(weights, torch.Tensor):
        w = weights.detach().to(device=device, dtype=dtype).reshape(-1)
    else:
        if not isinstance(weights, (list, tuple)):
            raise TypeError(f"weights must be a sequence of numbers or None, got {type(weights).__name__}")
        w = torch.tensor([_real(f"weights[{i}]", v) for i, v in enumerate(weights)], device=device, dtype=dtype)
    if w.numel() != n:
        raise ValueError(f"weights must have one entry per update ({n}), got {w.numel()}")
    if not torch.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be finite, >= 0 and not all 0, got {w.tolist()}")
    return w / w.sum()


def _check_byzantine(byzantine: object, n: int) -> int:
    f = check_int("byzantine", byzantine, minimum=0)
    if not n > 2 * f + 2:
        raise ValueError(f"byzantine must satisfy n > 2 * byzantine + 2 for Krum with n = {n} updates, i.e. be at "
                         f"most {max((n - 3) // 2, -1)}, got {byzantine!r}"
                         + (" (Krum needs at least 3 updates)" if n < 3 else ""))
    return f


def _krum_scores(stacked: torch.Tensor, f: int) -> torch.Tensor:
    n = stacked.shape[0]
    d2 = torch.cdist(stacked.double(), stacked.double()).pow(2)
    # a non-finite update (a Byzantine client may send NaN or inf) is infinitely far from everyone: it never
    # counts among an honest update's nearest, and its own score is inf, so it is chosen last
    d2 = d2.nan_to_num(nan=math.inf, posinf=math.inf)
    d2.fill_diagonal_(math.inf)
    nearest = d2.sort(dim=1).values[:, : n - f - 2]
    scores = nearest.sum(dim=1)
    scores[~torch.isfinite(stacked).all(dim=1)] = math.inf
    return scores


def krum_scores(updates: Sequence[Update], *, byzantine: int) -> torch.Tensor:
    """Krum's score of each update: the sum of its squared L2 distances to its ``n - byzantine - 2`` nearest
    other updates (Blanchard et al. 2017). Lower is more central.

    Args:
        updates: ``n`` client updates of one structure, ``n > 2 * byzantine + 2``.
        byzantine: ``f``, the number of poisoned updates the rule must tolerate, an int >= 0.

    Returns:
        ``(n,)`` float64 scores.
    """
    stacked, _ = _stack(updates)
    return _krum_scores(stacked, _check_byzantine(byzantine, stacked.shape[0]))


def krum_select(updates: Sequence[Update], *, byzantine: int, select: int = 1) -> list[int]:
    """The indices of the ``select`` updates with the lowest :func:`krum_scores` (ties: the lower index first).

    ``select`` is an int in ``[1, n]``; 1 is Krum, more is multi-Krum.
    """
    stacked, _ = _stack(updates)
    n = stacked.shape[0]
    f = _check_byzantine(byzantine, n)
    m = _check_select(select, n)
    scores = _krum_scores(stacked, f)
    order = sorted(range(n), key=lambda i: (scores[i].item(), i))
    return order[:m]


def _check_select(select: object, n: int) -> int:
    m = check_int("select", select, minimum=1)
    if m > n:
        raise ValueError(f"select must be an int in [1, {n}] (the number of updates), got {select!r}")
    return m


def _median(stacked: torch.Tensor) -> torch.Tensor:
    s = stacked.sort(dim=0).values
    n = s.shape[0]
    return (s[(n - 1) // 2] + s[n // 2]) / 2


def _trimmed_mean(stacked: torch.Tensor, trim: float) -> torch.Tensor:
    n = stacked.shape[0]
    k = math.floor(trim * n)  # trim < 0.5 gives 2k < n: at least one value is left
    s = stacked.sort(dim=0).values
    return s[k: n - k].mean(dim=0)


def aggregate(updates: Sequence[Update], weights: Optional[Sequence[float]] = None, *, method: str = "mean",
              trim: float = 0.1, byzantine: int = 0, select: Optional[int] = None) -> Update:
    """Combine client updates into one with the rule ``method`` (see the module docstring for the rules).

    A pure function: no state, no randomness, the inputs are not modified; Flower strategies call it too.

    Args:
        updates: ``n >= 1`` client updates, each a tensor, a list of tensors or a dict of tensors, all with the
            same shapes (and keys); floating point.
        weights: ``n`` non-negative numbers, not all 0 (e.g. example counts), used by ``"mean"`` only; ``None``
            weighs the updates equally.
        method: one of :data:`METHODS`.
        trim: the fraction trimmed from EACH end per coordinate by ``"trimmed_mean"``, in ``[0, 0.5)`` and
            (so ``⌊trim·n⌋ < n / 2`` and at least one value is left).
        byzantine: ``f`` for ``"krum"`` / ``"multi_krum"``, an int >= 0 with ``n > 2f + 2``.
        select: how many updates ``"multi_krum"`` averages, in ``[1, n]``; ``None`` takes ``n - f``.

    Returns:
        The aggregate, with the structure of ``updates[0]`` (new tensors), in the promoted floating dtype of the
        updates (at least float32).

    Shape:
        each update ``S`` (a shape, or a list/dict of shapes) → ``S``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    stacked, structure = _stack(updates)
    n = stacked.shape[0]
    w = _check_weights(weights, n, stacked.device, stacked.dtype)
    if method == "mean":
        finite = torch.isfinite(stacked).all(dim=1)
        if not finite.all():
            i = int((~finite).nonzero()[0])
            raise ValueError(f"updates[{i}] holds a non-finite value: the mean would be NaN/inf (a robust rule, "
                             f"median, trimmed_mean or krum, sets such an update aside)")
        out = (w[:, None] * stacked).sum(dim=0)
    elif method == "median":
        out = _median(stacked)
    elif method == "trimmed_mean":
        t = _real("trim", trim)
        if not 0 <= t < 0.5:
            raise ValueError(f"trim must be in [0, 0.5), got {trim!r}")
        out = _trimmed_mean(stacked, t)
    else:
        f = _check_byzantine(byzantine, n)
        m = 1 if method == "krum" else _check_select(n - f if select is None else select, n)
        scores = _krum_scores(stacked, f)
        chosen = sorted(range(n), key=lambda i: (scores[i].item(), i))[:m]
        out = stacked[chosen].mean(dim=0)
    return _restore(out, structure)
