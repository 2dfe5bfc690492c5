"""Demonstration payloads: files that run code when loaded, whose code only writes one marker file.

Unpickling is a small stack machine that may import any global and call it (the ``GLOBAL``/``STACK_GLOBAL`` and
``REDUCE`` opcodes; Python's ``pickle`` documentation warns "never unpickle data that could have come from an
untrusted source"). An object's ``__reduce__`` decides what the unpickler calls, so a file can carry a call to
``os.system`` as easily as a tensor. The techniques here are the ones the scanners (picklescan, ModelScan, Trail of
Bits' fickling) are built to catch and that model hubs have reported finding in uploaded files:

* ``os_system``, ``exec``, ``eval``, ``subprocess``, ``runpy``: the callable is a global named in the file;
* ``importlib``: ``getattr(importlib.import_module("builtins"), "exec")`` - ``exec`` is never a global;
* ``nested``: ``operator.attrgetter("system")(importlib.import_module("os"))`` - a chain of REDUCEs;
* ``obfuscated``: the module and function names are base64 and decoded at load time, so neither ``os`` nor
  ``system`` appears in the file.

SAFETY: every payload's only effect is to create the file ``marker`` (an absolute path whose folder exists) with
the text ``pwned``; the shell and subprocess variants run ``sys.executable -c "open(marker, 'w').write('pwned')"``
and nothing else. Loading happens in a child process (:func:`run_load`) so a notebook never unpickles a payload
itself; the tests record the child's audit events (PEP 578) to assert that nothing else happens.
"""
from __future__ import annotations

import base64
import builtins
import importlib
import json
import operator
import os
import pickle
import runpy
import shlex
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from .formats import FORMATS, check_path

__all__ = ["TECHNIQUES", "MALICIOUS_FORMATS", "LOADERS", "payload", "marker_code", "make_malicious",
           "make_benign", "run_load", "run_loads", "LoadOutcome"]

PathLike = Union[str, "os.PathLike[str]"]

TECHNIQUES: tuple[str, ...] = ("os_system", "exec", "eval", "subprocess", "runpy", "importlib", "nested",
                               "obfuscated")
#: the formats that can carry a pickle, hence a payload
MALICIOUS_FORMATS: tuple[str, ...] = ("pickle", "torch", "joblib", "npy")
#: the loaders :func:`run_load` knows; ``"torch.load"`` is the default call, weights-only since PyTorch 2.6
LOADERS: tuple[str, ...] = ("pickle.load", "torch.load", "torch.load(weights_only=True)",
                            "torch.load(weights_only=False)", "joblib.load", "np.load", "np.load(allow_pickle=True)",
                            "safetensors", "safe_load")
#: what the marker file contains
MARKER_TEXT = "pwned"


class _Call:
    """Pickles as ``func(*args)``: the unpickler calls ``func`` (itself possibly a ``_Call``) on ``args``.

    ``__call__`` exists only because the pickler insists the first item of a reduce tuple is callable; the
    object is never called in this process.
    """

    def __init__(self, func: Any, args: tuple) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple:
        return self.func, self.args

    def __call__(self, *args: Any) -> None:  # pragma: no cover - never called here
        raise RuntimeError("a payload is only ever built, never called, in the process that builds it")


def _check_marker(marker: object) -> Path:
    if isinstance(marker, bytes) or not isinstance(marker, (str, os.PathLike)):
        raise TypeError(f"marker must be a str or path-like (an absolute path in a temporary folder), "
                        f"got {type(marker).__name__}")
    m = Path(marker)
    if not m.is_absolute():
        raise ValueError(f"marker must be an absolute path (in a temporary folder), got {str(m)!r}")
    if not m.parent.is_dir():
        raise ValueError(f"marker's folder must exist, got {str(m.parent)!r}")
    if m.exists():
        raise ValueError(f"marker must not exist yet (its appearance is the evidence that code ran), "
                         f"got {str(m)!r}")
    return m


def _check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def marker_code(marker: PathLike) -> str:
    """The Python source every payload runs, one way or another: write ``pwned`` into ``marker``."""
    return f"open({str(marker)!r}, 'w').write({MARKER_TEXT!r})"


def _marker_argv(marker: Path) -> list[str]:
    return [sys.executable, "-c", marker_code(marker)]


def _hidden(name: str) -> _Call:
    """``str(base64.b64decode("<name in base64>"), "ascii")``: the name is only spelled out at load time."""
    return _Call(str, (_Call(base64.b64decode, (base64.b64encode(name.encode()).decode("ascii"),)), "ascii"))


def payload(technique: str, *, marker: PathLike) -> object:
    """An object whose unpickling creates the file ``marker`` and does nothing else.

    Args:
        technique: one of :data:`TECHNIQUES` (see the module docstring for what each one calls).
        marker: an absolute path, in a folder that exists, where no file is yet.

    Returns:
        An object to put in whatever gets pickled (a dict, a ``torch.save`` checkpoint, an object array).
    """
    _check_choice("technique", technique, TECHNIQUES)
    m = _check_marker(marker)
    code, argv = marker_code(m), _marker_argv(m)
    if technique == "os_system":
        return _Call(os.system, (shlex.join(argv),))
    if technique == "exec":
        return _Call(builtins.exec, (code,))
    if technique == "eval":
        return _Call(builtins.eval, (code,))
    if technique == "subprocess":
        return _Call(subprocess.call, (argv,))
    if technique == "runpy":
        return _Call(runpy._run_code, (code, {}))
    if technique == "importlib":
        exec_fn = _Call(getattr, (_Call(importlib.import_module, ("builtins",)), "exec"))
        return _Call(exec_fn, (code,))
    if technique == "nested":
        system = _Call(_Call(operator.attrgetter, ("system",)), (_Call(importlib.import_module, ("os",)),))
        return _Call(system, (shlex.join(argv),))
    # obfuscated: getattr(import_module(<"os">), <"system">)(command), names decoded at load time
    system = _Call(getattr, (_Call(importlib.import_module, (_hidden("os"),)), _hidden("system")))
    return _Call(system, (shlex.join(argv),))


def _weight():
    import torch

    return torch.arange(6, dtype=torch.float32).reshape(2, 3)


def make_malicious(path: PathLike, *, fmt: str, technique: str, marker: PathLike) -> Path:
    """Write a file in format ``fmt`` that creates ``marker`` when loaded with an unsafe loader.

    Args:
        path: the file to write (its folder must exist); overwritten if present.
        fmt: one of :data:`MALICIOUS_FORMATS`: ``"pickle"`` (``pickle.dump`` of ``{"weight", "extra"}``),
            ``"torch"`` (``torch.save`` of a state dict whose ``"extra"`` entry is the payload), ``"joblib"``
            (``joblib.dump`` of the same with a NumPy weight; the array's raw bytes come before the payload in the
            stream, so a plain ``pickle.load`` stops at them and never reaches it, while ``joblib.load`` runs it; a
            payload placed before the array would run under ``pickle.load`` too), ``"npy"`` (``np.save`` of an object array holding the
            payload; loading needs ``allow_pickle=True``).
        technique: one of :data:`TECHNIQUES`.
        marker: where the payload writes (see :func:`payload`).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    _check_choice("fmt", fmt, MALICIOUS_FORMATS)
    evil = payload(technique, marker=marker)
    p = _check_out(path)
    if fmt == "pickle":
        with open(p, "wb") as f:
            pickle.dump({"weight": [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]], "extra": evil}, f, protocol=4)
    elif fmt == "torch":
        import torch

        torch.save({"weight": _weight(), "extra": evil}, p)
    elif fmt == "joblib":
        import joblib

        joblib.dump({"weight": _weight().numpy(), "extra": evil}, p)
    else:
        import numpy as np

        arr = np.empty(2, dtype=object)
        arr[0], arr[1] = "weights", evil
        with open(p, "wb") as f:  # np.save on a path would append ".npy"
            np.save(f, arr, allow_pickle=True)
    return p


def _check_out(path: object) -> Path:
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or path-like, got {type(path).__name__}")
    p = Path(path)
    if not p.parent.is_dir():
        raise ValueError(f"path's folder must exist, got {str(p.parent)!r}")
    if p.is_dir():
        raise ValueError(f"path must name a file, got the folder {str(p)!r}")
    return p


def make_benign(path: PathLike, *, fmt: str, obj: Any) -> Path:
    """Write ``obj`` in format ``fmt`` with the format's own writer.

    Args:
        path: the file to write (its folder must exist).
        fmt: one of :data:`~mlsec_kit.supply_chain.FORMATS`. ``"safetensors"`` needs a dict of str to tensors,
            ``"npy"`` an array (saved with ``allow_pickle=False``, so an object array is refused).
        obj: what to store.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    _check_choice("fmt", fmt, FORMATS)
    p = _check_out(path)
    if fmt == "pickle":
        with open(p, "wb") as f:
            pickle.dump(obj, f, protocol=4)
    elif fmt == "torch":
        import torch

        torch.save(obj, p)
    elif fmt == "joblib":
        import joblib

        joblib.dump(obj, p)
    elif fmt == "npy":
        import numpy as np

        if not isinstance(obj, np.ndarray) or obj.dtype.hasobject:
            raise TypeError(f"obj must be a numeric numpy array for fmt='npy', got "
                            f"{getattr(obj, 'dtype', type(obj).__name__)}")
        with open(p, "wb") as f:
            np.save(f, obj, allow_pickle=False)
    else:
        import torch
        from safetensors.torch import save_file

        if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                for k, v in obj.items()):
            raise TypeError("obj must be a dict of str to torch.Tensor for fmt='safetensors'")
        save_file({k: v.detach().contiguous() for k, v in obj.items()}, str(p))
    return p


@dataclass(frozen=True)
class LoadOutcome:
    """What happened when a child process loaded one file.

    Attributes:
        loader: the loader used (one of :data:`LOADERS`).
        ran_code: the marker appeared (or, without a marker, a process, shell or exec event was seen).
        refused: the loader raised instead of returning an object.
        error: ``"ExceptionType: first line of its message"``, or ``""``.
        events: the audit events (PEP 578) raised during the load that matter here: writes, processes, sockets,
            deletions, ``exec``; each ``(event, args as strings)``.
    """

    loader: str
    ran_code: bool
    refused: bool
    error: str
    events: tuple = field(default=(), repr=False)


_CHILD = textwrap.dedent(r'''
    import json, os, sys
    loader, items = sys.argv[1], json.loads(sys.argv[2])
    {imports}
    WATCH = ("os.system", "subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.remove",
             "os.unlink", "os.rmdir", "os.rename", "os.truncate", "os.chmod", "os.kill", "shutil.", "socket.",
             "urllib.", "http.", "ftplib.", "exec", "ctypes.", "os.startfile", "os.putenv", "os.mkdir")
    W = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    state = {{"on": False, "events": []}}
    def hook(event, args):
        if not state["on"]:
            return
        if event == "open":
            mode, flags = args[1], args[2]
            if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & W):
                state["events"].append([event, [str(a) for a in args[:2]]])
        elif event == "exec":  # keep the code's origin: a module being imported vs a string compiled on load
            state["events"].append([event, [getattr(args[0], "co_filename", str(args[0]))]])
        elif event.startswith(WATCH):
            state["events"].append([event, [(os.fsdecode(a) if isinstance(a, bytes) else str(a))[:500]
                                            for a in args]])
    sys.addaudithook(hook)
    def load(path):
        {load}
    out = []
    for path, marker in items:
        state["on"], state["events"] = True, []
        error = ""
        try:
            load(path)
        except BaseException as e:
            error = (type(e).__name__ + ": " + str(e).strip().splitlines()[0]) if str(e).strip() else type(e).__name__
        state["on"] = False
        ran = os.path.exists(marker) if marker else any(
            e[0] in ("os.system", "subprocess.Popen") or (e[0] == "exec" and e[1][0].startswith("<string"))
            for e in state["events"])
        out.append({{"ran_code": ran, "refused": bool(error), "error": error[:300], "events": state["events"]}})
    sys.stdout.write("\n@@OUTCOME@@" + json.dumps(out))
''')

_LOADER_CODE = {
    "pickle.load": ("import pickle", "with open(path, 'rb') as f: pickle.load(f)"),
    "torch.load": ("import torch", "torch.load(path, map_location='cpu')"),
    "torch.load(weights_only=True)": ("import torch", "torch.load(path, weights_only=True, map_location='cpu')"),
    "torch.load(weights_only=False)": ("import torch", "torch.load(path, weights_only=False, map_location='cpu')"),
    "joblib.load": ("import joblib", "joblib.load(path)"),
    "np.load": ("import numpy as np", "np.load(path)"),
    "np.load(allow_pickle=True)": ("import numpy as np", "np.load(path, allow_pickle=True)"),
    "safetensors": ("from safetensors.torch import load_file", "load_file(path)"),
    "safe_load": ("from mlsec_kit.supply_chain.loading import safe_load", "safe_load(path)"),
}


def run_loads(paths: Sequence[PathLike], *, loader: str, markers: Optional[Sequence[Optional[PathLike]]] = None,
              timeout: float = 120.0) -> list[LoadOutcome]:
    """Load each file in turn in ONE child Python process with ``loader``; see :func:`run_load`.

    Args:
        paths: existing files.
        loader: one of :data:`LOADERS`.
        markers: per file, the marker its payload would create (``None``: judge by audit events).
        timeout: seconds the child may run, > 0.

    Returns:
        One :class:`LoadOutcome` per path, in order.
    """
    _check_choice("loader", loader, LOADERS)
    if isinstance(paths, (str, bytes, os.PathLike)) or not isinstance(paths, Sequence) or not paths:
        raise TypeError("paths must be a non-empty sequence of files")
    files = [str(check_path(p).resolve()) for p in paths]
    if markers is None:
        markers = [None] * len(files)
    if len(markers) != len(files):
        raise ValueError(f"markers must have one entry per path ({len(files)}), got {len(markers)}")
    marks = [None if m is None else str(Path(m)) for m in markers]
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
    imports, load = _LOADER_CODE[loader]
    script = _CHILD.format(imports=imports, load=load)
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("OMP_NUM_THREADS", "1")
    proc = subprocess.run([sys.executable, "-c", script, loader, json.dumps(list(zip(files, marks)))],
                          capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=str(Path(files[0]).parent))
    if "@@OUTCOME@@" not in proc.stdout:
        raise RuntimeError(f"the loader's child process failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    rows = json.loads(proc.stdout.rsplit("@@OUTCOME@@", 1)[1])
    return [LoadOutcome(loader, r["ran_code"], r["refused"], r["error"],
                        tuple((e, tuple(a)) for e, a in r["events"])) for r in rows]


def run_load(path: PathLike, *, loader: str, marker: Optional[PathLike] = None,
             timeout: float = 120.0) -> LoadOutcome:
    """Load ``path`` with ``loader`` in a child Python process and report whether code ran.

    The calling process never deserialises the file. The child records the load's audit events (PEP 578:
    file writes, ``os.system``, ``subprocess.Popen``, sockets, deletions, ``exec``).

    Args:
        path: an existing file.
        loader: one of :data:`LOADERS` (``"torch.load"`` is the default call: weights-only since PyTorch 2.6).
        marker: the file a payload would create; ``ran_code`` is whether it appeared. ``None``: ``ran_code`` is
            whether a process was started or ``exec`` ran during the load.
        timeout: seconds the child may run, > 0.

    Returns:
        A :class:`LoadOutcome`.
    """
    return run_loads([path], loader=loader, markers=[marker], timeout=timeout)[0]
