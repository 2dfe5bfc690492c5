"""Small models trained on the small profile's digits, shared by the attack and defence tests.

The fixtures are defined once here and imported by each test folder's ``conftest.py`` (pytest then offers them
to every test in that folder)."""
from __future__ import annotations

import pytest

import mlsec_kit as mk
from mlsec_kit.data import load_dataset
from mlsec_kit.models import logistic_regression, mlp, small_cnn
from mlsec_kit.train import fit


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits", seed=0)


@pytest.fixture(scope="session")
def cnn(digits):
    """A small CNN trained for a few epochs on the digits: about 97% test accuracy, not robust."""
    mk.seed_everything(0)
    model = small_cnn(digits.input_shape, digits.num_classes)
    fit(model, digits.train_loader(batch_size=64, seed=0), epochs=8, lr=3e-3)
    return model.eval()


@pytest.fixture(scope="session")
def weak_logreg(digits):
    """Logistic regression trained for a single epoch: a weak model, easy to fool."""
    mk.seed_everything(1)
    model = logistic_regression(digits.input_shape, digits.num_classes)
    fit(model, digits.train_loader(batch_size=64, seed=1), epochs=1, lr=1e-2)
    return model.eval()


@pytest.fixture(scope="session")
def test_batch(digits):
    """The first 200 test digits and their labels."""
    return digits.X_test[:200], digits.y_test[:200]


@pytest.fixture(scope="session")
def digits_softmax(digits):
    """A well-trained softmax regression on the 64 pixels (about 96% test accuracy): Tramèr et al.'s digits
    extraction target and a model-inversion victim."""
    mk.seed_everything(0)
    model = logistic_regression(digits.input_shape, digits.num_classes)
    fit(model, digits.train_loader(batch_size=64, seed=0), epochs=30, lr=1e-2)
    return model.eval()


@pytest.fixture(scope="session")
def digits_mlp(digits):
    """A one-hidden-layer (64 ReLU units) MLP on the digits, about 97% test accuracy."""
    mk.seed_everything(0)
    model = mlp(digits.input_shape, digits.num_classes, hidden=(64,))
    fit(model, digits.train_loader(batch_size=64, seed=0), epochs=20, lr=3e-3)
    return model.eval()
