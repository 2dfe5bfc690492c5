r"""Secure aggregation by pairwise masking with dropout recovery (Bonawitz et al. 2017, "Practical secure
aggregation for privacy-preserving machine learning", the semi-honest protocol of their Figure 4).

The server should learn the *sum* of the clients' updates and nothing about any single one. Each client ``u``
encodes its update as fixed-point integers in the ring :math:`\mathbb{Z}_{2^{48}}` (``frac_bits`` fractional
bits, two's complement: an integer ``v >= 2^{47}`` stands for ``v - 2^{48}``) and sends

.. math::  y_u = x_u + \mathrm{PRG}(b_u) + \sum_{v > u} \mathrm{PRG}(s_{uv}) - \sum_{v < u} \mathrm{PRG}(s_{uv})
   \pmod{2^{48}},

where ``s_uv = s_vu`` is a seed the pair agrees on and ``b_u`` a self-mask seed. The pairwise masks cancel in
``Σ_u y_u``; each ``y_u`` alone is uniform over the ring whatever ``x_u`` is (a one-time pad). A client that drops
out after the key exchange leaves its partners' masks uncancelled, so before sending anything each client splits
its key-agreement secret ``sk_u`` and ``b_u`` into ``t``-out-of-``n`` Shamir shares (Shamir 1979, "How to share
a secret") over the prime field :math:`\mathbb{F}_p`, ``p = 2^{127} - 1``, one share pair for every other client.
In the unmasking round each survivor hands the server its shares of ``b_u`` for survivors and of ``sk_u`` for
dropped clients (never both for one client); with ``t`` survivors the server rebuilds them, regenerates the
masks and removes them. Fewer than ``t`` survivors: the sum cannot be recovered, and :func:`secure_aggregate`
refuses up front.

Rounds, as in the paper: 0 AdvertiseKeys (public keys), 1 ShareKeys (encrypted shares, relayed by the server),
2 MaskedInputCollection (the ``y_u``; clients in ``dropped`` stop before this), 3 Unmasking (shares).

What is simulated, and why this is a model and not a secure implementation:

* the key agreement is Diffie-Hellman in :math:`\mathbb{Z}_p^*` with the same ``p`` and ``g = 3``: ``s_uv =
  H(g^{sk_u sk_v})`` (SHA-256), secrets drawn from the caller's seeded ``torch.Generator`` so that a run is
  reproducible. A 127-bit group is far too small to be secure (real deployments use X25519), and the pairwise
  encryption of the shares is not implemented: the shares are handed over in memory and only their bytes
  counted. Bonawitz et al. give each client *two* key pairs, ``(c_u^PK, c_u^SK)`` for the encrypted channels that
  carry the Shamir shares and ``(s_u^PK, s_u^SK)`` for the mask seeds, because the server learns ``s_u^SK`` of
  every dropped client: were the same key to key the channels, it could decrypt the shares the dropped client
  received (of ``b_v`` and ``s_v^SK`` of every survivor). Here only the mask key exists (the shares never travel
  encrypted), but round 0 counts the bytes of both public keys;
* the PRG is torch's seeded generator (Philox/Mersenne Twister), not a cryptographic one (AES-CTR in the paper);
* the server is honest-but-curious and the dropout set is fixed before the masked inputs are sent; the paper's
  active-adversary variant (signatures, consistency checks) is not modelled;
* :func:`secure_aggregate` refuses updates whose sum could overflow the ring by looking at the plaintext updates,
  which a real server cannot do (it sees only masked values): in a deployment an oversized, e.g. malicious,
  update wraps around silently and corrupts the sum; range proofs are the active-security remedy.

Why the self-mask ``b_u``: a client that is merely *late* (its ``y_u`` arrives after the server has closed round 2
and declared it dropped) has had its pairwise masks made removable — the survivors handed over shares of
``sk_u`` — so without ``PRG(b_u)`` its late ``y_u`` would be ``x_u`` in the clear. With it, the server would also
need ``b_u``, and an honest survivor never hands over shares of both secrets of one client. ``late=`` simulates
such a client; the server's view (:attr:`SecureAggregate.masked`, :attr:`SecureAggregate.rebuilt`,
:attr:`SecureAggregate.public_keys`) is recorded so that one can check what it can and cannot unmask.

The server's view is recorded (:attr:`SecureAggregate.masked`) so that one can check it looks uniform.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

import torch

from ._validate import check_generator, check_int

__all__ = ["shamir_share", "shamir_reconstruct", "encode_fixed", "decode_fixed", "secure_aggregate",
           "SecureAggregate", "PRIME", "RING_BITS"]

#: the Mersenne prime 2^127 - 1: the Shamir field and the (toy) Diffie-Hellman modulus
PRIME = 2 ** 127 - 1
#: the masked updates live in Z_{2^RING_BITS}
RING_BITS = 48
_RING = 2 ** RING_BITS
_G = 3
#: bytes of one field element (a share, a public key) and of one ring element on the wire
FIELD_BYTES = 16
RING_BYTES = RING_BITS // 8


# --------------------------------------------------------------------------------------------------- Shamir

def _field_elements(count: int, generator: Optional[torch.Generator]) -> list[int]:
    """``count`` integers uniform in [0, PRIME) up to a 2^-59 bias: three 62-bit draws combined, reduced mod p."""
    draws = torch.randint(0, 2 ** 62, (count, 3), generator=generator).tolist()
    return [((a << 124) | (b << 62) | c) % PRIME for a, b, c in draws]


def _check_threshold(threshold: object, parties: int) -> int:
    t = check_int("threshold", threshold, minimum=1)
    if not 2 <= t <= parties:
        raise ValueError(f"threshold must be an int in [2, {parties}] (the number of parties), got {threshold!r}")
    return t


def shamir_share(secret: int, *, threshold: int, parties: int,
                 generator: Optional[torch.Generator] = None) -> list[tuple[int, int]]:
    """Split ``secret`` into ``parties`` Shamir shares, any ``threshold`` of which rebuild it (Shamir 1979).

    Draws a random polynomial ``f`` of degree ``threshold - 1`` over ``F_p`` (``p = 2^127 - 1``) with
    ``f(0) = secret`` and gives party ``i`` the point ``(i, f(i))``, ``i = 1 .. parties``. Fewer than ``threshold``
    points are consistent with every secret: they reveal nothing.

    Args:
        secret: an int in ``[0, p)``.
        threshold: ``t``, an int in ``[2, parties]``.
        parties: ``n``, an int >= 2.
        generator: the source of the coefficients.

    Returns:
        ``[(1, f(1)), ..., (n, f(n))]``.
    """
    parties = check_int("parties", parties, minimum=2)
    t = _check_threshold(threshold, parties)
    if isinstance(secret, bool) or not isinstance(secret, int) or not 0 <= secret < PRIME:
        raise ValueError(f"secret must be an int in [0, 2^127 - 1), got {secret!r}")
    check_generator(generator)
    coeffs = [secret] + _field_elements(t - 1, generator)
    shares = []
    for x in range(1, parties + 1):
        y = 0
        for c in reversed(coeffs):
            y = (y * x + c) % PRIME
        shares.append((x, y))
    return shares


def shamir_reconstruct(shares: Sequence[tuple[int, int]]) -> int:
    """The secret ``f(0)`` by Lagrange interpolation of the given points over ``F_p``.

    With at least ``threshold`` shares of one sharing this is the secret; with fewer it is a value unrelated to it
    (no error can tell, which is the point of the scheme).

    Args:
        shares: ``(x, y)`` pairs with distinct ``x`` in ``[1, p)``.
    """
    if not isinstance(shares, (list, tuple)) or not shares:
        raise ValueError("shares must be a non-empty list of (x, y) pairs")
    xs = []
    for s in shares:
        if not (isinstance(s, (list, tuple)) and len(s) == 2 and all(isinstance(v, int) for v in s)):
            raise ValueError(f"shares must hold (x, y) pairs of ints, got {s!r}")
        xs.append(s[0] % PRIME)
    if len(set(xs)) != len(xs) or 0 in xs:
        raise ValueError("shares must have distinct, non-zero x coordinates (one share per party)")
    secret = 0
    for i, (xi, yi) in enumerate(shares):
        num, den = 1, 1
        for j, xj in enumerate(xs):
            if j != i:
                num = num * (-xj) % PRIME
                den = den * (xi - xj) % PRIME
        secret = (secret + yi * num * pow(den, PRIME - 2, PRIME)) % PRIME
    return secret


# ----------------------------------------------------------------------------------------------- fixed point

def encode_fixed(x: torch.Tensor, *, frac_bits: int = 20) -> torch.Tensor:
    """``round(x · 2^frac_bits) mod 2^48`` as int64 (two's complement in the 48-bit ring)."""
    return torch.round(x.double() * 2.0 ** frac_bits).long() % _RING


def decode_fixed(v: torch.Tensor, *, frac_bits: int = 20) -> torch.Tensor:
    """The inverse of :func:`encode_fixed`: ring elements ``>= 2^47`` are negative; float64."""
    v = v % _RING
    return torch.where(v >= _RING // 2, v - _RING, v).double() / 2.0 ** frac_bits


def _prg(seed: int, size: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, _RING, (size,), generator=g, dtype=torch.int64)


def _seed(value: int, tag: bytes) -> int:
    digest = hashlib.sha256(tag + value.to_bytes(FIELD_BYTES, "big")).digest()
    return int.from_bytes(digest[:8], "big") >> 1  # 63 bits: torch's manual_seed range


def _self_mask(b_u: int, size: int) -> torch.Tensor:
    """``PRG(b_u)``: the self-mask of a client with self-mask seed ``b_u``."""
    return _prg(_seed(b_u, b"self"), size)


def _pair_mask_sum(u: int, secret_u: int, public_keys: Sequence[int], partners: Iterable[int],
                   size: int) -> torch.Tensor:
    """``Σ_{v > u} PRG(s_uv) - Σ_{v < u} PRG(s_uv)`` over ``partners`` as computed by whoever holds ``u``'s
    key-agreement secret ``secret_u`` (the client itself, or a server that rebuilt it), ``s_uv = H(pk_v^secret_u)``."""
    total = torch.zeros(size, dtype=torch.int64)
    for v in partners:
        if v != u:
            m = _prg(_seed(pow(public_keys[v], secret_u, PRIME), b"pair"), size)
            total = total + m if v > u else total - m
    return total % _RING


# ------------------------------------------------------------------------------------------------ protocol

@dataclass
class SecureAggregate:
    """The result of :func:`secure_aggregate`.

    Attributes:
        total: the sum of the survivors' updates (decoded; float64 rounded to the input dtype), shape of one
            update.
        survivors: indices of the clients whose masked updates reached the server in time, sorted.
        dropped: indices of the clients that dropped after sharing their keys, sorted.
        masked: the masked updates the server received: ``{client index: int64 ring elements, flat}``, the
            survivors' (round 2) and the late clients' (after round 2 closed; not in ``total``).
        shares_used: ``{client index: "b" or "sk"}``, which secret of each client the server rebuilt (``"sk"``
            for dropped and late clients).
        bytes_sent: bytes all clients together sent to the server over the four rounds.
        bytes_received: bytes the server sent to the clients (public keys broadcast, shares relayed, the
            survivor list).
        rounds: communication rounds (4).
        seconds: wall-clock time of the whole simulation (clients and server).
        late: indices of the clients whose masked update arrived after round 2 closed, sorted.
        public_keys: the Diffie-Hellman public keys broadcast in round 0 (part of the server's view).
        rebuilt: ``{client index: secret}``, the secret the server rebuilt from the survivors' Shamir shares
            (``b_u`` or ``sk_u`` as in ``shares_used``; part of the server's view).
    """

    total: torch.Tensor
    survivors: list[int]
    dropped: list[int]
    masked: dict[int, torch.Tensor] = field(repr=False)
    shares_used: dict[int, str] = field(repr=False)
    bytes_sent: int = 0
    bytes_received: int = 0
    rounds: int = 4
    seconds: float = field(default=0.0, compare=False)
    late: list[int] = field(default_factory=list)
    public_keys: list[int] = field(default_factory=list, repr=False)
    rebuilt: dict[int, int] = field(default_factory=dict, repr=False)


def _check_updates(updates) -> tuple[list[torch.Tensor], torch.Size]:
    if not isinstance(updates, (list, tuple)) or len(updates) < 2:
        got = len(updates) if isinstance(updates, (list, tuple)) else type(updates).__name__
        raise ValueError(f"updates must be a list of at least 2 client updates (secure aggregation of one client "
                         f"reveals it), got {got}")
    shape = None
    for i, u in enumerate(updates):
        if not isinstance(u, torch.Tensor) or not u.is_floating_point():
            raise TypeError(f"updates[{i}] must be a floating-point tensor")
        if shape is None:
            shape = u.shape
        elif u.shape != shape:
            raise ValueError(f"updates must all have the same shape (mismatched update shapes): updates[0] is "
                             f"{tuple(shape)}, updates[{i}] is {tuple(u.shape)}")
        if not torch.isfinite(u).all():
            raise ValueError(f"updates[{i}] holds a non-finite value")
    return list(updates), shape


def _check_indices(name: str, value: object, n: int) -> set[int]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"{name} must be an iterable of client indices, got {type(value).__name__}")
    out = set()
    for d in value:
        if isinstance(d, bool) or not isinstance(d, int) or not 0 <= d < n:
            raise ValueError(f"{name} must hold client indices in [0, {n}), got {d!r}")
        out.add(d)
    return out


def secure_aggregate(updates: Sequence[torch.Tensor], *, threshold: int, dropped: Iterable[int] = (),
                     generator: Optional[torch.Generator] = None, frac_bits: int = 20,
                     late: Iterable[int] = ()) -> SecureAggregate:
    """Sum the updates of the clients that stay, with the server seeing only masked updates.

    Simulates the four rounds of the module docstring for ``n = len(updates)`` clients, client ``i`` holding
    ``updates[i]``. The clients in ``dropped`` complete the key exchange and the share distribution and then
    vanish; the server removes their pairwise masks from the survivors' inputs by rebuilding their secret keys
    from ``threshold`` survivors' shares.

    Args:
        updates: ``n >= 2`` floating tensors of one shape; not modified. Their sum over any subset must stay
            below ``2^(47 - frac_bits)`` in magnitude (checked through ``n · max|x| < 2^(47 - frac_bits)``).
        threshold: ``t``, the Shamir threshold, an int in ``[2, n]``; at least ``t`` clients must survive.
            ``⌊n/2⌋ + 1`` is the usual choice: fewer colluding clients cannot rebuild anyone's keys.
        dropped: indices in ``[0, n)`` of the clients that drop out before sending their masked update.
        generator: the source of every secret (key-agreement secrets, self-mask seeds, Shamir coefficients).
        frac_bits: fractional bits of the fixed-point encoding, an int in ``[0, 40]``; the total is exact up to
            ``n · 2^-(frac_bits + 1)`` per coordinate.
        late: indices in ``[0, n)``, disjoint from ``dropped``, of clients that send their masked update too late:
            the server treats them as dropped (rebuilds their ``sk_u``, leaves them out of the total) and then
            receives their ``y_u`` anyway (recorded in ``.masked``): the case the self-mask exists for.

    Returns:
        A :class:`SecureAggregate`; ``.total`` equals ``sum(updates[i] for survivors i)`` up to the encoding.

    Raises:
        ValueError: fewer than 2 updates, mismatched shapes, an index in ``dropped`` outside ``[0, n)``, fewer
            than ``threshold`` survivors (late clients do not count), a client both in ``dropped`` and ``late``,
            values beyond the fixed-point range.

    Shape:
        each update ``S`` → ``total`` ``S``.
    """
    start = time.perf_counter()
    updates, shape = _check_updates(updates)
    n = len(updates)
    t = _check_threshold(threshold, n)
    frac_bits = check_int("frac_bits", frac_bits, minimum=0)
    if frac_bits > 40:
        raise ValueError(f"frac_bits must be an int in [0, 40] (the ring has {RING_BITS} bits), got {frac_bits}")
    check_generator(generator)
    drop = _check_indices("dropped", dropped, n)
    slow = _check_indices("late", late, n)
    if drop & slow:
        raise ValueError(f"late and dropped must be disjoint (a client either never sends or sends late), both "
                         f"hold {sorted(drop & slow)}")
    survivors = [i for i in range(n) if i not in drop and i not in slow]
    if len(survivors) < t:
        what = "dropped and late leave" if slow else "dropped leaves"
        raise ValueError(f"{what} {len(survivors)} of {n} clients, fewer than threshold = {t}: the server "
                         f"cannot rebuild the dropped clients' keys, so the sum cannot be unmasked (at most "
                         f"{n - t} clients may drop out)")
    limit = 2.0 ** (RING_BITS - 1 - frac_bits) / n
    biggest = max(u.abs().max().item() for u in updates) if updates[0].numel() else 0.0
    if biggest >= limit:
        raise ValueError(f"updates must stay below {limit:.4g} in magnitude for {n} clients with frac_bits = "
                         f"{frac_bits} (the sum must fit the {RING_BITS}-bit ring), got max |x| = {biggest:.4g}")
    d = updates[0].numel()

    # round 0, AdvertiseKeys: a Diffie-Hellman key pair and a self-mask seed per client
    sk = _field_elements(n, generator)
    sk = [s or 1 for s in sk]
    b = _field_elements(n, generator)
    pk = [pow(_G, s, PRIME) for s in sk]
    # two public keys per client on the wire, as in the paper (channel key c_u^PK and mask key s_u^PK)
    bytes_sent = n * 2 * FIELD_BYTES
    bytes_received = n * n * 2 * FIELD_BYTES  # every client receives every client's two public keys

    # round 1, ShareKeys: t-of-n shares of sk_u and b_u, one pair for each client (encrypted, relayed)
    shares_sk = [shamir_share(sk[u], threshold=t, parties=n, generator=generator) for u in range(n)]
    shares_b = [shamir_share(b[u], threshold=t, parties=n, generator=generator) for u in range(n)]
    pair_bytes = 2 * FIELD_BYTES + 8  # two shares and the (sender, receiver) ids
    bytes_sent += n * (n - 1) * pair_bytes
    bytes_received += n * (n - 1) * pair_bytes

    def masked_input(u: int) -> torch.Tensor:  # client u's y_u
        x = encode_fixed(updates[u].detach().reshape(-1).cpu(), frac_bits=frac_bits)
        return (x + _self_mask(b[u], d) + _pair_mask_sum(u, sk[u], pk, range(n), d)) % _RING

    # round 2, MaskedInputCollection: only the survivors send in time
    masked: dict[int, torch.Tensor] = {u: masked_input(u) for u in survivors}
    bytes_sent += len(survivors) * d * RING_BYTES

    # round 3, Unmasking: the server sends the survivor list; each survivor returns one share per other client:
    # of b_u for a survivor u, of sk_u for a dropped u
    bytes_received += len(survivors) * (len(survivors) * 4)
    bytes_sent += len(survivors) * (n - 1) * (FIELD_BYTES + 4)
    helpers = survivors[:t]
    shares_used: dict[int, str] = {}
    rebuilt: dict[int, int] = {}
    z = torch.zeros(d, dtype=torch.int64)
    for u in survivors:
        z = (z + masked[u]) % _RING
    for u in survivors:
        rebuilt[u] = shamir_reconstruct([shares_b[u][v] for v in helpers])
        z = (z - _self_mask(rebuilt[u], d)) % _RING
        shares_used[u] = "b"
    for u in sorted(drop | slow):  # to the server a late client is a dropped one
        rebuilt[u] = shamir_reconstruct([shares_sk[u][v] for v in helpers])
        # survivor v added +PRG(s_vu) when u > v and -PRG(s_vu) when u < v; u's view of the same masks has the
        # opposite signs, so adding u's view removes them
        z = (z + _pair_mask_sum(u, rebuilt[u], pk, survivors, d)) % _RING
        shares_used[u] = "sk"
    # the late clients' masked updates arrive now, after the server has rebuilt their sk_u
    for u in sorted(slow):
        masked[u] = masked_input(u)
    bytes_sent += len(slow) * d * RING_BYTES
    total = decode_fixed(z, frac_bits=frac_bits).to(updates[0].dtype).reshape(shape).to(updates[0].device)
    return SecureAggregate(total=total, survivors=survivors, dropped=sorted(drop), masked=masked,
                           shares_used=shares_used, bytes_sent=bytes_sent, bytes_received=bytes_received,
                           seconds=time.perf_counter() - start, late=sorted(slow), public_keys=list(pk),
                           rebuilt=rebuilt)
