"""The messages between the grader and a submission's process, in a format that cannot run code on load.

A message is a JSON header and raw byte blobs, framed by lengths. What the *submission* sends (return
values, the state of arguments it changed) is decoded by :func:`decode`: JSON values, and tensors rebuilt
from their raw bytes with a dtype from a fixed list and a checked shape — never ``pickle``. What the
*grader* sends to the submission (the arguments of a call: models, loaders, optimizers, generators) is a
pickle: it is loaded only in the submission's sandboxed process, from the grader, the trusted side.

Encoded values: ``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes`` and ``bytearray`` (a raw blob with a
type tag, e.g. a serialised ciphertext; its length is checked against the blob's and against
:data:`MAX_MESSAGE`, its content is never interpreted here), lists, tuples, dicts, NumPy scalars and arrays,
torch tensors (their ``requires_grad`` too) and, for anything else, an opaque placeholder that keeps only the
type's name (so a message can say "returned a Linear"). A blob too large for one message is sent as an opaque
``bytes_too_large`` placeholder, so the grader can say so instead of losing the submission's process.
"""
from __future__ import annotations

import json
import os
import select
import struct
import time
from typing import Any, Optional

import numpy as np
import torch

__all__ = ["WireError", "encode", "decode", "send", "receive", "Opaque", "MAX_MESSAGE"]

MAX_MESSAGE = 512 * 2**20  # bytes one message may carry, blobs included
_DTYPES = {str(d).replace("torch.", ""): d for d in (
    torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int8, torch.uint8, torch.int16,
    torch.int32, torch.int64, torch.bool, torch.complex64, torch.complex128)}
_NP_SCALARS = {"float64": np.float64, "float32": np.float32, "int64": np.int64, "int32": np.int32,
               "bool": np.bool_}


class WireError(Exception):
    """A malformed message, a closed pipe or a deadline passed while waiting."""


class Opaque:
    """Stands for a value the submission returned that is not data (a module, a function, ...)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} returned by the submission>"


def _opaque(name: str) -> Opaque:
    name = "".join(ch for ch in str(name) if ch.isalnum() or ch == "_")[:60] or "object"
    if not name.isidentifier():
        name = "object"
    return type(name, (Opaque,), {})()


def encode(value: Any, blobs: list[bytes], *, depth: int = 0) -> Any:
    """``value`` as JSON-able data; tensor and array bytes are appended to ``blobs``."""
    if depth > 20:
        return {"~": "opaque", "type": "deeply_nested"}
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int) and type(value) in (int,):
        return value
    if isinstance(value, float) and type(value) is float:
        return {"~": "float", "v": repr(value)}  # nan and inf survive
    if type(value) in (bytes, bytearray):
        if len(value) > MAX_MESSAGE:
            return {"~": "opaque", "type": f"{type(value).__name__}_too_large"}
        blobs.append(bytes(value))
        return {"~": "bytes", "type": type(value).__name__, "n": len(value), "blob": len(blobs) - 1}
    if isinstance(value, np.generic) and value.dtype.name in _NP_SCALARS:
        return {"~": "npscalar", "dtype": value.dtype.name, "v": repr(value.item())}
    if isinstance(value, torch.Tensor):
        t = value.detach().as_subclass(torch.Tensor)
        dtype = str(t.dtype).replace("torch.", "")
        if dtype not in _DTYPES or t.layout != torch.strided:
            return {"~": "opaque", "type": f"tensor_{dtype}"}
        data = t.cpu().contiguous()
        raw = data.view(torch.uint8).numpy().tobytes() if data.numel() else b""
        blobs.append(raw)
        return {"~": "tensor", "dtype": dtype, "shape": list(t.shape), "blob": len(blobs) - 1,
                "requires_grad": bool(value.requires_grad), "grad_fn": value.grad_fn is not None}
    if isinstance(value, np.ndarray) and value.dtype.name in {"float64", "float32", "int64", "int32", "bool",
                                                               "uint8", "int8", "float16", "int16"}:
        blobs.append(np.ascontiguousarray(value).tobytes())
        return {"~": "ndarray", "dtype": value.dtype.name, "shape": list(value.shape), "blob": len(blobs) - 1}
    if isinstance(value, (list, tuple)) and type(value) in (list, tuple):
        return {"~": type(value).__name__, "v": [encode(v, blobs, depth=depth + 1) for v in value]}
    if isinstance(value, dict) and type(value) is dict:
        return {"~": "dict", "v": [[encode(k, blobs, depth=depth + 1), encode(v, blobs, depth=depth + 1)]
                                   for k, v in value.items()]}
    if isinstance(value, (int, float)):  # int and float subclasses (a bool-like or a numpy type): keep the number
        return {"~": "opaque", "type": type(value).__name__}
    return {"~": "opaque", "type": type(value).__name__}


def decode(data: Any, blobs: list[bytes], *, depth: int = 0) -> Any:
    """The value :func:`encode` described; raises :class:`WireError` on anything malformed."""
    if depth > 40:
        raise WireError("message nested too deeply")
    if data is None or isinstance(data, (bool, str)):
        return data
    if isinstance(data, int):
        return data
    if not isinstance(data, dict) or "~" not in data:
        raise WireError(f"unexpected value in a message: {type(data).__name__}")
    kind = data["~"]
    try:
        if kind == "float":
            return float(data["v"])
        if kind == "npscalar":
            cls = _NP_SCALARS[data["dtype"]]
            return cls(float(data["v"]) if data["dtype"].startswith("float") else
                       (data["v"] == "True" if data["dtype"] == "bool" else int(data["v"])))
        if kind == "bytes":
            raw = blobs[int(data["blob"])]
            n = data["n"]
            if isinstance(n, bool) or not isinstance(n, int) or n != len(raw) or n > MAX_MESSAGE:
                raise WireError("bytes length does not match its blob")
            if data.get("type", "bytes") not in ("bytes", "bytearray"):
                raise WireError("unknown bytes type")
            return bytes(raw) if data.get("type", "bytes") == "bytes" else bytearray(raw)
        if kind in ("tensor", "ndarray"):
            shape = [int(s) for s in data["shape"]]
            if any(s < 0 for s in shape):
                raise WireError("negative size in a shape")
            raw = blobs[int(data["blob"])]
            if kind == "ndarray":
                dtype = np.dtype(data["dtype"])
                if dtype.name not in {"float64", "float32", "int64", "int32", "bool", "uint8", "int8", "float16",
                                      "int16"}:
                    raise WireError(f"dtype {dtype} not allowed")
                if int(np.prod(shape)) * dtype.itemsize != len(raw):
                    raise WireError("array bytes do not match its shape")
                return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
            dtype = _DTYPES[data["dtype"]]
            itemsize = torch.empty((), dtype=dtype).element_size()
            numel = int(np.prod(shape)) if shape else 1
            if numel * itemsize != len(raw):
                raise WireError("tensor bytes do not match its shape")
            if numel == 0:
                tensor = torch.empty(shape, dtype=dtype)
            else:
                tensor = torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(dtype).reshape(shape).clone()
            if data.get("requires_grad") and tensor.is_floating_point():
                # stands for a result still attached to a graph on the submission's side
                tensor = tensor.requires_grad_(True) * 1 if data.get("grad_fn") else tensor.requires_grad_(True)
            return tensor
        if kind in ("list", "tuple"):
            items = [decode(v, blobs, depth=depth + 1) for v in data["v"]]
            return items if kind == "list" else tuple(items)
        if kind == "dict":
            out = {}
            for k, v in data["v"]:
                key = decode(k, blobs, depth=depth + 1)
                if isinstance(key, (list, dict, torch.Tensor, np.ndarray)):
                    raise WireError("unhashable key")
                out[key] = decode(v, blobs, depth=depth + 1)
            return out
        if kind == "opaque":
            return _opaque(data.get("type", "object"))
    except WireError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, OverflowError, RuntimeError) as err:
        raise WireError(f"malformed {kind}: {type(err).__name__}") from None
    raise WireError(f"unknown kind {kind!r}")


# ---- framing -------------------------------------------------------------------------------------------
def send(fd: int, header: dict[str, Any], blobs: list[bytes] = ()) -> None:
    """Write one message: lengths, the JSON header (with the blob sizes), the blobs."""
    blobs = list(blobs)
    head = json.dumps({**header, "_sizes": [len(b) for b in blobs]}).encode()
    _write_all(fd, b"".join([struct.pack("<Q", len(head)), head, *blobs]))  # one write: fewer context switches


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BrokenPipeError:
            raise WireError("the other side closed the pipe") from None
        view = view[n:]


def _read_exact(fd: int, n: int, deadline: Optional[float]) -> bytes:
    parts, left = [], n
    while left:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0:
                raise WireError("deadline passed")
            ready, _, _ = select.select([fd], [], [], wait)
            if not ready:
                raise WireError("deadline passed")
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise WireError("the other side closed the pipe")
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def receive(fd: int, deadline: Optional[float] = None) -> tuple[dict[str, Any], list[bytes]]:
    """Read one message; :class:`WireError` if it is malformed, too big, or not complete by ``deadline``."""
    (size,) = struct.unpack("<Q", _read_exact(fd, 8, deadline))
    if size > 16 * 2**20:
        raise WireError(f"header of {size} bytes is too big")
    try:
        header = json.loads(_read_exact(fd, size, deadline))
    except (ValueError, UnicodeDecodeError):
        raise WireError("header is not JSON") from None
    if not isinstance(header, dict):
        raise WireError("header is not an object")
    sizes = header.pop("_sizes", [])
    if not isinstance(sizes, list) or not all(isinstance(s, int) and s >= 0 for s in sizes) \
            or sum(sizes) > MAX_MESSAGE:
        raise WireError("bad blob sizes")
    return header, [_read_exact(fd, s, deadline) for s in sizes]
