"""Models the defence tests share, trained once per session on the small profile's digits."""
from __future__ import annotations

import pytest

import mlsec_kit as mk
from mlsec_kit.data import load_dataset
from mlsec_kit.models import small_cnn
from mlsec_kit.train import fit


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits", seed=0)


@pytest.fixture(scope="session")
def cnn(digits):
    """A small CNN trained for a few epochs on the digits: about 96% test accuracy, not robust."""
    mk.seed_everything(0)
    model = small_cnn(digits.input_shape, digits.num_classes)
    fit(model, digits.train_loader(batch_size=64, seed=0), epochs=8, lr=3e-3)
    return model.eval()


@pytest.fixture(scope="session")
def test_batch(digits):
    """The first 200 test digits and their labels."""
    return digits.X_test[:200], digits.y_test[:200]
