"""A privacy budget: a total (ε, δ) under one neighbouring relation that mechanisms draw on, refusing to overspend.

A thin stateful class over the pure functions of :mod:`mlsec_kit.dp.composition`::

    budget = PrivacyBudget(epsilon=1.0, delta=1e-5, neighbours="replace")
    budget.spend(epsilon=0.5, neighbours="replace", label="mean age")
    budget.spend_parallel([(0.1, 0.0)] * 10, neighbours="replace", label="10 disjoint counts")  # costs 0.2
    budget.spend(epsilon=0.5, neighbours="replace")   # raises BudgetExceededError: 0.5 asked, 0.3 left
    budget.spend(epsilon=0.1, neighbours="add_remove")  # raises ValueError: the analysis is replace-one

One analysis, one neighbouring relation: a guarantee stated under add/remove and one stated under replace-one do
not add up to a guarantee under either, so the budget refuses a charge declared under the other relation
(convert it first with :func:`~mlsec_kit.dp.composition.group_privacy`, k = 2, if it is add/remove).
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Iterable, Optional

from ._validate import Neighbours, check_delta, check_epsilon, check_int, check_neighbours
from .composition import Budget, advanced_composition, parallel_composition, sequential_composition

__all__ = ["PrivacyBudget", "BudgetExceededError", "Charge"]

#: Relative tolerance on the *total*: a charge fits when everything charged so far plus it stays within
#: ``total * (1 + _SLACK)``, so ten spends of 0.1 fit a budget of 1.0 despite rounding, and the overspend of a
#: whole ledger is at most ``_SLACK * total`` (not ``_SLACK * total`` per spend).
_SLACK = 1e-12


class BudgetExceededError(ValueError):
    """A spend would take the budget past its total; nothing was charged."""


@dataclass(frozen=True)
class Charge:
    """One entry of the ledger: what was charged, under which neighbouring relation, for what, by which rule."""

    epsilon: float
    delta: float
    neighbours: str
    label: str
    rule: str


class PrivacyBudget:
    """A total privacy budget ``(epsilon, delta)`` under one neighbouring relation, and a ledger of its charges.

    Privacy: if every mechanism run on the dataset is charged here under the budget's relation and no charge
    raised, the whole analysis is (total ε, total δ)-DP under that relation, by the composition theorems the
    charges were computed with (up to a relative rounding slack of 1e-12 on the totals).

    The totals, the relation and the ledger are read-only (the ledger is a tuple); charging is atomic, so
    several threads can draw on one budget.

    Args:
        epsilon: total ε, > 0.
        delta: total δ, in [0, 1); a budget with δ = 0 refuses every charge with δ > 0.
        neighbours: the analysis's neighbouring relation, ``"add_remove"`` or ``"replace"``.
    """

    def __init__(self, epsilon: float, delta: float = 0.0, *, neighbours: Neighbours) -> None:
        self._total = (check_epsilon(epsilon), check_delta(delta, allow_zero=True))
        self._neighbours = check_neighbours(neighbours)
        self._ledger: list[Charge] = []
        self._lock = threading.Lock()

    @property
    def total_epsilon(self) -> float:
        return self._total[0]

    @property
    def total_delta(self) -> float:
        return self._total[1]

    @property
    def neighbours(self) -> str:
        """The neighbouring relation every charge must be stated under."""
        return self._neighbours

    @property
    def ledger(self) -> tuple[Charge, ...]:
        """The charges so far, oldest first (a snapshot: a tuple, which cannot be cleared or appended to)."""
        with self._lock:
            return tuple(self._ledger)

    @staticmethod
    def _sums(ledger: Iterable[Charge], extra: Budget = (0.0, 0.0)) -> Budget:
        ledger = list(ledger)
        return (math.fsum([c.epsilon for c in ledger] + [extra[0]]),
                math.fsum([c.delta for c in ledger] + [extra[1]]))

    @property
    def spent(self) -> Budget:
        """``(epsilon, delta)`` spent so far (sequential composition of the ledger)."""
        return self._sums(self.ledger)

    @property
    def remaining(self) -> Budget:
        """``(epsilon, delta)`` still available (never negative)."""
        eps, delta = self.spent
        return max(0.0, self.total_epsilon - eps), max(0.0, self.total_delta - delta)

    def _check_relation(self, neighbours: object) -> None:
        if check_neighbours(neighbours) != self._neighbours:
            raise ValueError(f"neighbours={neighbours!r} does not match this budget's neighbouring relation "
                             f"{self._neighbours!r}: one analysis has one relation (an add/remove guarantee "
                             "becomes a replace-one guarantee with group_privacy(k=2))")

    def _fits(self, epsilon: float, delta: float) -> bool:
        eps_after, delta_after = self._sums(self._ledger, (epsilon, delta))
        if eps_after > self.total_epsilon * (1 + _SLACK):
            return False
        if self.total_delta == 0:
            return delta == 0 and delta_after == 0
        return delta_after <= self.total_delta * (1 + _SLACK)

    def can_spend(self, *, epsilon: float, delta: float = 0.0, neighbours: Optional[Neighbours] = None) -> bool:
        """Whether a charge of ``(epsilon, delta)`` fits in what remains (``neighbours``, when given, must be
        the budget's relation)."""
        epsilon, delta = check_epsilon(epsilon), check_delta(delta, allow_zero=True)
        if neighbours is not None:
            self._check_relation(neighbours)
        with self._lock:
            return self._fits(epsilon, delta)

    def _charge(self, epsilon: float, delta: float, neighbours: object, label: str, rule: str) -> Budget:
        self._check_relation(neighbours)
        if not isinstance(label, str):
            raise TypeError(f"label must be a string, got {type(label).__name__}")
        with self._lock:  # check and append at once: two threads cannot both fit into the same remainder
            if not self._fits(epsilon, delta):
                eps_spent, delta_spent = self._sums(self._ledger)
                what = f" for {label!r}" if label else ""
                raise BudgetExceededError(
                    f"cannot spend epsilon={epsilon:.6g}, delta={delta:.3g}{what} ({rule}): only "
                    f"epsilon={max(0.0, self.total_epsilon - eps_spent):.6g}, "
                    f"delta={max(0.0, self.total_delta - delta_spent):.3g} is left of the total "
                    f"epsilon={self.total_epsilon:.6g}, delta={self.total_delta:.3g}")
            self._ledger.append(Charge(epsilon, delta, self._neighbours, label, rule))
        return epsilon, delta

    def spend(self, *, epsilon: float, delta: float = 0.0, neighbours: Neighbours, label: str = "") -> Budget:
        """Charge one mechanism's ``(epsilon, delta)``, stated under ``neighbours``.

        Raises:
            BudgetExceededError: it does not fit (nothing is charged).
            ValueError: ``neighbours`` is not the budget's relation.

        Returns:
            The ``(epsilon, delta)`` charged.
        """
        epsilon, delta = check_epsilon(epsilon), check_delta(delta, allow_zero=True)
        return self._charge(epsilon, delta, neighbours, label, "sequential")

    def spend_parallel(self, budgets: Iterable[Budget], *, neighbours: Neighbours, label: str = "") -> Budget:
        """Charge mechanisms run on *disjoint* parts of the data: the most expensive one's cost under
        add/remove, the two most expensive ones' under replace-one (see
        :func:`~mlsec_kit.dp.composition.parallel_composition`).

        Returns:
            The ``(epsilon, delta)`` charged.
        """
        self._check_relation(neighbours)
        epsilon, delta = parallel_composition(budgets, neighbours=self._neighbours)
        return self._charge(epsilon, delta, neighbours, label, "parallel")

    def spend_repeated(self, *, epsilon: float, k: int, delta: float = 0.0, delta_prime: float = 0.0,
                       neighbours: Neighbours, label: str = "") -> Budget:
        """Charge ``k`` runs of an (ε, δ)-DP mechanism on the same data.

        With ``delta_prime`` = 0 the charge is sequential, ``(k ε, k δ)``; with ``delta_prime`` > 0 it is the
        smaller of that and the advanced composition bound (which spends ``delta_prime`` more δ).

        Returns:
            The ``(epsilon, delta)`` charged.
        """
        epsilon, delta, k = check_epsilon(epsilon), check_delta(delta, allow_zero=True), check_int("k", k)
        self._check_relation(neighbours)
        seq = sequential_composition([(epsilon, delta)] * k)
        if check_delta(delta_prime, name="delta_prime", allow_zero=True) == 0:
            return self._charge(*seq, neighbours, label, f"sequential x{k}")
        adv = advanced_composition(epsilon=epsilon, delta=delta, k=k, delta_prime=delta_prime)
        best, rule = (adv, f"advanced x{k}") if adv[0] < seq[0] else (seq, f"sequential x{k}")
        return self._charge(*best, neighbours, label, rule)

    def __repr__(self) -> str:
        ledger = self.ledger
        eps, delta = self._sums(ledger)
        return (f"PrivacyBudget(spent epsilon={eps:.4g} of {self.total_epsilon:.4g}, "
                f"delta={delta:.3g} of {self.total_delta:.3g}, neighbours={self._neighbours!r}, "
                f"{len(ledger)} charges)")
