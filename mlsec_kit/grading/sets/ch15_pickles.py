"""The pickles set 15 grades on, written without ever being loaded: benign objects and ``torch.save`` state dicts
of random small models, the kit's demonstration payloads in each format that carries a pickle, and hand-assembled
pickles that exercise what a scanner must handle (``INST``, ``STACK_GLOBAL`` fed by every kind of string opcode and
by the memo, a second pickle after the first ``STOP``).

Nothing here unpickles anything. ``pickle.dumps`` of a payload object only records the call its ``__reduce__``
describes, and the hand-assembled pickles are byte strings built opcode by opcode (the opcodes of
:mod:`pickle`; their meaning is documented in :mod:`pickletools`).

SAFETY: every hand-assembled call is ``f(marker, "w")`` for an ``f`` that opens ``marker`` for writing (``open``,
``io.open``, ``codecs.open``, ``logging.FileHandler``, ``zipfile.ZipFile``, ``numpy.save``; markers end in ``.npy``,
so that ``numpy.save`` adds no suffix), so loading one (as the tests do, in a child process, with ``marker`` in a
temporary folder) creates that one file and does nothing else. The grader's
markers lie in a folder that does not exist (:data:`MARKER_DIR`), so even a stray load would create nothing.
"""
from __future__ import annotations

import io
import pickle
import struct
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch import nn

from ..instances import init_normal, randint

__all__ = ["Asm", "OPENERS", "MARKER_DIR", "STRING_KINDS", "MEMO_KINDS", "MODEL_KINDS", "handmade_call",
           "benign_object", "state_dict", "torch_zip", "data_pkl", "archive_name", "kit_payload_pickle",
           "kit_torch_zip"]

#: the folder the grader's hand-made markers would be written to: it does not exist, so nothing ever is
MARKER_DIR = "/nonexistent-mlsec-set15"
#: callables that create their first argument (a path ending in ``.npy``) when called as ``f(marker, "w")``: a
#: deny-list of ``os``/``subprocess``/``eval``/``exec`` lets every one of them through
OPENERS: tuple[tuple[str, str], ...] = (("builtins", "open"), ("io", "open"), ("codecs", "open"),
                                        ("logging", "FileHandler"), ("zipfile", "ZipFile"), ("numpy", "save"))
STRING_KINDS = ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING",
                "SHORT_BINSTRING")
MEMO_KINDS = ("MEMOIZE", "BINPUT", "LONG_BINPUT", "PUT")
_GET_FOR = {"MEMOIZE": "BINGET", "BINPUT": "BINGET", "LONG_BINPUT": "LONG_BINGET", "PUT": "GET"}


class Asm:
    """A pickle written opcode by opcode; keeps count of the memo so that ``put`` returns the slot it filled."""

    def __init__(self, protocol: int = 4) -> None:
        self.out = bytearray()
        self.slots = 0
        if protocol >= 2:
            self.out += pickle.PROTO + bytes([protocol])

    def string(self, s: str, kind: str = "SHORT_BINUNICODE") -> "Asm":
        raw = s.encode("utf-8")
        if kind == "SHORT_BINUNICODE":
            self.out += pickle.SHORT_BINUNICODE + bytes([len(raw)]) + raw
        elif kind == "BINUNICODE":
            self.out += pickle.BINUNICODE + struct.pack("<I", len(raw)) + raw
        elif kind == "BINUNICODE8":
            self.out += pickle.BINUNICODE8 + struct.pack("<Q", len(raw)) + raw
        elif kind == "UNICODE":
            self.out += pickle.UNICODE + s.encode("raw-unicode-escape") + b"\n"
        elif kind == "STRING":
            self.out += pickle.STRING + repr(s).encode("ascii") + b"\n"
        elif kind == "BINSTRING":
            self.out += pickle.BINSTRING + struct.pack("<i", len(raw)) + raw
        elif kind == "SHORT_BINSTRING":
            self.out += pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw
        else:
            raise ValueError(f"kind must be one of {STRING_KINDS}, got {kind!r}")
        return self

    def put(self, kind: str = "MEMOIZE") -> int:
        """Memoise the top of the stack; the slot's index."""
        slot = self.slots
        if kind == "MEMOIZE":
            self.out += pickle.MEMOIZE
        elif kind == "BINPUT":
            self.out += pickle.BINPUT + bytes([slot])
        elif kind == "LONG_BINPUT":
            self.out += pickle.LONG_BINPUT + struct.pack("<I", slot)
        elif kind == "PUT":
            self.out += pickle.PUT + str(slot).encode() + b"\n"
        else:
            raise ValueError(f"kind must be one of {MEMO_KINDS}, got {kind!r}")
        self.slots += 1
        return slot

    def get(self, slot: int, kind: str = "BINGET") -> "Asm":
        if kind == "BINGET":
            self.out += pickle.BINGET + bytes([slot])
        elif kind == "LONG_BINGET":
            self.out += pickle.LONG_BINGET + struct.pack("<I", slot)
        else:
            self.out += pickle.GET + str(slot).encode() + b"\n"
        return self

    def op(self, code: bytes) -> "Asm":
        self.out += code
        return self

    def global_(self, module: str, name: str) -> "Asm":
        self.out += pickle.GLOBAL + f"{module}\n{name}\n".encode()
        return self

    def inst(self, module: str, name: str) -> "Asm":
        self.out += pickle.INST + f"{module}\n{name}\n".encode()
        return self

    def done(self) -> bytes:
        return bytes(self.out + pickle.STOP)


def _decoys(rng: torch.Generator, k: int) -> list[str]:
    words = ("weights", "bias", "layer", "epoch", "config", "notes", "step", "scale", "shape", "version")
    return [f"{words[randint(rng, 0, len(words) - 1)]}_{randint(rng, 0, 99)}" for _ in range(k)]


def handmade_call(rng: torch.Generator, style: str, *, target: tuple[str, str], marker: str) -> bytes:
    """A pickle whose load calls ``target(marker, "w")``, its import written in ``style``:

    * ``"global"``: ``GLOBAL`` (any protocol);
    * ``"inst"``: ``MARK marker "w" INST module name`` (protocol 0's way of building an instance);
    * ``"stack_global"``: ``STACK_GLOBAL`` after two string pushes of random kinds (:data:`STRING_KINDS`);
    * ``"memo"``: module and name first appear as data (a list of strings, each memoised with a random kind of
      put), then are fetched back with the matching get for ``STACK_GLOBAL``; the strings pushed just before
      the gets are decoys, so a scanner that ignores gets resolves the wrong pair.

    Args:
        rng: draws the protocol, the string and memo opcodes, the decoys.
        style: ``"global"``, ``"inst"``, ``"stack_global"`` or ``"memo"``.
        target: ``(module, name)`` of the callable, one of :data:`OPENERS` for a pickle that is safe to load.
        marker: the path the call opens for writing (ending in ``.npy`` for ``numpy.save``).

    Returns:
        The pickle's bytes; its only import is ``target``. Source: the opcodes of :mod:`pickletools`.
    """
    module, name = target
    if style == "global":
        asm = Asm(randint(rng, 0, 5))
        asm.global_(module, name)
    elif style == "inst":
        asm = Asm(randint(rng, 0, 2) * 2)  # protocol 0, 2 or 4 header: INST is read whatever it says
        asm.op(pickle.MARK).string(marker, "UNICODE").string("w", "UNICODE").inst(module, name)
        return asm.done()
    elif style == "stack_global":
        asm = Asm(randint(rng, 4, 5))
        for s in (module, name):
            asm.string(s, STRING_KINDS[randint(rng, 0, len(STRING_KINDS) - 1)])
    elif style == "memo":
        asm = Asm(randint(rng, 4, 5))
        kind = MEMO_KINDS[randint(rng, 0, len(MEMO_KINDS) - 1)]
        items = _decoys(rng, 2) + [module, name] + _decoys(rng, 2)
        order = torch.randperm(6, generator=rng).tolist()
        slots: dict[str, int] = {}
        asm.op(pickle.MARK).op(pickle.MARK)  # (list of strings, the call) as a tuple
        for i in order:
            asm.string(items[i], STRING_KINDS[randint(rng, 0, 3)])
            slots[items[i]] = asm.put(kind)
        asm.op(pickle.LIST)
        for decoy in _decoys(rng, 2):  # the two strings pushed last before the gets are not the operands
            asm.string(decoy).op(pickle.POP)
        asm.get(slots[module], _GET_FOR[kind]).get(slots[name], _GET_FOR[kind])
    else:
        raise ValueError(f"style must be global, inst, stack_global or memo, got {style!r}")
    if style != "global":
        asm.op(pickle.STACK_GLOBAL)
    if asm.out[:1] == pickle.PROTO:  # protocol 2+: a pair is TUPLE2
        asm.string(marker, "BINUNICODE").string("w", "SHORT_BINUNICODE").op(pickle.TUPLE2)
    else:  # protocol 0 and 1: MARK ... TUPLE, text strings
        asm.op(pickle.MARK).string(marker, "UNICODE").string("w", "UNICODE").op(pickle.TUPLE)
    asm.op(pickle.REDUCE)
    if style == "memo":
        asm.op(pickle.TUPLE)
    return asm.done()


# ---- benign data --------------------------------------------------------------------------------------------
def benign_object(rng: torch.Generator, *, classes: int = 3) -> Any:
    """A nested structure of data and ``classes`` instances of standard-library classes (each pickled through an
    import: ``collections.OrderedDict``, ``datetime.date``, ``decimal.Decimal``, ...), at least two of them from
    one module (so that its name is memoised at protocol 4 and fetched back for the second)."""
    import collections
    import datetime
    import decimal
    import fractions

    makers: list[Callable[[], Any]] = [
        lambda: collections.OrderedDict(a=randint(rng, 0, 9), b=[1, 2]),
        lambda: collections.Counter("abcab"[: randint(rng, 1, 5)]),
        lambda: collections.deque(range(randint(rng, 0, 4))),
        lambda: datetime.date(2000 + randint(rng, 0, 30), randint(rng, 1, 12), randint(rng, 1, 28)),
        lambda: datetime.timedelta(seconds=randint(rng, 0, 10 ** 6)),
        lambda: decimal.Decimal(f"{randint(rng, 0, 999)}.{randint(rng, 0, 99)}"),
        lambda: fractions.Fraction(randint(rng, 1, 50), randint(rng, 1, 50)),
    ]
    pair = (0, 1, 2) if randint(rng, 0, 1) else (3, 4)  # two of one module: collections or datetime
    picks = [pair[randint(rng, 0, len(pair) - 1)] for _ in range(2)]
    picks = [pair[0], pair[1]] if picks[0] == picks[1] else picks
    picks += [randint(rng, 0, len(makers) - 1) for _ in range(max(0, classes - 2))]
    items: list[Any] = [makers[i]() for i in picks]
    items += [randint(rng, -5, 5), 0.5 * randint(rng, 0, 8), "text", b"raw", (1, "two"), {"k": None}]
    order = torch.randperm(len(items), generator=rng).tolist()
    return {f"field_{i}": items[j] for i, j in enumerate(order)}


class _TinyCNN(nn.Module):
    def __init__(self, k: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, k, 3)
        self.norm = nn.BatchNorm2d(k)
        self.head = nn.Linear(k * 36, 10)


def _model(rng: torch.Generator, kind: str) -> nn.Module:
    if kind == "linear":
        return nn.Linear(randint(rng, 2, 64), randint(rng, 2, 10))
    if kind == "mlp":
        d, h = randint(rng, 4, 64), randint(rng, 4, 32)
        return nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, randint(rng, 2, 10)))
    if kind == "cnn":
        return _TinyCNN(randint(rng, 2, 6))
    if kind == "embedding":
        return nn.Sequential(nn.Embedding(randint(rng, 8, 64), 8), nn.LayerNorm(8), nn.Linear(8, 8))
    raise ValueError(f"kind must be linear, mlp, cnn or embedding, got {kind!r}")


MODEL_KINDS = ("linear", "mlp", "cnn", "embedding")


def state_dict(rng: torch.Generator, kind: Optional[str] = None) -> dict:
    """The state dict of a random small model (weights drawn from ``rng``; now and then in half, bfloat16 or
    double precision). A CNN's includes BatchNorm's ``num_batches_tracked``, an int64 tensor: a second storage
    class from the module ``torch``."""
    kind = MODEL_KINDS[randint(rng, 0, len(MODEL_KINDS) - 1)] if kind is None else kind
    model = init_normal(_model(rng, kind), rng)
    dtype = (torch.float32, torch.float32, torch.float16, torch.bfloat16, torch.float64)[randint(rng, 0, 4)]
    return model.to(dtype).state_dict()


def torch_zip(obj: Any, *, archive: str, protocol: int = 2, extra: Optional[dict[str, bytes]] = None) -> bytes:
    """The bytes ``torch.save(obj, f"{archive}.pt", pickle_protocol=protocol)`` writes (its zip's folder is
    ``archive``), with the members ``extra`` (``{name: bytes}``, inside that folder) added."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{archive}.pt"
        torch.save(obj, path, pickle_protocol=protocol)
        if extra:
            with zipfile.ZipFile(path, "a") as zf:
                for member, data in extra.items():
                    zf.writestr(f"{archive}/{member}", data)
        return path.read_bytes()


def data_pkl(zip_bytes: bytes) -> bytes:
    """The ``data.pkl`` member of a ``torch.save`` zip."""
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as zf:
        return zf.read(next(n for n in zf.namelist() if n.endswith("/data.pkl")))


def archive_name(rng: torch.Generator) -> str:
    stems = ("model", "checkpoint", "weights", "ckpt", "best", "final", "resnet", "tiny")
    return f"{stems[randint(rng, 0, len(stems) - 1)]}_{randint(rng, 0, 9999)}"


# ---- the kit's payloads -------------------------------------------------------------------------------------
def _kit_marker(rng: torch.Generator) -> Path:
    """A marker path in an existing folder where no file is (the kit's payloads check both); never written."""
    folder = Path(tempfile.gettempdir())
    while True:
        marker = folder / f"mlsec-set15-marker-{randint(rng, 0, 10 ** 9)}"
        if not marker.exists():
            return marker


def kit_payload_pickle(rng: torch.Generator, technique: str, fmt: str, *, protocol: Optional[int] = None) -> bytes:
    """The pickle bytes a file of format ``fmt`` carries for the kit's payload ``technique``: the whole file for
    ``"pickle"`` (``pickle.dumps`` at ``protocol``, drawn in 0-5 when ``None``) and ``"joblib"`` (``joblib.dump``
    of the same with a list for weights: no array bytes between pickle frames); ``data.pkl`` of a ``torch.save``
    zip for ``"torch"`` (pickle protocol 2, or ``protocol``); the pickle after the header of ``np.save`` of an
    object array for ``"npy"``.

    Args:
        rng: draws the marker's name, the weights, the protocol and the archive's name.
        technique: one of :data:`mlsec_kit.supply_chain.TECHNIQUES`.
        fmt: ``"pickle"``, ``"joblib"``, ``"torch"`` or ``"npy"``.
        protocol: the pickle protocol for ``"pickle"`` and ``"torch"`` (``None``: drawn, or torch's default 2).

    Returns:
        Pickle bytes (one pickle) holding the payload; nothing is loaded, and the marker is never created.
    """
    import numpy as np

    from ...supply_chain import payload

    evil = payload(technique, marker=_kit_marker(rng))
    weight = [[0.5 * randint(rng, -4, 4) for _ in range(3)] for _ in range(2)]
    if fmt == "pickle":
        return pickle.dumps({"weight": weight, "extra": evil},
                            protocol=randint(rng, 0, 5) if protocol is None else protocol)
    if fmt == "joblib":
        import joblib

        buffer = io.BytesIO()
        joblib.dump({"weight": weight, "extra": evil}, buffer)
        return buffer.getvalue()
    if fmt == "torch":
        obj = {"weight": torch.tensor(weight), "extra": evil}
        return data_pkl(torch_zip(obj, archive=archive_name(rng), protocol=2 if protocol is None else protocol))
    if fmt == "npy":
        arr = np.empty(2, dtype=object)
        arr[0], arr[1] = "weights", evil
        buffer = io.BytesIO()
        np.save(buffer, arr, allow_pickle=True)
        raw = buffer.getvalue()
        major = raw[6]
        start = 10 + struct.unpack("<H", raw[8:10])[0] if major == 1 else 12 + struct.unpack("<I", raw[8:12])[0]
        return raw[start:]
    raise ValueError(f"fmt must be pickle, joblib, torch or npy, got {fmt!r}")


def kit_torch_zip(rng: torch.Generator, technique: str, *, archive: str) -> bytes:
    """A ``torch.save`` zip (folder ``archive``) of a small state dict with the kit's payload ``technique`` in it."""
    from ...supply_chain import payload

    obj = dict(state_dict(rng, "linear"))
    obj["extra"] = payload(technique, marker=_kit_marker(rng))
    return torch_zip(obj, archive=archive, protocol=(2, 4, 5)[randint(rng, 0, 2)])
