"""Composition theorems: the privacy cost of running several mechanisms on the same data.

Pure arithmetic on (ε, δ) pairs; :class:`~mlsec_kit.dp.budget.PrivacyBudget` keeps the running total.

* sequential: mechanisms on the same data add up, ``(Σ ε_i, Σ δ_i)`` (Dwork and Roth 2014, Thm 3.16);
* parallel: mechanisms on disjoint parts of the data cost the most expensive one, ``(max ε_i, max δ_i)``
  (McSherry 2009), under add/remove neighbours; under replace-one neighbours a replaced record can leave one
  part and join another, so two parts change and the cost is the sum of the two largest (2ε for equal parts);
* advanced: k runs of an (ε, δ)-DP mechanism are ``(ε √(2k ln(1/δ')) + k ε (e^ε - 1), k δ + δ')``-DP for
  any δ' > 0 (Dwork, Rothblum and Vadhan 2010; Dwork and Roth 2014, Thm 3.20), which grows like √k
  instead of k;
* group privacy: an (ε, δ)-DP mechanism is ``(k ε, Σ_{j<k} e^{jε} δ)``-DP for datasets differing in k records
  (Dwork and Roth 2014, Thm 2.2 and its (ε, δ) form); a replace is a remove then an add, so an add/remove
  guarantee gives the replace-one guarantee with k = 2;
* post-processing: any function of a DP output is as private as the output: no cost.

Every pair handed to these functions must be stated under the same neighbouring relation (see
:data:`~mlsec_kit.dp.NEIGHBOURS`); only parallel composition depends on which one it is.
"""
from __future__ import annotations

import math
from typing import Iterable

from ._validate import Neighbours, check_delta, check_epsilon, check_int, check_neighbours

__all__ = ["sequential_composition", "parallel_composition", "advanced_composition", "group_privacy"]

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

    Privacy: the analysis is ``(Σ ε_i, Σ δ_i)``-DP, also when each mechanism is chosen after seeing the
    outputs of the ones before.

    Args:
        budgets: ``(epsilon, delta)`` of each mechanism, epsilon > 0, delta in [0, 1).

    Returns:
        ``(epsilon, delta)``; delta can reach 1 or more, which then promises nothing. It holds under the relation
        all the pairs are stated under (the same for every pair).
    """
    pairs = _pairs(budgets)
    return math.fsum(e for e, _ in pairs), math.fsum(d for _, d in pairs)


def parallel_composition(budgets: Iterable[Budget], *, neighbours: Neighbours) -> Budget:
    """The cost of mechanisms each run on a *disjoint* part of the data (parts chosen without looking at who
    is in them, e.g. by a record's own value).

    * ``neighbours="add_remove"``: one record added or removed touches one part: ``(max ε_i, max δ_i)``;
    * ``neighbours="replace"``: a replaced record can move from one part to another, so two parts change:
      the sum of the two largest ε_i (and of the two largest δ_i). Each part's mechanism must then be
      (ε_i, δ_i)-DP when its part gains or loses a record *and* when one of its records is replaced (a noisy
      count with ``Lap(1/ε)`` is both).

    Args:
        budgets: ``(epsilon, delta)`` of each mechanism, each under the declared relation.
        neighbours: the neighbouring relation of the analysis, one of :data:`~mlsec_kit.dp.NEIGHBOURS`.

    Returns:
        ``(epsilon, delta)``.
    """
    pairs = _pairs(budgets)
    if check_neighbours(neighbours) == "add_remove" or len(pairs) == 1:
        return max(e for e, _ in pairs), max(d for _, d in pairs)
    eps = sorted((e for e, _ in pairs), reverse=True)
    deltas = sorted((d for _, d in pairs), reverse=True)
    return eps[0] + eps[1], deltas[0] + deltas[1]


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
        ``(epsilon_total, delta_total)``, under the relation the one-run guarantee is stated under.
    """
    epsilon = check_epsilon(epsilon)
    delta = check_delta(delta, allow_zero=True)
    k = check_int("k", k)
    delta_prime = check_delta(delta_prime, name="delta_prime")
    eps_total = epsilon * math.sqrt(2 * k * math.log(1 / delta_prime)) + k * epsilon * math.expm1(epsilon)
    return eps_total, k * delta + delta_prime


def group_privacy(*, epsilon: float, delta: float, k: int) -> Budget:
    """The guarantee for datasets that differ in ``k`` records, from an (ε, δ) guarantee for one record.

    Privacy: the mechanism is ``(epsilon_k, delta_k)``-DP for datasets at distance k under the relation the
    one-record guarantee is stated under.

    ``(k ε, Σ_{j<k} e^{jε} δ)``: chain the one-record guarantee along k neighbours (Dwork and Roth 2014, Thm 2.2
    for δ = 0); the δ term is at most the textbook ``k e^{(k-1)ε} δ``. With k = 2 it turns an
    add/remove guarantee into a replace-one guarantee (a replace is a removal then an addition).

    Args:
        epsilon: the one-record ε, > 0.
        delta: the one-record δ, in [0, 1).
        k: group size, >= 1.

    Returns:
        ``(epsilon_k, delta_k)``; ``delta_k`` can exceed 1, which promises nothing.
    """
    epsilon, delta, k = check_epsilon(epsilon), check_delta(delta, allow_zero=True), check_int("k", k)
    return k * epsilon, math.fsum(math.exp(j * epsilon) * delta for j in range(k))
