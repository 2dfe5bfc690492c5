"""Encrypted inference with CKKS (TenSEAL): a client encrypts, a server that holds only the public context
computes logits on ciphertexts, the client decrypts.

Three strategies for the same network (:func:`encrypted_predict`):

- ``"per_image"``: one ciphertext per image and TenSEAL's vector-matrix product per layer (the naive one).
- ``"simd"``: feature-major batching, one ciphertext per *feature* holding that feature of up to N/2 images;
  a linear layer is a sum of ciphertext-times-plaintext-scalar products, rescaled once per output unit
  (CryptoNets, Gilad-Bachrach et al. 2016). Best throughput.
- ``"diagonal"``: one image, packed with replication so that a whole matrix-vector product costs one
  plaintext multiplication and log2(width) rotations with Galois keys (rotate-and-sum; the packing generalises
  the diagonal method of Halevi & Shoup 2014, which needs about 2*sqrt(width) rotations with baby-step/giant-step).
  Best latency.

The server-side functions receive only serialised ciphertexts and a context without the secret key; they refuse
a context that holds one. The adapters ``_ts_context`` accept a ``tenseal.Context`` or any object that holds one
as ``.context`` / ``.tenseal_context`` (the roles of :mod:`mlsec_kit.crypto.he`), so they can be swapped.
"""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import tenseal as ts
import tenseal.sealapi as seal
import torch
from torch import nn

from mlsec_kit.models import Square

__all__ = ["PolyFit", "poly_sigmoid", "EncryptedLogReg", "EncryptedMLP", "EncryptedPrediction",
           "encrypted_predict", "STRATEGIES"]

STRATEGIES = ("per_image", "simd", "diagonal")


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
        if output_poly is not None and not 1 <= _effective_poly(output_poly)[1] <= 3:
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
            d += 2 if _effective_poly(self.output_poly)[1] == 3 else 1
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


# ---------------------------------------------------------------------------------- adapters over TenSEAL
def _ts_context(party, name: str) -> ts.Context:
    """The tenseal context a party holds (a ``tenseal.Context`` or an object with ``.context``)."""
    obj = party
    for _ in range(4):
        if isinstance(obj, ts.Context):
            return obj
        nxt = next((getattr(obj, a) for a in ("tenseal_context", "context", "ctx") if hasattr(obj, a)), None)
        if nxt is None:
            break
        obj = nxt() if callable(nxt) and not isinstance(nxt, ts.Context) else nxt
    raise TypeError(f"{name} must be a tenseal.Context or an object holding one as .context, "
                    f"got {type(party).__name__}")


def _server_context(server) -> ts.Context:
    ctx = _ts_context(server, "server")
    if ctx.is_private():
        raise ValueError("server must hold only the public context (no secret key): build it from the client's "
                         "public bytes, e.g. tenseal.context_from(ctx.serialize(save_secret_key=False))")
    return ctx


def _client_context(client) -> ts.Context:
    ctx = _ts_context(client, "client")
    if not ctx.is_private():
        raise ValueError("client must hold the secret key (a private context)")
    return ctx


_TMP = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def _ct_to_bytes(ct) -> bytes:
    """SEAL ciphertext -> bytes (sealapi saves to a file only: a memory-backed one where there is /dev/shm)."""
    fd, path = tempfile.mkstemp(suffix=".ct", dir=_TMP)
    os.close(fd)
    try:
        ct.save(path)
        with open(path, "rb") as f:
            return f.read()
    finally:
        os.remove(path)


def _ct_from_bytes(sc, data: bytes):
    fd, path = tempfile.mkstemp(suffix=".ct", dir=_TMP)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        ct = seal.Ciphertext()
        ct.load(sc, path)
        return ct
    finally:
        os.remove(path)


class _Engine:
    """SEAL-level evaluator over a (public) tenseal context, with explicit rescaling so that sums of
    ciphertext-plaintext products are rescaled once."""

    def __init__(self, ctx: ts.Context):
        self.sc = ctx.seal_context().data
        self.ev = seal.Evaluator(self.sc)
        self.encoder = seal.CKKSEncoder(self.sc)
        self.slots = self.encoder.slot_count()
        self.scale = float(ctx.global_scale)
        self.rk = ctx.relin_keys().data if ctx.has_relin_keys() else None
        self.gk = ctx.galois_keys().data if ctx.has_galois_keys() else None

    def level(self, ct) -> int:
        return self.sc.get_context_data(ct.parms_id()).chain_index()

    def _q_last(self, ct) -> int:
        return self.sc.get_context_data(ct.parms_id()).parms().coeff_modulus()[-1].value()

    def plain(self, value, ct, scale: float, *, cache: Optional[dict] = None, key=None):
        """Encode ``value`` at ``ct``'s level and ``scale``; with ``cache`` and ``key``, encode once (the server's
        model weights are the same for every query)."""
        if cache is not None:
            k = (key, tuple(ct.parms_id()), scale)
            if k not in cache:
                cache[k] = self.plain(value() if callable(value) else value, ct, scale)
            return cache[k]
        p = seal.Plaintext()
        self.encoder.encode(value, ct.parms_id(), scale, p)
        return p

    def product_scale(self, ct) -> float:
        """Encoding scale of a plaintext factor so that the rescaled product lands on the global scale."""
        return self.scale * self._q_last(ct) / ct.scale

    def mul_plain(self, ct, value, scale: float, **cache):
        out = seal.Ciphertext()
        self.ev.multiply_plain(ct, self.plain(value, ct, scale, **cache), out)
        return out

    def rescale(self, ct):
        self.ev.rescale_to_next_inplace(ct)
        return ct

    def add_plain(self, ct, value, **cache):
        self.ev.add_plain_inplace(ct, self.plain(value, ct, ct.scale, **cache))
        return ct

    def square(self, ct, *, inplace: bool = True):
        if inplace:
            self.ev.square_inplace(ct)
        else:
            out = seal.Ciphertext()
            self.ev.square(ct, out)
            ct = out
        self.ev.relinearize_inplace(ct, self.rk)
        return self.rescale(ct)

    def rotate_sum(self, ct, steps: Sequence[int]):
        """ct + rot(ct, s1), then the same with s2, ... (left rotations)."""
        for s in steps:
            r = seal.Ciphertext()
            self.ev.rotate_vector(ct, s, self.gk, r)
            self.ev.add_inplace(ct, r)
        return ct

    def output_poly(self, ct, poly: PolyFit):
        """c0 + c1 x + c2 x^2 + c3 x^3 with every term brought to the same level and scale (depth 1 or 2).
        Terms negligible on the fit's interval are dropped (SEAL refuses a product with a zero plaintext)."""
        c, deg = _effective_poly(poly)
        x2 = self.square(ct, inplace=False) if deg >= 2 else None
        if deg == 3:
            # c3 x, one level down, encoded so that its scale equals x^2's (both then lose the same prime)
            t = self.rescale(self.mul_plain(ct, c[3], x2.scale * self._q_last(ct) / ct.scale))
            t.scale = x2.scale  # equal up to the last bit of the double
            acc = seal.Ciphertext()
            self.ev.multiply(x2, t, acc)
            self.ev.relinearize_inplace(acc, self.rk)
            self.rescale(acc)
            if c[2] != 0.0:
                term = self.rescale(self.mul_plain(x2, c[2], acc.scale * self._q_last(x2) / x2.scale))
                term.scale = acc.scale
                self.ev.add_inplace(acc, term)
        elif deg == 2:
            acc = self.rescale(self.mul_plain(x2, c[2], self.product_scale(x2)))
        else:
            return self.add_plain(self.rescale(self.mul_plain(ct, c[1], self.product_scale(ct))), c[0])
        if c[1] != 0.0:
            lin = self.rescale(self.mul_plain(ct, c[1], acc.scale * self._q_last(ct) / ct.scale))
            self.ev.mod_switch_to_inplace(lin, acc.parms_id())
            lin.scale = acc.scale
            self.ev.add_inplace(acc, lin)
        return self.add_plain(acc, c[0])


def _effective_poly(poly: PolyFit) -> tuple[list[float], int]:
    """Coefficients (padded to 4) with the terms below 1e-9 on the interval set to 0, and the degree left."""
    r = max(abs(poly.interval[0]), abs(poly.interval[1]), 1.0)
    c = [v if abs(v) * r ** k >= 1e-9 else 0.0 for k, v in enumerate(poly.coefficients)]
    c += [0.0] * (4 - len(c))
    deg = max((k for k in range(len(c)) if c[k] != 0.0 and k > 0), default=0)
    return c, deg


def _pow2(n: int) -> int:
    return 1 << (int(n) - 1).bit_length()


# --------------------------------------------------------------------------------------------- server side
def _server_simd(net: _EncryptedNet, server, features: list[bytes]) -> list[bytes]:
    """Server: feature-major ciphertexts in, one ciphertext per output unit out."""
    ctx = _server_context(server)
    eng = _Engine(ctx)
    if len(features) != net.in_features:
        raise ValueError(f"features must hold {net.in_features} ciphertexts, got {len(features)}")
    cts = [ts.ckks_vector_from(ctx, b).ciphertext()[0] for b in features]
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
    return [_ct_to_bytes(c) for c in cts]


def _diagonal_plan(net: _EncryptedNet, slots: int):
    if len(net.layers) > 2:
        raise ValueError(f"strategy='diagonal' supports at most 2 linear layers, got {len(net.layers)}")
    n = _pow2(net.in_features)
    if len(net.layers) == 1:
        m = _pow2(net.out_features)
        need = m * n
    else:
        h = _pow2(net.layers[0][0].shape[0])
        need = max(n * h, net.out_features * h)
    if need > slots:
        raise ValueError(f"strategy='diagonal' needs {need} slots for this model, the context has slots={slots}")
    return n


def _diagonal_input_layout(net: _EncryptedNet, x: np.ndarray, slots: int) -> np.ndarray:
    """The client's packing of one image: tiled with period n (one layer), or input-major with each feature
    repeated h times (two layers), repeated to fill the slots."""
    n = _pow2(net.in_features)
    xp = np.zeros(n)
    xp[: x.size] = x
    if len(net.layers) == 2:
        h = _pow2(net.layers[0][0].shape[0])
        xp = np.repeat(xp, h)
    return np.tile(xp, slots // xp.size)


def _block_sum_layer(eng: _Engine, ct, w: np.ndarray, b: np.ndarray, period: int, cache: dict, key: str):
    """Input tiled with period `period`; slot r*period ends up holding (w x + b)_r."""
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
    eng.rotate_sum(acc, [1 << t for t in range(period.bit_length() - 1)])
    return eng.add_plain(acc, bias, cache=cache, key=key + "b")


def _server_diagonal(net: _EncryptedNet, server, image: bytes) -> bytes:
    """Server: one packed image in, one ciphertext out whose slots r * period hold the outputs.
    The weight and bias plaintexts are encoded on the first query and kept with the model."""
    ctx = _server_context(server)
    eng = _Engine(ctx)
    if eng.gk is None:
        raise ValueError("strategy='diagonal' needs Galois keys in the server's public context")
    ct = ts.ckks_vector_from(ctx, image).ciphertext()[0]
    n = _pow2(net.in_features)
    cache = net._plain_cache
    if len(net.layers) == 1:
        w, b = net.layers[0]
        ct = _block_sum_layer(eng, ct, w, b, n, cache, "out")
    else:
        (w1, b1), (w2, b2) = net.layers
        h = _pow2(w1.shape[0])

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
        ct = _block_sum_layer(eng, ct, w2, b2, h, cache, "out")
    if net.output_poly is not None:
        ct = eng.output_poly(ct, net.output_poly)
    return _ct_to_bytes(ct)


def _server_per_image(net: _EncryptedNet, server, image: bytes) -> bytes:
    """Server: one image's ciphertext in, TenSEAL vector-matrix products, the output vector's ciphertext out."""
    ctx = _server_context(server)
    v = ts.ckks_vector_from(ctx, image)
    for i, (w, b) in enumerate(net.layers):
        v = v.mm(w.T.tolist()) + b.tolist()
        if i < len(net.layers) - 1:
            v = v.square()
    if net.output_poly is not None:
        v = v.polyval(list(net.output_poly.coefficients))
    return v.serialize()


# --------------------------------------------------------------------------------------------- the protocol
@dataclass
class EncryptedPrediction:
    """Decrypted outputs of :func:`encrypted_predict` with what it cost.

    Attributes:
        logits: ``(B, out)`` float64 tensor (probabilities when the model has an output polynomial).
        seconds: ``{"encrypt", "compute", "decrypt"}`` wall-clock seconds for the whole batch.
        bytes_sent: bytes of ciphertexts the client sent to the server.
        bytes_received: bytes of ciphertexts the server sent back.
        depth_used: levels consumed (rescalings) between the fresh and the result ciphertexts.
    """
    logits: torch.Tensor
    seconds: dict
    bytes_sent: int
    bytes_received: int
    depth_used: int


def _as_net(model) -> _EncryptedNet:
    if isinstance(model, _EncryptedNet):
        return model
    if isinstance(model, nn.Module):
        has_square = any(isinstance(m, Square) for m in model.modules())
        return EncryptedMLP(model) if has_square else EncryptedLogReg(model)
    raise TypeError(f"model must be an EncryptedMLP, EncryptedLogReg or a torch model, got {type(model).__name__}")


def encrypted_predict(model, x: torch.Tensor, *, client, server, strategy: str = "simd") -> EncryptedPrediction:
    """Encrypt ``x`` on the client, evaluate ``model`` on the server (public context only), decrypt.

    Args:
        model: :class:`EncryptedMLP`, :class:`EncryptedLogReg`, or a torch model either can be built from.
        x: ``(B, *input_shape)`` inputs (flattened to ``(B, in_features)``); not modified.
        client: a private ``tenseal.Context`` (CKKS, with the secret key) or an object holding one.
        server: the matching public context (no secret key; Galois keys for ``"diagonal"`` and ``"per_image"``).
        strategy: one of ``"per_image"``, ``"simd"``, ``"diagonal"`` (see the module docstring).

    Returns:
        :class:`EncryptedPrediction`.

    Shape:
        ``x`` ``(B, ...)`` with ``prod(...) == in_features`` -> ``logits`` ``(B, out_features)``.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    net = _as_net(model)
    cctx = _client_context(client)
    sctx = _server_context(server)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 1 or x.shape[0] < 1:
        raise ValueError(f"x must have shape (B, ...) with B >= 1, got {tuple(x.shape)}")
    xs = x.detach().cpu().double().reshape(x.shape[0], -1).numpy()
    if xs.shape[1] != net.in_features:
        raise ValueError(f"x must have {net.in_features} features per row, got {xs.shape[1]}")
    eng = _Engine(cctx)
    if strategy == "diagonal":
        _diagonal_plan(net, eng.slots)
    levels = eng.sc.first_context_data().chain_index()
    if net.depth > levels:
        raise ValueError(f"the model needs depth {net.depth} but the context has depth {levels} "
                         f"(multiplicative levels); use a longer coefficient modulus chain")
    sk = cctx.secret_key().data
    dec = seal.Decryptor(eng.sc, sk)
    B, out = xs.shape[0], net.out_features
    result = np.zeros((B, out))
    t = {"encrypt": 0.0, "compute": 0.0, "decrypt": 0.0}
    sent = received = 0
    depth_used = 0

    def decrypt(ct) -> np.ndarray:
        p = seal.Plaintext()
        dec.decrypt(ct, p)
        return np.asarray(eng.encoder.decode_double(p))

    if strategy == "simd":
        for start in range(0, B, eng.slots):
            chunk = xs[start: start + eng.slots]
            t0 = time.perf_counter()
            msgs = [ts.ckks_vector(cctx, chunk[:, j].tolist()).serialize() for j in range(net.in_features)]
            t1 = time.perf_counter()
            replies = _server_simd(net, sctx, msgs)
            t2 = time.perf_counter()
            cts = [_ct_from_bytes(eng.sc, r) for r in replies]
            result[start: start + len(chunk)] = np.stack([decrypt(c)[: len(chunk)] for c in cts], axis=1)
            t3 = time.perf_counter()
            sent += sum(map(len, msgs))
            received += sum(map(len, replies))
            depth_used = levels - eng.level(cts[0])
            t["encrypt"] += t1 - t0
            t["compute"] += t2 - t1
            t["decrypt"] += t3 - t2
    elif strategy == "diagonal":
        period = _pow2(net.layers[-1][0].shape[1]) if len(net.layers) == 2 else _pow2(net.in_features)
        for i in range(B):
            t0 = time.perf_counter()
            msg = ts.ckks_vector(cctx, _diagonal_input_layout(net, xs[i], eng.slots).tolist()).serialize()
            t1 = time.perf_counter()
            reply = _server_diagonal(net, sctx, msg)
            t2 = time.perf_counter()
            ct = _ct_from_bytes(eng.sc, reply)
            result[i] = decrypt(ct)[np.arange(out) * period]
            t3 = time.perf_counter()
            sent += len(msg)
            received += len(reply)
            depth_used = levels - eng.level(ct)
            t["encrypt"] += t1 - t0
            t["compute"] += t2 - t1
            t["decrypt"] += t3 - t2
    else:
        for i in range(B):
            t0 = time.perf_counter()
            msg = ts.ckks_vector(cctx, xs[i].tolist()).serialize()
            t1 = time.perf_counter()
            reply = _server_per_image(net, sctx, msg)
            t2 = time.perf_counter()
            v = ts.ckks_vector_from(cctx, reply)
            result[i] = np.asarray(v.decrypt())[:out]
            t3 = time.perf_counter()
            sent += len(msg)
            received += len(reply)
            depth_used = levels - eng.level(v.ciphertext()[0])
            t["encrypt"] += t1 - t0
            t["compute"] += t2 - t1
            t["decrypt"] += t3 - t2
    return EncryptedPrediction(torch.from_numpy(result), t, sent, received, depth_used)
