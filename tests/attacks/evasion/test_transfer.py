"""The transfer attack: PGD on a surrogate the attacker owns, exactly one query per example to the victim."""
import pytest
import torch

import mlsec_kit as mk
from mlsec_kit.attacks.evasion import Oracle, pgd, transfer_attack
from mlsec_kit.models import small_cnn
from mlsec_kit.train import accuracy, fit


@pytest.fixture(scope="module")
def surrogate(digits):
    """The attacker's own CNN: same data, another seed, half the width."""
    mk.seed_everything(5)
    model = small_cnn(digits.input_shape, digits.num_classes, width=8)
    fit(model, digits.train_loader(batch_size=64, seed=5), epochs=6, lr=3e-3)
    return model.eval()


def test_transfers_better_than_noise_and_costs_one_query(cnn, surrogate, test_batch):
    X, y = test_batch
    oracle = Oracle(cnn, output="label")
    x_adv = transfer_attack(surrogate, oracle, X, y, eps=0.2)
    assert torch.equal(x_adv, pgd(surrogate, X, y, eps=0.2, alpha=2.5 * 0.2 / 20, steps=20))
    assert oracle.queries.tolist() == [1] * len(X)
    assert (x_adv - X).abs().max() <= 0.2 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    noise = (X + 0.2 * (torch.randint(0, 2, X.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1)).clamp(0, 1)
    clean, attacked, noisy = accuracy(cnn, X, y), accuracy(cnn, x_adv, y), accuracy(cnn, noise, y)
    assert attacked < noisy - 0.3 and noisy > clean - 0.1


def test_l2_stays_in_the_ball(cnn, surrogate, test_batch):
    X, y = test_batch
    x_adv = transfer_attack(surrogate, Oracle(cnn), X[:50], y[:50], eps=1.0, norm="l2", steps=10)
    assert (x_adv - X[:50]).flatten(1).norm(dim=1).max() <= 1.0 + 1e-5


@pytest.mark.parametrize("kwargs, arg", [({"eps": -0.1}, "eps"), ({"eps": 0.1, "alpha": -1.0}, "alpha"),
                                         ({"eps": 0.1, "steps": 0}, "steps"), ({"eps": 0.1, "norm": "l1"}, "norm")])
def test_bad_hyper_parameters(cnn, surrogate, test_batch, kwargs, arg):
    X, y = test_batch
    oracle = Oracle(cnn)
    with pytest.raises(ValueError, match=arg):
        transfer_attack(surrogate, oracle, X[:4], y[:4], **kwargs)
    assert oracle.total == 0


def test_bad_inputs(cnn, surrogate, test_batch):
    X, y = test_batch
    with pytest.raises(ValueError, match="input range"):
        transfer_attack(surrogate, Oracle(cnn), X[:4] * 3, y[:4], eps=0.1)
    with pytest.raises(ValueError, match="y must have shape"):
        transfer_attack(surrogate, Oracle(cnn), X[:4], y[:3], eps=0.1)
    with pytest.raises(TypeError, match="oracle"):
        transfer_attack(surrogate, cnn, X[:4], y[:4], eps=0.1)
    with pytest.raises(TypeError, match="surrogate"):
        transfer_attack(None, Oracle(cnn), X[:4], y[:4], eps=0.1)
