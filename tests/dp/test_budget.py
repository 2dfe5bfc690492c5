"""The privacy budget composes charges under one neighbouring relation, refuses to overspend (in total, not per
spend), keeps a ledger nobody outside can rewrite, and charges atomically from several threads."""
import threading
import time

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mlsec_kit import dp

R = "replace"
AR = "add_remove"


def test_overspend_is_refused_with_what_was_asked_and_what_is_left():
    budget = dp.PrivacyBudget(epsilon=1.0, delta=1e-5, neighbours=R)
    budget.spend(epsilon=0.7, neighbours=R, label="mean age")
    with pytest.raises(dp.BudgetExceededError) as err:
        budget.spend(epsilon=0.5, neighbours=R, label="histogram")
    message = str(err.value)
    assert "epsilon=0.5" in message and "'histogram'" in message and "only epsilon=0.3" in message
    assert "total epsilon=1" in message
    assert isinstance(err.value, ValueError)
    assert budget.spent == pytest.approx((0.7, 0.0)) and len(budget.ledger) == 1  # nothing was charged
    budget.spend(epsilon=0.3, neighbours=R)  # what is left still fits exactly
    assert budget.remaining == (0.0, 1e-5)


def test_delta_overspend_is_refused_too():
    budget = dp.PrivacyBudget(epsilon=10.0, delta=1e-6, neighbours=AR)
    budget.spend(epsilon=1.0, delta=6e-7, neighbours=AR)
    with pytest.raises(dp.BudgetExceededError, match="delta=6e-07.*only epsilon=9, delta=4e-07"):
        budget.spend(epsilon=1.0, delta=6e-7, neighbours=AR)


def test_the_slack_is_granted_once_on_the_total_not_on_every_spend():
    budget = dp.PrivacyBudget(epsilon=1000.0, neighbours=AR)
    budget.spend(epsilon=1000.0, neighbours=AR)
    accepted = 0
    for _ in range(2000):
        try:
            budget.spend(epsilon=1e-9, neighbours=AR)
            accepted += 1
        except dp.BudgetExceededError:
            pass
    assert accepted <= 1  # the per-spend tolerance let all 2000 through: 2e-6 past the total
    assert budget.spent[0] <= 1000.0 * (1 + 1e-12)


def test_a_pure_epsilon_budget_refuses_any_delta():
    budget = dp.PrivacyBudget(epsilon=1.0, neighbours=R)
    for tiny in (1e-313, 5e-324, 1e-20):
        assert not budget.can_spend(epsilon=0.1, delta=tiny)
        with pytest.raises(dp.BudgetExceededError):
            budget.spend(epsilon=0.1, delta=tiny, neighbours=R)
    with pytest.raises(dp.BudgetExceededError):
        budget.spend_repeated(epsilon=0.001, k=100, delta_prime=1e-9, neighbours=R)  # advanced spends delta'
    assert budget.ledger == ()


def test_the_ledger_and_totals_cannot_be_rewritten_from_outside():
    budget = dp.PrivacyBudget(epsilon=1.0, neighbours=R)
    budget.spend(epsilon=0.6, neighbours=R, label="a")
    ledger = budget.ledger
    assert isinstance(ledger, tuple) and ledger[0].label == "a" and ledger[0].neighbours == R
    with pytest.raises(AttributeError):
        ledger.clear()
    with pytest.raises(AttributeError):
        budget.ledger = []
    with pytest.raises(AttributeError):
        budget.total_epsilon = 10.0
    with pytest.raises(AttributeError):
        budget.neighbours = AR
    with pytest.raises(Exception):
        ledger[0].epsilon = 0.0  # frozen dataclass
    assert budget.spent == (0.6, 0.0)
    with pytest.raises(dp.BudgetExceededError):
        budget.spend(epsilon=0.6, neighbours=R)


def test_spending_from_many_threads_never_overspends(monkeypatch):
    fits = dp.PrivacyBudget._fits

    def slow_fits(self, epsilon, delta):  # widen the gap between the check and the append
        ok = fits(self, epsilon, delta)
        time.sleep(1e-4)
        return ok

    monkeypatch.setattr(dp.PrivacyBudget, "_fits", slow_fits)
    for trial in range(3):
        budget = dp.PrivacyBudget(epsilon=1.0, neighbours=AR)
        barrier = threading.Barrier(8)
        accepted = []

        def worker():
            barrier.wait()
            for _ in range(50):
                try:
                    budget.spend(epsilon=0.01, neighbours=AR)
                    accepted.append(1)
                except dp.BudgetExceededError:
                    pass

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(accepted) == len(budget.ledger) == 100  # 400 attempts, exactly the 100 that fit
        assert budget.spent[0] == pytest.approx(1.0, rel=1e-12)


def test_a_charge_under_another_relation_is_refused():
    budget = dp.PrivacyBudget(epsilon=1.0, neighbours=R)
    with pytest.raises(ValueError, match="does not match this budget's neighbouring relation 'replace'"):
        budget.spend(epsilon=0.1, neighbours=AR)
    with pytest.raises(ValueError, match="neighbours must be one of"):
        budget.spend(epsilon=0.1, neighbours="swap")
    with pytest.raises(ValueError, match="does not match"):
        budget.spend_parallel([(0.1, 0.0)], neighbours=AR)
    with pytest.raises(ValueError, match="does not match"):
        budget.spend_repeated(epsilon=0.1, k=2, neighbours=AR)
    with pytest.raises(TypeError):
        dp.PrivacyBudget(epsilon=1.0)  # the relation must be declared
    with pytest.raises(ValueError, match="neighbours must be one of"):
        dp.PrivacyBudget(epsilon=1.0, neighbours="anything")
    assert budget.ledger == ()


def test_mechanisms_and_queries_charge_the_budget_under_their_relation_before_releasing():
    g = torch.Generator().manual_seed(0)
    x = torch.linspace(0, 10, 50, dtype=torch.float64)
    budget = dp.PrivacyBudget(epsilon=1.0, delta=1e-6, neighbours=R)
    dp.private_mean(x, lower=0.0, upper=10.0, epsilon=0.3, neighbours=R, budget=budget, generator=g)
    dp.analytic_gaussian(torch.zeros(3), sensitivity=1.0, epsilon=0.2, delta=5e-7, neighbours=R, budget=budget,
                         generator=g)
    dp.exponential(torch.arange(4.0), sensitivity=1.0, epsilon=0.1, neighbours=R, budget=budget, generator=g)
    assert [c.label for c in budget.ledger] == ["laplace", "analytic_gaussian", "exponential"]
    assert budget.spent == pytest.approx((0.6, 5e-7))
    state = g.get_state()
    with pytest.raises(ValueError, match="does not match"):  # an add/remove histogram in a replace-one analysis
        dp.private_histogram(x, bins=5, lower=0.0, upper=10.0, epsilon=0.1, neighbours=AR, budget=budget,
                             generator=g)
    with pytest.raises(dp.BudgetExceededError):
        dp.laplace(1.0, sensitivity=1.0, epsilon=0.5, neighbours=R, budget=budget, generator=g)
    with pytest.raises(ValueError, match="pass neighbours="):
        dp.laplace(1.0, sensitivity=1.0, epsilon=0.1, budget=budget, generator=g)
    assert torch.equal(g.get_state(), state)  # nothing was drawn: refused releases release nothing
    assert len(budget.ledger) == 3


@settings(max_examples=50, deadline=None, derandomize=True)
@given(total=st.floats(0.1, 10.0), parts=st.integers(1, 200))
def test_a_budget_split_in_equal_parts_is_spent_exactly(total, parts):
    budget = dp.PrivacyBudget(epsilon=total, neighbours=AR)
    for _ in range(parts):
        budget.spend(epsilon=total / parts, neighbours=AR)
    assert not budget.can_spend(epsilon=total * 1e-6)
    with pytest.raises(dp.BudgetExceededError):
        budget.spend(epsilon=total * 1e-6, neighbours=AR)


def test_parallel_and_repeated_charges_use_their_composition_rules():
    budget = dp.PrivacyBudget(epsilon=5.0, delta=1e-4, neighbours=AR)
    assert budget.spend_parallel([(0.5, 0.0)] * 10, neighbours=AR, label="10 disjoint bins") == (0.5, 0.0)
    assert budget.spend_repeated(epsilon=0.2, k=3, neighbours=AR) == pytest.approx((0.6, 0.0))
    charged = budget.spend_repeated(epsilon=0.001, k=5000, delta_prime=1e-5, neighbours=AR)
    assert charged == dp.advanced_composition(epsilon=0.001, delta=0.0, k=5000, delta_prime=1e-5)
    assert charged[0] < 5.0 * 0.001 * 1000  # advanced: far below the sequential 5.0
    assert [c.rule for c in budget.ledger] == ["parallel", "sequential x3", "advanced x5000"]
    assert budget.spend_repeated(epsilon=1.0, k=2, delta_prime=1e-6, neighbours=AR) == (2.0, 0.0)
    with pytest.raises(dp.BudgetExceededError, match="sequential x10"):
        budget.spend_repeated(epsilon=1.0, k=10, neighbours=AR)
    # under replace-one a record can move between two parts: the two largest costs add up
    replace = dp.PrivacyBudget(epsilon=5.0, neighbours=R)
    assert replace.spend_parallel([(0.5, 0.0)] * 10, neighbours=R) == (1.0, 0.0)
    assert replace.spend_parallel([(0.1, 0.0), (0.7, 0.0), (0.4, 0.0)], neighbours=R) == pytest.approx((1.1, 0.0))


def test_bad_totals_and_spends_are_refused():
    with pytest.raises(ValueError, match=r"epsilon must be in \(0, inf\), got 0"):
        dp.PrivacyBudget(epsilon=0, neighbours=AR)
    with pytest.raises(ValueError, match=r"delta must be in \[0, 1\), got 1"):
        dp.PrivacyBudget(epsilon=1.0, delta=1, neighbours=AR)
    with pytest.raises(ValueError, match=r"epsilon must be in \(0, inf\)"):
        dp.PrivacyBudget(epsilon=1.0, neighbours=AR).spend(epsilon=-0.1, neighbours=AR)
    with pytest.raises(TypeError, match="budget must be a PrivacyBudget"):
        dp.laplace(1.0, sensitivity=1.0, epsilon=0.1, neighbours=AR, budget=(1.0, 0.0))
