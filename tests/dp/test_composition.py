"""Composition arithmetic, as properties on random budgets."""
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlsec_kit import dp

pairs = st.lists(st.tuples(st.floats(1e-3, 5.0), st.floats(0.0, 1e-3)), min_size=1, max_size=20)


@settings(max_examples=80, deadline=None, derandomize=True)
@given(budgets=pairs, more=pairs)
def test_sequential_adds_up_and_is_associative(budgets, more):
    eps, delta = dp.sequential_composition(budgets)
    assert eps == pytest.approx(sum(e for e, _ in budgets)) and delta == pytest.approx(sum(d for _, d in budgets))
    whole = dp.sequential_composition(budgets + more)
    parts = dp.sequential_composition([(eps, delta), dp.sequential_composition(more)])
    assert whole == pytest.approx(parts)


@settings(max_examples=80, deadline=None, derandomize=True)
@given(budgets=pairs)
def test_parallel_costs_the_most_expensive_and_never_more_than_sequential(budgets):
    eps, delta = dp.parallel_composition(budgets, neighbours="add_remove")
    assert (eps, delta) == (max(e for e, _ in budgets), max(d for _, d in budgets))
    seq = dp.sequential_composition(budgets)
    assert eps <= seq[0] + 1e-12 and delta <= seq[1] + 1e-12


@settings(max_examples=80, deadline=None, derandomize=True)
@given(eps=st.floats(1e-3, 2.0), delta=st.floats(0.0, 1e-4), k=st.integers(1, 10_000),
       delta_prime=st.floats(1e-10, 0.5))
def test_advanced_composition_is_the_drv_bound_and_grows_with_k(eps, delta, k, delta_prime):
    total, total_delta = dp.advanced_composition(epsilon=eps, delta=delta, k=k, delta_prime=delta_prime)
    expected = eps * math.sqrt(2 * k * math.log(1 / delta_prime)) + k * eps * (math.exp(eps) - 1)
    assert total == pytest.approx(expected, rel=1e-12)
    assert total_delta == pytest.approx(k * delta + delta_prime)
    bigger, _ = dp.advanced_composition(epsilon=eps, delta=delta, k=k + 1, delta_prime=delta_prime)
    assert bigger > total


def test_advanced_composition_beats_sequential_only_for_many_small_steps():
    seq = dp.sequential_composition([(0.01, 0.0)] * 10_000)[0]
    adv = dp.advanced_composition(epsilon=0.01, delta=0.0, k=10_000, delta_prime=1e-5)[0]
    assert adv < seq / 10
    few = dp.advanced_composition(epsilon=1.0, delta=0.0, k=3, delta_prime=1e-5)[0]
    assert few > 3.0


def test_bad_budgets_are_refused_with_the_argument_named():
    with pytest.raises(ValueError, match=r"budgets\[1\] epsilon must be in \(0, inf\)"):
        dp.sequential_composition([(1.0, 0.0), (-1.0, 0.0)])
    with pytest.raises(ValueError, match=r"budgets\[0\] delta must be in \[0, 1\)"):
        dp.parallel_composition([(1.0, 1.0)], neighbours="add_remove")
    with pytest.raises(ValueError, match="at least one"):
        dp.sequential_composition([])
    with pytest.raises(ValueError, match=r"k must be an int >= 1"):
        dp.advanced_composition(epsilon=1.0, delta=0.0, k=0, delta_prime=1e-5)
    with pytest.raises(ValueError, match=r"delta_prime must be in \(0, 1\)"):
        dp.advanced_composition(epsilon=1.0, delta=0.0, k=5, delta_prime=0.0)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(budgets=pairs)
def test_parallel_under_replace_costs_the_two_largest_parts(budgets):
    eps, delta = dp.parallel_composition(budgets, neighbours="replace")
    if len(budgets) == 1:
        assert (eps, delta) == tuple(budgets[0])
    else:
        top = sorted((e for e, _ in budgets), reverse=True)
        assert eps == pytest.approx(top[0] + top[1])
        assert delta == pytest.approx(sum(sorted((d for _, d in budgets), reverse=True)[:2]))
    assert eps >= dp.parallel_composition(budgets, neighbours="add_remove")[0]
    assert eps <= dp.sequential_composition(budgets)[0] + 1e-12


def test_group_privacy_turns_add_remove_into_replace_one_and_grows_with_the_group():
    assert dp.group_privacy(epsilon=0.5, delta=0.0, k=2) == (1.0, 0.0)
    eps, delta = dp.group_privacy(epsilon=0.5, delta=1e-6, k=3)
    assert eps == 1.5 and delta == pytest.approx(1e-6 * (1 + math.exp(0.5) + math.exp(1.0)))
    assert delta <= 3 * math.exp(2 * 0.5) * 1e-6  # within the textbook k e^{(k-1) eps} delta
    assert dp.group_privacy(epsilon=0.5, delta=1e-6, k=1) == (0.5, 1e-6)
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        dp.group_privacy(epsilon=0.5, delta=0.0, k=0)
    with pytest.raises(TypeError):
        dp.parallel_composition([(1.0, 0.0)])  # the relation must be declared
