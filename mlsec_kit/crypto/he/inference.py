"""Encrypted inference with CKKS (TenSEAL): a client encrypts, a server that holds only the public context
computes logits on ciphertexts, the client decrypts.

Three strategies for the same network (:func:`encrypted_predict`):

- ``"per_image"``: one ciphertext per image and TenSEAL's vector-matrix product per layer (the naive one).
- ``"simd"``: feature-major batching, one ciphertext per *feature* holding that feature of up to N/2 images;
  a linear layer is a sum of ciphertext-times-plaintext-scalar products, rescaled once per output unit
  (CryptoNets, Gilad-Bachrach et al. 2016). Best throughput.
- ``"packed"``: one image, packed with replication so that a whole matrix-vector product costs one
  plaintext multiplication and log2(width) rotations with Galois keys (a replicated rotate-and-sum packing; it is
  not the diagonal method of Halevi & Shoup 2014, which needs about 2*sqrt(width) rotations with
  baby-step/giant-step). The last layer skips its rotations: each output's products stay in a block of slots,
  masked with fresh noise that sums to zero over the block, and the client adds each block up after decrypting
  (6 rotations for the 64-32-10 MLP instead of 11). Best latency.
- ``"diagonal"``: one image, zero-padded to a power of two ``d`` and tiled; each layer is Halevi & Shoup's diagonal
  method with baby-step/giant-step, ``y = sum_i diag_i(W) * rot(x, i)`` with about ``2 sqrt(d)`` rotations and
  ``d`` plaintext products (25 rotations and 96 products for the 64-32-10 MLP, against packed's 6 and 2): the
  textbook method, for comparison.

The parties are the roles of :mod:`mlsec_kit.crypto.he.roles`: a :class:`~mlsec_kit.crypto.he.Client` that holds
the secret key and a :class:`~mlsec_kit.crypto.he.Server` built from the client's public context bytes. The
server-side functions receive only serialised ciphertexts and that server; what each party sends is counted on
its :class:`~mlsec_kit.crypto.he.Wire`. The SEAL-level evaluation lives in :mod:`mlsec_kit.crypto.he._seal`.

What each party learns. The server sees ciphertexts, the public context and the vector sizes TenSEAL serialises
in the clear (the batch size for ``"simd"``). The client decrypts every slot of a reply, not only the outputs:
``"packed"`` and ``"per_image"`` therefore add fresh uniform noise to the slots that are not outputs (without it
one packed reply revealed W2 up to a scale per column). The client still learns the outputs (model extraction by
queries, chapter 9), and there is no circuit privacy: the reply's CKKS noise depends on the weights and SEAL does
not flood it. CKKS is not IND-CPA^D (Li & Micciancio 2021): decrypted values carry the noise, so raw decryptions
of server-computed ciphertexts must not go back to the server (round them or add noise first).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import tenseal.sealapi as seal
import torch
from torch import nn

from mlsec_kit.models import Square

from ._seal import Engine, ckks_vector_bytes, ct_from_bytes, ct_to_bytes, effective_poly, engine_for, pow2
from .roles import Client, Server

__all__ = ["PolyFit", "poly_sigmoid", "EncryptedLogReg", "EncryptedMLP", "EncryptedPrediction",
           "encrypted_predict", "STRATEGIES"]

STRATEGIES = ("per_image", "simd", "packed", "diagonal")


# ----------------------------------------------------------------------------------------- polynomial sigmoid
@dataclass(frozen=True)
class PolyFit:
    """A polynomial ``sum_k coefficients[k] * x**k`` fitted to a function on ``interval``, with its max error."""
    coefficients: tuple[float, ...]
    interval: tuple[float, float]
    max_error: float

    @property
    def degree(self) -> int:
        return len(self.coefficients) - 1

    @property
    def monotone_interval(self) -> tuple[float, float]:
        """The widest interval around 0 inside ``interval`` where the polynomial increases (the sigmoid does
        everywhere). The least-squares cubic on [-8, 8] peaks at 1.06 near |x| = 5.6 and falls to 0.89 at 8, so
        for scores in (5.6, 8) a larger score gives a smaller "probability"; outside ``interval`` it diverges
        (x = 12 -> -0.45, x = 16 -> -3.6)."""
        a, b = self.interval
        x = np.linspace(a, b, 8001)
        slope = np.polynomial.polynomial.polyval(x, np.polynomial.polynomial.polyder(self.coefficients)) > 0
        mid = int(np.argmin(np.abs(x)))
        if not slope[mid]:
            return (0.0, 0.0)
        lo = mid
        while lo > 0 and slope[lo - 1]:
            lo -= 1
        hi = mid
        while hi < len(x) - 1 and slope[hi + 1]:
            hi += 1
        return (float(x[lo]), float(x[hi]))

    def __call__(self, x):
        if isinstance(x, torch.Tensor):
            out = torch.zeros_like(x)
            for c in reversed(self.coefficients):
                out = out * x + c
            return out
        return np.polynomial.polynomial.polyval(np.asarray(x, dtype=float), self.coefficients)


def poly_sigmoid(degree: int = 3, interval: tuple[float, float] = (-8.0, 8.0), *, points: int = 4001) -> PolyFit:
    """Least-squares polynomial fit of the logistic sigmoid on ``interval`` (uniform grid of ``points``).

    CKKS evaluates only additions and multiplications, so the sigmoid is replaced by a low-degree polynomial
    (Kim et al. 2018, "Logistic regression model training based on the approximate homomorphic encryption").

    Args:
        degree: polynomial degree, in [1, 15].
        interval: ``(a, b)`` with ``a < b``, the input range the fit is good on.
        points: number of grid points, at least ``4 * (degree + 1)``.

    Returns:
        a :class:`PolyFit` whose ``max_error`` is the largest |poly - sigmoid| on the grid.
    """
    if isinstance(degree, bool) or not isinstance(degree, int) or not 1 <= degree <= 15:
        raise ValueError(f"degree must be an int in [1, 15], got {degree!r}")
    a, b = (float(v) for v in interval)
    if not (np.isfinite(a) and np.isfinite(b) and a < b):
        raise ValueError(f"interval must be (a, b) with finite a < b, got {interval!r}")
    if points < 4 * (degree + 1):
        raise ValueError(f"points must be >= 4 * (degree + 1) = {4 * (degree + 1)}, got {points!r}")
    x = np.linspace(a, b, points)
    y = 1.0 / (1.0 + np.exp(-x))
    coef = np.polynomial.polynomial.polyfit(x, y, degree)
    err = float(np.max(np.abs(np.polynomial.polynomial.polyval(x, coef) - y)))
    return PolyFit(tuple(float(c) for c in coef), (a, b), err)


# ------------------------------------------------------------------------------------------ the server's model
def _linear_params(layer: nn.Linear) -> tuple[np.ndarray, np.ndarray]:
    w = layer.weight.detach().cpu().double().numpy().copy()
    b = (layer.bias.detach().cpu().double().numpy().copy() if layer.bias is not None
         else np.zeros(w.shape[0]))
    return w, b


class _EncryptedNet:
    """Plaintext weights of a network the server evaluates on ciphertexts: linear layers with square
    activations between them, and an optional polynomial applied to the outputs."""

    def __init__(self, layers: list[tuple[np.ndarray, np.ndarray]], output_poly: Optional[PolyFit]):
        self.layers = layers
        self.output_poly = output_poly
        self._plain_cache: dict = {}  # encoded weight plaintexts, by (name, level, scale)
        if output_poly is not None and not 1 <= effective_poly(output_poly)[1] <= 3:
            raise ValueError(f"output polynomial degree must be in [1, 3] for encrypted evaluation, "
                             f"got coefficients {output_poly.coefficients}")

    @property
    def in_features(self) -> int:
        return self.layers[0][0].shape[1]

    @property
    def out_features(self) -> int:
        return self.layers[-1][0].shape[0]

    @property
    def depth(self) -> int:
        """Multiplicative depth: one level per linear layer and per square, plus the output polynomial's."""
        d = 2 * len(self.layers) - 1
        if self.output_poly is not None:
            d += 2 if effective_poly(self.output_poly)[1] == 3 else 1
        return d

    def plain(self, x: np.ndarray) -> np.ndarray:
        """The same computation in float64 (what the ciphertexts approximate). Shape ``(B, in) -> (B, out)``."""
        h = np.asarray(x, dtype=float)
        for i, (w, b) in enumerate(self.layers):
            h = h @ w.T + b
            if i < len(self.layers) - 1:
                h = h * h
        if self.output_poly is not None:
            h = self.output_poly(h)
        return h


class EncryptedMLP(_EncryptedNet):
    """The server's copy of a trained square-activation MLP (``mlsec_kit.models.mlp(..., activation="square")``):
    ``Flatten, Linear, Square, Linear[, Square, Linear ...]``.

    Args:
        model: the trained torch model (not modified).
    """

    def __init__(self, model: nn.Module):
        mods = [m for m in model.modules() if not isinstance(m, (nn.Sequential, nn.Flatten, nn.Dropout))]
        ok = len(mods) >= 3 and len(mods) % 2 == 1 and all(
            isinstance(m, nn.Linear) if i % 2 == 0 else isinstance(m, Square) for i, m in enumerate(mods))
        if not ok:
            raise ValueError("model must be Linear, Square, Linear[, Square, Linear ...] (build it with "
                             "mlsec_kit.models.mlp(..., activation='square')), got "
                             + ", ".join(type(m).__name__ for m in mods))
        super().__init__([_linear_params(m) for m in mods[::2]], None)


class EncryptedLogReg(_EncryptedNet):
    """The server's copy of a trained logistic regression (``Flatten, Linear``); with ``sigmoid`` a
    :class:`PolyFit` of degree <= 3 it returns the polynomial sigmoid of each logit instead of the logit.

    Args:
        model: the trained torch model (not modified).
        sigmoid: optional polynomial sigmoid applied to the outputs (see :func:`poly_sigmoid`).
    """

    def __init__(self, model: nn.Module, *, sigmoid: Optional[PolyFit] = None):
        mods = [m for m in model.modules() if not isinstance(m, (nn.Sequential, nn.Flatten, nn.Dropout))]
        if len(mods) != 1 or not isinstance(mods[0], nn.Linear):
            raise ValueError("model must be a single Linear layer (mlsec_kit.models.logistic_regression), got "
                             + ", ".join(type(m).__name__ for m in mods))
        if sigmoid is not None and not isinstance(sigmoid, PolyFit):
            raise TypeError(f"sigmoid must be a PolyFit from poly_sigmoid() or None, got {type(sigmoid).__name__}")
        super().__init__([_linear_params(mods[0])], sigmoid)


# --------------------------------------------------------------------------------------------- the parties
def _check_parties(client, server) -> tuple[Client, Server]:
    """The roles' objects, CKKS, built from the same parameters; raw TenSEAL contexts are refused with a hint."""
    if not isinstance(client, Client):
        raise TypeError(f"client must be a mlsec_kit.crypto.he.Client (Client(ckks_context(...))), got "
                        f"{type(client).__name__}")
    _check_server(server)
    if client.he.scheme != "ckks":
        raise ValueError(f"client: encrypted inference and training need a CKKS context, got {client.he.scheme!r}")
    mine = (client.he.poly_modulus_degree, tuple(client.he.coeff_mod_bit_sizes))
    theirs = (server.he.poly_modulus_degree, tuple(server.he.coeff_mod_bit_sizes))
    if mine != theirs:
        raise ValueError(f"server: its public context (N, chain) = {theirs} does not match the client's {mine}; "
                         f"build it as Server(client.public_context())")
    if client.he.key_id != server.he.key_id:
        raise ValueError("server: its public context holds another key pair than the client's (same parameters, "
                         "different public key); build it as Server(client.public_context())")
    return client, server


def _check_server(server) -> Server:
    if not isinstance(server, Server):
        raise TypeError(f"server must be a mlsec_kit.crypto.he.Server (Server(client.public_context())), got "
                        f"{type(server).__name__}")
    if server.he.context.is_private():
        raise ValueError("server must hold only the public context (no secret key): build it as "
                         "Server(client.public_context())")
    if server.he.scheme != "ckks":
        raise ValueError(f"server: encrypted inference and training need a CKKS context, got {server.he.scheme!r}")
    return server


def _reply(server: Server, cts: list) -> list[bytes]:
    """The server's answer as SEAL ciphertext bytes, counted on its wire."""
    out = [ct_to_bytes(c) for c in cts]
    server.wire.record("to_client", "ciphertext", sum(map(len, out)))
    return out


# --------------------------------------------------------------------------------------------- server side
def _server_simd(net: _EncryptedNet, server: Server, features: list[bytes]) -> list[bytes]:
    """Server: feature-major ciphertexts in, one ciphertext per output unit out."""
    eng = engine_for(_check_server(server))
    if len(features) != net.in_features:
        raise ValueError(f"features must hold {net.in_features} ciphertexts, got {len(features)}")
    cts = [v.ciphertext()[0] for v in server.receive(list(features))]
    for li, (w, b) in enumerate(net.layers):
        e = eng.product_scale(cts[0])
        out = []
        for i in range(w.shape[0]):
            acc = None
            for j in range(w.shape[1]):
                if w[i, j] == 0.0:
                    continue
                p = eng.mul_plain(cts[j], float(w[i, j]), e)
                if acc is None:
                    acc = p
                else:
                    eng.ev.add_inplace(acc, p)
            if acc is None:
                raise ValueError(f"layer {li} has an all-zero row {i}; encrypted evaluation needs a nonzero row")
            out.append(eng.add_plain(eng.rescale(acc), float(b[i])))
        cts = out if li == len(net.layers) - 1 else [eng.square(c) for c in out]
    if net.output_poly is not None:
        cts = [eng.output_poly(c, net.output_poly) for c in cts]
    return _reply(server, cts)


def _packed_plan(net: _EncryptedNet, slots: int):
    if len(net.layers) > 2:
        raise ValueError(f"strategy='packed' supports at most 2 linear layers, got {len(net.layers)}")
    n = pow2(net.in_features)
    if len(net.layers) == 1:
        m = pow2(net.out_features)
        need = m * n
    else:
        h = pow2(net.layers[0][0].shape[0])
        need = max(n * h, net.out_features * h)
    if need > slots:
        raise ValueError(f"strategy='packed' needs {need} slots for this model, the context has slots={slots}")
    return n


def _packed_input_layout(net: _EncryptedNet, x: np.ndarray, slots: int) -> np.ndarray:
    """The client's packing of one image: tiled with period n (one layer), or input-major with each feature
    repeated h times (two layers), repeated to fill the slots."""
    n = pow2(net.in_features)
    xp = np.zeros(n)
    xp[: x.size] = x
    if len(net.layers) == 2:
        h = pow2(net.layers[0][0].shape[0])
        xp = np.repeat(xp, h)
    return np.tile(xp, slots // xp.size)


def _packed_period(net: _EncryptedNet) -> int:
    """The spacing of the outputs in a packed result: the last layer's padded input width."""
    return pow2(net.layers[-1][0].shape[1]) if len(net.layers) == 2 else pow2(net.in_features)


def _packed_output_slots(net: _EncryptedNet) -> np.ndarray:
    """Slots of the packed result that hold the outputs (when the server sums): r * period."""
    return np.arange(net.out_features) * _packed_period(net)


def _packed_read(net: _EncryptedNet, slots: np.ndarray) -> np.ndarray:
    """The client's outputs from a decrypted packed reply: block sums of the shares, or the output slots."""
    if _client_sums(net):
        period = _packed_period(net)
        return slots[: net.out_features * period].reshape(net.out_features, period).sum(axis=1)
    return slots[_packed_output_slots(net)]


def _client_sums(net: _EncryptedNet) -> bool:
    """Whether a packed reply leaves the last layer's sums to the client (no output polynomial to apply after)."""
    return net.output_poly is None


def _block_sum_layer(eng: Engine, ct, w: np.ndarray, b: np.ndarray, period: int, cache: dict, key: str,
                     *, shares: bool = False):
    """Input tiled with period `period`; slot r*period ends up holding (w x + b)_r, or, with ``shares``, the
    block of slots ``[r*period, (r+1)*period)`` sums to it (no rotations: the client adds the block up)."""
    m, k = w.shape

    def pattern():
        out = np.zeros(eng.slots)
        for r in range(m):
            out[r * period: r * period + k] = w[r]
        return out.tolist()

    def bias():
        out = np.zeros(eng.slots)
        out[np.arange(m) * period] = b
        return out.tolist()

    acc = eng.rescale(eng.mul_plain(ct, pattern, eng.product_scale(ct), cache=cache, key=key + "w"))
    if not shares:
        eng.rotate_sum(acc, [1 << t for t in range(period.bit_length() - 1)])
    return eng.add_plain(acc, bias, cache=cache, key=key + "b")


def _server_packed(net: _EncryptedNet, server: Server, image: bytes) -> bytes:
    """Server: one packed image in, one ciphertext out whose slots r * period hold the outputs.
    The weight and bias plaintexts are encoded on the first query and kept with the model."""
    eng = engine_for(_check_server(server))
    if eng.gk is None:
        raise ValueError("strategy='packed' needs Galois keys in the server's public context "
                         "(ckks_context(..., galois=True))")
    ct = server.receive(image).ciphertext()[0]
    n = pow2(net.in_features)
    cache = net._plain_cache
    shares = _client_sums(net)
    if len(net.layers) == 1:
        w, b = net.layers[0]
        ct = _block_sum_layer(eng, ct, w, b, n, cache, "out", shares=shares)
    else:
        (w1, b1), (w2, b2) = net.layers
        h = pow2(w1.shape[0])

        def pattern():  # slot j*h + k holds W1[k, j]
            out = np.zeros((n, h))
            out[: w1.shape[1], : w1.shape[0]] = w1.T
            return np.tile(out.ravel(), eng.slots // (n * h)).tolist()

        def bias():
            out = np.zeros(h)
            out[: b1.size] = b1
            return np.tile(out, eng.slots // h).tolist()

        ct = eng.rescale(eng.mul_plain(ct, pattern, eng.product_scale(ct), cache=cache, key="w1"))
        eng.rotate_sum(ct, [h << t for t in range(n.bit_length() - 1)])  # every slot s holds h_{s mod h}
        ct = eng.square(eng.add_plain(ct, bias, cache=cache, key="b1"))
        ct = _block_sum_layer(eng, ct, w2, b2, h, cache, "out", shares=shares)
    bits = server.he.coeff_mod_bit_sizes[0]
    if shares:  # each output's products stay in its block, masked so that only the block's sum means anything
        eng.mask_shares(ct, net.out_features, _packed_period(net), first_prime_bits=bits)
    else:
        ct = eng.output_poly(ct, net.output_poly)
        # the other slots hold the rotate-and-sum windows (W2 up to a scale per column): mask them before replying
        eng.mask_slots(ct, _packed_output_slots(net), first_prime_bits=bits)
    return _reply(server, [ct])[0]


# ------------------------------------------------------------------ Halevi-Shoup diagonals, baby-step/giant-step
def _diagonal_dims(net: _EncryptedNet, slots: int) -> list[int]:
    """The square size ``d`` (a power of two) each linear layer is padded to."""
    if len(net.layers) > 2:
        raise ValueError(f"strategy='diagonal' supports at most 2 linear layers, got {len(net.layers)}")
    dims = [pow2(max(w.shape)) for w, _ in net.layers]
    if len(dims) == 2 and dims[1] > dims[0]:
        raise ValueError(f"strategy='diagonal' needs the second layer no wider than the first (padded sizes {dims})")
    if dims[0] > slots:
        raise ValueError(f"strategy='diagonal' needs {dims[0]} slots for this model, the context has slots={slots}")
    return dims


def _diagonal_input_layout(net: _EncryptedNet, x: np.ndarray, slots: int) -> np.ndarray:
    """The client's packing of one image: zero-padded to ``d`` and tiled over the slots (period ``d``)."""
    d = _diagonal_dims(net, slots)[0]
    xp = np.zeros(d)
    xp[: x.size] = x
    return np.resize(xp, slots)


def _bsgs(d: int) -> tuple[int, int]:
    """Baby steps ``b1`` and giant steps ``g1`` with ``b1 * g1 = d``, ``b1 ~ sqrt(d)`` (powers of two)."""
    b1 = 1 << ((d.bit_length() - 1 + 1) // 2)
    return b1, d // b1


def _diagonal_layer(eng: Engine, ct, w: np.ndarray, b: np.ndarray, d: int, cache: dict, key: str):
    """``W x + b`` by Halevi & Shoup's diagonal method with baby-step/giant-step (Halevi & Shoup 2014, sec. 4):
    ``y = sum_i diag_i * rot(x, i)`` with ``diag_i[j] = W[j, (j + i) mod d]``, ``i = g b1 + b``, regrouped as
    ``sum_g rot(sum_b rot(diag_i, -g b1) * rot(x, b), g b1)``: ``b1 - 1`` baby rotations of the input, ``g1 - 1``
    giant ones (Horner, one power-of-two step each), ``d`` plaintext products, one rescale per giant step.
    ``ct`` holds ``x`` zero-padded to ``d`` and tiled with period ``d``; so does the result."""
    m, n = w.shape
    wp = np.zeros((d, d))
    wp[:m, :n] = w
    b1, g1 = _bsgs(d)
    rows = np.arange(d)

    def diag(i: int, g: int):
        def make():  # diag_i rotated right by g * b1, tiled
            return np.resize(np.roll(wp[rows, (rows + i) % d], g * b1), eng.slots).tolist()
        return make

    baby = [ct]
    for _ in range(1, b1):
        baby.append(eng.rotate(baby[-1], 1))
    e = eng.product_scale(ct)
    acc = None
    for g in reversed(range(g1)):  # Horner over the giant steps: acc = rot(acc, b1) + inner_g
        if acc is not None:
            eng.rotate(acc, b1, inplace=True)
        inner = None
        for bb in range(b1):
            i = g * b1 + bb
            if not wp[rows, (rows + i) % d].any():
                continue
            p = eng.mul_plain(baby[bb], diag(i, g), e, cache=cache, key=f"{key}d{i}")
            if inner is None:
                inner = p
            else:
                eng.ev.add_inplace(inner, p)
        if inner is not None:
            eng.rescale(inner)
            if acc is None:
                acc = inner
            else:
                eng.ev.add_inplace(acc, inner)
    if acc is None:
        raise ValueError(f"layer {key} is all zeros; encrypted evaluation needs a nonzero weight")
    bias = np.zeros(d)
    bias[:m] = b
    return eng.add_plain(acc, lambda: np.resize(bias, eng.slots).tolist(), cache=cache, key=key + "b")


def _server_diagonal(net: _EncryptedNet, server: Server, image: bytes) -> bytes:
    """Server: one image in (zero-padded to d and tiled), Halevi-Shoup diagonal products per layer, one
    ciphertext out whose first ``out_features`` slots are the outputs; the other slots are masked."""
    eng = engine_for(_check_server(server))
    if eng.gk is None:
        raise ValueError("strategy='diagonal' needs Galois keys in the server's public context "
                         "(ckks_context(..., galois=True))")
    dims = _diagonal_dims(net, eng.slots)
    ct = server.receive(image).ciphertext()[0]
    cache = net._plain_cache
    for li, ((w, b), d) in enumerate(zip(net.layers, dims)):
        ct = _diagonal_layer(eng, ct, w, b, d, cache, f"diag{li}")
        if li < len(net.layers) - 1:
            step = dims[li + 1]  # re-tile with the next layer's period: the valid outputs sit in [0, step)
            while step < d:
                eng.ev.add_inplace(ct, eng.rotate(ct, -step))
                step *= 2
            ct = eng.square(ct)
    if net.output_poly is not None:
        ct = eng.output_poly(ct, net.output_poly)
    eng.mask_slots(ct, np.arange(net.out_features), first_prime_bits=server.he.coeff_mod_bit_sizes[0])
    return _reply(server, [ct])[0]


def _server_per_image(net: _EncryptedNet, server: Server, image: bytes) -> bytes:
    """Server: one image's ciphertext in, TenSEAL vector-matrix products, the output vector's ciphertext out."""
    _check_server(server)
    if not server.he.context.has_galois_keys():
        raise ValueError("strategy='per_image' needs Galois keys in the server's public context "
                         "(ckks_context(..., galois=True))")
    v = server.receive(image)
    for i, (w, b) in enumerate(net.layers):
        # Server.add tiles the bias like TenSEAL tiles v (v.mm(W) + list would add it to the first copy only, and
        # the next layer's mm, which reads the copies, was off by 1.9% of the logit range)
        v = server.add(v.mm(w.T.tolist()), b)
        if i < len(net.layers) - 1:
            v = v.square()
    if net.output_poly is not None:
        c, deg = effective_poly(net.output_poly)  # the terms net.depth counts (a 1e-17 x^2 would cost a level)
        v = v.polyval(c[: deg + 1])
    # only the first out slots are the answer; the rest (TenSEAL's copies and the mm's partial sums) are masked
    eng = engine_for(server)
    ct = eng.mask_slots(v.ciphertext()[0], np.arange(net.out_features),
                        first_prime_bits=server.he.coeff_mod_bit_sizes[0])
    return server.send(server.receive(ckks_vector_bytes(ct, v.size(), server.he.context.global_scale)))


# --------------------------------------------------------------------------------------------- the protocol
@dataclass
class EncryptedPrediction:
    """Decrypted outputs of :func:`encrypted_predict` with what it cost.

    Attributes:
        logits: ``(B, out)`` float64 tensor (probabilities when the model has an output polynomial).
        seconds: ``{"encrypt", "compute", "decrypt"}`` wall-clock seconds for the whole batch (encrypt includes the
            client's serialisation, decrypt the client's deserialisation).
        bytes_sent: bytes of ciphertexts the client sent to the server in this call (also on ``client.wire``).
        bytes_received: bytes of ciphertexts the server sent back in this call (also on ``server.wire``). The public
            context is sent once, by :meth:`Client.public_context`, and is counted on the wire, not here.
        depth_used: levels consumed (rescalings) between the fresh and the result ciphertexts.
    """
    logits: torch.Tensor
    seconds: dict
    bytes_sent: int
    bytes_received: int
    depth_used: int


def _needs_relin(net: _EncryptedNet) -> bool:
    """Whether evaluating ``net`` multiplies two ciphertexts (a square, or x^2 / x^3 in the output polynomial)."""
    return len(net.layers) > 1 or (net.output_poly is not None and effective_poly(net.output_poly)[1] >= 2)


def _as_net(model) -> _EncryptedNet:
    if isinstance(model, _EncryptedNet):
        return model
    if isinstance(model, nn.Module):
        has_square = any(isinstance(m, Square) for m in model.modules())
        return EncryptedMLP(model) if has_square else EncryptedLogReg(model)
    raise TypeError(f"model must be an EncryptedMLP, EncryptedLogReg or a torch model, got {type(model).__name__}")


def encrypted_predict(model, x: torch.Tensor, *, client: Client, server: Server,
                      strategy: str = "simd") -> EncryptedPrediction:
    """Encrypt ``x`` on the client, evaluate ``model`` on the server (public context only), decrypt.

    Args:
        model: :class:`EncryptedMLP`, :class:`EncryptedLogReg`, or a torch model either can be built from.
        x: ``(B, *input_shape)`` finite inputs (flattened to ``(B, in_features)``); not modified.
        client: the :class:`~mlsec_kit.crypto.he.Client` (CKKS, holds the secret key); its ``wire`` counts the
            ciphertext bytes it sends.
        server: ``Server(client.public_context())`` (no secret key; Galois keys for ``"packed"``, ``"diagonal"``
            and ``"per_image"``); its ``wire`` counts the bytes it sends back.
        strategy: one of ``"per_image"``, ``"simd"``, ``"packed"``, ``"diagonal"`` (see the module docstring).

    Returns:
        :class:`EncryptedPrediction`.

    Shape:
        ``x`` ``(B, ...)`` with ``prod(...) == in_features`` -> ``logits`` ``(B, out_features)``.
    """
    if strategy not in STRATEGIES:
        hint = ""
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}{hint}")
    net = _as_net(model)
    client, server = _check_parties(client, server)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 1 or x.shape[0] < 1:
        raise ValueError(f"x must have shape (B, ...) with B >= 1, got {tuple(x.shape)}")
    if x.is_complex() or not (x.is_floating_point() or x.dtype in (torch.int8, torch.int16, torch.int32,
                                                                   torch.int64, torch.uint8)):
        raise TypeError(f"x must hold real numbers, got dtype {x.dtype}")
    xs = x.detach().cpu().double().reshape(x.shape[0], -1).numpy()
    if xs.shape[1] != net.in_features:
        raise ValueError(f"x must have {net.in_features} features per row, got {xs.shape[1]}")
    if not np.all(np.isfinite(xs)):
        raise ValueError("x must be finite (no NaN or infinity)")
    if _needs_relin(net) and not server.he.context.has_relin_keys():
        raise ValueError("server: the model squares ciphertexts (square activation or an output polynomial of "
                         "degree >= 2), which needs relinearisation keys; build the context with relin=True")
    eng = engine_for(client)
    if strategy == "packed":
        _packed_plan(net, eng.slots)
    if strategy == "diagonal":
        _diagonal_dims(net, eng.slots)
    levels = eng.sc.first_context_data().chain_index()
    if net.depth > levels:
        raise ValueError(f"the model needs depth {net.depth} but the context has depth {levels} "
                         f"(multiplicative levels); use a longer coefficient modulus chain")
    dec = seal.Decryptor(eng.sc, client.he.context.secret_key().data)
    B, out = xs.shape[0], net.out_features
    result = np.zeros((B, out))
    t = {"encrypt": 0.0, "compute": 0.0, "decrypt": 0.0}
    sent0, received0 = client.wire.to_server, server.wire.to_client
    depth_used = 0

    def decrypt(ct) -> np.ndarray:
        p = seal.Plaintext()
        dec.decrypt(ct, p)
        return np.asarray(eng.encoder.decode_double(p))

    if strategy == "simd":
        for start in range(0, B, eng.slots):
            chunk = xs[start: start + eng.slots]
            t0 = time.perf_counter()
            msgs = client.send_encrypted(chunk, layout="columns")
            t1 = time.perf_counter()
            replies = _server_simd(net, server, msgs)
            t2 = time.perf_counter()
            cts = [ct_from_bytes(eng.sc, r) for r in replies]
            result[start: start + len(chunk)] = np.stack([decrypt(c)[: len(chunk)] for c in cts], axis=1)
            t3 = time.perf_counter()
            depth_used = levels - eng.level(cts[0])
            t["encrypt"] += t1 - t0
            t["compute"] += t2 - t1
            t["decrypt"] += t3 - t2
    elif strategy in ("packed", "diagonal"):
        read = (lambda v: _packed_read(net, v)) if strategy == "packed" else (lambda v: v[:out])
        layout, serve = ((_packed_input_layout, _server_packed) if strategy == "packed"
                         else (_diagonal_input_layout, _server_diagonal))
        for i in range(B):
            t0 = time.perf_counter()
            msg = client.send_encrypted(layout(net, xs[i], eng.slots))
            t1 = time.perf_counter()
            reply = serve(net, server, msg)
            t2 = time.perf_counter()
            ct = ct_from_bytes(eng.sc, reply)
            result[i] = read(decrypt(ct))
            t3 = time.perf_counter()
            depth_used = levels - eng.level(ct)
            t["encrypt"] += t1 - t0
            t["compute"] += t2 - t1
            t["decrypt"] += t3 - t2
    else:
        for i in range(B):
            t0 = time.perf_counter()
            msg = client.send_encrypted(xs[i])
            t1 = time.perf_counter()
            reply = _server_per_image(net, server, msg)
            t2 = time.perf_counter()
            v = client.receive(reply)
            result[i] = client.decrypt(v).numpy()[:out]
            t3 = time.perf_counter()
            depth_used = levels - eng.level(v.ciphertext()[0])
            t["encrypt"] += t1 - t0
            t["compute"] += t2 - t1
            t["decrypt"] += t3 - t2
    sent = client.wire.to_server - sent0
    received = server.wire.to_client - received0
    return EncryptedPrediction(torch.from_numpy(result), t, sent, received, depth_used)
