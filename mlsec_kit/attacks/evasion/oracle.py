"""The black-box threat model as an object: a query oracle that answers with scores, rounded scores or labels,
and counts every query per example.

A black-box attack never sees the model, only an :class:`Oracle` in front of it. Each call names which
examples of the attacked batch its rows belong to (``index=``), so the oracle charges the right example and
``oracle.queries[i]`` is the number of queries spent on example ``i``: the cost the chapter plots success
against. ``budget`` makes the limit a hard one, as a rate-limited API would.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ._validate import check_inputs, check_int

__all__ = ["Oracle", "QueryBudgetExceeded", "OUTPUTS"]

OUTPUTS = ("scores", "rounded", "label")


class QueryBudgetExceeded(RuntimeError):
    """A query would take an example past the oracle's ``budget``; nothing was charged or answered."""


class Oracle:
    r"""A classifier behind an API: answers queries, reveals only what ``output`` allows, counts queries.

    Args:
        model: a classifier returning logits ``(N, K)``; run in eval mode without gradients, its mode restored.
        output: what a query returns: ``"scores"``, the softmax probabilities ``(N, K)``; ``"rounded"``, the
            probabilities rounded to ``decimals`` decimal places (a common defence of deployed APIs);
            ``"label"``, only the top-1 label ``(N,)`` (the decision-based threat model).
        decimals: decimal places kept by ``"rounded"``, an int >= 0.
        budget: the most queries any one example may receive, an int >= 1, or ``None`` for no limit. A call
            that would exceed it raises :class:`QueryBudgetExceeded` and charges nothing.
        clip_min: smallest valid input value; a query outside the range raises ``ValueError``.
        clip_max: largest valid input value.

    Attributes:
        queries: an int64 tensor ``(M,)`` on the CPU, the queries charged to each example index seen so far
            (a copy; ``M`` is one more than the largest index charged).
        total: the sum of ``queries``.

    Shape:
        ``oracle(x, index=i)``: ``x`` ``(N, ...)`` in ``[clip_min, clip_max]``, ``i`` ``(N,)`` int >= 0 (default
        ``0..N-1``) → scores ``(N, K)`` in ``[0, 1]`` summing to about 1, or labels ``(N,)`` int64 in ``[0, K)``.
    """

    def __init__(self, model: nn.Module, *, output: str = "scores", decimals: int = 2,
                 budget: Optional[int] = None, clip_min: float = 0.0, clip_max: float = 1.0) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        check_int("decimals", decimals, minimum=0)
        if budget is not None:
            check_int("budget", budget, minimum=1)
        if not clip_min < clip_max:
            raise ValueError(f"clip_min must be < clip_max, got [{clip_min}, {clip_max}]")
        self._model, self.output, self.decimals, self.budget = model, output, decimals, budget
        self.clip_min, self.clip_max = float(clip_min), float(clip_max)
        self._queries = torch.zeros(0, dtype=torch.int64)

    @property
    def gives_scores(self) -> bool:
        """Whether a query returns scores (``"scores"`` or ``"rounded"``) rather than only a label."""
        return self.output != "label"

    @property
    def queries(self) -> torch.Tensor:
        return self._queries.clone()

    @property
    def total(self) -> int:
        return int(self._queries.sum())

    def reset(self) -> None:
        """Forget every query charged so far."""
        self._queries = torch.zeros(0, dtype=torch.int64)

    def _charge(self, index: torch.Tensor) -> None:
        counts = torch.bincount(index, minlength=len(self._queries))
        if len(counts) > len(self._queries):
            self._queries = torch.cat([self._queries, self._queries.new_zeros(len(counts) - len(self._queries))])
        after = self._queries + counts
        if self.budget is not None and int(after.max()) > self.budget:
            i = int(after.argmax())
            raise QueryBudgetExceeded(f"example {i} would receive {int(after[i])} queries, over the budget of "
                                      f"{self.budget} per example")
        self._queries = after

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, *, index: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Answer one query per row of ``x``, charged to the examples ``index`` (default ``0..N-1``)."""
        check_inputs(x, clip_min=self.clip_min, clip_max=self.clip_max)
        if index is None:
            index = torch.arange(len(x))
        if (not isinstance(index, torch.Tensor) or index.dtype not in (torch.int64, torch.int32)
                or index.shape != (len(x),)):
            raise ValueError(f"index must be an int tensor of shape ({len(x)},), one example index per row of x, "
                             f"got {index!r}"[:200])
        index = index.detach().to("cpu", torch.int64)
        if len(index) and int(index.min()) < 0:
            raise ValueError(f"index must hold example indices >= 0, got {int(index.min())}")
        self._charge(index)
        was_training = self._model.training
        try:
            probs = F.softmax(self._model.eval()(x), dim=1)
        finally:
            self._model.train(was_training)
        if self.output == "label":
            return probs.argmax(1)
        if self.output == "rounded":
            return torch.round(probs, decimals=self.decimals)
        return probs

    def __repr__(self) -> str:
        extra = f", decimals={self.decimals}" if self.output == "rounded" else ""
        return f"Oracle(output={self.output!r}{extra}, budget={self.budget}, total={self.total})"


def check_oracle(oracle: Oracle, *, scores: bool = False, attack: str = "this attack") -> None:
    """``oracle`` is an :class:`Oracle`; with ``scores``, one that returns scores (not only labels)."""
    if not isinstance(oracle, Oracle):
        raise TypeError(f"oracle must be an mlsec_kit Oracle (wrap the model: Oracle(model, output=...)), "
                        f"got {type(oracle).__name__}")
    if scores and not oracle.gives_scores:
        raise ValueError(f"oracle returns only labels (output='label'), but {attack} is score-based and needs "
                         "scores; use a decision-based attack such as hop_skip_jump instead")


def labels_of(answer: torch.Tensor) -> torch.Tensor:
    """The top-1 labels in an oracle's answer, whether it returned scores ``(N, K)`` or labels ``(N,)``."""
    return answer if answer.dim() == 1 else answer.argmax(1)
