import pytest
import torch

import mlsec_kit as mk
from mlsec_kit.data import load_dataset, make_loader
from mlsec_kit.models import mlp, small_cnn
from mlsec_kit.train import accuracy, evaluate, fit, make_optimizer, predict


def _run(seed=0):
    mk.seed_everything(seed)
    d = load_dataset("digits")
    m = small_cnn(d.input_shape, d.num_classes)
    h = fit(m, d.train_loader(batch_size=64, seed=seed), epochs=4, lr=3e-3, eval_loader=d.test_loader())
    return m, d, h


def test_fit_learns_and_records_history():
    m, d, h = _run()
    assert h.epochs == 4 and len(h.test_acc) == 4
    assert h.train_loss[-1] < h.train_loss[0]
    assert h.test_acc[-1] > 0.6  # chance is 0.1
    ev = evaluate(m, d.test_loader())
    assert ev.accuracy == pytest.approx(h.test_acc[-1])
    assert ev.accuracy == pytest.approx(accuracy(m, d.X_test, d.y_test))
    assert set(h.as_dict()) == {"train_loss", "train_acc", "test_loss", "test_acc"}


def test_fit_is_deterministic():
    _, _, a = _run()
    _, _, b = _run()
    assert a == b


def test_evaluate_matches_manual_computation():
    mk.seed_everything(0)
    d = load_dataset("wine")
    m = mlp(d.input_shape, d.num_classes)
    logits = predict(m, d.X_test, batch_size=7)
    ev = evaluate(m, d.test_loader(batch_size=10))
    assert ev.loss == pytest.approx(torch.nn.functional.cross_entropy(logits, d.y_test).item(), rel=1e-5)
    assert ev.accuracy == pytest.approx((logits.argmax(1) == d.y_test).float().mean().item())


def test_overfit_tiny_set():
    mk.seed_everything(0)
    X, y = torch.randn(32, 5), torch.randint(0, 2, (32,))
    m = mlp((5,), 2, hidden=(64,))
    h = fit(m, make_loader(X, y, batch_size=32), epochs=300, lr=1e-2)
    assert h.train_acc[-1] == 1.0  # random labels memorised: the generalisation gap's extreme case


@pytest.mark.parametrize("kwargs,match", [
    ({"epochs": 0}, "epochs"), ({"epochs": 1, "lr": 0}, "lr"), ({"epochs": 1, "optimizer": "lbfgs"}, "optimizer"),
    ({"epochs": 1, "weight_decay": -1}, "weight_decay"),
])
def test_fit_bad_input(kwargs, match):
    m = mlp((2,), 2)
    with pytest.raises(ValueError, match=match):
        fit(m, make_loader(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long)), **kwargs)


def test_predict_and_accuracy_bad_input():
    m = mlp((2,), 2)
    with pytest.raises(TypeError):
        predict(m, [[0.0, 1.0]])
    with pytest.raises(ValueError, match="batch_size"):
        predict(m, torch.zeros(2, 2), batch_size=0)
    with pytest.raises(ValueError, match="same number of rows"):
        accuracy(m, torch.zeros(2, 2), torch.zeros(3, dtype=torch.long))
    assert isinstance(make_optimizer(m, optimizer="sgd", lr=0.1), torch.optim.SGD)
