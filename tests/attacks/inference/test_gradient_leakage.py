"""Gradient leakage (DLG, iDLG) and the noise / pruning defences, on the small profile's 8x8 digits.

The victims are untrained models with smooth activations, as in Zhu et al. (2019): the paper's sigmoid LeNet and a
sigmoid MLP with 64 hidden units; the shared gradient is that of one digit (a batch of one) unless a test says so.
"""
import math
import warnings

import pytest
import torch
from torch import nn

from mlsec_kit.attacks.inference.gradient_leakage import (
    Reconstruction, dlg, gradient_matching_loss, idlg, idlg_label, noisy_gradients, prune_gradients,
    reconstruction_error, shared_gradients, sigmoid_lenet, sigmoid_mlp)
from mlsec_kit.data.small import load_digits
from mlsec_kit.models import mlp

SHAPE = (1, 8, 8)


def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture(scope="module")
def net():
    return sigmoid_mlp(SHAPE, 10, generator=gen(0))


@pytest.fixture(scope="module")
def lenet():
    return sigmoid_lenet(SHAPE, 10, generator=gen(0))


def one(digits, i):
    return digits.X_train[i:i + 1], digits.y_train[i:i + 1]


def last_layer(model, grads):
    """The last linear layer's (weight, bias) gradients: the last two entries for these models."""
    assert isinstance(model[-1], nn.Linear)
    return grads[-2], grads[-1]


# --- iDLG's label rule ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda: sigmoid_mlp(SHAPE, 10, generator=gen(1)),
    lambda: sigmoid_lenet(SHAPE, 10, generator=gen(1)),
    lambda: mlp(SHAPE, 10, hidden=(32,)),  # ReLU features: non-negative too
], ids=["sigmoid-mlp", "sigmoid-lenet", "relu-mlp"])
def test_idlg_label_is_exact_for_every_class(digits, make):
    torch.manual_seed(0)
    model = make()
    for i in range(3):  # three different digits, each given every label in turn
        x = digits.X_train[i:i + 1]
        for c in range(10):
            w, b = last_layer(model, shared_gradients(model, x, torch.tensor([c])))
            assert idlg_label(w, bias_grad=b) == c
            assert idlg_label(w) == c


def test_sign_rule_true_class_is_the_only_negative_entry(digits, net):
    # the derivation: dL/db_i = p_i - 1[i = c] is negative exactly at the true class, positive elsewhere; so a
    # rule reading the label off the LARGEST entry (the flipped sign) is wrong for every class
    x = digits.X_train[:1]
    for c in range(10):
        w, b = last_layer(net, shared_gradients(net, x, torch.tensor([c])))
        assert (b < 0).nonzero().flatten().tolist() == [c]
        assert (w.sum(1) < 0).nonzero().flatten().tolist() == [c]
        assert int(b.argmax()) != c and int(w.sum(1).argmax()) != c


def test_weight_rule_needs_non_negative_features_the_bias_rule_does_not(digits):
    # with negative features (log-sigmoid) every row of dL/dW flips sign, so the weight-only rule is wrong on
    # every class, while the bias rule, which assumes nothing about the features, stays exact
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.LogSigmoid(), nn.Linear(16, 10))
    x = digits.X_train[:1]
    for c in range(10):
        w, b = last_layer(model, shared_gradients(model, x, torch.tensor([c])))
        assert idlg_label(w, bias_grad=b) == c
        assert idlg_label(w) != c


def test_idlg_recovers_label_and_digit(digits, net):
    x, y = one(digits, 5)
    rec = idlg(net, shared_gradients(net, x, y), input_shape=SHAPE, steps=100, generator=gen(0))
    err = reconstruction_error(x, y, rec)
    assert err.label_accuracy == 1.0 and torch.equal(rec.label_probs, nn.functional.one_hot(y, 10).float())
    assert err.mse < 1e-6, err  # measured ~1e-14


def test_idlg_needs_fewer_loss_evaluations_than_dlg(digits, net):
    # with the label known, L-BFGS converges sooner (Zhao et al.'s point); measured 101 against 236 evaluations
    # over these three digits, both reaching MSE < 1e-11
    counts = {"idlg": 0, "dlg": 0}
    for i in (0, 1, 5):
        x, y = one(digits, i)
        grads = shared_gradients(net, x, y)
        a = idlg(net, grads, input_shape=SHAPE, steps=100, generator=gen(0))
        b = dlg(net, grads, input_shape=SHAPE, num_classes=10, steps=100, generator=gen(0))
        assert reconstruction_error(x, y, a).mse < 1e-8 and reconstruction_error(x, y, b).mse < 1e-8
        counts["idlg"] += len(a.loss)
        counts["dlg"] += len(b.loss)
    assert counts["idlg"] < 0.7 * counts["dlg"], counts


def test_idlg_is_for_a_batch_of_one(digits, net):
    """The label rule holds for one example only; a gradient does not say its batch size, so the caller states it
    (anything but 1 raises), and a bias gradient with several negative entries, which one example cannot produce,
    warns."""
    x, y = one(digits, 0)
    single = shared_gradients(net, x, y)
    with pytest.raises(ValueError, match="batch_size"):
        idlg(net, single, input_shape=SHAPE, steps=1, batch_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        idlg_label(single[-2], bias_grad=single[-1], batch_size=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # a batch of one: exactly one negative entry, no warning
        assert idlg_label(single[-2], bias_grad=single[-1]) == int(y)
    xb, yb = digits.X_train[:2], torch.tensor([3, 7])
    pair = shared_gradients(net, xb, yb)
    assert int((pair[-1] < 0).sum()) == 2      # both labels' entries are negative
    with pytest.warns(UserWarning, match="batch"):
        label = idlg_label(pair[-2], bias_grad=pair[-1])
    assert label in (3, 7)


def test_lr_none_is_one_for_lbfgs_and_a_tenth_for_adam(digits, net):
    x, y = one(digits, 1)
    grads = shared_gradients(net, x, y)
    run = lambda **kw: dlg(net, grads, input_shape=SHAPE, num_classes=10, steps=5,   # noqa: E731
                           generator=gen(0), **kw).x
    assert torch.equal(run(optimizer="adam"), run(optimizer="adam", lr=0.1))
    assert not torch.equal(run(optimizer="adam"), run(optimizer="adam", lr=1.0))
    assert torch.equal(run(), run(lr=1.0))
    assert not torch.equal(run(), run(lr=0.1))
    idlg_run = lambda **kw: idlg(net, grads, input_shape=SHAPE, steps=5, generator=gen(0), **kw).x  # noqa: E731
    assert torch.equal(idlg_run(optimizer="adam"), idlg_run(optimizer="adam", lr=0.1))


def test_an_input_shape_or_width_the_model_cannot_take_names_the_argument(digits, net, lenet):
    x, y = one(digits, 0)
    grads = shared_gradients(net, x, y)
    for shape in ((1, 7, 7), (64, 2)):
        with pytest.raises(ValueError, match="input_shape"):
            dlg(net, grads, input_shape=shape, num_classes=10, steps=1)
        with pytest.raises(ValueError, match="input_shape"):
            idlg(net, grads, input_shape=shape, steps=1)
    with pytest.raises(ValueError, match="input_shape"):   # a convolution needs (C, H, W)
        dlg(lenet, shared_gradients(lenet, x, y), input_shape=(64,), num_classes=10, steps=1)
    with pytest.raises(ValueError, match="num_classes"):
        dlg(net, grads, input_shape=SHAPE, num_classes=9, steps=1)
    dlg(net, grads, input_shape=(64,), num_classes=10, steps=1)   # the MLP flattens: a flat shape fits


def test_the_input_shape_probe_leaves_batch_norm_statistics_alone(digits):
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.Sigmoid(), nn.Linear(16, 10))
    model.train()
    x, y = digits.X_train[:4], digits.y_train[:4]
    grads = shared_gradients(model, x, y)
    before = [b.clone() for b in model.buffers()]
    with pytest.raises(ValueError, match="num_classes"):   # fails right after the probe, before any matching
        dlg(model, grads, input_shape=SHAPE, num_classes=5, batch_size=4, steps=1)
    assert all(torch.equal(a, b) for a, b in zip(model.buffers(), before))


# --- DLG --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["net", "lenet"])
def test_dlg_reconstructs_a_digit_from_one_gradient(digits, which, request):
    model = request.getfixturevalue(which)
    for i in (0, 2):
        x, y = one(digits, i)
        rec = dlg(model, shared_gradients(model, x, y), input_shape=SHAPE, num_classes=10, steps=100,
                  generator=gen(i))
        err = reconstruction_error(x, y, rec)
        # measured: MSE 1e-11 to 3e-13 (PSNR > 100 dB); the dummy started at MSE ~1.3 (N(0, 1) noise)
        assert err.mse < 1e-6 and err.psnr > 60, err
        assert err.label_accuracy == 1.0
        assert rec.loss[-1] < 1e-3 * rec.loss[0]


def test_dlg_with_adam_also_reconstructs(digits, net):
    x, y = one(digits, 1)
    rec = dlg(net, shared_gradients(net, x, y), input_shape=SHAPE, num_classes=10, steps=300, lr=0.1,
              optimizer="adam", generator=gen(0))
    err = reconstruction_error(x, y, rec)
    assert err.mse < 1e-2 and err.label_accuracy == 1.0, err  # measured ~2e-3: slower than L-BFGS


def test_dlg_reconstructs_a_batch_of_two_in_some_order(digits, net):
    x, y = digits.X_train[:2], digits.y_train[:2]
    rec = dlg(net, shared_gradients(net, x, y), input_shape=SHAPE, num_classes=10, batch_size=2, steps=300,
              generator=gen(0))
    err = reconstruction_error(x, y, rec)
    assert err.mse < 1e-4 and err.label_accuracy == 1.0, err  # measured ~6e-7, returned in swapped order


def test_dlg_leaves_model_and_gradient_unchanged_and_is_deterministic(digits, net):
    x, y = one(digits, 3)
    grads = shared_gradients(net, x, y)
    before = [p.detach().clone() for p in net.parameters()]
    copies = [g.clone() for g in grads]
    a = dlg(net, grads, input_shape=SHAPE, num_classes=10, steps=20, generator=gen(7))
    b = dlg(net, grads, input_shape=SHAPE, num_classes=10, steps=20, generator=gen(7))
    assert torch.equal(a.x, b.x) and torch.equal(a.label_probs, b.label_probs)
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), before))
    assert all(p.grad is None for p in net.parameters())
    assert all(torch.equal(g, c) for g, c in zip(grads, copies))


def test_matching_loss_is_zero_at_the_private_pair_and_positive_elsewhere(digits, net):
    x, y = one(digits, 0)
    grads = shared_gradients(net, x, y)
    onehot = nn.functional.one_hot(y, 10).float()
    assert gradient_matching_loss(net, x, onehot, grads).item() < 1e-12
    assert gradient_matching_loss(net, x + 0.1, onehot, grads).item() > 1e-4
    wrong = nn.functional.one_hot((y + 1) % 10, 10).float()
    assert gradient_matching_loss(net, x, wrong, grads).item() > 1e-2


def test_matching_loss_is_differentiable_in_the_dummy_input(digits, net):
    # the central step: the dummy gradient keeps its graph (create_graph=True), so the distance between
    # gradients has a derivative with respect to the dummy; checked against a central finite difference
    x, y = one(digits, 0)
    grads = shared_gradients(net, x, y)
    probs = torch.full((1, 10), 0.1, dtype=torch.float64)
    net64 = sigmoid_mlp(SHAPE, 10, generator=gen(0)).double()
    grads64 = [g.double() for g in grads]
    x0 = torch.rand((1, *SHAPE), generator=gen(3), dtype=torch.float64).requires_grad_(True)
    (g,) = torch.autograd.grad(gradient_matching_loss(net64, x0, probs, grads64), [x0])
    v = torch.randn(x0.shape, generator=gen(4), dtype=torch.float64)
    h = 1e-5
    with torch.no_grad():
        fd = (gradient_matching_loss(net64, x0 + h * v, probs, grads64)
              - gradient_matching_loss(net64, x0 - h * v, probs, grads64)) / (2 * h)
    assert abs(fd.item()) > 1e-3
    assert (g * v).sum().item() == pytest.approx(fd.item(), rel=1e-5)


# --- defences ----------------------------------------------------------------------------------------------------

def _mean_mse(model, digits, defend, steps=60):
    """Mean DLG error over three digits (each its own dummy seed), after a defence on the shared gradient."""
    out = []
    for s in range(3):
        x, y = one(digits, s)
        rec = dlg(model, defend(shared_gradients(model, x, y), s), input_shape=SHAPE, num_classes=10, steps=steps,
                  generator=gen(s))
        out.append(reconstruction_error(x, y, rec).mse)
    return sum(out) / len(out)


def test_more_noise_more_reconstruction_error(digits, net):
    sigmas = [0.0, 1e-3, 1e-2, 1e-1]
    mse = [_mean_mse(net, digits, lambda g, s: noisy_gradients(g, sigma=sig, generator=gen(100 + s)))
           for sig in sigmas]
    # measured: 3e-9, 4e-5, 4e-3, 0.39 (the gradient's entries are ~3e-3 to 0.2 in mean magnitude)
    assert all(a < b for a, b in zip(mse, mse[1:])), mse
    assert mse[0] < 1e-6 and mse[-1] > 0.1, mse


def test_more_pruning_more_reconstruction_error(digits, net):
    fractions = [0.0, 0.3, 0.6, 0.9]
    mse = [_mean_mse(net, digits, lambda g, s: prune_gradients(g, fraction=f)) for f in fractions]
    # measured: 3e-9, 5e-3, 1.0e-2, 1.4e-2
    assert all(a < b for a, b in zip(mse, mse[1:])), mse
    assert mse[0] < 1e-6 and mse[1] > 1e-4, mse


def test_prune_zeroes_exactly_the_smallest_entries():
    grads = [torch.randn(7, 9, generator=gen(0)), torch.randn(5, generator=gen(1))]
    copies = [g.clone() for g in grads]
    for f in (0.0, 0.2, 0.5, 1.0):
        pruned = prune_gradients(grads, fraction=f)
        for g, p in zip(grads, pruned):
            k = round(f * g.numel())
            assert int((p == 0).sum()) == k
            kept = p != 0
            assert torch.equal(p[kept], g[kept])  # survivors unchanged
            if 0 < k < g.numel():
                assert g[~kept].abs().max() <= g[kept].abs().min()
    assert all(torch.equal(g, c) for g, c in zip(grads, copies))


def test_noise_has_the_requested_scale_and_is_seeded():
    grads = [torch.zeros(200, 200), torch.ones(3)]
    noisy = noisy_gradients(grads, sigma=0.5, generator=gen(0))
    assert noisy[0].std().item() == pytest.approx(0.5, rel=0.02)
    assert abs(noisy[0].mean().item()) < 0.01
    again = noisy_gradients(grads, sigma=0.5, generator=gen(0))
    assert all(torch.equal(a, b) for a, b in zip(noisy, again))
    assert all(torch.equal(a, b) for a, b in zip(noisy_gradients(grads, sigma=0.0), grads))
    assert torch.equal(grads[0], torch.zeros(200, 200))  # input unchanged


# --- reconstruction error ---------------------------------------------------------------------------------------

def test_reconstruction_error_matches_order_and_computes_psnr(digits):
    x, y = digits.X_train[:3], digits.y_train[:3]
    perm = [2, 0, 1]
    probs = nn.functional.one_hot(y[perm], 10).float()
    exact = reconstruction_error(x, y, Reconstruction(x=x[perm].clone(), label_probs=probs, loss=[]))
    assert exact.mse == 0 and math.isinf(exact.psnr) and exact.label_accuracy == 1.0
    assert [perm[i] for i in exact.order] == [0, 1, 2]
    noisy = x + 0.1
    err = reconstruction_error(x, y, Reconstruction(x=noisy, label_probs=probs, loss=[]), data_range=2.0)
    assert err.mse == pytest.approx(0.01, rel=1e-4)
    assert err.psnr == pytest.approx(10 * math.log10(4 / 0.01), rel=1e-4)
    assert err.label_accuracy == pytest.approx(sum(y[perm][i] == y[i] for i in range(3)).item() / 3)


# --- bad input ----------------------------------------------------------------------------------------------------

def test_bad_input_names_the_argument(digits, net):
    x, y = one(digits, 0)
    grads = shared_gradients(net, x, y)
    kw = dict(input_shape=SHAPE, num_classes=10, steps=5)
    with pytest.raises(ValueError, match="sigma"):
        noisy_gradients(grads, sigma=-0.1)
    for f in (-0.1, 1.5):
        with pytest.raises(ValueError, match="fraction"):
            prune_gradients(grads, fraction=f)
    with pytest.raises(ValueError, match="target_grads"):
        dlg(net, grads[:-1], **kw)
    with pytest.raises(ValueError, match=r"target_grads\[0\]"):
        dlg(net, [grads[0][:5], *grads[1:]], **kw)
    with pytest.raises(ValueError, match="target_grads"):
        idlg(net, grads[1:], input_shape=SHAPE)
    with pytest.raises(TypeError, match="target_grads"):
        dlg(net, grads[0], **kw)
    with pytest.raises(ValueError, match="steps"):
        dlg(net, grads, input_shape=SHAPE, num_classes=10, steps=0)
    with pytest.raises(ValueError, match="lr"):
        dlg(net, grads, **kw, lr=0.0)
    with pytest.raises(ValueError, match="optimizer"):
        dlg(net, grads, **kw, optimizer="sgd")
    with pytest.raises(ValueError, match="input_shape"):
        dlg(net, grads, input_shape=(), num_classes=10, steps=5)
    with pytest.raises(ValueError, match="num_classes"):
        dlg(net, grads, input_shape=SHAPE, num_classes=1, steps=5)
    with pytest.raises(ValueError, match="batch_size"):
        dlg(net, grads, **kw, batch_size=0)
    with pytest.raises(ValueError, match="bias_grad"):
        idlg_label(grads[-2], bias_grad=grads[-1][:5])
    with pytest.raises(ValueError, match="weight_grad"):
        idlg_label(grads[-1])
    rec = Reconstruction(x=x.clone(), label_probs=torch.ones(1, 10) / 10, loss=[])
    with pytest.raises(ValueError, match="x must"):
        reconstruction_error(digits.X_train[:2], digits.y_train[:2], rec)
    with pytest.raises(ValueError, match="data_range"):
        reconstruction_error(x, y, rec, data_range=0.0)
    with pytest.raises(ValueError, match="y must"):
        shared_gradients(net, x, torch.tensor([0.5]))
    with pytest.raises(ValueError, match="x must"):
        shared_gradients(net, x.flatten(), y)
    with pytest.raises(ValueError, match="y_dummy"):
        gradient_matching_loss(net, x, torch.ones(1, 9) / 9, grads)
