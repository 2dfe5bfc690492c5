"""The privacy budget composes charges and refuses to overspend, saying what was asked and what is left."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlsec_kit import dp


def test_overspend_is_refused_with_what_was_asked_and_what_is_left():
    budget = dp.PrivacyBudget(epsilon=1.0, delta=1e-5)
    budget.spend(epsilon=0.7, label="mean age")
    with pytest.raises(dp.BudgetExceededError) as err:
        budget.spend(epsilon=0.5, label="histogram")
    message = str(err.value)
    assert "epsilon=0.5" in message and "'histogram'" in message and "only epsilon=0.3" in message
    assert "total epsilon=1" in message
    assert isinstance(err.value, ValueError)
    assert budget.spent == pytest.approx((0.7, 0.0)) and len(budget.ledger) == 1  # nothing was charged
    budget.spend(epsilon=0.3)  # what is left still fits exactly
    assert budget.remaining == (0.0, 1e-5)


def test_delta_overspend_is_refused_too():
    budget = dp.PrivacyBudget(epsilon=10.0, delta=1e-6)
    budget.spend(epsilon=1.0, delta=6e-7)
    with pytest.raises(dp.BudgetExceededError, match="delta=6e-07.*only epsilon=9, delta=4e-07"):
        budget.spend(epsilon=1.0, delta=6e-7)


@settings(max_examples=50, deadline=None, derandomize=True)
@given(total=st.floats(0.1, 10.0), parts=st.integers(1, 200))
def test_a_budget_split_in_equal_parts_is_spent_exactly(total, parts):
    budget = dp.PrivacyBudget(epsilon=total)
    for _ in range(parts):
        budget.spend(epsilon=total / parts)
    assert not budget.can_spend(epsilon=total * 1e-6)
    with pytest.raises(dp.BudgetExceededError):
        budget.spend(epsilon=total * 1e-6)


def test_parallel_and_repeated_charges_use_their_composition_rules():
    budget = dp.PrivacyBudget(epsilon=5.0, delta=1e-4)
    assert budget.spend_parallel([(0.5, 0.0)] * 10, label="10 disjoint bins") == (0.5, 0.0)
    assert budget.spend_repeated(epsilon=0.2, k=3) == pytest.approx((0.6, 0.0))
    charged = budget.spend_repeated(epsilon=0.001, k=5000, delta_prime=1e-5)
    assert charged == dp.advanced_composition(epsilon=0.001, delta=0.0, k=5000, delta_prime=1e-5)
    assert charged[0] < 5.0 * 0.001 * 1000  # advanced: far below the sequential 5.0
    assert [c.rule for c in budget.ledger] == ["parallel", "sequential x3", "advanced x5000"]
    assert budget.spend_repeated(epsilon=1.0, k=2, delta_prime=1e-6) == (2.0, 0.0)  # sequential is smaller here
    with pytest.raises(dp.BudgetExceededError, match="sequential x10"):
        budget.spend_repeated(epsilon=1.0, k=10)


def test_bad_totals_and_spends_are_refused():
    with pytest.raises(ValueError, match=r"epsilon must be in \(0, inf\), got 0"):
        dp.PrivacyBudget(epsilon=0)
    with pytest.raises(ValueError, match=r"delta must be in \[0, 1\), got 1"):
        dp.PrivacyBudget(epsilon=1.0, delta=1)
    with pytest.raises(ValueError, match=r"epsilon must be in \(0, inf\)"):
        dp.PrivacyBudget(epsilon=1.0).spend(epsilon=-0.1)
