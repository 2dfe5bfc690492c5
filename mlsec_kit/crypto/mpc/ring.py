"""The ring Z_{2^64} as torch int64 tensors, fixed-point encoding, and additive secret sharing.

Ring elements are ``torch.int64`` tensors read in two's complement: the 2^64 residues are represented by the
integers in ``[-2^63, 2^63)``, and torch's int64 addition, subtraction and multiplication wrap around modulo 2^64,
which is exactly arithmetic in Z_{2^64} (the convention of CrypTen, Knott et al. 2021, and SecureML, Mohassel &
Zhang 2017). A real number ``x`` is *encoded* as the ring element ``round(x * 2^f)`` (``f = frac_bits``), so a
product of two encodings carries scale ``2^(2f)`` and needs one truncation (:mod:`.protocol`).

Additive sharing among ``n`` parties: shares ``x_1, ..., x_{n-1}`` are drawn uniformly from the whole ring and
``x_n = x - (x_1 + ... + x_{n-1})``; any ``n - 1`` of the shares are uniform and independent of ``x``, so no
coalition smaller than all parties learns anything (the one-time pad in Z_{2^64}). A uniform int64 is built from
two draws of 32 bits each (``torch.randint`` cannot draw the whole int64 range at once).
"""
from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["RING_BITS", "DEFAULT_FRAC_BITS", "DEFAULT_HEADROOM", "encode", "decode", "max_abs", "random_ring",
           "share", "reconstruct", "check_ring", "check_generator", "check_parties", "check_frac_bits"]

#: the ring is Z_{2^RING_BITS}
RING_BITS = 64
#: fractional bits of the fixed-point encoding: one unit in the last place (ulp) is 2^-16 ≈ 1.5e-5
DEFAULT_FRAC_BITS = 16
#: bits kept free above an encoded input: inputs must satisfy |x| < 2^(63 - frac_bits - headroom). This bounds the
#: inputs only: a product of two values carries scale 2^(2f) and fits the ring only while |x y| < 2^(63 - 2f)
#: (2^31 with f = 16), and its truncation fails with probability |x y| 2^(2f - 64);
#: :func:`mlsec_kit.crypto.mpc.error_bound` and ``truncation_failure_probability`` check a model's products
DEFAULT_HEADROOM = 16


def check_generator(generator: object, *, name: str = "generator") -> torch.Generator:
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator (seeded, for reproducible shares), got "
                        f"{type(generator).__name__}")
    return generator


def check_parties(parties: object, *, name: str = "parties") -> int:
    if isinstance(parties, bool) or not isinstance(parties, int) or parties < 2:
        raise ValueError(f"{name} must be an int >= 2 (secret sharing needs at least two parties), got {parties!r}")
    return parties


def check_frac_bits(frac_bits: object, *, name: str = "frac_bits") -> int:
    if isinstance(frac_bits, bool) or not isinstance(frac_bits, int) or not 0 <= frac_bits <= 30:
        raise ValueError(f"{name} must be an int in [0, 30], got {frac_bits!r}")
    return frac_bits


def check_ring(x: object, *, name: str = "x") -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.int64 tensor (a ring element; encode real values first), got "
                        f"{type(x).__name__}")
    if x.dtype != torch.int64:
        raise TypeError(f"{name} must have dtype torch.int64 (a ring element of Z_2^64; use encode() for real "
                        f"values), got {x.dtype}")
    return x


def max_abs(*, frac_bits: int = DEFAULT_FRAC_BITS, headroom: int = DEFAULT_HEADROOM) -> float:
    """The largest magnitude :func:`encode` accepts (exclusive): ``2^(63 - frac_bits - headroom)``."""
    check_frac_bits(frac_bits)
    if isinstance(headroom, bool) or not isinstance(headroom, int) or not 0 <= headroom <= 63 - frac_bits - 1:
        raise ValueError(f"headroom must be an int in [0, {63 - frac_bits - 1}], got {headroom!r}")
    return float(2 ** (RING_BITS - 1 - frac_bits - headroom))


def encode(x: torch.Tensor, *, frac_bits: int = DEFAULT_FRAC_BITS, headroom: int = DEFAULT_HEADROOM) -> torch.Tensor:
    """Fixed-point encoding ``round(x * 2^frac_bits)`` as a ring element (int64, two's complement).

    Args:
        x: real values (any float or integer dtype; a Python number or list is converted), finite, with
            ``|x| < 2^(63 - frac_bits - headroom)`` (:func:`max_abs`).
        frac_bits: fractional bits ``f`` in [0, 30]; the rounding error is at most ``2^-(f+1)``.
        headroom: bits kept free above the input, in ``[0, 62 - frac_bits]``.

    Returns:
        int64 tensor of the same shape (a new tensor; ``x`` is not modified).
    """
    return _encode(x, frac_bits=frac_bits, headroom=headroom, name="x")


def _encode(x, *, frac_bits: int, headroom: int, name: str) -> torch.Tensor:
    """:func:`encode`, with errors that name the argument ``name`` (a public factor, weights, coefficients)."""
    limit = max_abs(frac_bits=frac_bits, headroom=headroom)
    x = torch.as_tensor(x)
    if x.dtype == torch.bool or x.is_complex():
        raise TypeError(f"{name} must be a real tensor, got dtype {x.dtype}")
    xd = x.to(torch.float64)
    if not torch.isfinite(xd).all():
        raise ValueError(f"{name} must be finite (no nan or inf) to be encoded")
    if xd.numel() and xd.abs().max().item() >= limit:
        raise ValueError(f"{name} is beyond the fixed-point range: |{name}| must be < 2^{63 - frac_bits - headroom} "
                         f"= {limit:g} for frac_bits={frac_bits}, headroom={headroom}; got max |{name}| = "
                         f"{xd.abs().max().item():g}")
    return torch.round(xd * float(2 ** frac_bits)).to(torch.int64)


def decode(r: torch.Tensor, *, frac_bits: int = DEFAULT_FRAC_BITS) -> torch.Tensor:
    """The real value of a fixed-point ring element: ``r / 2^frac_bits`` with ``r`` read in [-2^63, 2^63).

    Returns:
        float64 tensor of the same shape.
    """
    check_frac_bits(frac_bits)
    check_ring(r, name="r")
    return r.to(torch.float64) / float(2 ** frac_bits)


def random_ring(shape: Sequence[int], *, generator: torch.Generator, device=None) -> torch.Tensor:
    """Uniform elements of Z_{2^64}: a high and a low 32-bit half, drawn separately and joined.

    Returns:
        int64 tensor of ``shape`` (every one of the 2^64 values equally likely).
    """
    check_generator(generator)
    shape = tuple(shape)
    hi = torch.randint(-2 ** 31, 2 ** 31, shape, generator=generator, dtype=torch.int64)
    lo = torch.randint(0, 2 ** 32, shape, generator=generator, dtype=torch.int64)
    out = (hi << 32) | lo
    return out if device is None else out.to(device)


def share(x: torch.Tensor, *, parties: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Additive secret sharing over Z_{2^64}: ``parties`` shares that sum to ``x`` (mod 2^64).

    The first ``parties - 1`` shares are uniform over the ring (:func:`random_ring`); the last is
    ``x`` minus their sum. Any ``parties - 1`` shares are therefore uniform and independent of ``x``.

    Args:
        x: the secret, an int64 ring element (use :func:`encode` for real values); not modified.
        parties: number of shares, at least 2.
        generator: seeded source of the random shares.

    Returns:
        list of ``parties`` int64 tensors, each of ``x``'s shape.
    """
    check_parties(parties)
    check_generator(generator)
    check_ring(x)
    shares = [random_ring(x.shape, generator=generator, device=x.device) for _ in range(parties - 1)]
    last = x.clone()
    for s in shares:
        last = last - s
    return shares + [last]


def reconstruct(shares: Sequence[torch.Tensor]) -> torch.Tensor:
    """The secret of an additive sharing: the sum of all shares modulo 2^64.

    Args:
        shares: at least two int64 tensors of one shape (every party's share).

    Returns:
        int64 tensor: the secret ring element.
    """
    if isinstance(shares, torch.Tensor) or not isinstance(shares, (list, tuple)):
        raise TypeError(f"shares must be a list or tuple of int64 tensors, got {type(shares).__name__}")
    if len(shares) < 2:
        raise ValueError(f"shares must hold at least 2 shares (one per party), got {len(shares)}")
    for i, s in enumerate(shares):
        check_ring(s, name=f"shares[{i}]")
        if s.shape != shares[0].shape:
            raise ValueError(f"shares must all have one shape: shares[0] has {tuple(shares[0].shape)}, "
                             f"shares[{i}] has {tuple(s.shape)}")
    total = shares[0].clone()
    for s in shares[1:]:
        total = total + s
    return total

