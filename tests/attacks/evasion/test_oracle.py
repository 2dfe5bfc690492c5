"""The query oracle: what each output mode reveals, and that every query is charged to the right example."""
import pytest
import torch

from mlsec_kit.attacks.evasion import Oracle, QueryBudgetExceeded
from mlsec_kit.attacks.evasion.oracle import check_oracle, labels_of

from evasion_helpers import Counting


def test_scores_are_the_softmax_of_the_logits(cnn, test_batch):
    X, _ = test_batch
    scores = Oracle(cnn)(X[:20])
    with torch.no_grad():
        assert torch.allclose(scores, torch.softmax(cnn(X[:20]), 1), atol=1e-6)
    assert torch.allclose(scores.sum(1), torch.ones(20), atol=1e-5)


def test_rounded_and_label_reveal_less(cnn, test_batch):
    X, _ = test_batch
    scores = Oracle(cnn)(X[:50])
    rounded = Oracle(cnn, output="rounded", decimals=1)(X[:50])
    labels = Oracle(cnn, output="label")(X[:50])
    assert torch.equal(rounded, torch.round(scores, decimals=1))
    assert torch.allclose(rounded * 10, (rounded * 10).round(), atol=1e-5)   # one decimal place
    assert labels.shape == (50,) and labels.dtype == torch.int64
    assert torch.equal(labels, scores.argmax(1)) and torch.equal(labels_of(scores), labels)


def test_queries_are_charged_per_example_and_equal_the_rows_the_model_saw(cnn, test_batch):
    X, _ = test_batch
    counted = Counting(cnn)
    oracle = Oracle(counted, output="label")
    oracle(X[:5])                                          # one query each for examples 0..4
    oracle(X[:3], index=torch.tensor([4, 4, 7]))           # two more for 4, one for 7 (beyond the first batch)
    assert oracle.queries.tolist() == [1, 1, 1, 1, 3, 0, 0, 1]
    assert oracle.total == counted.rows == 8
    oracle.queries[0] = 100                                # a copy: the count cannot be edited from outside
    assert oracle.queries[0] == 1
    oracle.reset()
    assert oracle.total == 0 and len(oracle.queries) == 0


def test_budget_is_a_hard_limit_and_a_refused_query_costs_nothing(cnn, test_batch):
    X, _ = test_batch
    counted = Counting(cnn)
    oracle = Oracle(counted, budget=2)
    oracle(X[:4])
    oracle(X[:4])
    with pytest.raises(QueryBudgetExceeded, match="budget of 2"):
        oracle(X[:1], index=torch.tensor([3]))
    assert oracle.queries.tolist() == [2, 2, 2, 2] and counted.rows == 8


def test_model_mode_is_restored_and_no_gradients_flow(cnn, test_batch):
    X, _ = test_batch
    cnn.train()
    try:
        out = Oracle(cnn)(X[:4].requires_grad_(False))
        assert cnn.training and not out.requires_grad
    finally:
        cnn.eval()


@pytest.mark.parametrize("kwargs, arg", [({"output": "logits"}, "output"), ({"decimals": -1}, "decimals"),
                                         ({"budget": 0}, "budget"), ({"clip_min": 1.0, "clip_max": 0.0}, "clip_min")])
def test_bad_constructor_arguments(cnn, kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        Oracle(cnn, **kwargs)


def test_bad_queries(cnn, test_batch):
    X, _ = test_batch
    oracle = Oracle(cnn)
    with pytest.raises(ValueError, match="input range"):
        oracle(X[:2] + 2)
    with pytest.raises(ValueError, match="index"):
        oracle(X[:2], index=torch.tensor([0]))             # one index per row
    with pytest.raises(ValueError, match="index"):
        oracle(X[:2], index=torch.tensor([0, -1]))
    with pytest.raises(TypeError, match="model"):
        Oracle(lambda x: x)
    with pytest.raises(TypeError, match="oracle"):
        check_oracle(cnn)
    with pytest.raises(ValueError, match="only labels"):
        check_oracle(Oracle(cnn, output="label"), scores=True)
    assert oracle.total == 0                               # refused queries are not charged
