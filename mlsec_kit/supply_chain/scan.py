"""The kit's own pickle scanner: walk the opcodes, resolve every import, flag those outside an allow-list.

A pickle names each callable it will use through an import opcode before calling it (``REDUCE``, ``BUILD``,
``OBJ``, ``NEWOBJ``): ``GLOBAL`` and ``INST`` carry ``"module name"`` in their argument, and ``STACK_GLOBAL``
(protocol 4+) pops module and name from the stack, where they got by string pushes or by memo lookups
(``BINGET``). :func:`scan_bytes` walks the stream with :func:`pickletools.genops` (which parses without executing
anything), keeps a model of the stack (strings by value, everything else as a placeholder) and of the memo, and
resolves each import; an import whose module and name are not known strings is itself a finding. This is the
approach of picklescan and of Trail of Bits' fickling; an allow-list (what benign state dicts need) rather than a
deny-list means that an unknown callable is flagged too.

* ``torch.save`` zips: every ``*.pkl`` member is scanned (``data.pkl``, and any other an attacker adds);
* ``.npy``: the pickle after the header when the dtype holds objects (NumPy's format, NEP 1);
* several pickles one after another in a file are all scanned (a loader that calls ``load`` twice runs the
  second one; ``pickle.load`` stops at the first STOP, so a scanner that does too misses what follows);
* joblib writes array bytes between pickle frames; a parse that fails exactly at a frame's end resumes at the
  next frame (an attacker could hide a frame look-alike in array bytes: the kit then reports more, not less).

Blind spots, by construction: a dangerous callable someone puts on the allow-list (``builtins.getattr`` gives
access to anything), and whatever a file does through allowed callables.
"""
from __future__ import annotations

import _compat_pickle
import io
import json
import os
import pickletools
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Union

from .formats import MAX_BYTES, check_path, check_size, detect_format

__all__ = ["Finding", "Report", "DEFAULT_ALLOW", "DANGEROUS", "scan", "scan_bytes", "pickle_globals"]

PathLike = Union[str, "os.PathLike[str]"]

_STORAGES = ("Double", "Float", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool", "ComplexFloat",
             "ComplexDouble")
#: the imports benign ``torch.save`` state dicts, NumPy arrays and joblib'd arrays need, and nothing else
DEFAULT_ALLOW: frozenset = frozenset(
    {("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter"),
     ("torch", "Size"), ("torch", "device")}
    | {("torch", f"{s}Storage") for s in _STORAGES}
    | {(m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray") for n in ("_reconstruct", "scalar")}
    | {("numpy", "ndarray"), ("numpy", "dtype"), ("joblib.numpy_pickle", "NumpyArrayWrapper")})

#: modules (``"os"``) or callables (``"builtins.exec"``) that are flagged ``"dangerous"`` rather than ``"unknown"``
DANGEROUS: frozenset = frozenset({
    "os", "posix", "nt", "subprocess", "runpy", "importlib", "socket", "shutil", "sys", "pty", "ctypes", "marshal",
    "pickle", "_pickle", "code", "codeop", "webbrowser", "urllib", "requests", "http", "ftplib", "asyncio",
    "multiprocessing", "types", "base64", "codecs", "operator", "functools", "builtins.exec", "builtins.eval",
    "builtins.compile", "builtins.open", "builtins.getattr", "builtins.setattr", "builtins.__import__",
    "builtins.globals", "builtins.breakpoint", "builtins.input", "torch.load", "numpy.load", "joblib.load",
})

_STRING_OPS = {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE",
               "BINUNICODE8"}
_IMPORT_OPS = {"GLOBAL", "INST", "STACK_GLOBAL"}
_CALL_OPS = ("REDUCE", "BUILD", "OBJ", "NEWOBJ", "NEWOBJ_EX", "INST")
_MARK = object()
_OTHER = object()


@dataclass(frozen=True)
class Finding:
    """One import outside the allow-list (or one the scanner could not resolve).

    Attributes:
        opcode: ``"GLOBAL"``, ``"INST"``, ``"STACK_GLOBAL"`` (or ``"-"`` for a stream that does not parse).
        callable: ``"module.name"``; ``"?"`` when a STACK_GLOBAL's operands are not known strings.
        position: byte offset of the opcode in the pickle (in the zip member for torch files).
        member: the zip member for torch files, else ``None``.
        severity: ``"dangerous"`` (in :data:`DANGEROUS`) or ``"unknown"`` (not allowed, not known dangerous).
    """

    opcode: str
    callable: str
    position: int
    member: Optional[str] = None
    severity: str = "unknown"

    def __str__(self) -> str:
        where = f"{self.member}@{self.position}" if self.member else f"@{self.position}"
        return f"{self.severity:9s} {self.opcode:12s} {self.callable} {where}"


@dataclass
class Report:
    """What :func:`scan` found in one file.

    Attributes:
        path: the file. format: its detected format. safe: no findings. findings: the imports flagged.
        globals: every import seen, ``"module.name"``, in order, once each. calls: counts of the opcodes that call
            or build (REDUCE, BUILD, OBJ, NEWOBJ, NEWOBJ_EX, INST). notes: what the scanner could not check.
    """

    path: str
    format: str
    safe: bool
    findings: list = field(default_factory=list)
    globals: list = field(default_factory=list)
    calls: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def summary(self) -> str:
        """One line: verdict, format, counts."""
        verdict = "safe" if self.safe else f"UNSAFE ({len(self.findings)} finding(s))"
        return (f"{Path(self.path).name}: {verdict}; format {self.format}; {len(self.globals)} import(s); "
                f"{sum(self.calls.values())} call/build opcode(s)")

    def __str__(self) -> str:
        lines = [self.summary()] + [f"  {f}" for f in self.findings] + [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _normalise(module: str, name: str) -> tuple[str, str]:
    """Python 2 names (``__builtin__``, ``copy_reg``) as the unpickler maps them for protocols < 3."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _check_allow(allow: object) -> frozenset:
    if isinstance(allow, (str, bytes)) or not isinstance(allow, Iterable):
        raise TypeError("allow must be a collection of (module, name) pairs or 'module.name' strings")
    out = set()
    for item in allow:
        if isinstance(item, str) and "." in item:
            out.add(tuple(item.rsplit(".", 1)))
        elif isinstance(item, tuple) and len(item) == 2 and all(isinstance(s, str) for s in item):
            out.add(item)
        else:
            raise TypeError(f"allow must hold (module, name) pairs or 'module.name' strings, got {item!r}")
    return frozenset(out)


def _severity(module: str, name: str) -> str:
    top = module.split(".")[0]
    return "dangerous" if (module in DANGEROUS or top in DANGEROUS or f"{module}.{name}" in DANGEROUS) else "unknown"


class _Walker:
    """Opcode walk with a model of the stack (strings by value) and of the memo, across concatenated pickles."""

    def __init__(self, allow: frozenset, member: Optional[str]) -> None:
        self.allow, self.member = allow, member
        self.findings: list[Finding] = []
        self.globals: list[str] = []
        self.calls: dict[str, int] = {}
        self.notes: list[str] = []
        self.stack: list = []
        self.memo: dict = {}
        self.joblib = False

    def _pop(self) -> object:
        return self.stack.pop() if self.stack else _OTHER

    def _import(self, opcode: str, module: Optional[str], name: Optional[str], pos: int) -> None:
        if module is None or name is None:
            self.findings.append(Finding(opcode, "?", pos, self.member, "unknown"))
            return
        module, name = _normalise(module, name)
        qual = f"{module}.{name}"
        if qual not in self.globals:
            self.globals.append(qual)
        if (module, name) == ("joblib.numpy_pickle", "NumpyArrayWrapper"):
            self.joblib = True
        if (module, name) not in self.allow:
            self.findings.append(Finding(opcode, qual, pos, self.member, _severity(module, name)))

    def step(self, op: pickletools.OpcodeInfo, arg: object, pos: int) -> None:
        name = op.name
        if name in _CALL_OPS:
            self.calls[name] = self.calls.get(name, 0) + 1
        if name in ("GLOBAL", "INST"):
            module, _, attr = str(arg).partition(" ")
            self._import(name, module, attr, pos)
        elif name == "STACK_GLOBAL":
            attr, module = self._pop(), self._pop()
            ok = isinstance(module, str) and isinstance(attr, str)
            self._import(name, module if ok else None, attr if ok else None, pos)
            self.stack.append(_OTHER)
            return
        if name in _STRING_OPS:
            self.stack.append(arg.decode("latin-1") if isinstance(arg, bytes) else str(arg))
        elif name == "MEMOIZE":
            self.memo[len(self.memo)] = self.stack[-1] if self.stack else _OTHER
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            self.memo[int(arg)] = self.stack[-1] if self.stack else _OTHER
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            self.stack.append(self.memo.get(int(arg), _OTHER))
        elif name == "DUP":
            self.stack.append(self.stack[-1] if self.stack else _OTHER)
        else:  # GLOBAL and INST included: their stack effect is generic
            self._generic(op)

    def _generic(self, op: pickletools.OpcodeInfo) -> None:
        """Pop what the opcode consumes (down to the MARK if it takes one), push placeholders for its results."""
        before = list(op.stack_before)
        if pickletools.markobject in before:
            while self.stack and self.stack[-1] is not _MARK:
                self.stack.pop()
            if self.stack:
                self.stack.pop()
            before = before[:before.index(pickletools.markobject)]
        for _ in before:
            self._pop()
        for item in op.stack_after:
            self.stack.append(_MARK if item is pickletools.markobject else _OTHER)

    def walk(self, data: bytes) -> None:
        pos, frame_ends, resyncing = 0, set(), False
        saved: list = []  # the enclosing pickles' (stack, memo) while a nested one is walked
        stream = io.BytesIO(data)  # one stream, seeked: no copy of the data per pickle or per resync candidate
        while pos < len(data):
            stream.seek(pos)
            error_at, stopped, ops, ends = None, False, [], set()
            try:
                for op, arg, p in pickletools.genops(stream):
                    ops.append((op, arg, p))  # genops reports the stream's absolute offset
                    if op.name == "FRAME":
                        ends.add(p + 9 + int(arg))
                    stopped = op.name == "STOP"
            except Exception:  # noqa: BLE001 - genops raises ValueError and others on malformed input
                error_at = self._error_position(data, ops, pos)
            if resyncing and (not ops or not (stopped or error_at in frame_ends | ends)):
                pos = self._next_candidate(data, pos + 1)  # not a real frame: try the next candidate
                continue
            if resyncing and ops[0][0].name == "PROTO":  # a pickle nested in joblib's stream: its own memo
                saved.append((self.stack, self.memo))
                self.stack, self.memo = [], {}
            resyncing = False
            frame_ends |= ends
            for i, (op, arg, p) in enumerate(ops):
                if op.name == "PROTO" and i > 0 and p in frame_ends and self.joblib:
                    saved.append((self.stack, self.memo))  # joblib's object arrays: a pickle right after a frame
                    self.stack, self.memo = [], {}
                self.step(op, arg, p)
            if stopped:
                pos = stream.tell()
                # back to the enclosing pickle, or a new pickle concatenated after this one (a fresh memo)
                nested = bool(saved)
                self.stack, self.memo = saved.pop() if saved else ([], {})
                if nested and self.joblib:  # still between joblib's frames: find the next one (the pickle that
                    resyncing = True        # ended may have been array bytes that happen to parse, e.g. \x80\x02.)
                    pos = self._next_candidate(data, pos)
                continue
            if error_at in frame_ends and self.joblib:
                resyncing = True  # joblib's raw array bytes: go on at the next frame or nested pickle
                pos = self._next_candidate(data, error_at)
                continue
            what = "a pickle that does not parse" if ops else "bytes that are not a pickle"
            self.findings.append(Finding("-", f"<{what} at byte {error_at}>", error_at, self.member, "unknown"))
            self.notes.append(f"stopped at byte {error_at}: {what}; the rest was not scanned")
            return

    @staticmethod
    def _error_position(data: bytes, ops: list, start: int) -> int:
        """Where parsing broke: just after the last opcode that parsed (its argument included)."""
        if not ops:
            return start
        op, arg, p = ops[-1]
        probe = io.BytesIO(data)
        probe.seek(p)
        try:
            next(pickletools.genops(probe))
            return probe.tell()
        except Exception:  # noqa: BLE001
            return p

    @staticmethod
    def _next_candidate(data: bytes, pos: int) -> int:
        """The next offset that starts a FRAME or a PROTO opcode (or the end)."""
        n = len(data)
        while pos < n:
            b = data[pos]
            if b == 0x95 and pos + 9 <= n and pos + 9 + struct.unpack("<Q", data[pos + 1:pos + 9])[0] <= n:
                return pos
            if b == 0x80 and pos + 1 < n and 2 <= data[pos + 1] <= 5:
                return pos
            pos += 1
        return n


def _walk(data: bytes, allow: frozenset, member: Optional[str] = None) -> _Walker:
    w = _Walker(allow, member)
    w.walk(data)
    return w


def scan_bytes(data: bytes, *, allow: Iterable = DEFAULT_ALLOW) -> list[Finding]:
    """Findings in a pickle byte string (all concatenated pickles in it), without unpickling anything.

    Args:
        data: the pickle bytes (non-empty ``bytes``/``bytearray``).
        allow: the imports allowed, ``(module, name)`` pairs or ``"module.name"`` strings.

    Returns:
        The imports outside ``allow`` and the unresolvable ones, in stream order.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    if len(data) == 0:
        raise ValueError("data must be a non-empty pickle byte string")
    return _walk(bytes(data), _check_allow(allow)).findings


def pickle_globals(data: bytes) -> list[str]:
    """Every import (``"module.name"``) in a pickle byte string, in order, once each; nothing is unpickled."""
    if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) == 0:
        raise TypeError("data must be a non-empty bytes object")
    return _walk(bytes(data), frozenset()).globals


def _scan_safetensors(p: Path) -> list[str]:
    """Problems with a safetensors header (the format has no code; only the header can be malformed)."""
    size = p.stat().st_size
    with open(p, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    problems = []
    body = size - 8 - n
    for key, entry in header.items():
        if key == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                problems.append("__metadata__ must map str to str")
            continue
        if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= set(entry):
            problems.append(f"tensor {key!r} lacks dtype/shape/data_offsets")
            continue
        start, end = entry["data_offsets"]
        if not 0 <= start <= end <= body:
            problems.append(f"tensor {key!r} has data_offsets {entry['data_offsets']} outside the {body}-byte body")
    return problems


def scan(path: PathLike, *, allow: Iterable = DEFAULT_ALLOW, max_bytes: int = MAX_BYTES) -> Report:
    """Scan a model or data file without loading it.

    Args:
        path: an existing file in one of :data:`~mlsec_kit.supply_chain.FORMATS`.
        allow: the imports allowed (default :data:`DEFAULT_ALLOW`: benign state dicts and arrays).
        max_bytes: refuse files larger than this, an int >= 1.

    Returns:
        A :class:`Report`; ``report.safe`` is true when nothing was flagged.
    """
    allowed = _check_allow(allow)
    p = check_path(path)
    check_size(p, max_bytes=max_bytes)
    fmt = detect_format(p)
    findings, globs, calls, notes = [], [], {}, []

    def add(w: _Walker) -> None:
        findings.extend(w.findings)
        globs.extend(g for g in w.globals if g not in globs)
        for k, v in w.calls.items():
            calls[k] = calls.get(k, 0) + v
        notes.extend(w.notes)

    if fmt == "torch":
        with zipfile.ZipFile(p) as z:
            for info in z.infolist():
                if info.filename.endswith(".pkl"):
                    add(_walk(z.read(info), allowed, member=info.filename))
    elif fmt == "npy":
        import numpy as np

        with open(p, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in read:
                raise ValueError(f"path {str(p)!r} is a .npy of version {version}, not 1.0 or 2.0")
            _, _, dtype = read[version](f)
            if dtype.hasobject:
                add(_walk(f.read(), allowed))
            else:
                notes.append(f"numeric array ({dtype}): raw bytes, no pickle")
    elif fmt == "safetensors":
        for problem in _scan_safetensors(p):
            findings.append(Finding("-", f"<invalid header: {problem}>", 0, None, "unknown"))
    else:
        add(_walk(p.read_bytes(), allowed))
    return Report(str(p), fmt, not findings, findings, globs, calls, notes)
