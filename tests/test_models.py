import pytest
import torch

from mlsec_kit.data import load_dataset
from mlsec_kit.models import logistic_regression, mlp, model_for, num_parameters, small_cnn


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_cnn_sizes_to_input(shape):
    m = small_cnn(shape, 10)
    assert m(torch.rand(5, *shape)).shape == (5, 10)


def test_mlp_and_logreg_shapes_and_sizes():
    assert mlp((30,), 2, hidden=(8,))(torch.rand(4, 30)).shape == (4, 2)
    assert num_parameters(logistic_regression((1, 8, 8), 10)) == 64 * 10 + 10
    assert num_parameters(mlp((30,), 2, hidden=(8, 4))) == 30 * 8 + 8 + 8 * 4 + 4 + 4 * 2 + 2
    assert num_parameters(mlp((5,), 3, hidden=())) == num_parameters(logistic_regression((5,), 3))


def test_model_for_picks_by_input():
    assert any(isinstance(l, torch.nn.Conv2d) for l in model_for(load_dataset("digits")))
    assert not any(isinstance(l, torch.nn.Conv2d) for l in model_for(load_dataset("wine")))
    with pytest.raises(ValueError, match="kind"):
        model_for(load_dataset("wine"), kind="transformer")


@pytest.mark.parametrize("call,match", [
    (lambda: small_cnn((8, 8), 10), "input_shape"),
    (lambda: small_cnn((1, 4, 4), 10), "height and width"),
    (lambda: small_cnn((1, 8, 8), 0), "num_classes"),
    (lambda: mlp((30,), 2, hidden=(-3,)), "hidden"),
    (lambda: mlp((30,), 2, dropout=1.0), "dropout"),
    (lambda: logistic_regression((), 2), "input_shape"),
    (lambda: logistic_regression((0, 3), 2), "input_shape"),
])
def test_bad_sizes_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()
