"""Operations on additive shares among the parties of a :class:`~.network.Network`: linear operations, Beaver
multiplication, truncation, polynomials.

The network's message log keeps what each party received, so a test can check that during a Beaver product a party
receives only the opened masks ``e = x - a`` and ``f = y - b``, never ``x`` or ``y``.

Protocols (semi-honest parties, a trusted dealer for the preprocessing, as in SPDZ-style "offline/online" MPC):

* Linear operations on shares are local, with no communication: ``[x] + [y]``, ``[x] + c`` (party 0 adds ``c``),
  ``c [x]`` for a public integer ``c``; a public real ``c`` is encoded, multiplied and the product truncated.
* Multiplication of two secrets with a Beaver triple (Beaver 1991, "Efficient multiparty protocols using circuit
  randomization"): the dealer hands out shares of random ``a, b`` and ``c = a b``; the parties open
  ``e = x - a`` and ``f = y - b`` (one round, both at once) and compute locally
  ``[z] = [c] + e [b] + f [a] + e f`` (the public ``e f`` added by party 0), so ``z = x y``. ``e`` and ``f`` are
  one-time-padded by the uniform ``a`` and ``b``, so they reveal nothing about ``x`` and ``y``. Matrix triples
  (``c = a @ b``) give a secret-by-secret matrix product in one round the same way; a square pair ``(a, a²)``
  gives ``[x]²`` with one opening instead of two.
* Truncation after a fixed-point product (scale ``2^(2f)`` back to ``2^f``), two ways:
  ``"local"`` (2 parties only; SecureML, Mohassel & Zhang 2017, Theorem 1): party 0 shifts its share right by
  ``f``, party 1 computes ``-((-x_1) >> f)``; no communication, result within 1 ulp (``2^-f``) of ``x / 2^f``,
  except with probability at most ``2^(l_x + 1 - 64)`` for ``|x| < 2^(l_x)`` (a wrap of the shares), when it
  is wrong by about ``2^(64-f)``.
  ``"dealer"`` (any number of parties; probabilistic truncation with a dealer pair ``(r, r >> f)``, Catrina &
  Saxena 2010, Mohassel & Rindal 2018 "ABY3"): open ``c = x - r`` (one round), result ``(c >> f) + [r >> f]``;
  within 2 ulp (``x/2^f - 2 < result <= x/2^f``), with the same failure probability.
  ``"auto"`` uses ``"local"`` for 2 parties and ``"dealer"`` otherwise.
* Polynomial activations: :func:`square` and :func:`polynomial` (e.g. the degree-3 sigmoid approximation
  :data:`SIGMOID3`). Comparison and ReLU, with a dealer's bit-decomposed mask, are in :mod:`.compare`.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch

from .network import TRUNCATIONS, Network, SharedTensor
from .ring import _encode

__all__ = ["TRUNCATIONS", "SIGMOID3", "add", "sub", "neg", "add_public", "mul_public", "mul", "beaver_product",
           "square", "matmul_public", "matmul", "truncate", "polynomial", "sigmoid_approx"]

#: degree-3 least-squares approximation of the logistic sigmoid on [-8, 8] (Kim et al. 2018, "Secure logistic
#: regression based on homomorphic encryption"): 0.5 + 0.15012 x - 0.001593 x^3, coefficients low to high
SIGMOID3 = (0.5, 0.15012, 0.0, -0.001593)
Public = Union[torch.Tensor, int, float]


# ---------------------------------------------------------------------------------------------- linear, local

def _pair(x: SharedTensor, y: SharedTensor, op: str) -> Network:
    if not isinstance(x, SharedTensor):
        raise TypeError(f"x must be a SharedTensor, got {type(x).__name__}")
    net = x.network
    net._check_mine(y, "y")
    if op == "elementwise" and x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    return net


def add(x: SharedTensor, y: SharedTensor) -> SharedTensor:
    """``[x + y]``: each party adds its two shares (no communication)."""
    net = _pair(x, y, "elementwise")
    return net._local(lambda p: p.share_of(x.handle) + p.share_of(y.handle), x.shape)


def sub(x: SharedTensor, y: SharedTensor) -> SharedTensor:
    """``[x - y]`` (no communication)."""
    net = _pair(x, y, "elementwise")
    return net._local(lambda p: p.share_of(x.handle) - p.share_of(y.handle), x.shape)


def neg(x: SharedTensor) -> SharedTensor:
    """``[-x]`` (no communication)."""
    x.network._check_mine(x, "x")
    return x.network._local(lambda p: -p.share_of(x.handle), x.shape)


def _public_result_shape(x: SharedTensor, c: torch.Tensor, name: str) -> torch.Size:
    try:
        return torch.broadcast_shapes(x.shape, c.shape)
    except RuntimeError:
        raise ValueError(f"{name} of shape {tuple(c.shape)} does not broadcast with x of shape "
                         f"{tuple(x.shape)}") from None


def add_public(x: SharedTensor, c: Public) -> SharedTensor:
    """``[x + c]`` for a public real ``c`` (encoded; party 0 adds it, the others keep their shares)."""
    net = x.network
    net._check_mine(x, "x")
    ce = _encode(torch.as_tensor(c), frac_bits=net.frac_bits, headroom=net.headroom, name="c")
    shape = _public_result_shape(x, ce, "c")
    return net._local(lambda p: (p.share_of(x.handle) + ce) if p.index == 0
                      else p.share_of(x.handle).expand(shape).clone(), shape)


def _is_integer(c: torch.Tensor) -> bool:
    return not (c.is_floating_point() or c.is_complex())


def mul_public(x: SharedTensor, c: Public) -> SharedTensor:
    """``[c x]`` for a public ``c``: integers multiply the shares as they are (exact, local); real values are
    encoded, multiplied and the product truncated (:func:`truncate`)."""
    net = x.network
    net._check_mine(x, "x")
    c = torch.as_tensor(c)
    if c.dtype == torch.bool:
        raise TypeError("c must be a number or a real/integer tensor, got a bool tensor")
    if _is_integer(c):
        ci = c.to(torch.int64)
        shape = _public_result_shape(x, ci, "c")
        return net._local(lambda p: p.share_of(x.handle) * ci, shape)
    ce = _encode(c, frac_bits=net.frac_bits, headroom=net.headroom, name="c")
    shape = _public_result_shape(x, ce, "c")
    return truncate(net._local(lambda p: p.share_of(x.handle) * ce, shape))


def matmul_public(x: SharedTensor, w: Public) -> SharedTensor:
    """``[x @ w]`` for a public real matrix ``w`` (a secure linear layer with public weights): local product of
    each share with the encoded ``w``, then one truncation.

    Shape:
        ``x`` ``(..., k)``, ``w`` ``(k, m)`` → ``(..., m)``.
    """
    net = x.network
    net._check_mine(x, "x")
    w = torch.as_tensor(w)
    if w.dim() != 2 or len(x.shape) < 1 or x.shape[-1] != w.shape[0]:
        raise ValueError(f"w must be a matrix (k, m) with k = x.shape[-1] = {x.shape[-1] if len(x.shape) else None}, "
                         f"got w of shape {tuple(w.shape)}")
    we = _encode(w, frac_bits=net.frac_bits, headroom=net.headroom, name="w")
    shape = tuple(x.shape[:-1]) + (w.shape[1],)
    return truncate(net._local(lambda p: p.share_of(x.handle) @ we, shape))


# ---------------------------------------------------------------------------------------------- truncation

def truncate(x: SharedTensor, *, method: Optional[str] = None) -> SharedTensor:
    """``[x / 2^f]`` for a product at scale ``2^(2f)``, by the network's truncation protocol (module docstring).

    Args:
        x: shared ring values at scale ``2^(2f)``.
        method: ``"local"`` (2 parties) or ``"dealer"``; ``None`` uses the network's.

    Returns:
        the shared values at scale ``2^f``: within 1 ulp (local) or 2 ulp (dealer) of ``x / 2^f``, except with
        probability about ``|x| / 2^63`` per element.
    """
    net = x.network
    net._check_mine(x, "x")
    method = net.truncation if method is None else method
    if method not in ("local", "dealer"):
        raise ValueError(f"method must be 'local' or 'dealer' (or None), got {method!r}")
    f = net.frac_bits
    if f == 0:
        return x
    if method == "local":
        if net.num_parties != 2:
            raise ValueError(f"local truncation needs exactly 2 parties, got {net.num_parties}; use method='dealer'")
        return net._local(lambda p: (p.share_of(x.handle) >> f) if p.index == 0
                          else -((-p.share_of(x.handle)) >> f), x.shape)
    r, r_shift = net.dealer.truncation_pair(x.shape, frac_bits=f)
    masked = net._local(lambda p: p.share_of(x.handle) - r[p.index], x.shape)
    c = net._open({"trunc.x_minus_r": masked})["trunc.x_minus_r"]
    return net._local(lambda p: r_shift[p.index] + (c >> f) if p.index == 0 else r_shift[p.index].clone(), x.shape)


# ---------------------------------------------------------------------------------------------- Beaver products

def mul(x: SharedTensor, y: SharedTensor) -> SharedTensor:
    """``[x y]`` (elementwise) with a Beaver triple: open ``e = x - a``, ``f = y - b`` in one round, then
    ``[c] + e [b] + f [a] + e f``, then :func:`truncate`."""
    _pair(x, y, "elementwise")
    if x.handle == y.handle:
        return square(x)
    return truncate(beaver_product(x, y))


def beaver_product(x: SharedTensor, y: SharedTensor) -> SharedTensor:
    """The ring product ``[x y]`` by Beaver's protocol, *without* truncation: for integer-valued shares (bits,
    counters) or a fixed-point value times an integer one. Shapes must match."""
    net = _pair(x, y, "elementwise")
    a, b, c = net.dealer.triple(x.shape, y.shape)
    e_sh = net._local(lambda p: p.share_of(x.handle) - a[p.index], x.shape)
    f_sh = net._local(lambda p: p.share_of(y.handle) - b[p.index], y.shape)
    opened = net._open({"beaver.e": e_sh, "beaver.f": f_sh})
    e, f = opened["beaver.e"], opened["beaver.f"]
    return net._local(lambda p: c[p.index] + e * b[p.index] + f * a[p.index] + (e * f if p.index == 0 else 0),
                      x.shape)


def square(x: SharedTensor) -> SharedTensor:
    """``[x²]`` with a dealer square pair ``(a, a²)``: open ``e = x - a`` (one round), then
    ``[a²] + 2 e [a] + e²``, then :func:`truncate`."""
    net = x.network
    net._check_mine(x, "x")
    a, a2 = net.dealer.square_pair(x.shape)
    e_sh = net._local(lambda p: p.share_of(x.handle) - a[p.index], x.shape)
    e = net._open({"square.e": e_sh})["square.e"]
    z = net._local(lambda p: a2[p.index] + 2 * e * a[p.index] + (e * e if p.index == 0 else 0), x.shape)
    return truncate(z)


def matmul(x: SharedTensor, y: SharedTensor) -> SharedTensor:
    """``[x @ y]`` for two secret matrices with a matrix Beaver triple (``c = a @ b``): open ``e = x - a`` and
    ``f = y - b`` in one round, then ``[c] + e @ [b] + [a] @ f + e @ f``, then :func:`truncate`.

    Shape:
        ``x`` ``(m, k)``, ``y`` ``(k, n)`` → ``(m, n)``.
    """
    net = _pair(x, y, "matmul")
    if len(x.shape) != 2 or len(y.shape) != 2 or x.shape[1] != y.shape[0]:
        raise ValueError(f"x and y must be matrices (m, k) and (k, n), got {tuple(x.shape)} and {tuple(y.shape)}")
    a, b, c = net.dealer.triple(x.shape, y.shape, matmul=True)
    e_sh = net._local(lambda p: p.share_of(x.handle) - a[p.index], x.shape)
    f_sh = net._local(lambda p: p.share_of(y.handle) - b[p.index], y.shape)
    opened = net._open({"beaver.e": e_sh, "beaver.f": f_sh})
    e, f = opened["beaver.e"], opened["beaver.f"]
    shape = (x.shape[0], y.shape[1])
    z = net._local(lambda p: c[p.index] + e @ b[p.index] + a[p.index] @ f + (e @ f if p.index == 0 else 0), shape)
    return truncate(z)


# ---------------------------------------------------------------------------------------------- polynomials

def polynomial(x: SharedTensor, coefficients: Sequence[float]) -> SharedTensor:
    """``[c_0 + c_1 x + ... + c_d x^d]``: powers by Beaver products (``d - 1`` of them), then public
    multiplications and a sum.

    Args:
        x: shared values.
        coefficients: real ``c_0, ..., c_d`` (low to high), ``d >= 1``.
    """
    x.network._check_mine(x, "x")
    coeffs = [float(c) for c in coefficients]
    if not all(torch.isfinite(torch.tensor(coeffs)).tolist()):
        raise ValueError(f"coefficients must be finite numbers, got {coeffs}")
    if len(coeffs) < 2:
        raise ValueError(f"coefficients must hold at least 2 values (degree >= 1), got {len(coeffs)}")
    powers = [x]
    for k in range(2, len(coeffs)):
        powers.append(square(x) if k == 2 else mul(powers[-1], x))
    out = add_public(mul_public(powers[0], coeffs[1]), coeffs[0])
    for c, pw in zip(coeffs[2:], powers[1:]):
        if c != 0.0:
            out = add(out, mul_public(pw, c))
    return out


def sigmoid_approx(x: SharedTensor) -> SharedTensor:
    """The degree-3 polynomial :data:`SIGMOID3` of ``x``: within about 0.11 of the sigmoid on [-8, 8]
    (measured in the tests), and unbounded outside. Fixed point adds the rounding of the coefficients
    (``2^-(f+1)`` each, times ``|x|^k``: up to 4e-3 at ``|x| = 8`` with ``f = 16``)."""
    return polynomial(x, SIGMOID3)
