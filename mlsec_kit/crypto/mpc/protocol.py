"""Simulated parties computing on additive shares: a trusted dealer, Beaver multiplication, truncation.

Every party is a :class:`Party` object that holds only its own share of each secret and the messages it has
received; a :class:`Network` moves messages between them and writes each one to a :class:`MessageLog`, which counts
communication rounds and bytes per party and keeps *what* each party received, so a test can check that during a
Beaver product a party receives only the opened masks ``e = x - a`` and ``f = y - b``, never ``x`` or ``y``.

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

The dealer's messages are the *offline* phase (they do not depend on the inputs) and are logged with phase
``"offline"``; the model owner's sharing of its weights is ``"setup"``; everything else is ``"online"``. Every
party and the dealer draw from their own ``torch.Generator``, seeded from the one the network is given.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence, Union

import torch

from .ring import (DEFAULT_FRAC_BITS, DEFAULT_HEADROOM, check_frac_bits, check_generator, check_parties, decode,
                   encode, random_ring, share)

__all__ = ["Message", "MessageLog", "Party", "Dealer", "Network", "SharedTensor", "TRUNCATIONS", "SIGMOID3",
           "add", "sub", "neg", "add_public", "mul_public", "mul", "beaver_product", "square", "matmul_public", "matmul", "truncate",
           "polynomial", "sigmoid_approx"]

#: truncation protocols (module docstring)
TRUNCATIONS = ("auto", "local", "dealer")
PHASES = ("setup", "offline", "online")
#: degree-3 least-squares approximation of the logistic sigmoid on [-8, 8] (Kim et al. 2018, "Secure logistic
#: regression based on homomorphic encryption"): 0.5 + 0.15012 x - 0.001593 x^3, coefficients low to high
SIGMOID3 = (0.5, 0.15012, 0.0, -0.001593)
Public = Union[torch.Tensor, int, float]


@dataclass(frozen=True)
class Message:
    """One message: who sent what to whom, in which round (``None`` outside the online rounds) and phase.

    ``payload`` is a copy of the tensor sent, or ``None`` when the network does not record payloads.
    """
    sender: Union[int, str]
    receiver: int
    tag: str
    payload: Optional[torch.Tensor]
    round: Optional[int]
    phase: str
    nbytes: int


@dataclass
class MessageLog:
    """Every message sent, with counts of rounds and bytes per party.

    ``rounds`` counts online communication rounds (messages sent in parallel in one round count once).
    """
    parties: int
    messages: list[Message] = field(default_factory=list)
    rounds: int = 0

    def record(self, message: Message) -> None:
        self.messages.append(message)

    def bytes_sent(self, party: int, *, phase: str = "online") -> int:
        return sum(m.nbytes for m in self.messages if m.sender == party and m.phase == phase)

    def bytes_received(self, party: int, *, phase: str = "online") -> int:
        return sum(m.nbytes for m in self.messages if m.receiver == party and m.phase == phase)

    def total_bytes(self, *, phase: str = "online") -> int:
        """Bytes sent by everyone (the dealer included) in ``phase``."""
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
        return sum(m.nbytes for m in self.messages if m.phase == phase)

    def received_by(self, party: int) -> list[Message]:
        return [m for m in self.messages if m.receiver == party]


class Party:
    """One party: its index, its own shares (by handle), its own random generator and what it has received.

    A party never holds another party's share; ``received`` is its whole view of the protocol (besides its own
    inputs), which is what a semi-honest party could analyse.
    """

    def __init__(self, index: int, *, generator: torch.Generator):
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ValueError(f"index must be an int >= 0, got {index!r}")
        self.index = index
        self.generator = check_generator(generator)
        self._shares: dict[int, torch.Tensor] = {}
        self.received: list[Message] = []

    def share_of(self, handle: int) -> torch.Tensor:
        return self._shares[handle]

    def store(self, handle: int, value: torch.Tensor) -> None:
        self._shares[handle] = value

    def __repr__(self) -> str:
        return f"Party({self.index}, holds {len(self._shares)} shares, received {len(self.received)} messages)"


class Dealer:
    """The trusted dealer of the offline phase: Beaver triples, square pairs and truncation pairs, as shares.

    It sees no input; it only draws random values (from its own generator) and sends each party its shares.
    """

    def __init__(self, network: "Network", *, generator: torch.Generator):
        self.network = network
        self.generator = check_generator(generator)
        self.issued = {"triple": 0, "matmul_triple": 0, "square_pair": 0, "truncation_pair": 0}

    def _deal(self, values: dict[str, torch.Tensor]) -> dict[str, list[torch.Tensor]]:
        net = self.network
        out: dict[str, list[torch.Tensor]] = {}
        for tag, v in values.items():
            sh = share(v, parties=net.num_parties, generator=self.generator)
            for i, s in enumerate(sh):
                net._deliver("dealer", i, tag, s, phase="offline")
            out[tag] = sh
        return out

    def triple(self, shape_a: Sequence[int], shape_b: Sequence[int], *, matmul: bool = False):
        """Shares of uniform ``a``, ``b`` and ``c = a * b`` (or ``a @ b``)."""
        a = random_ring(shape_a, generator=self.generator)
        b = random_ring(shape_b, generator=self.generator)
        c = a @ b if matmul else a * b
        self.issued["matmul_triple" if matmul else "triple"] += 1
        d = self._deal({"triple.a": a, "triple.b": b, "triple.c": c})
        return d["triple.a"], d["triple.b"], d["triple.c"]

    def square_pair(self, shape: Sequence[int]):
        """Shares of uniform ``a`` and ``a²``."""
        a = random_ring(shape, generator=self.generator)
        self.issued["square_pair"] += 1
        d = self._deal({"square.a": a, "square.a2": a * a})
        return d["square.a"], d["square.a2"]

    def truncation_pair(self, shape: Sequence[int], *, frac_bits: int):
        """Shares of uniform ``r`` and ``r >> frac_bits`` (arithmetic shift)."""
        r = random_ring(shape, generator=self.generator)
        self.issued["truncation_pair"] += 1
        d = self._deal({"trunc.r": r, "trunc.r_shifted": r >> frac_bits})
        return d["trunc.r"], d["trunc.r_shifted"]


    def comparison_mask(self, shape: Sequence[int], *, low_bits: int, mask_bits: int):
        """Shares of a uniform ``r`` in ``[0, 2^mask_bits)``, of ``r >> low_bits`` and of the ``low_bits`` lowest
        bits of ``r`` (each bit a ring element 0 or 1; last dimension, most significant first)."""
        r = torch.randint(0, 2 ** mask_bits, tuple(shape), generator=self.generator, dtype=torch.int64)
        shifts = torch.arange(low_bits - 1, -1, -1, dtype=torch.int64)
        bits = (r.unsqueeze(-1) >> shifts) & 1
        self.issued["comparison_mask"] = self.issued.get("comparison_mask", 0) + 1
        d = self._deal({"compare.r": r, "compare.r_high": r >> low_bits, "compare.r_bits": bits})
        return d["compare.r"], d["compare.r_high"], d["compare.r_bits"]


class Network:
    """``parties`` simulated parties, a dealer and a message log; creates and opens :class:`SharedTensor` s.

    Args:
        parties: number of computing parties, at least 2.
        generator: seeded generator; each party and the dealer get their own generator seeded from it.
        frac_bits: fixed-point fractional bits in [0, 30] (0: plain integer arithmetic, no truncation).
        headroom: bits kept free above inputs (:func:`mlsec_kit.crypto.mpc.ring.encode`).
        truncation: ``"auto"``, ``"local"`` (2 parties only) or ``"dealer"`` (module docstring).
        record_payloads: keep a copy of every message's content in the log and in the receiving party's
            ``received`` list (to inspect what a party saw); ``False`` keeps only who, what tag, when and how many
            bytes (for large workloads and timing).
    """

    def __init__(self, parties: int = 2, *, generator: torch.Generator, frac_bits: int = DEFAULT_FRAC_BITS,
                 headroom: int = DEFAULT_HEADROOM, truncation: str = "auto", record_payloads: bool = True):
        self.num_parties = check_parties(parties)
        check_generator(generator)
        self.frac_bits = check_frac_bits(frac_bits)
        self.headroom = headroom
        encode(torch.zeros(1), frac_bits=frac_bits, headroom=headroom)  # validates headroom
        if truncation not in TRUNCATIONS:
            raise ValueError(f"truncation must be one of {TRUNCATIONS}, got {truncation!r}")
        if truncation == "local" and parties != 2:
            raise ValueError(f"truncation='local' needs exactly 2 parties (SecureML), got parties={parties}; use "
                             f"'dealer' or 'auto'")
        self.truncation = ("local" if parties == 2 else "dealer") if truncation == "auto" else truncation
        self.record_payloads = bool(record_payloads)
        seeds = torch.randint(0, 2 ** 62, (parties + 1,), generator=generator).tolist()
        self.parties = [Party(i, generator=torch.Generator().manual_seed(int(s))) for i, s in enumerate(seeds[:-1])]
        self.dealer = Dealer(self, generator=torch.Generator().manual_seed(int(seeds[-1])))
        self.log = MessageLog(parties)
        self._handles = itertools.count()
        self.phase = "online"

    # ------------------------------------------------------------------------------------ messages

    def _deliver(self, sender, receiver: int, tag: str, payload: torch.Tensor, *, phase: Optional[str] = None,
                 round: Optional[int] = None) -> None:
        msg = Message(sender=sender, receiver=receiver, tag=tag,
                      payload=payload.clone() if self.record_payloads else None, round=round,
                      phase=phase or self.phase, nbytes=payload.numel() * payload.element_size())
        self.log.record(msg)
        self.parties[receiver].received.append(msg)

    def _new_round(self) -> Optional[int]:
        if self.phase != "online":
            return None
        self.log.rounds += 1
        return self.log.rounds

    def _open(self, tensors: dict[str, "SharedTensor"], *, to: Optional[int] = None) -> dict[str, torch.Tensor]:
        """One round: every party sends its share of each tensor to every other party (or to ``to`` only);
        each receiver adds up what it got and its own share. Returns the opened ring values."""
        rnd = self._new_round()
        receivers = range(self.num_parties) if to is None else [to]
        out = {}
        for tag, st in tensors.items():
            self._check_mine(st, tag)
            for p in self.parties:
                for r in receivers:
                    if r != p.index:
                        self._deliver(p.index, r, tag, p.share_of(st.handle), round=rnd)
            value = self.parties[0].share_of(st.handle).clone()
            for p in self.parties[1:]:
                value = value + p.share_of(st.handle)
            out[tag] = value
        return out

    def _check_mine(self, st: object, name: str) -> None:
        if not isinstance(st, SharedTensor):
            raise TypeError(f"{name} must be a SharedTensor, got {type(st).__name__}")
        if st.network is not self:
            raise ValueError(f"{name} was shared in a different Network (different parties or sharing); shares of "
                             f"different sharings cannot be combined")

    def _local(self, fn: Callable[..., torch.Tensor], shape: Sequence[int]) -> "SharedTensor":
        """A new shared tensor whose share at party ``p`` is ``fn(p)``, computed by each party alone."""
        handle = next(self._handles)
        for p in self.parties:
            p.store(handle, fn(p))
        return SharedTensor(self, handle, tuple(shape))

    # ------------------------------------------------------------------------------------ in and out

    def share(self, x: Public, *, owner: int = 0, encoded: bool = False) -> "SharedTensor":
        """Party ``owner`` secret-shares its input ``x``: one round in which it sends share ``i`` to party ``i``.

        Args:
            x: real values (fixed-point encoded here) or, with ``encoded=True``, an int64 ring element.
            owner: index of the party whose input it is.
            encoded: ``x`` is already a ring element.
        """
        self._check_party(owner, "owner")
        x = torch.as_tensor(x)
        ring = x if encoded else encode(x, frac_bits=self.frac_bits, headroom=self.headroom)
        sh = share(ring, parties=self.num_parties, generator=self.parties[owner].generator)
        rnd = self._new_round()
        for i in range(self.num_parties):
            if i != owner:
                self._deliver(owner, i, "input", sh[i], round=rnd)
        return self._local(lambda p: sh[p.index], ring.shape)

    def reveal(self, x: "SharedTensor", *, to: Optional[int] = None) -> torch.Tensor:
        """Open ``x`` (one round) to party ``to`` or, with ``None``, to everyone; returns the decoded float64 values."""
        if to is not None:
            self._check_party(to, "to")
        return decode(self._open({"output": x}, to=to)["output"], frac_bits=self.frac_bits)

    def _check_party(self, index: object, name: str) -> None:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < self.num_parties:
            raise ValueError(f"{name} must be a party index in [0, {self.num_parties - 1}], got {index!r}")

    def shares(self, x: "SharedTensor") -> list[torch.Tensor]:
        """Every party's share of ``x`` (an outside observer's view, for tests and teaching; not a protocol step)."""
        self._check_mine(x, "x")
        return [p.share_of(x.handle).clone() for p in self.parties]


class SharedTensor:
    """A handle to a secret that the parties of ``network`` hold in shares; supports ``+ - * @`` and ``neg``.

    ``*`` and ``@`` with another :class:`SharedTensor` run Beaver's protocol; with a public tensor or number they
    are local (plus a truncation for real-valued factors).
    """

    def __init__(self, network: Network, handle: int, shape: tuple):
        self.network, self.handle, self.shape = network, handle, torch.Size(shape)

    def __repr__(self) -> str:
        return f"SharedTensor(shape={tuple(self.shape)}, parties={self.network.num_parties})"

    def __add__(self, other):
        return add(self, other) if isinstance(other, SharedTensor) else add_public(self, other)

    __radd__ = __add__

    def __sub__(self, other):
        return sub(self, other) if isinstance(other, SharedTensor) else add_public(self, -torch.as_tensor(other))

    def __neg__(self):
        return neg(self)

    def __mul__(self, other):
        return mul(self, other) if isinstance(other, SharedTensor) else mul_public(self, other)

    __rmul__ = __mul__

    def __matmul__(self, other):
        return matmul(self, other) if isinstance(other, SharedTensor) else matmul_public(self, other)

    def reshape(self, *shape) -> "SharedTensor":
        new = torch.empty(self.shape).reshape(*shape).shape
        return self.network._local(lambda p: p.share_of(self.handle).reshape(new), new)


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
    ce = encode(torch.as_tensor(c), frac_bits=net.frac_bits, headroom=net.headroom)
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
    ce = encode(c, frac_bits=net.frac_bits, headroom=net.headroom)
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
    we = encode(w, frac_bits=net.frac_bits, headroom=net.headroom)
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
