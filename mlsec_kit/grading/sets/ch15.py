"""Checks of the chapter-15 exercise set: an allow-list pickle scanner written on :func:`pickletools.genops`, and
which loads of an untrusted file are safe.

Student functions: ``imports(data) -> list of (module, name)``, ``scan(data, allow) -> list of (module, name)``,
``scan_zip(data, allow) -> list of (member, module, name)`` and ``safe_loads() -> letters``.

**Nothing is unpickled, anywhere.** The grader writes its pickles without loading them (``pickle.dumps`` of the
kit's demonstration payloads only records the calls their ``__reduce__`` describes; the hand-written ones are
assembled opcode by opcode, :mod:`~mlsec_kit.grading.sets.ch15_pickles`) and sends them to the student's functions
as bytes; the student's scanner only reads them. What crosses back is a list of strings.

**Conventions the checks fix (and the notebook states).** ``imports`` lists one ``(module, name)`` pair per import
opcode, in the order they occur, across every pickle in ``data`` (pickles can follow one another: ``pickle.load``
stops at the first ``STOP``, and a loader that calls it again runs the next): ``GLOBAL`` and ``INST`` carry
``"module name"`` in their argument; ``STACK_GLOBAL`` takes the module and the name from the stack, and in every file
the grader draws these are the two strings pushed last before it, by a string opcode (``SHORT_BINUNICODE``,
``BINUNICODE``, ``BINUNICODE8``, ``UNICODE``, ``STRING``, ``BINSTRING``, ``SHORT_BINSTRING``) or fetched from the memo
(``GET``, ``BINGET``, ``LONG_BINGET`` of a slot that ``PUT``, ``BINPUT``, ``LONG_BINPUT`` or ``MEMOIZE`` filled;
``MEMOIZE`` fills the next free slot, ``len(memo)``). A pickle's memo starts empty. Names are compared as the
unpickler resolves them: a Python 2 name that protocols 0-2 write (``__builtin__``, ``copy_reg``) counts the same
as its Python 3 name, so reporting either is right. Input that is not a sequence of complete pickles (empty,
truncated) raises a ``ValueError`` naming ``data``: a scanner must never report such a file safe. ``scan`` returns
the imports outside ``allow`` (a set of pairs), each at least once, in any order; nothing for a safe file.
``scan_zip`` scans every member of a zip whose name ends in ``.pkl`` and returns ``(member, module, name)`` triples.

How the instances make each typical mistake fail on every seed (``tests/grading/test_ch15.py`` runs each on 20):

- ``imports`` that handles ``GLOBAL`` only, or finds ``GLOBAL`` with a regular expression: every instance of the
  third property is a protocol-4/5 pickle (``STACK_GLOBAL``); memo gets ignored (only literal string pushes
  counted), or ``MEMOIZE`` slots counted for strings only: each of its instances holds a ``STACK_GLOBAL`` whose
  module comes from the memo (two classes of one module; a CNN's state dict, whose ``LongStorage`` fetches
  ``"torch"`` back), and the hand-written ``"memo"`` pickle pushes two decoy strings just before its gets; only
  ``SHORT_BINUNICODE`` counted as a string: the hand-written ``STACK_GLOBAL`` pickle is redrawn until an operand is
  pushed by another string opcode; ``INST`` ignored: the fourth property has an ``INST`` pickle; stopping at the
  first ``STOP``: the fifth property's last pickle always imports something; operands swapped: module != name in
  every instance; duplicates dropped: the fifth property repeats a pickle; truncated input not refused (or refused
  with ``pickletools``' own message): the cuts fall between opcodes, where ``genops`` says "pickle exhausted before
  seeing STOP", which does not name ``data``.
- ``scan``: a grep for ``os``/``system``/``exec``/``eval``, even one that returns the right list whenever it finds
  such a string, and a deny-list of ``os``, ``posix``, ``nt``, ``subprocess``, ``builtins.eval``/``exec``: the fifth
  property's files call ``open``, ``io.open``, ``codecs.open``, ``logging.FileHandler``, ``zipfile.ZipFile`` or
  ``numpy.save`` by ``GLOBAL`` and hold none of those strings; blind to ``STACK_GLOBAL``: the third property's three
  formats include joblib or npy (protocol >= 4); memo gets ignored: the CNN state dict (protocol 4/5) is then
  misread and flagged, and so is the hand-written memo pickle; stopping at the first ``STOP``: the fourth property
  hides its payload in a second pickle after a benign state dict; flagging every file with a ``REDUCE``, every
  import, always unsafe, the allowed imports instead of the others, ``"module.name"`` strings looked up in a set of
  pairs: benign state dicts; always safe: every payload; an allow-list of its own instead of ``allow``, or an
  allow-list read by module: the sixth property removes one import the file needs from ``allow`` (a torch storage
  class while another stays allowed, or another), allows the classes of a second file, and calls ``numpy.save``
  (``numpy.dtype`` is allowed); truncated input reported safe: the last property, also after a complete pickle.
- ``scan_zip`` reading ``archive/data.pkl``: every archive has a random folder name (``torch.save`` names it after
  the file); ``data.pkl`` only (any folder) or the first ``.pkl`` only: the fourth property's payload is in another
  ``.pkl`` member (TorchScript archives hold ``constants.pkl``, which ``torch.jit.load`` unpickles too); the member
  without its folder, or pairs without the member: the third; a non-zip input not refused with a ``ValueError``
  naming ``data`` (``zipfile.BadZipFile`` is not one): the last.
- ``safe_loads``: the exact set is needed for the first property; "signed means safe" (``i``), "a deny-list scan
  suffices" (``j``), "``torch.load`` is never safe", "only safetensors" and NumPy's default taken for unsafe all
  fail it.

Forbidden while a question is graded: the kit's scanner (:func:`mlsec_kit.supply_chain.scan.scan_bytes`,
:func:`~mlsec_kit.supply_chain.scan.scan`, :func:`~mlsec_kit.supply_chain.scan.pickle_globals` and its walker), and
this module's ``_walk`` and ``_reference_*`` helpers. picklescan's walk (``_list_globals``) and its byte scanners
are blocked too: an answer wrapped round them passed ``scan`` on most seeds. fickling is not blocked: turning its
syntax tree into the pairs the questions ask for is most of the work the set teaches.
"""
from __future__ import annotations

import _compat_pickle
import io
import pickle
import pickletools
import zipfile
from typing import Any, Iterable

import torch

from ..core import ExerciseSet
from ..expect import call, describe, expect_value_error, fail, statement_checks
from ..instances import randint
from . import ch15_pickles as P

SET = ExerciseSet("15_supply_chain", "Exercises: pickle files and the ML supply chain", chapter=15,
                  extras=("supplychain",))

_CHECKER = "mlsec_kit.grading.sets.ch15"
_STORAGES = ("Double", "Float", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool")
#: the allow-list the checks pass to ``scan``: what benign ``torch.save`` state dicts and NumPy arrays import
TORCH_ALLOW: frozenset = frozenset(
    {("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter")}
    | {("torch", f"{s}Storage") for s in _STORAGES}
    | {(m, "_reconstruct") for m in ("numpy.core.multiarray", "numpy._core.multiarray")}
    | {("numpy", "ndarray"), ("numpy", "dtype")})
#: the deny-list a typical first attempt uses (what the tests show failing); here for the hints
DENY = frozenset({("builtins", "eval"), ("builtins", "exec"), ("__builtin__", "eval"), ("__builtin__", "exec")})
DENY_MODULES = frozenset({"os", "posix", "nt", "subprocess"})
GREP_WORDS = (b"os", b"system", b"exec", b"eval", b"subprocess")

_STRING_OPS = frozenset(P.STRING_KINDS)
_PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_KEEP_LAST = frozenset({"PROTO", "FRAME", "MEMOIZE"}) | _PUT_OPS  # opcodes that push nothing


# ---- the reference walk (forbidden to submissions) --------------------------------------------------------------
def _walk(data: bytes, *, stack_global: bool = True, memo: bool = True, every_pickle: bool = True,
          inst: bool = True, swap: bool = False, any_string: bool = True) -> list[tuple[str, str]]:
    """Every import in ``data``, in order; the keyword flags switch parts off to name a student's mistake."""
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError(f"data must be bytes (a pickle), got {type(data).__name__}")
    if not data:
        raise ValueError("data is empty: it holds no pickle")
    stream, found = io.BytesIO(bytes(data)), []
    while stream.tell() < len(data):
        strings: list[str] = []
        slots: dict[int, Any] = {}
        last: Any = None
        try:
            for op, arg, _ in pickletools.genops(stream):
                name = op.name
                if name in ("GLOBAL", "INST"):
                    if name == "GLOBAL" or inst:
                        module, _, attr = arg.partition(" ")
                        found.append((module, attr))
                    last = None
                elif name in _STRING_OPS:
                    counted = any_string or name == "SHORT_BINUNICODE"
                    last = str(arg) if counted else None
                    if counted:
                        strings.append(last)
                elif name == "MEMOIZE" or name in _PUT_OPS:
                    if memo:
                        slots[len(slots) if name == "MEMOIZE" else int(arg)] = last
                elif name in _GET_OPS:
                    last = slots.get(int(arg)) if memo else None
                    if isinstance(last, str):
                        strings.append(last)
                elif name == "STACK_GLOBAL":
                    if stack_global:
                        pair = (strings[-2], strings[-1]) if len(strings) >= 2 else ("?", "?")
                        found.append(pair[::-1] if swap else pair)
                        del strings[-2:]
                    last = None
                elif name not in _KEEP_LAST:
                    last = None
        except ValueError as err:
            raise ValueError(f"data is not a sequence of complete pickles: {err}") from None
        if not every_pickle:
            break
    return found


def _reference_imports(data: bytes) -> list[tuple[str, str]]:
    return _walk(data)


def _reference_scan(data: bytes, allow: Iterable) -> list[tuple[str, str]]:
    allowed = {_canon(p) for p in allow}
    return [p for p in dict.fromkeys(_walk(data)) if _canon(p) not in allowed]


def _reference_scan_zip(data: bytes, allow: Iterable) -> list[tuple[str, str, str]]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ValueError("data is not a zip archive (torch.save writes one)") from None
    with archive:
        return [(member, *pair) for member in archive.namelist() if member.endswith(".pkl")
                for pair in _reference_scan(archive.read(member), allow)]


def _forbid() -> tuple[str, ...]:
    kit = "mlsec_kit.supply_chain.scan"
    return (f"{kit}.scan_bytes", f"{kit}.scan", f"{kit}.pickle_globals", f"{kit}._walk", f"{kit}._Walker.walk",
            f"{_CHECKER}._walk") + tuple(f"{_CHECKER}._reference_{q}" for q in ("imports", "scan", "scan_zip")) + (
        # picklescan's own walk returns the imports as the questions ask for them (a review found an answer
        # wrapped round it passing `scan` on 9 of 10 seeds): it hands off the resolution the set teaches
        "picklescan.scanner._list_globals", "picklescan.scanner.scan_pickle_bytes", "picklescan.scanner.scan_bytes",
        "picklescan.scanner.scan_zip_bytes")


# ---- comparing answers ------------------------------------------------------------------------------------------
def _canon(pair: tuple[str, ...]) -> tuple[str, ...]:
    """``(module, name)`` (optionally after a member) as the unpickler resolves a Python 2 name."""
    *member, module, name = pair
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    else:
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    return (*member, module, name)


def _tuples(out: Any, what: str, width: int) -> list[tuple[str, ...]]:
    shape = "(module, name) pairs" if width == 2 else "(member, module, name) triples"
    if not isinstance(out, (list, tuple)):
        fail(f"{what} returned {describe(out)}; expected a list of {shape} of strings")
    items = []
    for item in out:
        if not isinstance(item, (list, tuple)) or len(item) != width or not all(isinstance(s, str) for s in item):
            fail(f"{what} returned an item {str(item)[:60]!r}; expected {shape} of strings, e.g. "
                 f"{('archive/data.pkl',)[:width - 2] + ('collections', 'OrderedDict')}")
        items.append(tuple(item))
    return items


def _show(pairs: Iterable[tuple[str, ...]], limit: int = 3) -> str:
    pairs = list(pairs)
    text = ", ".join(".".join(p[-2:]) if len(p) == 2 else f"{p[0]}: {p[1]}.{p[2]}" for p in pairs[:limit])
    return text + (f" and {len(pairs) - limit} more" if len(pairs) > limit else "")


def _variants(data: bytes) -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """What each typical mistake makes of ``data``: ``{key: (the hint for it, its list of imports)}``."""
    return {
        "stack_global": ("STACK_GLOBAL is an import too (protocols 4 and 5): its module and name are the two strings "
                         "pushed before it", _walk(data, stack_global=False)),
        "memo": ("a string fetched from the memo (GET, BINGET, LONG_BINGET) is pushed again: keep the memo's "
                 "strings, MEMOIZE filling slot len(memo)", _walk(data, memo=False)),
        "every": ("data can hold several pickles one after another: go on after each STOP until the bytes end",
                  _walk(data, every_pickle=False)),
        "inst": ("INST imports too: its argument is 'module name', like GLOBAL's", _walk(data, inst=False)),
        "swap": ("STACK_GLOBAL's module is pushed first, its name last", _walk(data, swap=True)),
        "any_string": ("every string opcode can push an operand (BINUNICODE, UNICODE, STRING, ...), not only "
                       "SHORT_BINUNICODE", _walk(data, any_string=False)),
    }


def _hint(got: Any, variants: dict[str, tuple[str, Any]], prefer: tuple[str, ...] = ()) -> str:
    """``"; <why>"`` for the mistakes whose result ``got`` is (two at most, those in ``prefer`` first)."""
    keys = [k for k in prefer if k in variants] + [k for k in variants if k not in prefer]
    whys = [variants[k][0] for k in keys if variants[k][1] == got][:2]
    return "".join(f"; {'or: ' if i else ''}{why}" for i, why in enumerate(whys))


# ---- (a) imports --------------------------------------------------------------------------------------------------
imports = SET.question("imports", "imports(data) -> list of (module, name)", forbid=_forbid())


def _expect_imports(fn, data: bytes, what: str, prefer: tuple[str, ...] = ()) -> None:
    call_text = f"imports(<{len(data)} bytes: {what}>)"
    got = [_canon(p) for p in _tuples(call(fn, data, name="imports"), call_text, 2)]
    want = [_canon(p) for p in _reference_imports(data)]
    if got != want:
        variants = {key: (why, [_canon(p) for p in v]) for key, (why, v) in _variants(data).items()}
        variants["dedup"] = ("one entry per import opcode, in order: keep repeats", list(dict.fromkeys(want)))
        missing = [p for p in want if p not in got]
        detail = f"missed {_show(missing)}" if missing else f"expected {_show(want, 6)}"
        fail(f"{call_text} gave {len(got)} import(s) ({_show(got)}); {detail}{_hint(got, variants, prefer)}")


def _protocols(rng: torch.Generator, low: int, high: int) -> int:
    return randint(rng, low, high)


def _cnn_pkl(rng: torch.Generator, protocol: int) -> bytes:
    return P.data_pkl(P.torch_zip(P.state_dict(rng, "cnn"), archive=P.archive_name(rng), protocol=protocol))


def _any_pkl(rng: torch.Generator, protocol: int) -> bytes:
    return P.data_pkl(P.torch_zip(P.state_dict(rng), archive=P.archive_name(rng), protocol=protocol))


def _technique(rng: torch.Generator) -> str:
    from ...supply_chain import TECHNIQUES

    return TECHNIQUES[randint(rng, 0, len(TECHNIQUES) - 1)]


def _opener(rng: torch.Generator) -> tuple[str, str]:
    return P.OPENERS[randint(rng, 0, len(P.OPENERS) - 1)]


def _marker(rng: torch.Generator) -> str:
    return f"{P.MARKER_DIR}/written-{randint(rng, 0, 99999)}.npy"


@imports.prop("returns a list of (module, name) pairs of strings")
def _imp_form(fn, rng):
    data = pickle.dumps(P.benign_object(rng), protocol=_protocols(rng, 0, 5))
    _tuples(call(fn, data, name="imports"), f"imports(<{len(data)}-byte pickle>)", 2)


@imports.prop("resolves GLOBAL: objects, state dicts and the kit's payloads at pickle protocols 0-3")
def _imp_global(fn, rng):
    _expect_imports(fn, pickle.dumps(P.benign_object(rng), protocol=_protocols(rng, 0, 3)), "objects, protocol <= 3")
    _expect_imports(fn, _any_pkl(rng, randint(rng, 2, 3)), "a torch.save data.pkl, protocol 2-3")
    technique = _technique(rng)
    _expect_imports(fn, P.kit_payload_pickle(rng, technique, "pickle", protocol=randint(rng, 0, 3)),
                    f"the kit's {technique} payload, protocol <= 3")


@imports.prop("resolves STACK_GLOBAL at protocols 4-5, its module and name fetched from the memo when memoised")
def _imp_stack(fn, rng):
    _expect_imports(fn, pickle.dumps(P.benign_object(rng), protocol=_protocols(rng, 4, 5)),
                    "objects, protocol 4-5")
    _expect_imports(fn, _cnn_pkl(rng, randint(rng, 4, 5)), "a CNN's torch.save data.pkl, protocol 4-5")
    technique = _technique(rng)
    _expect_imports(fn, P.kit_payload_pickle(rng, technique, "pickle", protocol=randint(rng, 4, 5)),
                    f"the kit's {technique} payload, protocol 4-5")


def _stack_global_pickle(rng: torch.Generator) -> bytes:
    """A hand-written STACK_GLOBAL pickle, redrawn until an operand is pushed by another opcode than
    SHORT_BINUNICODE (so counting that one alone misreads it)."""
    while True:
        data = P.handmade_call(rng, "stack_global", target=_opener(rng), marker=_marker(rng))
        if _walk(data, any_string=False) != _walk(data):
            return data


@imports.prop("resolves INST, and STACK_GLOBAL after any string opcode or memo get (hand-written pickles)")
def _imp_handmade(fn, rng):
    _expect_imports(fn, P.handmade_call(rng, "inst", target=_opener(rng), marker=_marker(rng)), "INST", ("inst",))
    _expect_imports(fn, _stack_global_pickle(rng), "STACK_GLOBAL after two string opcodes", ("any_string",))
    _expect_imports(fn, P.handmade_call(rng, "memo", target=_opener(rng), marker=_marker(rng)),
                    "STACK_GLOBAL of memoised strings", ("memo",))


def _concatenated(rng: torch.Generator) -> tuple[bytes, str]:
    """2-3 pickles back to back: benign ones, then one that imports something (a payload)."""
    first = [pickle.dumps(P.benign_object(rng), protocol=_protocols(rng, 0, 5)),
             _any_pkl(rng, (2, 4, 5)[randint(rng, 0, 2)])]
    first = first[:randint(rng, 1, 2)] if randint(rng, 0, 1) else first[1:]
    if randint(rng, 0, 1):
        technique = _technique(rng)
        last, what = P.kit_payload_pickle(rng, technique, "pickle"), f"the kit's {technique} payload"
    else:
        style = ("global", "stack_global", "memo", "inst")[randint(rng, 0, 3)]
        last, what = P.handmade_call(rng, style, target=_opener(rng), marker=_marker(rng)), f"a {style} call"
    return b"".join(first) + last, f"{len(first) + 1} pickles, the last {what}"


@imports.prop("reads every pickle in data: more can follow the first STOP")
def _imp_concat(fn, rng):
    _expect_imports(fn, *_concatenated(rng), prefer=("every",))
    twice = pickle.dumps(P.benign_object(rng), protocol=_protocols(rng, 0, 5))
    _expect_imports(fn, twice + twice, "the same pickle twice: its imports are listed twice", ("every", "dedup"))


def _cut(rng: torch.Generator, data: bytes) -> bytes:
    """``data`` cut at an opcode boundary before its STOP: ``genops`` then raises "pickle exhausted before seeing
    STOP", a message that does not name ``data`` (a cut inside an argument can give "not enough data in stream",
    which would name it by accident)."""
    starts = [pos for _, _, pos in pickletools.genops(data)][1:]
    return data[:starts[randint(rng, 0, len(starts) - 1)]]


def _truncated(rng: torch.Generator) -> bytes:
    return _cut(rng, pickle.dumps(P.benign_object(rng), protocol=_protocols(rng, 0, 5)))


@imports.prop("raises a ValueError naming data when it is not complete pickles (empty, truncated)")
def _imp_bad(fn, rng):
    good = pickle.dumps(P.benign_object(rng), protocol=_protocols(rng, 0, 5))
    for bad, what in ((b"", "empty data"), (_truncated(rng), "a truncated pickle"),
                      (good + _truncated(rng), "a pickle, then a truncated one")):
        expect_value_error(fn, (bad,), f"imports(<{what}, {len(bad)} bytes>)",
                           "a file that does not parse is not a pickle a scanner can vouch for", "data")


# ---- (b) scan ---------------------------------------------------------------------------------------------------
scan = SET.question("scan", "scan(data, allow) -> list of (module, name) outside allow", forbid=_forbid())


def _outside(pairs: Iterable[tuple[str, str]], allow: Iterable) -> set[tuple[str, str]]:
    allowed = {_canon(p) for p in allow}
    return {_canon(p) for p in pairs} - allowed


def _scan_variants(data: bytes, allow: frozenset) -> dict[str, tuple[str, set]]:
    everything = {_canon(p) for p in _walk(data)}
    modules = {_canon(p)[0] for p in allow}
    variants = {key: (why, _outside(v, allow)) for key, (why, v) in _variants(data).items()}
    variants.update({
        "deny": ("a deny-list lets through every callable it does not name: flag whatever is outside allow",
                 {p for p in everything - {_canon(a) for a in allow} if p[0] in DENY_MODULES or p in DENY}),
        "everything": ("that is every import: report only those outside allow", everything),
        "own_allow": ("use the allow-list passed as allow, not one of your own", _outside(everything, TORCH_ALLOW)),
        "by_module": ("allow holds (module, name) pairs: an allowed name does not allow its whole module",
                      {p for p in everything if p[0] not in modules}),
    })
    return variants


def _expect_scan(fn, data: bytes, allow: frozenset, what: str, prefer: tuple[str, ...] = ()) -> None:
    call_text = f"scan(<{len(data)} bytes: {what}>, allow)"
    got = {_canon(p) for p in _tuples(call(fn, data, set(allow), name="scan"), call_text, 2)}
    want = _outside(_walk(data), allow)
    if got != want:
        missed, extra = sorted(want - got), sorted(got - want)
        parts = []
        if missed:
            parts.append(f"missed {_show(missed)}, outside allow (loading the file imports and may call them)")
        if extra:
            seen = {_canon(p) for p in _walk(data)}
            why = ("which allow holds" if all(p in seen for p in extra) else "which the file does not import")
            parts.append(f"flagged {_show(extra)}, {why}")
        fail(f"{call_text}: {'; '.join(parts)}{_hint(got, _scan_variants(data, allow), prefer)}")


def _mixed_pkl(rng: torch.Generator) -> bytes:
    """A dict of tensors of several dtypes and one ``nn.Parameter`` (``torch._utils._rebuild_parameter``)."""
    dtypes = (torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int32, torch.int8,
              torch.uint8, torch.bool)
    obj = {f"t{i}": torch.zeros(randint(rng, 1, 4), dtype=dtypes[randint(rng, 0, len(dtypes) - 1)])
           for i in range(randint(rng, 2, 4))}
    obj["param"] = torch.nn.Parameter(torch.randn(randint(rng, 1, 4), generator=rng))
    return P.data_pkl(P.torch_zip(obj, archive=P.archive_name(rng), protocol=randint(rng, 2, 5)))


@scan.prop("returns a list of (module, name) pairs of strings")
def _scan_form(fn, rng):
    data = P.kit_payload_pickle(rng, _technique(rng), "pickle")
    _tuples(call(fn, data, set(TORCH_ALLOW), name="scan"), f"scan(<{len(data)}-byte pickle>, allow)", 2)


@scan.prop("finds nothing in benign torch state dicts (random small models, pickle protocols 2-5)")
def _scan_benign(fn, rng):
    _expect_scan(fn, _cnn_pkl(rng, randint(rng, 4, 5)), TORCH_ALLOW, "a CNN's state dict, protocol 4-5")
    _expect_scan(fn, _any_pkl(rng, randint(rng, 2, 5)), TORCH_ALLOW, "a model's state dict")
    _expect_scan(fn, _mixed_pkl(rng), TORCH_ALLOW, "tensors of several dtypes and a Parameter")


@scan.prop("flags exactly the imports outside allow in the kit's payloads (pickle, joblib, torch, npy files)")
def _scan_kit(fn, rng):
    formats = ("pickle", "joblib", "torch", "npy")
    for i in torch.randperm(4, generator=rng)[:3].tolist():
        technique = _technique(rng)
        _expect_scan(fn, P.kit_payload_pickle(rng, technique, formats[i]), TORCH_ALLOW,
                     f"the kit's {technique} payload as a {formats[i]} file's pickle")


@scan.prop("flags INST, STACK_GLOBAL after any string or memo get, and a payload after the first STOP")
def _scan_evasions(fn, rng):
    _expect_scan(fn, P.handmade_call(rng, "inst", target=_opener(rng), marker=_marker(rng)), TORCH_ALLOW, "INST",
                 ("inst",))
    _expect_scan(fn, _stack_global_pickle(rng), TORCH_ALLOW, "STACK_GLOBAL after two string opcodes",
                 ("any_string", "stack_global"))
    _expect_scan(fn, P.handmade_call(rng, "memo", target=_opener(rng), marker=_marker(rng)), TORCH_ALLOW,
                 "STACK_GLOBAL of memoised strings", ("memo",))
    style = ("global", "stack_global", "memo", "inst")[randint(rng, 0, 3)]
    payload = P.handmade_call(rng, style, target=_opener(rng), marker=_marker(rng))
    _expect_scan(fn, _any_pkl(rng, (2, 4, 5)[randint(rng, 0, 2)]) + payload, TORCH_ALLOW,
                 f"a state dict's pickle, then a {style} call after its STOP", ("every",))


def _deny_list_misses(rng: torch.Generator) -> list[tuple[bytes, str]]:
    """Two calls of different openers by GLOBAL (any protocol), standalone: every other mistake reads them right,
    so a scanner that finds nothing here is a deny-list's (or a grep's)."""
    first = randint(rng, 0, len(P.OPENERS) - 1)
    second = (first + randint(rng, 1, len(P.OPENERS) - 1)) % len(P.OPENERS)
    return [(P.handmade_call(rng, "global", target=P.OPENERS[i], marker=_marker(rng)),
             f"{'.'.join(P.OPENERS[i])}(marker, 'w')") for i in (first, second)]


@scan.prop("flags imports a deny-list misses: open, io.open, codecs.open, logging.FileHandler, zipfile.ZipFile, "
           "numpy.save")
def _scan_deny(fn, rng):
    for data, what in _deny_list_misses(rng):
        _expect_scan(fn, data, TORCH_ALLOW, what, ("deny",))


@scan.prop("judges by the allow-list it is given, pair by pair: a needed import removed is flagged, added ones are "
           "not, and numpy.save is not allowed by numpy.dtype")
def _scan_allow(fn, rng):
    data = _any_pkl(rng, randint(rng, 2, 5))
    used = sorted({_canon(p) for p in _walk(data)} & TORCH_ALLOW)
    removed = used[randint(rng, 0, len(used) - 1)]
    _expect_scan(fn, data, TORCH_ALLOW - {removed}, f"a state dict, with {'.'.join(removed)} not allowed",
                 ("own_allow", "by_module"))
    data = pickle.dumps(P.benign_object(rng), protocol=_protocols(rng, 0, 5))
    pairs = set(_walk(data))
    _expect_scan(fn, data, TORCH_ALLOW | pairs | {_canon(p) for p in pairs},
                 "standard-library objects, every class they use allowed", ("own_allow",))
    style = ("global", "stack_global", "memo", "inst")[randint(rng, 0, 3)]
    _expect_scan(fn, P.handmade_call(rng, style, target=("numpy", "save"), marker=_marker(rng)), TORCH_ALLOW,
                 f"numpy.save(marker, 'w') by {style}, with numpy.dtype and numpy.ndarray allowed", ("by_module",))


@scan.prop("raises a ValueError naming data for a truncated pickle: a file that does not parse is not safe")
def _scan_bad(fn, rng):
    good = _any_pkl(rng, randint(rng, 2, 5))
    for bad, what in ((_cut(rng, good), "a truncated state dict"),
                      (good + _truncated(rng), "a state dict, then a truncated pickle")):
        expect_value_error(fn, (bad, set(TORCH_ALLOW)), f"scan(<{what}, {len(bad)} bytes>, allow)",
                           "the rest of the file was never read: it could hold anything", "data")


# ---- (c) scan_zip ---------------------------------------------------------------------------------------------
scan_zip = SET.question("scan_zip", "scan_zip(data, allow) -> list of (member, module, name)", forbid=_forbid())


def _expect_zip(fn, data: bytes, allow: frozenset, what: str) -> None:
    call_text = f"scan_zip(<{len(data)}-byte zip: {what}>, allow)"
    got = {_canon(t) for t in _tuples(call(fn, data, set(allow), name="scan_zip"), call_text, 3)}
    want = {_canon(t) for t in _reference_scan_zip(data, allow)}
    if got != want:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = [m for m in archive.namelist() if m.endswith(".pkl")]
        missed, extra = sorted(want - got), sorted(got - want)
        parts = [f"missed {_show(missed)}"] if missed else []
        parts += [f"flagged {_show(extra)}"] if extra else []
        hint = ""
        if missed and {m for m, *_ in missed} - {m for m, *_ in got}:
            hint = (f"; the archive's .pkl members are {', '.join(members)}: its folder is named after the file, "
                    "and every .pkl member can carry a pickle")
        fail(f"{call_text}: {'; '.join(parts)}{hint}")


@scan_zip.prop("returns a list of (member, module, name) triples of strings")
def _zip_form(fn, rng):
    data = P.kit_torch_zip(rng, _technique(rng), archive=P.archive_name(rng))
    _tuples(call(fn, data, set(TORCH_ALLOW), name="scan_zip"), f"scan_zip(<{len(data)}-byte zip>, allow)", 3)


@scan_zip.prop("finds nothing in benign torch.save files (random folder names, protocols 2-5)")
def _zip_benign(fn, rng):
    for _ in range(2):
        archive, protocol = P.archive_name(rng), randint(rng, 2, 5)
        _expect_zip(fn, P.torch_zip(P.state_dict(rng), archive=archive, protocol=protocol), TORCH_ALLOW,
                    f"a state dict in folder {archive}/")


@scan_zip.prop("flags the kit's payloads in data.pkl, naming the member")
def _zip_kit(fn, rng):
    for _ in range(2):
        technique, archive = _technique(rng), P.archive_name(rng)
        _expect_zip(fn, P.kit_torch_zip(rng, technique, archive=archive), TORCH_ALLOW,
                    f"the kit's {technique} payload in {archive}/data.pkl")


@scan_zip.prop("scans every .pkl member, not only data.pkl (TorchScript archives hold constants.pkl too)")
def _zip_members(fn, rng):
    archive = P.archive_name(rng)
    member = ("constants.pkl", "extra/state.pkl", "code/__torch__.pkl")[randint(rng, 0, 2)]
    if randint(rng, 0, 1):
        payload = P.kit_payload_pickle(rng, _technique(rng), "pickle")
    else:
        style = ("global", "stack_global", "memo", "inst")[randint(rng, 0, 3)]
        payload = P.handmade_call(rng, style, target=_opener(rng), marker=_marker(rng))
    data = P.torch_zip(P.state_dict(rng), archive=archive, protocol=randint(rng, 2, 5), extra={member: payload})
    _expect_zip(fn, data, TORCH_ALLOW, f"a benign data.pkl and a payload in {archive}/{member}")


@scan_zip.prop("raises a ValueError naming data when it is not a zip archive")
def _zip_bad(fn, rng):
    data = _any_pkl(rng, randint(rng, 2, 5))
    expect_value_error(fn, (data, set(TORCH_ALLOW)), f"scan_zip(<a raw pickle, {len(data)} bytes>, allow)",
                       "zipfile raises BadZipFile, which is not a ValueError; say what data should be", "data")


# ---- (d) which loads are safe (conceptual) ----------------------------------------------------------------------
safe_loads = SET.question("safe_loads", "safe_loads() -> str of letters, e.g. 'ac'")
STATEMENTS = {
    "a": "torch.load(path), called as it is, with no add_safe_globals and no TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD in the "
         "environment: since PyTorch 2.6 its default is weights_only=True, whose unpickler accepts only the globals "
         "that tensors and state dicts need (and a short list of built-in types) and refuses any other.",
    "b": "torch.load(path, weights_only=False).",
    "c": "pickle.load(open(path, \"rb\")).",
    "d": "joblib.load(path).",
    "e": "numpy.load(path) with its default allow_pickle=False: an object array in the file is refused with a "
         "ValueError.",
    "f": "numpy.load(path, allow_pickle=True).",
    "g": "safetensors.torch.load_file(path): the file is a JSON header and raw tensor bytes, and the loader calls "
         "nothing the file names.",
    "h": "yaml.load(text, Loader=yaml.UnsafeLoader) of the model's configuration file.",
    "i": "torch.load(path, weights_only=False) of a model folder that verifies with model-signing against the "
         "public key published in the same repository as the model.",
    "j": "pickle.load of a file in which a scanner that flags every import from the modules os, posix and "
         "subprocess, and builtins.eval and builtins.exec, finds nothing.",
}
TRUE_STATEMENTS = frozenset("aeg")
_WHY_NOT = {
    "b": "weights_only=False runs the full unpickler: any global data.pkl names is imported and any REDUCE calls it",
    "c": "pickle.load imports every global the file names and calls what REDUCE asks for: the file chooses the code",
    "d": "joblib.load is pickle underneath (each NumPy array's raw bytes written into the stream): the same "
         "imports and calls",
    "f": "allow_pickle=True unpickles an object array's pickle, which follows the header: the same as pickle.load",
    "h": "UnsafeLoader builds arbitrary Python objects, including calls through !!python/object/apply tags; "
         "yaml.safe_load builds plain data only",
    "i": "a signature proves who signed and that nothing changed since; a key shipped beside the model is the "
         "uploader's own, and a malicious uploader signs a malicious file just as well",
    "j": "a deny-list lets through every callable it does not name: builtins.open, io.open, runpy, importlib or a "
         "name decoded at load time",
}
statement_checks(safe_loads, "safe_loads", STATEMENTS, TRUE_STATEMENTS, _WHY_NOT, exact=True,
                 hint="a load is safe when the loader, not the file, decides what gets imported and called")
