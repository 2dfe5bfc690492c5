"""The checks the inference attacks share: a target model that returns labels where scores are needed is a
ValueError naming the model (review M4), and the tolerance on rows of probabilities follows the API's rounding
(review M6)."""
import pytest
import torch
from torch import nn

from mlsec_kit.attacks.evasion import Oracle
from mlsec_kit.attacks.inference import (attribute_inference, defended_query, dlg, idlg, model_inversion,
                                         shared_gradients)
from mlsec_kit.attacks.inference._checks import EXACT_SUM_ATOL, _check_logits, rounding_decimals, sum_tolerance


class LabelModel(nn.Module):
    """A classifier whose forward returns its labels (argmax), not its scores."""

    def __init__(self, d=4, k=3):
        super().__init__()
        self.linear = nn.Linear(d, k)

    def forward(self, x):
        return self.linear(x.flatten(1)).argmax(1)


def _zeros_like_params(model):
    return [torch.zeros_like(p) for p in model.parameters()]


CALLS = {
    "model_inversion": lambda m: model_inversion(m, 0, input_shape=(4,), steps=1),
    "attribute_inference": lambda m: attribute_inference(m, torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1]),
                                                         attribute=1, values=torch.tensor([0.0, 1.0])),
    "defended_query": lambda m: defended_query(m, decimals=2)(torch.rand(5, 4)),
    "shared_gradients": lambda m: shared_gradients(m, torch.rand(2, 4), torch.tensor([0, 1])),
    "dlg": lambda m: dlg(m, _zeros_like_params(m), input_shape=(4,), num_classes=3, steps=1),
    "idlg": lambda m: idlg(m, _zeros_like_params(m), input_shape=(4,), steps=1),
}


@pytest.mark.parametrize("call", list(CALLS), ids=list(CALLS))
def test_a_model_that_returns_labels_is_a_value_error_naming_the_model(call):
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="model must return one row of scores"):
        CALLS[call](LabelModel())


@pytest.mark.parametrize("call", list(CALLS), ids=list(CALLS))
def test_the_same_calls_run_on_a_model_that_returns_logits(call):
    """The control: the check rejects labels, not the calls' ordinary use."""
    torch.manual_seed(0)
    CALLS[call](nn.Sequential(nn.Flatten(), nn.Linear(4, 3)))


def test_check_logits_accepts_scores_and_names_the_argument():
    scores = torch.randn(5, 3)
    assert _check_logits("model", scores, 5) is scores
    for bad in (torch.randint(0, 3, (5, 3)),      # integer dtype
                torch.randn(5),                   # one value per row (a label as float)
                torch.randn(5, 1),                # a single score per row
                torch.randn(4, 3)):               # a row missing
        with pytest.raises(ValueError, match="victim must return one row of scores"):
            _check_logits("victim", bad, 5)
    with pytest.raises(ValueError, match="not labels"):
        _check_logits("model", torch.zeros(5, dtype=torch.int64), 5)


def test_sum_tolerance_follows_the_rounding_the_api_declares():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 10))
    assert rounding_decimals(defended_query(model, decimals=1)) == 1
    assert rounding_decimals(defended_query(model)) is None
    assert rounding_decimals(Oracle(model, output="rounded", decimals=3)) == 3
    assert rounding_decimals(Oracle(model, output="scores", decimals=3)) is None   # not rounded
    assert rounding_decimals(lambda x: x) is None
    # K * 0.5 * 10**-decimals: 10 classes each off by at most half a unit of the last place
    assert sum_tolerance(defended_query(model, decimals=0), 10, None) == pytest.approx(5.0)
    assert sum_tolerance(defended_query(model, decimals=2), 10, None) == pytest.approx(0.05)
    assert sum_tolerance(defended_query(model, decimals=6), 10, None) == EXACT_SUM_ATOL   # at least 1e-3
    assert sum_tolerance(lambda x: x, 10, None) == EXACT_SUM_ATOL
    assert sum_tolerance(lambda x: x, 10, 0.3) == 0.3
    with pytest.raises(ValueError, match="sum_atol"):
        sum_tolerance(lambda x: x, 10, 0.0)
