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
* joblib writes array bytes into the pickle stream after each ``NumpyArrayWrapper``'s ``BUILD``; ``joblib.load``
  skips exactly ``padding + prod(shape) * itemsize`` bytes (or reads an object array's nested pickle) and goes on,
  so the walker computes that offset from the wrapper's state (a wrapper it cannot size is a finding). Such a file
  is also walked as a plain ``pickle.load`` reads it (array bytes taken for opcodes) and both readings are reported;
* ``EXT1``/``EXT2``/``EXT4`` import whatever ``copyreg``'s extension registry maps their code to in the loading
  process: unknown to a scanner, so each is a finding.

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
_IMPORT_OPS = {"GLOBAL", "INST", "STACK_GLOBAL", "EXT1", "EXT2", "EXT4"}
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


class _Global:
    """An imported callable on the model stack (so that a later REDUCE/NEWOBJ/BUILD knows what it applies to)."""

    __slots__ = ("pair",)

    def __init__(self, module: str, name: str) -> None:
        self.pair = (module, name)


class _Wrapper:
    """A ``joblib.numpy_pickle.NumpyArrayWrapper`` being built: its state, as far as it holds literals."""

    __slots__ = ("state", "known")

    def __init__(self) -> None:
        self.state: dict = {}
        self.known = True


class _Dtype:
    """``numpy.dtype(<str>, ...)``: the real dtype when its state is a plain one, else ``None`` (unknown)."""

    __slots__ = ("dtype",)

    def __init__(self, dtype: object) -> None:
        self.dtype = dtype


_WRAPPER = ("joblib.numpy_pickle", "NumpyArrayWrapper")
_INT_OPS = {"INT", "LONG", "BININT", "BININT1", "BININT2", "LONG1", "LONG4"}


class _Walker:
    """Opcode walk with a model of the stack and of the memo, across concatenated pickles.

    Strings, ints, ``None``, booleans, tuples and dicts are kept by value, imports as :class:`_Global`, everything
    else as a placeholder. That is enough to resolve ``STACK_GLOBAL`` operands (pushed or fetched from the memo)
    and to follow joblib's layout: when a ``BUILD`` completes a ``NumpyArrayWrapper``, ``joblib.load`` reads the
    array's raw bytes (a padding byte, the padding, ``prod(shape) * itemsize`` bytes) or, for an object array, a
    nested pickle, straight from the file, and then goes on unpickling after them. The walker computes the same
    offset from the wrapper's state; a wrapper whose size it cannot compute is itself a finding (what it would skip
    is unknown).
    """

    def __init__(self, allow: frozenset, member: Optional[str], joblib_arrays: bool = True) -> None:
        self.allow, self.member, self.joblib_arrays = allow, member, joblib_arrays
        self.findings: list[Finding] = []
        self.globals: list[str] = []
        self.calls: dict[str, int] = {}
        self.notes: list[str] = []
        self.stack: list = []
        self.memo: dict = {}
        self.frame_end: Optional[int] = None
        self.jump: Optional[tuple[str, int]] = None  # ("skip" | "nested", offset) after a wrapper's BUILD
        self.wrappers = 0
        self.halted = False
        self.data = b""

    def _pop(self) -> object:
        return self.stack.pop() if self.stack else _OTHER

    def _pop_mark(self) -> list:
        items = []
        while self.stack and self.stack[-1] is not _MARK:
            items.append(self.stack.pop())
        if self.stack:
            self.stack.pop()
        return items[::-1]

    def _import(self, opcode: str, module: Optional[str], name: Optional[str], pos: int) -> object:
        if module is None or name is None:
            self.findings.append(Finding(opcode, "?", pos, self.member, "unknown"))
            return _OTHER
        module, name = _normalise(module, name)
        qual = f"{module}.{name}"
        if qual not in self.globals:
            self.globals.append(qual)
        if (module, name) not in self.allow:
            self.findings.append(Finding(opcode, qual, pos, self.member, _severity(module, name)))
        return _Global(module, name)

    def _instance(self, cls: object) -> object:
        return _Wrapper() if isinstance(cls, _Global) and cls.pair == _WRAPPER else _OTHER

    def step(self, op: pickletools.OpcodeInfo, arg: object, pos: int) -> None:
        name, push = op.name, self.stack.append
        if name in _CALL_OPS:
            self.calls[name] = self.calls.get(name, 0) + 1
        if name == "GLOBAL":
            module, _, attr = str(arg).partition(" ")
            push(self._import(name, module, attr, pos))
        elif name == "INST":
            module, _, attr = str(arg).partition(" ")
            cls = self._import(name, module, attr, pos)
            self._pop_mark()
            push(self._instance(cls))
        elif name == "STACK_GLOBAL":
            attr, module = self._pop(), self._pop()
            ok = isinstance(module, str) and isinstance(attr, str)
            push(self._import(name, module if ok else None, attr if ok else None, pos))
        elif name in _STRING_OPS:
            push(arg.decode("latin-1") if isinstance(arg, bytes) else str(arg))
        elif name in _INT_OPS:
            push(arg if isinstance(arg, int) else _OTHER)
        elif name in ("NONE", "NEWTRUE", "NEWFALSE"):
            push({"NONE": None, "NEWTRUE": True, "NEWFALSE": False}[name])
        elif name == "EMPTY_TUPLE":
            push(())
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            items = [self._pop() for _ in range(int(name[-1]))][::-1]
            push(tuple(items))
        elif name == "TUPLE":
            push(tuple(self._pop_mark()))
        elif name == "EMPTY_DICT":
            push({})
        elif name in ("SETITEM", "SETITEMS"):
            items = [self._pop(), self._pop()][::-1] if name == "SETITEM" else self._pop_mark()
            target = self.stack[-1] if self.stack else _OTHER
            if isinstance(target, dict):
                for key, value in zip(items[::2], items[1::2]):
                    if isinstance(key, (str, int)) or key is None:
                        target[key] = value
        elif name == "MEMOIZE":
            self.memo[len(self.memo)] = self.stack[-1] if self.stack else _OTHER
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            self.memo[int(arg)] = self.stack[-1] if self.stack else _OTHER
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            push(self.memo.get(int(arg), _OTHER))
        elif name == "DUP":
            push(self.stack[-1] if self.stack else _OTHER)
        elif name == "FRAME":
            self.frame_end = pos + 9 + int(arg)
        elif name in ("EXT1", "EXT2", "EXT4"):  # an import through copyreg's registry, decided at load time
            self.findings.append(Finding(name, f"<extension code {arg}>", pos, self.member, "unknown"))
            push(_OTHER)
        elif name == "REDUCE":
            args, func = self._pop(), self._pop()
            if isinstance(func, _Global) and func.pair == ("numpy", "dtype") and isinstance(args, tuple) \
                    and args and isinstance(args[0], str):
                import numpy as np

                try:
                    push(_Dtype(np.dtype(args[0])))
                except Exception:  # noqa: BLE001 - a dtype string numpy refuses: unknown
                    push(_Dtype(None))
            else:
                push(self._instance(func))
        elif name in ("NEWOBJ", "NEWOBJ_EX"):
            if name == "NEWOBJ_EX":
                self._pop()
            self._pop()
            push(self._instance(self._pop()))
        elif name == "OBJ":
            items = self._pop_mark()
            push(self._instance(items[0] if items else _OTHER))
        elif name == "BUILD":
            self._build(self._pop(), pos)
        else:
            self._generic(op)

    def _build(self, state: object, pos: int) -> None:
        obj = self.stack[-1] if self.stack else _OTHER
        if isinstance(obj, _Dtype):  # a structured dtype's fields (state[3], state[4]) are not modelled
            if not (isinstance(state, tuple) and len(state) >= 5 and state[3] is None and state[4] is None):
                obj.dtype = None
            return
        if not isinstance(obj, _Wrapper):
            return
        if isinstance(state, tuple) and len(state) == 2:  # (state, slotstate)
            parts = [s for s in state if s is not None]
        else:
            parts = [state]
        for part in parts:
            if isinstance(part, dict):
                obj.state.update(part)
            else:
                obj.known = False
        self.wrappers += 1
        self.stack[-1] = _OTHER  # joblib puts the array in the wrapper's place
        if self.joblib_arrays:
            self.jump = self._array_end(obj, pos)

    def _array_end(self, wrapper: _Wrapper, pos: int) -> Optional[tuple[str, int]]:
        """Where ``joblib.load`` resumes after the array this wrapper stands for (``None``: a finding was made)."""
        start = pos + 1
        if self.frame_end is not None and start < self.frame_end:
            return self._unknown_array(pos, "its BUILD is not at the end of its frame (joblib would read the array "
                                            "after the frame, out of order)")
        state = wrapper.state
        shape, dtype = state.get("shape"), state.get("dtype")
        align = state.get("numpy_array_alignment_bytes")
        if not (wrapper.known and isinstance(shape, tuple) and all(isinstance(n, int) and n >= 0 for n in shape)
                and isinstance(dtype, _Dtype) and dtype.dtype is not None and (align is None or isinstance(align, int))):
            return self._unknown_array(pos, "its shape, dtype or alignment is not a literal the scanner can read")
        if dtype.dtype.hasobject:
            return ("nested", start)
        end = start
        if align is not None:
            if end >= len(self.data):
                return self._unknown_array(pos, "the file ends before its padding byte")
            end += 1 + self.data[end]
        count = 1
        for n in shape:
            count *= n
        end += count * dtype.dtype.itemsize
        if end > len(self.data):
            return self._unknown_array(pos, f"its {count * dtype.dtype.itemsize} bytes run past the end of the file")
        return ("skip", end)

    def _unknown_array(self, pos: int, why: str) -> None:
        self.findings.append(Finding("BUILD", f"<joblib array of unknown extent at byte {pos}>", pos, self.member,
                                     "unknown"))
        self.notes.append(f"joblib array at byte {pos}: {why}; the rest was not scanned")
        self.halted = True
        return None

    def _generic(self, op: pickletools.OpcodeInfo) -> None:
        """Pop what the opcode consumes (down to the MARK if it takes one), push placeholders for its results."""
        before = list(op.stack_before)
        if pickletools.markobject in before:
            self._pop_mark()
            before = before[:before.index(pickletools.markobject)]
        for _ in before:
            self._pop()
        for item in op.stack_after:
            self.stack.append(_MARK if item is pickletools.markobject else _OTHER)

    def walk(self, data: bytes) -> None:
        """Walk every pickle in ``data``; with ``joblib_arrays``, skip array bytes as ``joblib.load`` does."""
        self.data = data
        pos = 0
        saved: list = []  # the enclosing pickles' (stack, memo) while a joblib object array's pickle is walked
        stream = io.BytesIO(data)  # one stream, seeked: no copy of the data per pickle
        while pos < len(data):
            stream.seek(pos)
            stopped, last = False, None
            try:
                for op, arg, p in pickletools.genops(stream):  # genops reports the stream's absolute offset
                    last = (op, arg, p)
                    self.step(op, arg, p)
                    stopped = op.name == "STOP"
                    if self.jump is not None or self.halted:
                        break
            except Exception:  # noqa: BLE001 - genops raises ValueError and others on malformed input
                error_at = self._error_position(data, [last] if last else [], pos)
                if not self.joblib_arrays:  # the plain reading: a load that fails there runs nothing after it
                    self.notes.append(f"a plain pickle.load stops with an error at byte {error_at}")
                    return
                what = "a pickle that does not parse" if last else "bytes that are not a pickle"
                self.findings.append(Finding("-", f"<{what} at byte {error_at}>", error_at, self.member, "unknown"))
                self.notes.append(f"stopped at byte {error_at}: {what}; the rest was not scanned")
                return
            if self.jump is not None:
                kind, pos = self.jump
                self.jump, self.frame_end = None, None
                if kind == "nested":  # an object array: a pickle of its own (own stack and memo) in the stream
                    saved.append((self.stack, self.memo))
                    self.stack, self.memo = [], {}
                continue
            if self.halted or not stopped:  # an array of unknown extent: the finding is made, the rest unread
                return
            pos, self.frame_end = stream.tell(), None
            # back to the enclosing pickle, or a new pickle concatenated after this one (a fresh memo)
            self.stack, self.memo = saved.pop() if saved else ([], {})

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


def _walk(data: bytes, allow: frozenset, member: Optional[str] = None) -> _Walker:
    """Walk ``data`` as ``joblib.load`` reads it (array bytes skipped by the wrappers' sizes); if it holds joblib
    arrays, walk it again as a plain ``pickle.load`` reads it (array bytes taken for opcodes), and report both:
    a scanner cannot know which loader a file will meet."""
    w = _Walker(allow, member)
    w.walk(data)
    if w.wrappers:
        plain = _Walker(allow, member, joblib_arrays=False)
        plain.walk(data)
        seen = {(f.opcode, f.callable, f.position) for f in w.findings}
        extra = [f for f in plain.findings if (f.opcode, f.callable, f.position) not in seen]
        if extra:  # e.g. an object array's pickle reading the outer memo: pickle.load would import these
            w.notes.append(f"{len(extra)} finding(s) only when read by a plain pickle.load (array bytes as opcodes, "
                           "one memo for the nested pickles)")
        w.findings += extra
        w.findings.sort(key=lambda f: f.position)
        w.globals += [g for g in plain.globals if g not in w.globals]
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
