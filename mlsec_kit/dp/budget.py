"""A privacy budget: a total (ε, δ) that mechanisms draw on, refusing to overspend.

A thin stateful class over the pure functions of :mod:`mlsec_kit.dp.composition`::

    budget = PrivacyBudget(epsilon=1.0, delta=1e-5)
    budget.spend(epsilon=0.5, label="mean age")
    budget.spend_parallel([(0.3, 0.0)] * 10, label="histogram of 10 disjoint bins")
    budget.spend(epsilon=0.5)       # raises BudgetExceededError: 0.5 asked, 0.2 left
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

from ._validate import check_delta, check_epsilon, check_int
from .composition import Budget, advanced_composition, parallel_composition, sequential_composition

__all__ = ["PrivacyBudget", "BudgetExceededError", "Charge"]

_SLACK = 1e-12  # relative tolerance, so ten spends of 0.1 fit a budget of 1.0 despite rounding


class BudgetExceededError(ValueError):
    """A spend would take the budget past its total; nothing was charged."""


@dataclass(frozen=True)
class Charge:
    """One entry of the ledger: what was charged, for what, and by which rule."""

    epsilon: float
    delta: float
    label: str
    rule: str


class PrivacyBudget:
    """A total privacy budget ``(epsilon, delta)`` and a ledger of what has been spent from it.

    Privacy: if every mechanism run on a dataset is charged here and the budget never raised, the whole
    analysis is (total ε, total δ)-DP by the composition theorems the charges were computed with.

    Args:
        epsilon: total ε, > 0.
        delta: total δ, in [0, 1).
    """

    def __init__(self, epsilon: float, delta: float = 0.0) -> None:
        self.total_epsilon = check_epsilon(epsilon)
        self.total_delta = check_delta(delta, allow_zero=True)
        self.ledger: list[Charge] = []

    @property
    def spent(self) -> Budget:
        """``(epsilon, delta)`` spent so far (sequential composition of the ledger)."""
        return math.fsum(c.epsilon for c in self.ledger), math.fsum(c.delta for c in self.ledger)

    @property
    def remaining(self) -> Budget:
        """``(epsilon, delta)`` still available (never negative)."""
        eps, delta = self.spent
        return max(0.0, self.total_epsilon - eps), max(0.0, self.total_delta - delta)

    def can_spend(self, *, epsilon: float, delta: float = 0.0) -> bool:
        """Whether a spend of ``(epsilon, delta)`` fits in what remains."""
        epsilon, delta = check_epsilon(epsilon), check_delta(delta, allow_zero=True)
        eps_left, delta_left = self.remaining
        return (epsilon <= eps_left + _SLACK * self.total_epsilon
                and delta <= delta_left + _SLACK * max(self.total_delta, 1e-300))

    def _charge(self, epsilon: float, delta: float, label: str, rule: str) -> Budget:
        if not self.can_spend(epsilon=epsilon, delta=delta):
            eps_left, delta_left = self.remaining
            what = f" for {label!r}" if label else ""
            raise BudgetExceededError(
                f"cannot spend epsilon={epsilon:.6g}, delta={delta:.3g}{what} ({rule}): only epsilon={eps_left:.6g}, "
                f"delta={delta_left:.3g} is left of the total epsilon={self.total_epsilon:.6g}, "
                f"delta={self.total_delta:.3g}")
        self.ledger.append(Charge(epsilon, delta, label, rule))
        return epsilon, delta

    def spend(self, *, epsilon: float, delta: float = 0.0, label: str = "") -> Budget:
        """Charge one mechanism's ``(epsilon, delta)``; raises :class:`BudgetExceededError` if it does not fit.

        Returns:
            The ``(epsilon, delta)`` charged.
        """
        epsilon, delta = check_epsilon(epsilon), check_delta(delta, allow_zero=True)
        return self._charge(epsilon, delta, label, "sequential")

    def spend_parallel(self, budgets: Iterable[Budget], *, label: str = "") -> Budget:
        """Charge mechanisms run on *disjoint* parts of the data: the most expensive one's cost.

        Returns:
            The ``(epsilon, delta)`` charged.
        """
        epsilon, delta = parallel_composition(budgets)
        return self._charge(epsilon, delta, label, "parallel")

    def spend_repeated(self, *, epsilon: float, k: int, delta: float = 0.0, delta_prime: float = 0.0,
                       label: str = "") -> Budget:
        """Charge ``k`` runs of an (ε, δ)-DP mechanism on the same data.

        With ``delta_prime`` = 0 the charge is sequential, ``(k ε, k δ)``; with ``delta_prime`` > 0 it is the
        smaller of that and the advanced composition bound (which spends ``delta_prime`` more δ).

        Returns:
            The ``(epsilon, delta)`` charged.
        """
        epsilon, delta, k = check_epsilon(epsilon), check_delta(delta, allow_zero=True), check_int("k", k)
        seq = sequential_composition([(epsilon, delta)] * k)
        if check_delta(delta_prime, name="delta_prime", allow_zero=True) == 0:
            return self._charge(*seq, label, f"sequential x{k}")
        adv = advanced_composition(epsilon=epsilon, delta=delta, k=k, delta_prime=delta_prime)
        best, rule = (adv, f"advanced x{k}") if adv[0] < seq[0] else (seq, f"sequential x{k}")
        return self._charge(*best, label, rule)

    def __repr__(self) -> str:
        eps, delta = self.spent
        return (f"PrivacyBudget(spent epsilon={eps:.4g} of {self.total_epsilon:.4g}, "
                f"delta={delta:.3g} of {self.total_delta:.3g}, {len(self.ledger)} charges)")
