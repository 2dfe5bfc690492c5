"""Simulated parties for secret-shared computation: :class:`Party`, the trusted :class:`Dealer`, the
:class:`Network` that moves messages and the :class:`MessageLog` that records them, and :class:`SharedTensor`, a
handle to a secret the parties hold in shares.

Every party holds only its own share of each secret and the messages it has received; the network writes each
message to the log, which counts communication rounds and bytes per party and keeps *what* each party received
(with ``record_payloads=True``), so that a test can check what a party saw. The operations on shares are in
:mod:`.protocol`. The dealer's messages are the *offline* phase (they do not depend on the inputs) and are logged
with phase ``"offline"``; a model owner's sharing of its weights is ``"setup"``; everything else is ``"online"``.
Every party and the dealer draw from their own ``torch.Generator``, seeded from the one the network is given.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence, Union

import torch

from .ring import (DEFAULT_FRAC_BITS, DEFAULT_HEADROOM, check_frac_bits, check_generator, check_parties, decode,
                   encode, random_ring, share)

__all__ = ["Message", "MessageLog", "Party", "Dealer", "Network", "SharedTensor", "TRUNCATIONS", "PHASES"]

#: truncation protocols (:func:`mlsec_kit.crypto.mpc.protocol.truncate`)
TRUNCATIONS = ("auto", "local", "dealer")
#: the phases a message belongs to
PHASES = ("setup", "offline", "online")
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


def _check_phase(phase: object) -> None:
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")


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
        _check_phase(phase)
        return sum(m.nbytes for m in self.messages if m.sender == party and m.phase == phase)

    def bytes_received(self, party: int, *, phase: str = "online") -> int:
        _check_phase(phase)
        return sum(m.nbytes for m in self.messages if m.receiver == party and m.phase == phase)

    def total_bytes(self, *, phase: str = "online") -> int:
        """Bytes sent by everyone (the dealer included) in ``phase``."""
        _check_phase(phase)
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
        from . import protocol as op
        return op.add(self, other) if isinstance(other, SharedTensor) else op.add_public(self, other)

    __radd__ = __add__

    def __sub__(self, other):
        from . import protocol as op
        return (op.sub(self, other) if isinstance(other, SharedTensor)
                else op.add_public(self, -torch.as_tensor(other)))

    def __rsub__(self, other):
        from . import protocol as op
        return op.add_public(op.neg(self), other)

    def __neg__(self):
        from . import protocol as op
        return op.neg(self)

    def __mul__(self, other):
        from . import protocol as op
        return op.mul(self, other) if isinstance(other, SharedTensor) else op.mul_public(self, other)

    __rmul__ = __mul__

    def __matmul__(self, other):
        from . import protocol as op
        return op.matmul(self, other) if isinstance(other, SharedTensor) else op.matmul_public(self, other)

    def reshape(self, *shape) -> "SharedTensor":
        """The same secret in another shape: each party reshapes its own share (local)."""
        try:
            new = torch.empty(self.shape, device="meta").reshape(*shape).shape
        except RuntimeError as exc:
            raise ValueError(f"shape {shape} does not fit the {self.shape.numel()} elements of shape "
                             f"{tuple(self.shape)}: {exc}") from None
        return self.network._local(lambda p: p.share_of(self.handle).reshape(new), new)
