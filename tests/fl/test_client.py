"""Client.local_update (FedAvg's ClientUpdate), model poisoning, the backdoor client and the leakage link."""
import copy

import pytest
import torch
import torch.nn.functional as F

from mlsec_kit.attacks.inference import idlg, reconstruction_error, sigmoid_mlp
from mlsec_kit.attacks.poisoning import patch_trigger
from mlsec_kit.fl import Client, ModelPoisoning, aggregate, backdoor_client, replacement_scale, update_to_gradients
from mlsec_kit.models import mlp


def _data(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g)


def _model(seed=0):
    torch.manual_seed(seed)
    return mlp((6,), 3, hidden=(8,))


def test_one_full_batch_step_is_minus_lr_times_the_gradient():
    x, y = _data()
    model = _model()
    before = copy.deepcopy(model.state_dict())
    upd = Client(x, y).local_update(model, epochs=1, lr=0.5, batch_size=len(x), generator=torch.Generator())
    grads = torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters()))
    assert torch.allclose(upd.delta, -0.5 * torch.cat([g.reshape(-1) for g in grads]), atol=1e-6)
    assert upd.num_examples == 40
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the global model is untouched


def test_local_training_lowers_the_loss_and_is_seeded():
    x, y = _data()
    model = _model()
    client = Client(x, y)
    one = client.local_update(model, epochs=1, lr=0.2, batch_size=8, generator=torch.Generator().manual_seed(1))
    many = client.local_update(model, epochs=20, lr=0.2, batch_size=8, generator=torch.Generator().manual_seed(1))
    assert many.loss < one.loss
    same = client.local_update(model, epochs=1, lr=0.2, batch_size=8, generator=torch.Generator().manual_seed(1))
    other = client.local_update(model, epochs=1, lr=0.2, batch_size=8, generator=torch.Generator().manual_seed(2))
    assert torch.equal(one.delta, same.delta) and not torch.equal(one.delta, other.delta)


def test_model_poisoning():
    d = torch.tensor([1.0, -2.0])
    assert torch.equal(ModelPoisoning("sign_flip").apply(d), -d)
    assert torch.equal(ModelPoisoning("sign_flip", 3.0).apply(d), -3 * d)
    assert torch.equal(ModelPoisoning("scale", 10.0).apply(d), 10 * d)
    with pytest.raises(ValueError, match="kind"):
        ModelPoisoning("noise")
    with pytest.raises(ValueError, match="scale"):
        ModelPoisoning("scale", 0.0)


def test_backdoor_client_carries_the_trigger():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(50, 1, 8, 8, generator=g) * 0.5
    y = torch.randint(1, 10, (50,), generator=g)
    trig = patch_trigger((1, 8, 8), size=2)
    c = backdoor_client(x, y, target=0, rate=0.4, trigger=trig, generator=g, cid=3)
    stamped = (c.x[:, :, -2:, -2:] == 1.0).flatten(1).all(1)
    assert stamped.sum() == 20 and (c.y[stamped] == 0).all() and c.cid == 3
    assert (x[:, :, -2:, -2:] < 1).all()  # the caller's data are not modified


def test_a_single_example_update_feeds_idlg():
    g = torch.Generator().manual_seed(0)
    model = sigmoid_mlp((1, 4, 4), 5, hidden=(16,), generator=g)
    x = torch.rand(1, 1, 4, 4, generator=g)
    y = torch.tensor([3])
    upd = Client(x, y).local_update(model, epochs=1, lr=0.1, batch_size=1, generator=g)
    grads = update_to_gradients(upd, model, lr=0.1)
    rec = idlg(model, grads, input_shape=(1, 4, 4), steps=60, generator=torch.Generator().manual_seed(1))
    err = reconstruction_error(x, y, rec)
    assert err.label_accuracy == 1.0 and err.mse < 1e-4, err
    # a multi-step update is not the gradient: the identity used above needs one SGD step
    multi = Client(x, y).local_update(model, epochs=5, lr=0.1, batch_size=1, generator=g)
    assert not torch.allclose(torch.cat([t.reshape(-1) for t in update_to_gradients(multi, model, lr=0.1)]),
                              torch.cat([t.reshape(-1) for t in grads]), atol=1e-4)


def test_replacement_scale_cancels_the_example_weighting():
    # unequal clients (Dirichlet-like sizes): the boosted update, averaged with n_k weights and stepped by eta,
    # is exactly the attacker's own update; the equal-weight factor n / eta is not
    counts = [3, 40, 7, 150]
    delta = torch.randn(5, generator=torch.Generator().manual_seed(0))
    for attacker in range(4):
        gamma = replacement_scale(counts, attacker, server_lr=0.5)
        ups = [torch.zeros(5)] * 4
        ups[attacker] = gamma * delta
        assert torch.allclose(0.5 * aggregate(ups, counts), delta, atol=1e-6)
        naive = [torch.zeros(5)] * 4
        naive[attacker] = (4 / 0.5) * delta
        assert not torch.allclose(0.5 * aggregate(naive, counts), delta, atol=1e-3)
    assert replacement_scale([20] * 10, 3) == 10.0  # equal sizes: n / eta
    assert replacement_scale([Client(*_data(n)) for n in (10, 30)], 0) == 4.0
    with pytest.raises(ValueError, match="attacker"):
        replacement_scale(counts, 4)
    with pytest.raises(ValueError, match="num_examples"):
        replacement_scale([], 0)


@pytest.mark.parametrize("call, exc, match", [
    (lambda: Client(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)), ValueError, "at least one"),
    (lambda: Client(torch.zeros(4, 3), torch.zeros(3, dtype=torch.long)), ValueError, "y must"),
    (lambda: Client(torch.zeros(4, 3), torch.zeros(4)), ValueError, "integer"),
    (lambda: Client(*_data()).local_update(_model(), epochs=0, lr=0.1, batch_size=4), ValueError, "epochs"),
    (lambda: Client(*_data()).local_update(_model(), epochs=1, lr=-1, batch_size=4), ValueError, "lr"),
    (lambda: Client(*_data()).local_update(_model(), epochs=1, lr=0.1, batch_size=0), ValueError, "batch_size"),
    (lambda: Client(*_data()).local_update("model", epochs=1, lr=0.1, batch_size=4), TypeError, "model"),
])
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
