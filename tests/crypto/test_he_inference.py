"""Encrypted inference agrees with plaintext inference, for every strategy, and refuses bad input early."""
from __future__ import annotations

import numpy as np
import pytest
import tenseal as ts
import torch

import mlsec_kit as mk
from mlsec_kit.crypto.he import Client, Server, Wire, bfv_context, ckks_context
from mlsec_kit.crypto.he.inference import (EncryptedLogReg, EncryptedMLP, encrypted_predict, poly_sigmoid)
from mlsec_kit.data import load_dataset
from mlsec_kit.models import Square, logistic_regression, mlp
from mlsec_kit.train import fit


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


@pytest.fixture(scope="module")
def square_mlp(digits):
    mk.seed_everything(0)
    model = mlp(digits.input_shape, digits.num_classes, hidden=(32,), activation="square")
    fit(model, digits.train_loader(batch_size=64, seed=0), epochs=10, lr=3e-3, progress=False)
    return model.eval()


@pytest.fixture(scope="module")
def keys():
    """The client (N = 8192, depth 3, scale 2^30, Galois keys) and the server built from its public bytes."""
    client = Client(ckks_context(poly_modulus_degree=8192, coeff_mod_bit_sizes=[40, 30, 30, 30, 40]))
    server = Server(client.public_context())
    return client, server


def _check_agreement(pred, ref):
    logits = pred.logits.numpy()
    agree = np.mean(logits.argmax(1) == ref.argmax(1))
    err = np.abs(logits - ref).max()
    span = ref.max() - ref.min()
    assert agree >= 0.99, agree
    assert err <= 0.01 * span, (err, span)
    return err


def test_square_activation_model(digits):
    model = mlp(digits.input_shape, digits.num_classes, hidden=(8,), activation="square")
    assert isinstance(model[2], Square)
    x = torch.randn(5, 3)
    assert torch.equal(Square()(x), x * x)
    with pytest.raises(ValueError, match="activation"):
        mlp(digits.input_shape, digits.num_classes, activation="tanh")


def test_server_copy_matches_torch(square_mlp, digits):
    net = EncryptedMLP(square_mlp)
    x = digits.X_test[:50]
    with torch.no_grad():
        ref = square_mlp(x).double().numpy()
    assert np.allclose(net.plain(x.reshape(50, -1).double().numpy()), ref, atol=1e-4)
    assert net.depth == 3


def test_simd_whole_test_set_agrees(square_mlp, digits, keys):
    client, server = keys
    x = digits.X_test
    x_before = x.clone()
    with torch.no_grad():
        ref = square_mlp(x).double().numpy()
    pred = encrypted_predict(square_mlp, x, client=client, server=server, strategy="simd")
    assert torch.equal(x, x_before)
    assert pred.logits.shape == (len(x), 10)
    _check_agreement(pred, ref)
    assert pred.depth_used == 3
    assert pred.bytes_sent > 64 * 100_000 and pred.bytes_received > 10 * 50_000  # 64 in, 10 out ciphertexts
    assert set(pred.seconds) == {"encrypt", "compute", "decrypt"}


def test_packed_single_images_agree(square_mlp, digits, keys):
    client, server = keys
    x = digits.X_test[:12]
    with torch.no_grad():
        ref = square_mlp(x).double().numpy()
    sent0, received0 = client.wire.to_server, server.wire.to_client
    pred = encrypted_predict(square_mlp, x, client=client, server=server, strategy="packed")
    _check_agreement(pred, ref)
    assert pred.depth_used == 3
    # one ciphertext each way per image, and what the prediction reports is what crossed each party's wire; the
    # client encrypts with its secret key and SEAL sends the random half as a seed: half a public-key ciphertext
    one = client.he.ciphertext_bytes()
    assert 0.4 * one * 12 < pred.bytes_sent < 0.6 * one * 12
    assert client.wire.to_server - sent0 == pred.bytes_sent
    assert server.wire.to_client - received0 == pred.bytes_received
    assert 0 < pred.bytes_received < pred.bytes_sent  # the reply has fewer primes left


def test_diagonal_halevi_shoup_agrees(square_mlp, digits, keys):
    """The textbook diagonal method with baby-step/giant-step gives the same logits as packed (its own layout:
    outputs in the first slots), with the same depth and one ciphertext each way per image."""
    from mlsec_kit.crypto.he.inference import _bsgs
    assert _bsgs(64) == (8, 8) and _bsgs(32) == (8, 4) and _bsgs(2) == (2, 1)
    client, server = keys
    x = digits.X_test[:4]
    with torch.no_grad():
        ref = square_mlp(x).double().numpy()
    diag = encrypted_predict(square_mlp, x, client=client, server=server, strategy="diagonal")
    packed = encrypted_predict(square_mlp, x, client=client, server=server, strategy="packed")
    _check_agreement(diag, ref)
    assert np.abs(diag.logits.numpy() - packed.logits.numpy()).max() < 0.01 * (ref.max() - ref.min())
    assert diag.depth_used == packed.depth_used == 3
    assert 0.8 < diag.bytes_sent / packed.bytes_sent < 1.25
    deep = mlp(digits.input_shape, 10, hidden=(8, 8), activation="square")
    with pytest.raises(ValueError, match="at most 2 linear layers"):
        encrypted_predict(deep, x, client=client, server=server, strategy="diagonal")


def test_per_image_agrees(square_mlp, digits, keys):
    client, server = keys
    x = digits.X_test[:2]
    with torch.no_grad():
        ref = square_mlp(x).double().numpy()
    pred = encrypted_predict(EncryptedMLP(square_mlp), x, client=client, server=server, strategy="per_image")
    # the hidden bias is tiled like TenSEAL tiles the vector (Server.add); TenSEAL's own `mm(W) + list` put it in the
    # first copy only and the second mm read the others: 1.9% of the logit range at any scale (3% on 2 images)
    err = _check_agreement(pred, ref)
    assert err <= 0.005 * (ref.max() - ref.min())
    assert pred.depth_used == 3


def test_poly_sigmoid_fit():
    x = np.linspace(-8, 8, 10001)
    sig = 1 / (1 + np.exp(-x))
    errs = []
    for d in (1, 3, 5):
        f = poly_sigmoid(d)
        true_err = np.abs(f(x) - sig).max()
        assert abs(true_err - f.max_error) < 1e-3
        assert np.allclose(f(torch.tensor(x)).numpy(), f(x))
        errs.append(f.max_error)
    assert errs[0] > errs[1] > errs[2]
    assert poly_sigmoid(3, (-4, 4)).max_error < poly_sigmoid(3, (-8, 8)).max_error
    lo, hi = poly_sigmoid(3).monotone_interval  # the cubic peaks near |x| = 5.6 (1.06) and then falls
    assert 5.0 < hi < 6.0 and -6.0 < lo < -5.0 and poly_sigmoid(3)(hi) > 1.0 > poly_sigmoid(3)(8.0)
    assert poly_sigmoid(1).monotone_interval == (-8.0, 8.0)
    with pytest.raises(ValueError, match="degree"):
        poly_sigmoid(0)
    with pytest.raises(ValueError, match="interval"):
        poly_sigmoid(3, (2, -2))


@pytest.mark.parametrize("degree", [1, 3])
def test_logreg_poly_sigmoid_all_strategies(degree, digits, keys):
    client, server = keys
    mk.seed_everything(1)
    model = logistic_regression(digits.input_shape, 2)
    net = EncryptedLogReg(model, sigmoid=poly_sigmoid(degree))
    x = digits.X_test[:2]
    ref = net.plain(x.reshape(2, -1).double().numpy())
    with torch.no_grad():  # the polynomial applied to the torch model's logits
        assert np.allclose(ref, poly_sigmoid(degree)(model(x).double()).numpy(), atol=1e-5)
    for strategy in ("simd", "packed", "diagonal", "per_image"):
        pred = encrypted_predict(net, x, client=client, server=server, strategy=strategy)
        assert np.abs(pred.logits.numpy() - ref).max() < 2e-3, strategy
        assert pred.depth_used == net.depth


def test_per_image_output_polynomial_uses_the_depth_it_was_given(digits):
    """poly_sigmoid(2) on a symmetric interval has x^2 coefficient 1e-17: net.depth counts it as degree 1 and the
    server must evaluate the same polynomial (TenSEAL's polyval of the full list needed a level more)."""
    mk.seed_everything(5)
    net = EncryptedLogReg(logistic_regression(digits.input_shape, 2), sigmoid=poly_sigmoid(2))
    assert net.depth == 2
    client = Client(ckks_context(poly_modulus_degree=8192, coeff_mod_bit_sizes=[40, 30, 30, 40]))
    x = digits.X_test[:1]
    pred = encrypted_predict(net, x, client=client, server=Server(client.public_context()), strategy="per_image")
    assert np.abs(pred.logits.numpy() - net.plain(x.reshape(1, -1).double().numpy())).max() < 2e-3


def test_parties_and_bad_input_refused(square_mlp, digits, keys):
    client, server = keys
    x = digits.X_test[:2]
    with pytest.raises(TypeError, match="server must be a mlsec_kit.crypto.he.Server"):
        encrypted_predict(square_mlp, x, client=client, server=client)
    with pytest.raises(TypeError, match="client must be a mlsec_kit.crypto.he.Client"):
        encrypted_predict(square_mlp, x, client=server, server=server)
    with pytest.raises(TypeError, match="client"):  # a raw TenSEAL context is not a party
        encrypted_predict(square_mlp, x, client=client.he.context, server=server)
    with pytest.raises(ValueError, match="strategy"):
        encrypted_predict(square_mlp, x, client=client, server=server, strategy="fast")
    with pytest.raises(ValueError, match="64 features"):
        encrypted_predict(square_mlp, torch.zeros(2, 63), client=client, server=server)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        encrypted_predict(square_mlp, x.numpy(), client=client, server=server)
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="x must be finite"):
        encrypted_predict(square_mlp, bad, client=client, server=server)
    with pytest.raises(TypeError, match="x must hold real numbers"):
        encrypted_predict(square_mlp, x.to(torch.complex64), client=client, server=server)
    with pytest.raises(ValueError, match="Linear, Square, Linear"):
        EncryptedMLP(mlp(digits.input_shape, 10, hidden=(8,)))
    deep = mlp(digits.input_shape, 10, hidden=(8, 8), activation="square")
    with pytest.raises(ValueError, match="at most 2 linear layers"):
        encrypted_predict(deep, x, client=client, server=server, strategy="packed")


def test_mismatched_or_bfv_parties_refused(square_mlp, digits, keys):
    client, _ = keys
    x = digits.X_test[:1]
    other = Client(ckks_context(poly_modulus_degree=4096, coeff_mod_bit_sizes=[40, 20, 40], galois=False))
    with pytest.raises(ValueError, match="does not match the client"):
        encrypted_predict(square_mlp, x, client=client, server=Server(other.public_context()))
    stranger = Client(ckks_context(poly_modulus_degree=8192, coeff_mod_bit_sizes=[40, 30, 30, 30, 40], galois=False))
    with pytest.raises(ValueError, match="another key pair"):  # same parameters, another key: garbage otherwise
        encrypted_predict(square_mlp, x, client=client, server=Server(stranger.public_context()))
    bfv = Client(bfv_context(plain_modulus_bits=20, poly_modulus_degree=4096))
    with pytest.raises(ValueError, match="CKKS"):
        encrypted_predict(square_mlp, x, client=bfv, server=Server(bfv.public_context()))


def test_relin_false_context_refused_for_squares(square_mlp, digits):
    client = Client(ckks_context(depth=3, scale_bits=30, galois=False, relin=False))
    with pytest.raises(ValueError, match="relinearisation"):
        encrypted_predict(square_mlp, digits.X_test[:1], client=client, server=Server(client.public_context()))


def test_depth_beyond_context_is_refused(square_mlp, digits):
    small = Client(ckks_context(poly_modulus_degree=4096, coeff_mod_bit_sizes=[40, 20, 40], galois=False))
    server = Server(small.public_context())
    with pytest.raises(ValueError, match="depth 3 but the context has depth 1"):
        encrypted_predict(square_mlp, digits.X_test[:1], client=small, server=server)


def test_server_side_sees_only_bytes_and_public_context(square_mlp, digits, keys):
    """The server function takes serialised ciphertexts and a Server (public context only), and its reply
    decrypts (with the client's key) to the plaintext logits; a Client in the server's place is refused."""
    from mlsec_kit.crypto.he._seal import ct_from_bytes, engine_for
    from mlsec_kit.crypto.he.inference import _packed_input_layout, _packed_read, _server_packed, _server_simd
    client, server = keys
    assert not server.he.context.is_private()
    net = EncryptedMLP(square_mlp)
    x = digits.X_test[:1].reshape(1, -1).double().numpy()
    eng = engine_for(client)
    msg = client.send(client.encrypt(_packed_input_layout(net, x[0], eng.slots)))
    assert isinstance(msg, bytes)
    with pytest.raises(TypeError, match="server must be"):
        _server_packed(net, client, msg)
    with pytest.raises(TypeError, match="server must be"):
        _server_simd(net, client, [msg] * 64)
    before = server.wire.to_client
    reply = _server_packed(net, server, msg)
    assert isinstance(reply, bytes)
    assert server.wire.to_client - before == len(reply)
    dec = ts.sealapi.Decryptor(eng.sc, client.he.context.secret_key().data)
    p = ts.sealapi.Plaintext()
    dec.decrypt(ct_from_bytes(eng.sc, reply), p)
    logits = _packed_read(net, np.asarray(eng.encoder.decode_double(p)))  # the client adds up each block
    assert np.abs(logits - net.plain(x)[0]).max() < 0.05


def test_shared_wire_counts_each_message_once(digits):
    """With one Wire shared by both parties, the client's messages and the server's replies are each logged once."""
    wire = Wire()
    client = Client(ckks_context(poly_modulus_degree=8192, coeff_mod_bit_sizes=[40, 30, 40], galois=False),
                    wire=wire)
    server = Server(client.public_context(), wire=wire)
    public = wire.to_server
    mk.seed_everything(2)
    model = logistic_regression(digits.input_shape, 3)
    pred = encrypted_predict(model, digits.X_test[:5], client=client, server=server, strategy="simd")
    assert wire.to_server == public + pred.bytes_sent
    assert wire.to_client == pred.bytes_received
    kinds = [w for _, w, _ in wire.log]
    assert kinds.count("public context") == 1 and kinds.count("ciphertext") == 2  # one message each way


def test_replies_mask_every_slot_but_the_outputs(square_mlp, digits, keys):
    """The client decrypts all slots. A packed reply's non-output slots held the rotate-and-sum windows (W2 up to a
    scale per column); now two replies for the same image agree on the outputs and differ by the fresh mask
    everywhere else, and per_image's reply likewise beyond its out_features slots."""
    from mlsec_kit.crypto.he._seal import ct_from_bytes, engine_for
    from mlsec_kit.crypto.he.inference import (_packed_input_layout, _packed_period, _packed_read, _server_packed,
                                               _server_per_image)
    client, server = keys
    net = EncryptedMLP(square_mlp)
    x = digits.X_test[:1].reshape(1, -1).double().numpy()[0]
    eng = engine_for(client)
    dec = ts.sealapi.Decryptor(eng.sc, client.he.context.secret_key().data)

    def slots(reply: bytes) -> np.ndarray:
        p = ts.sealapi.Plaintext()
        dec.decrypt(ct_from_bytes(eng.sc, reply), p)
        return np.asarray(eng.encoder.decode_double(p))

    msg = client.send(client.encrypt(_packed_input_layout(net, x, eng.slots)))
    a, b = slots(_server_packed(net, server, msg)), slots(_server_packed(net, server, msg))
    # the client adds up each output's block of shares: the sums are the logits, the shares are masked, and so
    # is every slot beyond the blocks
    truth = net.plain(x[None])[0]
    assert np.abs(_packed_read(net, a) - truth).max() < 0.05 and np.abs(_packed_read(net, a) - _packed_read(net, b)).max() < 0.05
    assert np.median(np.abs(a - b)) > 10.0  # unmasked, they agreed to CKKS noise (about 1e-3)
    blocks = a[: net.out_features * _packed_period(net)].reshape(net.out_features, -1)
    assert np.abs(blocks[:, 0] - truth).max() > 1.0  # no slot holds a logit by itself
    one = client.send(client.encrypt(x))
    r1 = client.decrypt(client.receive(_server_per_image(net, server, one))).numpy()
    v1 = client.receive(_server_per_image(net, server, one))
    v2 = client.receive(_server_per_image(net, server, one))
    p1, p2 = ts.sealapi.Plaintext(), ts.sealapi.Plaintext()
    dec.decrypt(v1.ciphertext()[0], p1)
    dec.decrypt(v2.ciphertext()[0], p2)
    f1, f2 = np.asarray(eng.encoder.decode_double(p1)), np.asarray(eng.encoder.decode_double(p2))
    assert np.abs(f1[:10] - f2[:10]).max() < 0.05 and np.abs(r1 - net.plain(x[None])[0]).max() < 0.05
    assert np.median(np.abs(f1[10:] - f2[10:])) > 10.0
    from mlsec_kit.crypto.he.inference import _diagonal_input_layout, _server_diagonal
    msg = client.send_encrypted(_diagonal_input_layout(net, x, eng.slots))
    a, b = slots(_server_diagonal(net, server, msg)), slots(_server_diagonal(net, server, msg))
    assert np.abs(a[:10] - net.plain(x[None])[0]).max() < 0.05 and np.abs(a[:10] - b[:10]).max() < 0.05
    assert np.median(np.abs(a[10:] - b[10:])) > 10.0
