"""Grade one submitted notebook: the submission computes in a sandbox, the grader judges in its own process.

Two processes, and only data between them:

* **The submission's process** (:func:`main`, started by :class:`~mlsec_kit.grading.sandbox.Sandbox`) is the
  notebook's kernel: a fresh ``python`` hosting an IPython shell that runs the cells exactly as a notebook
  would (``%pip``, ``%conda`` and ``!`` are no-ops), each under a time limit. Then it only *serves calls*: it
  receives a question's name and the call's arguments, runs the student's function on them with the kit
  functions that would answer the question blocked, and sends back the return value and the new state of the
  arguments it changed (a model's weights and mode, a tensor edited in place, a generator's state).
* **The grader's process** (:func:`grade_notebook`) runs every property. A property's ``fn`` is a
  :class:`RemoteFunction`: calling it sends the arguments over a pipe and waits for the answer. A callable
  argument (a query oracle that counts rows) stays in the grader: the submission calls it back. Everything the
  submission sends is decoded by :mod:`~mlsec_kit.grading.wire` (JSON, raw tensor bytes and byte strings, never
  pickle), so nothing the notebook does — replacing ``torch.random.fork_rng``, the kit's helpers, ``builtins`` or the
  checks themselves — can change how a property is judged. The submission only hurts itself.

Results exist only in the grader's memory until :mod:`~mlsec_kit.grading.report` writes them, after every
submission's process and everything it started has been killed.
"""
from __future__ import annotations

import importlib
import os
import pickle
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from . import wire

__all__ = ["Submission", "grade_notebook", "main", "RemoteFunction", "SubmissionStopped", "MAX_NOTEBOOK_MB"]

MAX_NOTEBOOK_MB = 20  # a submitted notebook larger than this is not run
_SLACK = 3.0  # seconds the grader waits past a call's time limit before it stops the submission


class SubmissionStopped(Exception):
    """The submission's process is gone (it crashed, exited, or ran past its time and was stopped)."""


class _Callback:
    """Stands, in the submission's process, for a callable argument that stays in the grader."""

    def __init__(self, index: int, name: str) -> None:
        self.index, self.__name__ = index, name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _CHILD["callback"](self.index, args, kwargs)

    def __getattr__(self, name: str) -> Any:
        # a public attribute of the grader's object (``oracle.total``), read from the grader when asked
        if name.startswith("_") or "getattr" not in _CHILD:
            raise AttributeError(name)
        return _CHILD["getattr"](self.index, name)

    def __repr__(self) -> str:
        return f"<{self.__name__} (answered by the grader)>"


_CHILD: dict[str, Any] = {}


def _rebuild_tensor(raw: bytes, dtype: str, shape: tuple, requires_grad: bool) -> Any:
    """A tensor from its raw bytes (what :class:`_Pickler` writes: faster than torch's own reducer)."""
    import torch

    dt = getattr(torch, dtype)
    t = torch.frombuffer(bytearray(raw), dtype=dt).reshape(shape) if raw else torch.empty(shape, dtype=dt)
    return t.requires_grad_(requires_grad) if requires_grad else t


def _dumps(value: Any) -> bytes:
    """Pickle the grader's arguments; plain CPU tensors as raw bytes."""
    import io

    import torch

    class _Pickler(pickle.Pickler):
        def reducer_override(self, obj: Any) -> Any:
            if type(obj) is torch.Tensor and obj.layout == torch.strided and obj.device.type == "cpu" \
                    and obj.dtype in _FAST_DTYPES and not obj.is_conj() and not obj.is_neg():
                data = obj.detach().contiguous()
                raw = data.view(torch.uint8).numpy().tobytes() if data.numel() else b""
                return _rebuild_tensor, (raw, str(obj.dtype).replace("torch.", ""), tuple(obj.shape),
                                         bool(obj.requires_grad))
            return NotImplemented

    buffer = io.BytesIO()
    _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    return buffer.getvalue()


def _fast_dtypes() -> tuple:
    import torch
    return (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int8, torch.uint8, torch.int16,
            torch.int32, torch.int64, torch.bool)


class _LazyDtypes:
    def __contains__(self, dtype: Any) -> bool:
        global _FAST_DTYPES
        _FAST_DTYPES = _fast_dtypes()
        return dtype in _FAST_DTYPES


_FAST_DTYPES: Any = _LazyDtypes()


# ==== inside the submission's process ====================================================================
def _skipped(line: str = "", *args: Any, **kwargs: Any) -> None:
    print(f"[grader] skipped: {line}".rstrip())


def _make_shell() -> Any:
    """An IPython shell with history off and install/shell commands turned into no-ops."""
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.text import SList
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False
    config.InteractiveShell.colors = "NoColor"
    shell = InteractiveShell.instance(config=config)
    for magic in ("pip", "conda", "mamba"):
        shell.register_magic_function(_skipped, "line", magic)
    shell.system = shell.system_raw = shell.system_piped = _skipped
    shell.getoutput = lambda *args, **kwargs: SList()
    return shell


def _cell_error(index: int, source: str, error: BaseException) -> str:
    from .limits import TimeLimitExceeded

    first = next((line.strip() for line in source.splitlines() if line.strip()), "")
    first = first if len(first) <= 40 else first[:37] + "..."
    if isinstance(error, TimeLimitExceeded):
        what = f"stopped: it {error} (an endless loop?)"
    elif isinstance(error, SyntaxError):
        what = f"{type(error).__name__}: {error.msg} (line {error.lineno})"
    else:
        text = (str(error).strip().splitlines() or [""])[0][:160]
        what = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return f"cell {index} ({first}): {what}"


def _execute_cells(shell: Any, cells: list[tuple[int, str]], timeout: Optional[float]) -> list[str]:
    from .limits import TimeLimitExceeded, time_limit

    errors = []
    for index, source in cells:
        try:
            with time_limit(timeout):
                result = shell.run_cell(source, store_history=False)
            error = result.error_before_exec or result.error_in_exec
        except (Exception, TimeLimitExceeded) as err:
            error = err
        if error is not None:
            errors.append(_cell_error(index, source, error))
    return errors


class _Forbidden(Exception):
    pass


def _resolve(name: str) -> Any:
    """The object a dotted name such as ``mlsec_kit.attacks.evasion.oracle.Oracle._charge`` names, or None."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _block(names: list[str]) -> Callable[[], None]:
    """Make the functions ``names`` (the kit's or a library's) raise while a question runs; return what undoes it.

    The function object itself is changed (its code), so a reference the notebook took earlier
    (``from mlsec_kit.dp import randomized_response``) is blocked too, and so is every module that re-exports it.
    """
    undo: list[Callable[[], None]] = []
    for name in names:
        target = _resolve(name)
        if target is None:
            continue
        source = "the kit's reference implementation" if name.startswith("mlsec_kit.") else "a library's answer"
        message = f"implement this yourself, without `{name}` ({source})"

        def raiser(*args: Any, __message: str = message, **kwargs: Any) -> Any:
            raise __import__("mlsec_kit.grading.runner", fromlist=["_"])._Forbidden(__message)

        for mod in [m for m in list(sys.modules.values()) if getattr(m, "__name__", "").startswith("mlsec_kit")]:
            for key, value in list(vars(mod).items()):
                if value is target:
                    setattr(mod, key, raiser)
                    undo.append(lambda m=mod, k=key, v=value: setattr(m, k, v))
        funcs = [target]
        while hasattr(funcs[-1], "__wrapped__") and len(funcs) < 5:
            funcs.append(funcs[-1].__wrapped__)
        for func in funcs:
            code = getattr(func, "__code__", None)
            if code is None or code.co_freevars:
                continue
            blocked = raiser.__code__
            saved_defaults, saved_kw = func.__defaults__, func.__kwdefaults__
            try:
                func.__code__ = blocked
                func.__defaults__, func.__kwdefaults__ = None, {"__message": message}
            except (TypeError, ValueError, AttributeError):
                continue
            undo.append(lambda f=func, c=code, d=saved_defaults, k=saved_kw: (
                setattr(f, "__code__", c), setattr(f, "__defaults__", d), setattr(f, "__kwdefaults__", k)))
    return lambda: [u() for u in reversed(undo)]


def _state_of(obj: Any, blobs: list[bytes], before: Any = None) -> Any:
    """What the grader needs to mirror a change the call made to argument ``obj`` (``before``: its copy)."""
    import torch

    if isinstance(obj, torch.Tensor):
        grad = obj.grad if obj.is_leaf else None
        if grad is None and isinstance(before, torch.Tensor) and before.shape == obj.shape \
                and before.dtype == obj.dtype and torch.equal(before, obj.detach()):
            return None  # unchanged: nothing to send
        return {"tensor": wire.encode(obj, blobs), "grad": None if grad is None else wire.encode(grad, blobs)}
    if isinstance(obj, torch.nn.Module):
        return {"module": {"state": [[k, wire.encode(v, blobs)] for k, v in obj.state_dict().items()],
                           "training": [m.training for m in obj.modules()],
                           "grads": [None if p.grad is None else wire.encode(p.grad, blobs)
                                     for p in obj.parameters()]}}
    if isinstance(obj, torch.Generator):
        return {"generator": wire.encode(obj.get_state(), blobs)}
    if isinstance(obj, torch.optim.Optimizer):
        return {"optimizer": {"lr": [float(g.get("lr", 0.0)) for g in obj.param_groups],
                              "params": [wire.encode(p, blobs) for g in obj.param_groups for p in g["params"]]}}
    if isinstance(obj, (list, tuple)):
        return {"items": [_state_of(v, blobs) for v in obj]}
    return None


def _serve_call(fn: Any, header: dict[str, Any], blobs: list[bytes], fd_out: int) -> None:
    from .limits import TimeLimitExceeded, time_limit

    args, kwargs = pickle.loads(blobs[0])  # sent by the grader: the trusted side
    forbid = tuple(header.get("forbid", []))
    if _CHILD.get("blocked") != forbid:  # blocked from a question's first call until another question's
        _CHILD.pop("undo", lambda: None)()
        _CHILD["undo"], _CHILD["blocked"] = _block(list(forbid)), forbid
    import torch

    before = [a.detach().clone() if type(a) is torch.Tensor else None for a in args]
    started = time.monotonic()
    try:
        with time_limit(max(0.05, float(header["timeout"])) if header.get("timeout") else None):
            value = fn(*args, **kwargs)
    except _Forbidden as err:
        reply = {"op": "error", "kind": "forbidden", "type": "ForbiddenFunction", "message": str(err)}
    except TimeLimitExceeded as err:
        reply = {"op": "error", "kind": "timeout", "type": "TimeLimitExceeded", "message": str(err)}
    except NotImplementedError as err:
        reply = {"op": "error", "kind": "not_implemented", "type": "NotImplementedError", "message": str(err)}
    except BaseException as err:  # SystemExit and KeyboardInterrupt of the student's code included
        reply = {"op": "error", "kind": "exception", "type": type(err).__name__, "message": str(err)[:500]}
    else:
        reply = None
    elapsed = time.monotonic() - started  # callbacks into the grader included: they are the student's queries
    out: list[bytes] = []
    if reply is None:
        flat = list(args)
        ref = next((i for i, a in enumerate(flat) if value is a), None)
        encoded = {"~": "argref", "i": ref} if ref is not None else wire.encode(value, out)
        reply = {"op": "result", "value": encoded, "args": [_state_of(a, out, b) for a, b in zip(args, before)]}
    wire.send(fd_out, {**reply, "elapsed": elapsed}, out)


def main() -> None:
    """Entry point of the submission's process: ``python -m mlsec_kit.grading.runner FD_IN FD_OUT``."""
    fd_in, fd_out = int(sys.argv[1]), int(sys.argv[2])
    sys.stdin = open(os.devnull)
    receive, send, exit_now = wire.receive, wire.send, os._exit
    from . import core
    core._warm_up()
    _make_shell()
    import numpy  # noqa: F401  (loaded before the process gives up root, where it runs as root)
    from .sandbox import drop_privileges
    drop_privileges()
    header, _ = receive(fd_in)
    core.set_grading_mode(True)

    def callback(index: int, args: tuple, kwargs: dict) -> Any:
        out: list[bytes] = []
        send(fd_out, {"op": "callback", "index": index, "args": wire.encode(list(args), out),
                      "kwargs": wire.encode(kwargs, out)}, out)
        reply, blobs = receive(fd_in)
        if reply.get("op") == "callback_result":
            return wire.decode(reply["value"], blobs)
        raise RuntimeError(str(reply.get("message", "the grader refused this call")))

    def getattr_(index: int, name: str) -> Any:
        send(fd_out, {"op": "getattr", "index": index, "name": name})
        reply, blobs = receive(fd_in)
        if reply.get("op") == "callback_result":
            if isinstance(reply.get("method"), int):
                return _Callback(reply["method"], name)
            return wire.decode(reply["value"], blobs)
        raise AttributeError(str(reply.get("message", name)))

    _CHILD["callback"], _CHILD["getattr"] = callback, getattr_
    shell = _make_shell()
    errors = _execute_cells(shell, [tuple(c) for c in header["cells"]], header.get("cell_timeout"))
    namespace = shell.user_ns
    names = {}
    for name in header["questions"]:
        value = namespace.get(name, _Callback)  # a sentinel no notebook defines
        names[name] = ("missing" if value is _Callback else "ok" if callable(value)
                       else f"not a function: {type(value).__name__}")
    send(fd_out, {"op": "ready", "cells": errors, "names": names})
    while True:
        header, blobs = receive(fd_in)
        if header.get("op") != "call":
            break
        fn = namespace.get(header["name"])
        _serve_call(fn, header, blobs, fd_out)
    try:
        sys.stdout.flush()
    finally:
        exit_now(0)


# ==== in the grader's process ============================================================================
class _Kernel:
    """The grader's end of one submission's process."""

    def __init__(self, proc: Any, fd_to: int, fd_from: int, notebook_deadline: float) -> None:
        self.proc, self.fd_to, self.fd_from = proc, fd_to, fd_from
        self.notebook_deadline = notebook_deadline
        self.stopped = ""  # why the process is gone, once it is
        self.timed_out = False

    def stop(self, why: str) -> None:
        """Mark the process as gone; :meth:`Sandbox.close` kills what is left of it."""
        if not self.stopped:
            self.stopped = why


class RemoteFunction:
    """The student's function for one question, called in the submission's process."""

    def __init__(self, kernel: _Kernel, name: str, forbid: tuple[str, ...]) -> None:
        self._kernel, self.__name__, self._forbid = kernel, name, tuple(forbid)
        self._timeout: Optional[float] = None
        self._used = 0.0

    def _begin_property(self, timeout: Optional[float]) -> None:
        """Called by :func:`~mlsec_kit.grading.core.run_question` before each property: its time budget.

        The budget counts the time the student's function computes (measured around the call in the
        submission's process), not the time the arguments and results spend in the pipe; each call also has
        a wall-clock limit (what is left of the budget, plus a few seconds), and the notebook its own.
        """
        self._timeout = timeout
        self._used = 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        import torch

        from .core import CheckFailure
        from .limits import TimeLimitExceeded

        kernel = self._kernel
        if kernel.stopped:
            raise SubmissionStopped(kernel.stopped)
        now = time.monotonic()
        remaining = kernel.notebook_deadline - now
        if self._timeout is not None:
            remaining = min(remaining, self._timeout - self._used)
        if remaining <= 0:
            raise TimeLimitExceeded(self._timeout or 0.0)
        deadline = min(now + remaining, kernel.notebook_deadline)
        callbacks: list[Callable[..., Any]] = []

        def swap(value: Any) -> Any:
            if callable(value) and not isinstance(value, (torch.nn.Module, torch.Tensor, type, torch.Generator)):
                callbacks.append(value)
                return _Callback(len(callbacks) - 1, getattr(value, "__name__", type(value).__name__))
            return value

        sent_args = tuple(swap(a) for a in args)
        sent_kwargs = {k: swap(v) for k, v in kwargs.items()}
        payload = _dumps((sent_args, sent_kwargs))
        failure: list[BaseException] = []
        try:
            wire.send(kernel.fd_to, {"op": "call", "name": self.__name__, "forbid": list(self._forbid),
                                     "timeout": remaining}, [payload])
            while True:
                header, blobs = wire.receive(kernel.fd_from, min(deadline + _SLACK, kernel.notebook_deadline))
                op = header.get("op")
                if op in ("callback", "getattr"):
                    self._answer(header, blobs, callbacks, failure)
                    continue
                break
            elapsed = header.get("elapsed")
            self._used += float(elapsed) if isinstance(elapsed, (int, float)) and 0 <= elapsed < 1e6 \
                else time.monotonic() - now
        except wire.WireError as err:
            if "deadline" in str(err):
                kernel.timed_out = kernel.notebook_deadline <= time.monotonic() + 0.01
                kernel.stop(f"the submission's process was stopped: {self.__name__} ran past its time "
                             "limit and did not stop when interrupted")
                raise TimeLimitExceeded(self._timeout or remaining) from None
            kernel.stop(f"the submission's process ended while {self.__name__} ran ({err})")
            raise SubmissionStopped(kernel.stopped) from None
        if failure:  # a check inside a callback failed: that is the verdict, whatever the student did next
            raise failure[0]
        if op == "error":
            kind, message = header.get("kind"), str(header.get("message", ""))
            if kind == "timeout":
                raise TimeLimitExceeded(self._timeout or remaining)
            if kind == "not_implemented":
                raise NotImplementedError(message)
            name = "".join(ch for ch in str(header.get("type", "Error")) if ch.isalnum() or ch == "_")[:60]
            name = name if name.isidentifier() else "Error"
            # a built-in exception keeps its class, so a property can ask for a ValueError naming an argument
            import builtins
            builtin = getattr(builtins, name, None)
            base = builtin if isinstance(builtin, type) and issubclass(builtin, Exception) else Exception
            raise type(name, (base,), {})(message)
        if op != "result":
            kernel.stop("the submission's process sent a malformed answer")
            raise SubmissionStopped(kernel.stopped)
        try:
            for arg, state in zip(args, header.get("args", [])):
                _apply_state(arg, state, blobs)
            value = header.get("value")
            if isinstance(value, dict) and value.get("~") == "argref" and isinstance(value.get("i"), int) \
                    and 0 <= value["i"] < len(args):
                return args[value["i"]]
            return wire.decode(value, blobs)
        except wire.WireError as err:
            raise CheckFailure(f"{self.__name__} returned something the grader cannot read ({err})") from None

    def _answer(self, header: dict[str, Any], blobs: list[bytes], callbacks: list[Callable[..., Any]],
                failure: list[BaseException]) -> None:
        from .core import CheckFailure

        kernel = self._kernel
        try:
            index = header["index"]
            if not isinstance(index, int) or not 0 <= index < len(callbacks):
                raise wire.WireError("unknown callback")
            if header.get("op") == "getattr":
                name = header.get("name")
                if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
                    raise AttributeError(f"no attribute {name!r}")
                value = getattr(callbacks[index], name)
                if callable(value):
                    callbacks.append(value)
                    wire.send(kernel.fd_to, {"op": "callback_result", "method": len(callbacks) - 1})
                    return
                out: list[bytes] = []
                wire.send(kernel.fd_to, {"op": "callback_result", "value": wire.encode(value, out)}, out)
                return
            args = wire.decode(header["args"], blobs)
            kwargs = wire.decode(header.get("kwargs", {"~": "dict", "v": []}), blobs)
            if not isinstance(args, list) or not isinstance(kwargs, dict) \
                    or not all(isinstance(k, str) for k in kwargs):
                raise wire.WireError("bad callback arguments")
            value = callbacks[index](*args, **kwargs)
        except CheckFailure as err:
            failure.append(err)
            reply, out = {"op": "callback_error", "message": str(err)}, []
        except wire.WireError as err:
            reply, out = {"op": "callback_error", "message": str(err)}, []
        except Exception as err:
            reply, out = {"op": "callback_error", "message": f"{type(err).__name__}: {err}"}, []
        else:
            out = []
            reply = {"op": "callback_result", "value": wire.encode(value, out)}
        wire.send(kernel.fd_to, reply, out)


def _apply_state(obj: Any, state: Any, blobs: list[bytes]) -> None:
    """Mirror in the grader's object ``obj`` the change the call made to it in the submission's process."""
    import torch

    if not isinstance(state, dict):
        return
    if isinstance(obj, torch.Tensor) and "tensor" in state:
        new = wire.decode(state["tensor"], blobs)
        if isinstance(new, torch.Tensor) and new.shape == obj.shape and new.dtype == obj.dtype:
            with torch.no_grad():
                obj.copy_(new)
        if obj.is_leaf and obj.requires_grad:
            grad = None if state.get("grad") is None else wire.decode(state["grad"], blobs)
            obj.grad = grad.detach() if isinstance(grad, torch.Tensor) and grad.shape == obj.shape else None
    elif isinstance(obj, torch.nn.Module) and "module" in state:
        info = state["module"]
        own = obj.state_dict()
        with torch.no_grad():
            for key, value in info.get("state", []):
                new = wire.decode(value, blobs)
                if key in own and isinstance(new, torch.Tensor) and new.shape == own[key].shape:
                    own[key].copy_(new.to(own[key].dtype))
        for module, training in zip(obj.modules(), info.get("training", [])):
            module.training = bool(training)
        for param, grad in zip(obj.parameters(), info.get("grads", [])):
            value = None if grad is None else wire.decode(grad, blobs)
            param.grad = value.detach() if isinstance(value, torch.Tensor) and value.shape == param.shape else None
    elif isinstance(obj, torch.Generator) and "generator" in state:
        new = wire.decode(state["generator"], blobs)
        if isinstance(new, torch.Tensor) and new.dtype == torch.uint8 and new.shape == obj.get_state().shape:
            obj.set_state(new)
    elif isinstance(obj, torch.optim.Optimizer) and "optimizer" in state:
        info = state["optimizer"]
        params = [p for g in obj.param_groups for p in g["params"]]
        with torch.no_grad():
            for param, value in zip(params, info.get("params", [])):
                new = wire.decode(value, blobs)
                if isinstance(new, torch.Tensor) and new.shape == param.shape:
                    param.copy_(new)
        for group, lr in zip(obj.param_groups, info.get("lr", [])):
            if isinstance(lr, (int, float)):
                group["lr"] = float(lr)
    elif isinstance(obj, (list, tuple)) and "items" in state:
        for item, sub in zip(obj, state["items"]):
            _apply_state(item, sub, blobs)


@dataclass
class Submission:
    """The outcome of grading one notebook."""

    student: str
    path: Path
    status: str  # ok, errors, timeout, crashed, invalid notebook, grader error
    questions: list[Any]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    seed: Optional[int] = None

    @property
    def total(self) -> float:
        return _number(sum(q.score for q in self.questions))

    @property
    def max_score(self) -> float:
        return _number(sum(q.max_score for q in self.questions))

    def score_of(self, name: str) -> float:
        return _number(next((q.score for q in self.questions if q.name == name), 0))


def _number(x: float) -> float:
    return int(x) if float(x).is_integer() else round(float(x), 4)


def _log_tail(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 4096))
            lines = [l.strip() for l in f.read().decode(errors="replace").splitlines() if l.strip()]
    except OSError:
        return ""
    return lines[-1][:200] if lines and ("Error" in lines[-1] or "Fatal" in lines[-1]) else ""


def _read_cells(path: Path, exercise: Any) -> list[tuple[int, str]]:
    """The code cells of the notebook at ``path``; ValueError with a clear reason when it cannot be graded."""
    import json

    import nbformat

    size = path.stat().st_size
    if size > MAX_NOTEBOOK_MB * 2**20:
        raise ValueError(f"the notebook is {size / 2**20:.0f} MB, over the {MAX_NOTEBOOK_MB} MB limit "
                         "(clear its outputs and submit again)")
    if size == 0:
        raise ValueError("the file is empty")
    try:
        raw = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"not a notebook: the file is not valid JSON ({str(err).splitlines()[0][:80]})") from None
    if not isinstance(raw, dict) or "cells" not in raw:
        raise ValueError("not a notebook: no 'cells' in the file")
    try:
        notebook = nbformat.reads(json.dumps(raw), as_version=4)
    except Exception as err:
        raise ValueError(f"not a notebook: {type(err).__name__}: {(str(err).splitlines() or [''])[0][:120]}") \
            from None
    cells = [(i + 1, cell.source) for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
    if not any(c.strip() for _, c in cells):
        raise ValueError("the notebook has no code")
    declared = (notebook.metadata.get("mlsec_kit") or {}).get("exercise") if hasattr(notebook, "metadata") else None
    text = "\n".join(c for _, c in cells)
    if declared and declared != exercise.id:
        raise ValueError(f"this is a notebook of exercise set {declared!r}, not {exercise.id!r}")
    if not declared and not any(f"def {name}(" in text or f"{name} =" in text or f'"{name}"' in text
                                for name in exercise.questions):
        raise ValueError(f"this notebook answers none of the questions of {exercise.id!r} "
                         f"({', '.join(exercise.questions)}); is it another exercise set?")
    return cells


def _package_copy(dest: Path) -> Path:
    """A read-only copy of the installed ``mlsec_kit`` (without ``__pycache__``) for the sandbox."""
    source = Path(__file__).resolve().parents[1]
    shutil.copytree(source, dest / "mlsec_kit", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for path in sorted(dest.rglob("*"), reverse=True):
        path.chmod(0o555 if path.is_dir() else 0o444)
    dest.chmod(0o555)
    return dest


def grade_notebook(path: Path, exercise: Any, *, seed: int, timeout: float = 300.0,
                   cell_timeout: Optional[float] = 60.0, check_timeout: Optional[float] = None,
                   limits: Any = None) -> Submission:
    """Grade the notebook at ``path``: cells run in a sandbox, properties are judged here; never raises
    because of the submission.

    Args:
        path: the submitted ``.ipynb``.
        exercise: the :class:`~mlsec_kit.grading.core.ExerciseSet` to grade against.
        seed: the grader's seed; each question's instances are drawn from it.
        timeout: seconds the whole notebook may take, cells and checks; then its process is killed.
        cell_timeout: seconds one cell may take before it is interrupted (``None``: no limit).
        check_timeout: seconds one property may take, the student's calls included.
        limits: a :class:`~mlsec_kit.grading.sandbox.Limits` (memory, processes, CPU time).
    """
    from . import core
    from .sandbox import Limits, Sandbox

    check_timeout = core.DEFAULT_TIMEOUT if check_timeout is None else check_timeout
    path, start = Path(path), time.monotonic()
    submission = Submission(path.stem, path, "ok", [], seed=seed)
    try:
        cells = _read_cells(path, exercise)
    except (ValueError, OSError) as err:
        return _all_zero(submission, exercise, "invalid notebook", f"could not grade the file: {err}", start)
    questions = tuple(exercise.questions.values())
    with tempfile.TemporaryDirectory(prefix="mlsec-grade-") as tmp:
        tmp_path = Path(tmp)
        package = _package_copy(tmp_path / "package")
        sandbox = Sandbox(tmp_path / "box", package, limits or Limits())
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        log = tmp_path / "log.txt"
        kernel: Optional[_Kernel] = None
        try:
            with open(log, "wb") as out:
                env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ")}
                env.update(MPLBACKEND="Agg", PYTHONDONTWRITEBYTECODE="1", MLSEC_PROGRESS="0",
                           OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
                           MKL_NUM_THREADS=os.environ.get("MKL_NUM_THREADS", "1"), PYTHONNOUSERSITE="1")
                proc = sandbox.start([sys.executable, "-m", "mlsec_kit.grading.runner", str(to_child_r),
                                      str(from_child_w)], env, pass_fds=(to_child_r, from_child_w),
                                     stdout=out.fileno())
            os.close(to_child_r)
            os.close(from_child_w)
            kernel = _Kernel(proc, to_child_w, from_child_r, start + timeout)
            results, cell_errors, outcome = _drive(kernel, submission, exercise, questions, cells, seed,
                                                   cell_timeout, check_timeout)
        finally:
            if kernel is not None and kernel.stopped and not kernel.timed_out:
                try:  # it ended on its own: let its exit code arrive before the kill
                    proc.wait(timeout=2)
                except Exception:
                    pass
            sandbox.close()  # every process the submission started is gone before anything is written
            for fd in (to_child_w, from_child_r):
                try:
                    os.close(fd)
                except OSError:
                    pass
        returncode = proc.returncode
        tail = _log_tail(log)
    return _collect(submission, exercise, results, cell_errors, outcome, returncode, tail, timeout, start)


def _drive(kernel: _Kernel, submission: Submission, exercise: Any, questions: tuple, cells: list,
           seed: int, cell_timeout: Optional[float], check_timeout: Optional[float]) -> tuple[list, list, str]:
    from . import core

    try:
        wire.send(kernel.fd_to, {"op": "job", "cells": cells, "cell_timeout": cell_timeout,
                                 "questions": [q.name for q in questions]})
        ready, _ = wire.receive(kernel.fd_from, kernel.notebook_deadline)
        if ready.get("op") != "ready":
            raise wire.WireError("unexpected message")
    except wire.WireError as err:
        if "deadline" in str(err):
            kernel.timed_out = True
            kernel.stop("timeout")
            return [], [], "timeout"
        kernel.stop("crashed")
        return [], [], "crashed"
    cell_errors = [str(e)[:300] for e in ready.get("cells", [])][:50] if isinstance(ready.get("cells"), list) else []
    names = ready.get("names") if isinstance(ready.get("names"), dict) else {}
    results = []
    for question in questions:
        qseed = core.derive_seed(seed, question.exercise, question.name)
        state = names.get(question.name, "missing")
        if kernel.stopped:
            results.append(core.CheckResult.zero(question, kernel.stopped if not kernel.timed_out else
                                                 "not graded: the notebook ran out of time", qseed))
            continue
        if state == "missing":
            results.append(core.CheckResult.zero(question, f"{question.name} is not defined in the notebook "
                                                           "(did its cell raise an error?)", qseed))
            continue
        if state != "ok":
            results.append(core.CheckResult.zero(question, f"{question.name} should be a function, got "
                                                           f"{str(state).rpartition(': ')[2][:40]}", qseed))
            continue
        fn = RemoteFunction(kernel, question.name, question.forbid)
        results.append(core.run_question(question, fn, seed=qseed, timeout=check_timeout))
    if not kernel.stopped:
        try:
            wire.send(kernel.fd_to, {"op": "exit"})
        except wire.WireError:
            pass
    return results, cell_errors, "timeout" if kernel.timed_out else "crashed" if kernel.stopped else "ok"


def _all_zero(submission: Submission, exercise: Any, status: str, note: str, start: float,
              done: Optional[list] = None) -> Submission:
    from .core import CheckResult

    done = done or []
    graded = {r.name for r in done}
    submission.questions = done + [CheckResult.zero(q, note, submission.seed)
                                   for q in exercise.questions.values() if q.name not in graded]
    submission.status, submission.seconds = status, time.monotonic() - start
    submission.notes.append(note)
    return submission


def _collect(submission: Submission, exercise: Any, results: list, cell_errors: list[str], outcome: str,
             returncode: Optional[int], tail: str, timeout: float, start: float) -> Submission:
    submission.notes += cell_errors
    if outcome == "timeout" and not results:
        note = (f"stopped after {timeout:g} s: the notebook did not finish in time "
                "(an endless loop, or a long computation at top level?)")
        return _all_zero(submission, exercise, "timeout", note, start)
    if outcome == "crashed" and not results:
        note = f"the notebook ended its process (exit code {returncode})"
        note += f": {tail}" if tail else ""
        return _all_zero(submission, exercise, "crashed", note, start)
    submission.questions = results
    if outcome == "timeout":
        submission.status = "timeout"
        submission.notes.append(f"stopped after {timeout:g} s: the notebook did not finish in time")
    elif outcome == "crashed":
        submission.status = "crashed"
        submission.notes.append(f"the submission's process ended while it was graded (exit code {returncode})"
                                + (f": {tail}" if tail else ""))
    elif cell_errors:
        submission.status = "errors"
    submission.seconds = time.monotonic() - start
    return submission


if __name__ == "__main__":
    # run as the module itself, so that what the grader pickles (_Callback) and what it raises (_Forbidden)
    # are the classes this process uses
    from mlsec_kit.grading.runner import main as _main
    _main()
