"""Encrypted training of a binary logistic regression with CKKS: the server runs full-batch gradient descent on
the client's encrypted data and keeps the weights encrypted; the client refreshes them once per epoch.

The sigmoid is replaced by a polynomial (:func:`~mlsec_kit.crypto.he.inference.poly_sigmoid`), as in Kim et al.
(2018), "Logistic regression model training based on the approximate homomorphic encryption" (BMC Medical
Genomics). Packing is feature-major: one ciphertext per feature holding that feature of every sample, tiled so
that a rotate-and-sum over log2(n) rotations leaves the gradient's sum in every slot.

The refresh is honest "bootstrapping by decryption": one epoch uses the whole modulus chain (1 level for the
scores, 1 or 2 for the polynomial, 1 for the gradient), so after each epoch the server sends the encrypted
weights to the client, who decrypts and re-encrypts them at the top level. The client therefore sees the
weights after every epoch (they are its model); the server sees only ciphertexts. CKKS bootstrapping would
remove the round trip but is not available in TenSEAL. The decrypted weights stay with the client, which sends
fresh encryptions back: raw decryptions of server-computed ciphertexts must not return to the server (CKKS is not
IND-CPA^D, Li & Micciancio 2021).
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import tenseal.sealapi as seal
import torch

from ._seal import ct_from_bytes, effective_poly, engine_for, pow2, seeded_symmetric_bytes
from .inference import PolyFit, _check_parties, _check_server, _reply, poly_sigmoid
from .roles import Client, Server

__all__ = ["EncryptedTraining", "encrypted_logreg_fit", "poly_logreg_fit"]


@dataclass
class EncryptedTraining:
    """Result of :func:`encrypted_logreg_fit`.

    Attributes:
        weight: ``(d,)`` float64 tensor, the decrypted weights after the last epoch.
        bias: the decrypted bias.
        weights_per_epoch: ``(epochs, d + 1)`` weights and bias the client saw at each refresh.
        seconds: ``{"encrypt", "compute", "refresh"}`` wall-clock seconds.
        bytes_sent: client -> server bytes (data, labels and refreshed weights).
        bytes_received: server -> client bytes (weights to refresh).
        max_score: the largest ``|x w + b|`` over the data at each refresh (the client computes it from the weights
            it sees and its own data); above the polynomial's interval the sigmoid's stand-in diverges and a
            ``UserWarning`` is issued.
    """
    weight: torch.Tensor
    bias: float
    weights_per_epoch: torch.Tensor
    seconds: dict = field(default_factory=dict)
    bytes_sent: int = 0
    bytes_received: int = 0
    max_score: list = field(default_factory=list)


def _check_data(x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise ValueError(f"x must be a 2-D torch.Tensor (n, d), got {getattr(x, 'shape', type(x).__name__)}")
    if not isinstance(y, torch.Tensor) or y.shape != (x.shape[0],):
        raise ValueError(f"y must be a torch.Tensor of shape ({x.shape[0]},), got {getattr(y, 'shape', None)}")
    yn = y.detach().cpu().double().numpy()
    if not np.all((yn == 0) | (yn == 1)):
        raise ValueError("y must hold binary labels in {0, 1}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    if not (isinstance(lr, (int, float)) and np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite float > 0, got {lr!r}")
    return x.detach().cpu().double().numpy(), yn


def poly_logreg_fit(x: torch.Tensor, y: torch.Tensor, *, epochs: int = 3, lr: float = 1.0,
                    sigmoid: Optional[PolyFit] = None) -> tuple[torch.Tensor, float]:
    """The plaintext reference: full-batch gradient descent on the same polynomial-sigmoid model,
    ``w <- w - lr / n * X^T (poly(X w + b) - y)``, from zero weights, in float64.

    Shape:
        ``x`` ``(n, d)``, ``y`` ``(n,)`` in {0, 1} -> weight ``(d,)`` and bias.
    """
    xn, yn = _check_data(x, y, epochs, lr)
    poly = sigmoid or poly_sigmoid(3)
    xa = np.hstack([xn, np.ones((len(xn), 1))])
    w = np.zeros(xa.shape[1])
    for _ in range(epochs):
        w = w - lr / len(xa) * xa.T @ (poly(xa @ w) - yn)
    return torch.from_numpy(w[:-1].copy()), float(w[-1])


def _server_epoch(server: Server, features: list[bytes], labels: bytes, weights: list[bytes], poly: PolyFit,
                  n: int) -> list[bytes]:
    """Server: one epoch of gradient descent on ciphertexts; returns the updated encrypted weights."""
    eng = engine_for(_check_server(server))
    xs = [v.ciphertext()[0] for v in server.receive(list(features))]
    ws = [ct_from_bytes(eng.sc, b) for b in weights]
    ys = server.receive(labels).ciphertext()[0]  # holds -lr/n * y
    # scores z = sum_j w_j x_j (one level)
    z = None
    for w, x in zip(ws, xs):
        p = seal.Ciphertext()
        eng.ev.multiply(w, x, p)
        if z is None:
            z = p
        else:
            eng.ev.add_inplace(z, p)
    eng.ev.relinearize_inplace(z, eng.rk)
    eng.rescale(z)
    r = eng.output_poly(z, poly)  # lr/n * poly(z), lr folded into the coefficients
    eng.ev.add_inplace(r, eng.match(ys, r))  # residual lr/n * (poly(z) - y), at r's exact scale
    period = pow2(n)
    out = []
    for w, x in zip(ws, xs):
        eng.ev.mod_switch_to_inplace(x, r.parms_id())
        g = seal.Ciphertext()
        eng.ev.multiply(r, x, g)
        eng.ev.relinearize_inplace(g, eng.rk)
        eng.rescale(g)
        eng.rotate_sum(g, [1 << t for t in range(period.bit_length() - 1)])  # the sum over samples, every slot
        w = eng.match(w, g)  # the fresh weights at g's level and exact scale (one plaintext product by 1.0)
        eng.ev.sub_inplace(w, g)
        out.append(w)
    return _reply(server, out)


def encrypted_logreg_fit(x: torch.Tensor, y: torch.Tensor, *, client: Client, server: Server, epochs: int = 3, lr: float = 1.0,
                         sigmoid: Optional[PolyFit] = None) -> EncryptedTraining:
    """Train a binary logistic regression on encrypted data (full-batch gradient descent, polynomial sigmoid).

    Args:
        x: ``(n, d)`` features, n <= the context's slots; keep ``|x w + b|`` inside the polynomial's interval.
        y: ``(n,)`` labels in {0, 1}.
        client: the :class:`~mlsec_kit.crypto.he.Client` (CKKS, secret key), depth >= 4 for a cubic sigmoid
            (3 for a linear one); its ``wire`` counts what it sends (data, labels, refreshed weights).
        server: ``Server(client.public_context())`` with Galois keys; its ``wire`` counts the weights it returns.
        epochs: number of epochs (one refresh each), >= 1.
        lr: learning rate, > 0.
        sigmoid: the polynomial sigmoid, default ``poly_sigmoid(3)``; degree at most 3.

    Returns:
        :class:`EncryptedTraining` (compare with :func:`poly_logreg_fit`, the same computation in plaintext).
    """
    xn, yn = _check_data(x, y, epochs, lr)
    poly = sigmoid or poly_sigmoid(3)
    if not isinstance(poly, PolyFit):
        raise TypeError(f"sigmoid must be a PolyFit from poly_sigmoid() or None, got {type(poly).__name__}")
    c, deg = effective_poly(poly)
    if not 1 <= deg <= 3:
        raise ValueError(f"sigmoid degree must be in [1, 3] for encrypted training, got {poly.degree}")
    client, server = _check_parties(client, server)
    cctx = client.he.context
    eng = engine_for(client)
    levels = eng.sc.first_context_data().chain_index()
    need = 2 + (2 if deg == 3 else 1)
    if need > levels:
        raise ValueError(f"one epoch needs depth {need} but the context has depth {levels} (multiplicative levels)")
    if not server.he.context.has_relin_keys():
        raise ValueError("server's public context needs relinearisation keys (the scores multiply two ciphertexts); "
                         "build the context with relin=True")
    if not server.he.context.has_galois_keys():
        raise ValueError("server's public context needs Galois keys (rotations sum the gradient)")
    n, d = xn.shape
    if not np.all(np.isfinite(xn)):
        raise ValueError("x must be finite (no NaN or infinity)")
    period = pow2(n)
    if period > eng.slots:
        raise ValueError(f"x must have at most slots={eng.slots} rows, got {n}")
    scaled = PolyFit(tuple(v * lr / n for v in c[: deg + 1]), poly.interval, poly.max_error)
    xa = np.hstack([xn, np.ones((n, 1))])
    reps = eng.slots // period

    def tiled(col: np.ndarray) -> list[float]:
        v = np.zeros(period)
        v[:n] = col
        return np.tile(v, reps).tolist()

    t = {"encrypt": 0.0, "compute": 0.0, "refresh": 0.0}
    t0 = time.perf_counter()
    sent0, received0 = client.wire.to_server, server.wire.to_client
    features = client.send_encrypted(np.stack([tiled(xa[:, j]) for j in range(d + 1)]), layout="rows")
    labels = client.send_encrypted(np.asarray(tiled(-lr / n * yn)))
    w = np.zeros(d + 1)
    history = []
    scores: list = []
    dec = seal.Decryptor(eng.sc, cctx.secret_key().data)
    encryptor = seal.Encryptor(eng.sc, cctx.secret_key().data)  # symmetric, seeded: half the bytes

    def encrypt_weights(values: np.ndarray) -> list[bytes]:
        out = [seeded_symmetric_bytes(eng, encryptor, [float(v)] * eng.slots, eng.scale) for v in values]
        client.wire.record("to_server", "ciphertext", sum(map(len, out)))
        return out

    weights = encrypt_weights(w)
    t["encrypt"] += time.perf_counter() - t0
    for epoch in range(epochs):
        t1 = time.perf_counter()
        replies = _server_epoch(server, features, labels, weights, scaled, n)
        t2 = time.perf_counter()
        for j, b in enumerate(replies):  # client: decrypt, read, re-encrypt at the top level
            p = seal.Plaintext()
            dec.decrypt(ct_from_bytes(eng.sc, b), p)
            w[j] = float(np.mean(eng.encoder.decode_double(p)[:period]))
        history.append(w.copy())
        scores.append(float(np.abs(xa @ w).max()))
        if scores[-1] > max(abs(poly.interval[0]), abs(poly.interval[1])):
            warnings.warn(f"epoch {epoch}: scores |x w + b| reach {scores[-1]:.3g}, outside the polynomial "
                          f"sigmoid's interval {poly.interval}, where it diverges from the sigmoid; lower lr, scale "
                          f"the features, or fit the polynomial on a wider interval", UserWarning, stacklevel=2)
        if epoch < epochs - 1:
            weights = encrypt_weights(w)
        t["compute"] += t2 - t1
        t["refresh"] += time.perf_counter() - t2
    return EncryptedTraining(torch.from_numpy(w[:-1].copy()), float(w[-1]), torch.from_numpy(np.array(history)),
                             t, client.wire.to_server - sent0, server.wire.to_client - received0, scores)
