"""Composition theorems: the privacy cost of running several mechanisms on the same data.

Pure arithmetic on (ε, δ) pairs; :class:`~mlsec_kit.dp.budget.PrivacyBudget` keeps the running total.

* sequential: mechanisms on the same data add up, ``(Σ ε_i, Σ δ_i)`` (Dwork and Roth 2014, Thm 3.16);
* parallel: mechanisms on disjoint parts of the data cost the most expensive one, ``(max ε_i, max δ_i)``
  (McSherry 2009);
* advanced: k runs of an (ε, δ)-DP mechanism are ``(ε √(2k ln(1/δ')) + k ε (e^ε - 1), k δ + δ')``-DP for
  any δ' > 0 (Dwork, Rothblum and Vadhan 2010; Dwork and Roth 2014, Thm 3.20), which grows like √k
  instead of k;
* post-processing: any function of a DP output is as private as the output: no cost.
"""
from __future__ import annotations

import math
from typing import Iterable

from ._validate import check_delta, check_epsilon, check_int

__all__ = ["sequential_composition", "parallel_composition", "advanced_composition"]

Budget = tuple[float, float]


def _pairs(budgets: Iterable[Budget]) -> list[Budget]:
    pairs = []
    for i, item in enumerate(budgets):
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise ValueError(f"budgets[{i}] must be a pair (epsilon, delta), got {item!r}")
        pairs.append((check_epsilon(item[0], name=f"budgets[{i}] epsilon"),
                      check_delta(item[1], name=f"budgets[{i}] delta", allow_zero=True)))
    if not pairs:
        raise ValueError("budgets must hold at least one (epsilon, delta) pair")
    return pairs


def sequential_composition(budgets: Iterable[Budget]) -> Budget:
    """The total cost of mechanisms run one after another on the same data: ``(Σ ε_i, Σ δ_i)``.

    Args:
        budgets: ``(epsilon, delta)`` of each mechanism, epsilon > 0, delta in [0, 1).

    Returns:
        ``(epsilon, delta)``; delta can reach 1 or more, which then promises nothing.
    """
    pairs = _pairs(budgets)
    return math.fsum(e for e, _ in pairs), math.fsum(d for _, d in pairs)


def parallel_composition(budgets: Iterable[Budget]) -> Budget:
    """The cost of mechanisms each run on a *disjoint* part of the data: ``(max ε_i, max δ_i)``.

    Args:
        budgets: ``(epsilon, delta)`` of each mechanism.

    Returns:
        ``(epsilon, delta)``.
    """
    pairs = _pairs(budgets)
    return max(e for e, _ in pairs), max(d for _, d in pairs)


def advanced_composition(*, epsilon: float, delta: float, k: int, delta_prime: float) -> Budget:
    """The advanced composition bound for ``k`` runs of an (ε, δ)-DP mechanism (Dwork, Rothblum and Vadhan 2010).

    ``ε' = ε √(2k ln(1/δ')) + k ε (e^ε - 1)`` and ``δ' _total = k δ + δ'``. It beats sequential composition
    (``k ε``) when ε is small and k large; for few runs it can be worse, so take the smaller of the two.

    Args:
        epsilon: cost of one run, > 0.
        delta: δ of one run, in [0, 1).
        k: number of runs, >= 1.
        delta_prime: the extra failure probability the bound spends, in (0, 1).

    Returns:
        ``(epsilon_total, delta_total)``.
    """
    epsilon = check_epsilon(epsilon)
    delta = check_delta(delta, allow_zero=True)
    k = check_int("k", k)
    delta_prime = check_delta(delta_prime, name="delta_prime")
    eps_total = epsilon * math.sqrt(2 * k * math.log(1 / delta_prime)) + k * epsilon * math.expm1(epsilon)
    return eps_total, k * delta + delta_prime
