"""Checks shared by the inference attacks that query a model: a model that must return scores, and the tolerance
on probabilities that a rounding defence makes legitimately not sum to 1."""
from __future__ import annotations

from typing import Optional

import torch

from ..evasion.oracle import Oracle

# How far a row of probabilities may sum from 1 when nothing says the answers were rounded: float32 softmax
# outputs sum to 1 within about 1e-6, so anything beyond this is not a probability vector (logits, scaled scores).
EXACT_SUM_ATOL = 1e-3


def _check_logits(name: str, out: object, num_rows: int) -> torch.Tensor:
    """``out``, the answer of the ``nn.Module`` ``name`` to ``num_rows`` inputs, is one row of scores per input.

    Raises ``ValueError`` naming ``name`` when the model returns labels (an integer dtype, or a 1-D output, e.g.
    ``argmax`` in its ``forward``), a single score per row, or a number of rows other than ``num_rows``: an
    attack that reads confidences or differentiates through them cannot use labels.

    Shape:
        ``out`` ``(num_rows, K)`` floating point with ``K >= 2`` → ``out`` itself.
    """
    if not isinstance(out, torch.Tensor):
        raise ValueError(f"{name} must return one row of scores (logits) per input, a tensor ({num_rows}, K); "
                         f"got {type(out).__name__}")
    labels = not out.is_floating_point() or out.dim() == 1
    if labels or out.dim() != 2 or out.shape[0] != num_rows or out.shape[1] < 2:
        raise ValueError(f"{name} must return one row of scores (logits) per input, shape ({num_rows}, K) with "
                         f"K >= 2{', not labels' if labels else ''}; got {out.dtype} of shape {tuple(out.shape)}")
    return out


def rounding_decimals(query: object) -> Optional[int]:
    """The decimals an API rounds its probabilities to, when it says so: a
    :func:`~mlsec_kit.attacks.inference.inversion.defended_query` records them as its ``decimals`` attribute, an
    :class:`~mlsec_kit.attacks.evasion.Oracle` with ``output="rounded"`` as its own; ``None`` otherwise."""
    if isinstance(query, Oracle):
        return query.decimals if query.output == "rounded" else None
    decimals = getattr(query, "decimals", None)
    return decimals if isinstance(decimals, int) and not isinstance(decimals, bool) and decimals >= 0 else None


def sum_tolerance(query: object, num_classes: int, sum_atol: Optional[float]) -> float:
    """How far a row of ``query``'s answer may sum from 1: ``sum_atol`` when given; otherwise
    ``max(num_classes * 0.5 * 10**-decimals, 1e-3)`` for an API known to round to ``decimals`` places (each of the
    K entries moves by at most half a unit of the last place; at ``decimals=0`` a row may be all zeros), else 1e-3.
    """
    if sum_atol is not None:
        if isinstance(sum_atol, bool) or not isinstance(sum_atol, (int, float)) or not sum_atol > 0:
            raise ValueError(f"sum_atol must be a number > 0 or None (derived from the API's rounding), "
                             f"got {sum_atol!r}")
        return float(sum_atol)
    decimals = rounding_decimals(query)
    if decimals is None:
        return EXACT_SUM_ATOL
    return max(num_classes * 0.5 * 10.0 ** -decimals, EXACT_SUM_ATOL)
