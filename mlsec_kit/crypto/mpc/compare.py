"""Secure comparison and ReLU on additive shares, with a dealer's bit-decomposed mask.

The sign of a shared fixed-point value ``x`` (ring integer ``X``, assumed ``|X| < 2^(k-1)``, ``k =``
:data:`COMPARE_BITS`) is the top bit of ``y = X + 2^m`` (``m = k - 1``), which lies in ``[0, 2^k)``:
``[x >= 0] = floor(y / 2^m)``. The dealer hands out shares of a uniform ``r`` in ``[0, 2^(k+σ))``
(``k + σ = 62``, so nothing wraps), of ``r >> m``, and of the ``m`` low bits of ``r`` one by one. The parties open
``c = y + r``: a statistically masked value, within ``2^-σ`` (``σ =`` :data:`STATISTICAL_BITS`) of revealing nothing
about ``y`` (Catrina & de Hoogh 2010, "Improved primitives for secure multiparty integer computation"). Writing
``c = C 2^m + c'`` and ``r = R 2^m + r'``: ``floor(y / 2^m) = C - R - [c' < r']``. The last term compares a public
number with a secret one given in shared bits: at the most significant bit where they differ, ``r'`` has a 1. With
``d_j = c_j XOR r_j`` (linear, ``c_j`` public) and the prefix products ``q_j = prod_{t above j} (1 - d_t)`` (1 while
no difference has been seen), ``[c' < r'] = sum_j q_j r_j (1 - c_j)``. The prefix products take ``ceil(log2 m)``
rounds of Beaver products (a Hillis-Steele scan), the sum one more. ``relu(x) = x [x >= 0]``, one more Beaver
product of the fixed-point ``x`` with the integer bit (no truncation).

Cost per element: 1 + ceil(log2 m) + 1 rounds for the comparison (8 with the defaults), 9 for ReLU; the dealer's
material is ``m + 2`` ring elements plus the Beaver triples. The result is exact (no fixed-point error) whenever
``|x| < 2^(k - 1 - f)`` (2^19 = 524288 with the defaults); larger values give wrong signs, which the parties
cannot check (they cannot see ``x``; :func:`mlsec_kit.crypto.mpc.error_bound` flags such inputs in the simulation).
With ``frac_bits = 30`` (the largest allowed) the exact range shrinks to ``|x| < 32``.

Statistical security: ``σ = 62 - k = 26`` bits per opened element, so over one ReLU-MLP inference of the digits
test set (450 x 32 comparisons) the union bound on any leak is about ``2 · 10^-4``, far from the ``2^-40`` that
MP-SPDZ or SPDZ take by default. This is inherent in a 64-bit ring (``k + σ <= 62`` so that ``c`` never wraps): a
larger ``σ`` costs exact range (``k``), and frameworks that want both use a larger ring or field.
"""
from __future__ import annotations

import math

import torch

from .network import SharedTensor
from .protocol import beaver_product, sub

__all__ = ["COMPARE_BITS", "STATISTICAL_BITS", "sign_bit", "greater_equal_zero", "greater_equal", "relu"]

#: the comparison is exact for ring integers |X| < 2^(COMPARE_BITS - 1), i.e. |x| < 2^(COMPARE_BITS - 1 - frac_bits)
COMPARE_BITS = 36
#: the opened ``c = y + r`` is within statistical distance 2^-STATISTICAL_BITS of independent of ``y``
STATISTICAL_BITS = 62 - COMPARE_BITS


def _local(x: SharedTensor, fn, shape) -> SharedTensor:
    return x.network._local(lambda p: fn(p.index, p.share_of(x.handle)), shape)


def _prefix_products(a: SharedTensor) -> SharedTensor:
    """Inclusive prefix products along the last dimension, ``ceil(log2 m)`` rounds (Hillis-Steele scan)."""
    m = a.shape[-1]
    step = 1
    while step < m:
        hi = _local(a, lambda i, s: s[..., step:].clone(), a.shape[:-1] + (m - step,))
        lo = _local(a, lambda i, s: s[..., :m - step].clone(), a.shape[:-1] + (m - step,))
        prod = beaver_product(hi, lo)
        a = a.network._local(lambda p: torch.cat([p.share_of(a.handle)[..., :step], p.share_of(prod.handle)], -1),
                             a.shape)
        step *= 2
    return a


def sign_bit(x: SharedTensor) -> SharedTensor:
    """``[x >= 0]`` as a shared ring *integer* 0 or 1 (scale 1, not fixed point): the building block of
    :func:`relu` and :func:`greater_equal_zero`. Precondition: ``|x| < 2^(COMPARE_BITS - 1 - frac_bits)``."""
    if not isinstance(x, SharedTensor):
        raise TypeError(f"x must be a SharedTensor, got {type(x).__name__}")
    net = x.network
    k = COMPARE_BITS
    m = k - 1
    r, r_high, r_bits = net.dealer.comparison_mask(x.shape, low_bits=m, mask_bits=k + STATISTICAL_BITS)
    offset = 2 ** m
    masked = net._local(lambda p: p.share_of(x.handle) + r[p.index] + (offset if p.index == 0 else 0), x.shape)
    c = net._open({"compare.c": masked})["compare.c"]
    c_high = c >> m
    shifts = torch.arange(m - 1, -1, -1, dtype=torch.int64)
    cb = ((c & (offset - 1)).unsqueeze(-1) >> shifts) & 1          # public bits of c', most significant first
    bshape = tuple(x.shape) + (m,)
    # 1 - d_j = 1 - (c_j + r_j - 2 c_j r_j), with the public terms added by party 0
    one_minus_d = net._local(lambda p: -(r_bits[p.index] * (1 - 2 * cb)) + ((1 - cb) if p.index == 0 else 0),
                             bshape)
    incl = _prefix_products(one_minus_d)
    # q_j = product over the bits above j: a shared 1 in front of the inclusive products, shifted by one
    excl = net._local(lambda p: torch.cat([torch.full(tuple(x.shape) + (1,), 1 if p.index == 0 else 0,
                                                      dtype=torch.int64),
                                           p.share_of(incl.handle)[..., :m - 1]], -1), bshape)
    t = net._local(lambda p: r_bits[p.index] * (1 - cb), bshape)
    terms = beaver_product(excl, t)
    return net._local(lambda p: (c_high if p.index == 0 else 0) - r_high[p.index]
                      - p.share_of(terms.handle).sum(-1), x.shape)


def greater_equal_zero(x: SharedTensor) -> SharedTensor:
    """``[x >= 0]`` as a fixed-point 0.0 or 1.0 (see :func:`sign_bit`)."""
    b = sign_bit(x)
    scale = 2 ** x.network.frac_bits
    return _local(b, lambda i, s: s * scale, b.shape)


def greater_equal(x: SharedTensor, y: SharedTensor) -> SharedTensor:
    """``[x >= y]`` as a fixed-point 0.0 or 1.0: the sign of ``x - y``."""
    return greater_equal_zero(sub(x, y))


def relu(x: SharedTensor) -> SharedTensor:
    """``[max(x, 0)] = [x] [x >= 0]``: :func:`sign_bit`, then one Beaver product with the integer bit (exact, no
    truncation)."""
    return beaver_product(x, sign_bit(x))


def rounds(*, bits: int = COMPARE_BITS) -> int:
    """Online rounds of :func:`sign_bit`: open ``c``, ``ceil(log2(bits - 1))`` scan levels, the final products."""
    return 2 + math.ceil(math.log2(bits - 1))
