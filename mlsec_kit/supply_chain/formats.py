"""Which format a model file is in, read from its bytes, not its name, and a size limit checked before reading.

An extension is a claim made by whoever named the file; the first bytes are what a loader will actually parse.
A ``.safetensors`` file that is really a pickle would be unpickled by a loader that trusts the name, so
:func:`detect_format` reads the content:

* ``"safetensors"``: 8 bytes of little-endian header length n, then n bytes of JSON (the safetensors format
  specification, huggingface/safetensors ``README``);
* ``"torch"``: a zip archive with a ``<archive>/data.pkl`` member (``torch.save`` since PyTorch 1.6);
* ``"npy"``: the magic ``\\x93NUMPY`` (NumPy's ``.npy`` format, NEP 1);
* ``"pickle"``: protocol 2-5 (``\\x80`` then the protocol byte), or a protocol 0/1 stream whose opcodes parse up to
  a STOP; ``"joblib"`` when that pickle holds joblib's ``NumpyArrayWrapper`` or the name ends in ``.joblib``
  (the extension is only a hint for content that is a pickle anyway).
"""
from __future__ import annotations

import io
import json
import os
import pickletools
import struct
import zipfile
from pathlib import Path
from typing import Union

__all__ = ["FORMATS", "MAX_BYTES", "detect_format", "check_size", "check_path"]

PathLike = Union[str, "os.PathLike[str]"]

#: the formats the kit tells apart
FORMATS: tuple[str, ...] = ("pickle", "torch", "joblib", "npy", "safetensors")
#: default largest file the kit reads (1 GiB)
MAX_BYTES: int = 2 ** 30

_ZIP_MAGIC = b"PK\x03\x04"
_NPY_MAGIC = b"\x93NUMPY"
_JOBLIB_MARK = b"NumpyArrayWrapper"
#: a safetensors header longer than this is refused by safetensors itself (100 MB)
_SAFETENSORS_MAX_HEADER = 100_000_000


def check_path(path: object, *, name: str = "path") -> Path:
    """``path`` is a str or path-like naming an existing regular file; returns it as a :class:`~pathlib.Path`.

    Raises:
        TypeError: not a str or path-like. FileNotFoundError: nothing there. ValueError: a folder, not a file.
    """
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or path-like naming a file, got {type(path).__name__}")
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{name} does not exist: {str(p)!r}")
    if not p.is_file():
        raise ValueError(f"{name} must be a regular file, got a folder or special file: {str(p)!r}")
    return p


def check_folder(folder: object, *, name: str = "folder") -> Path:
    """``folder`` is a str or path-like naming an existing folder; returns it as a :class:`~pathlib.Path`.

    Raises:
        TypeError: not a str or path-like. ValueError: no folder there.
    """
    if isinstance(folder, bytes) or not isinstance(folder, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or path-like naming a folder, got {type(folder).__name__}")
    p = Path(folder)
    if not p.is_dir():
        raise ValueError(f"{name} must be an existing folder, got {str(p)!r}")
    return p


def check_size(path: PathLike, *, max_bytes: int = MAX_BYTES) -> int:
    """Refuse a file larger than ``max_bytes`` before anything reads it; returns its size in bytes.

    Args:
        path: an existing file.
        max_bytes: the largest size accepted, an int >= 1 (default :data:`MAX_BYTES`, 1 GiB).

    Returns:
        The file's size in bytes.
    """
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int):
        raise TypeError(f"max_bytes must be an int >= 1 (bytes), got {type(max_bytes).__name__}")
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be an int >= 1 (bytes), got {max_bytes}")
    p = check_path(path)
    size = p.stat().st_size
    if size > max_bytes:
        raise ValueError(f"{str(p)!r} is {size} bytes, larger than max_bytes = {max_bytes}; pass a larger "
                         f"max_bytes if you trust a file this size")
    return size


def _is_safetensors(head: bytes, size: int, p: Path) -> bool:
    if len(head) < 10:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    if not 2 <= n <= min(size - 8, _SAFETENSORS_MAX_HEADER):
        return False
    with open(p, "rb") as f:
        f.seek(8)
        raw = f.read(n)
    if not raw.lstrip().startswith(b"{"):
        return False
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return False
    return isinstance(header, dict)


def _parses_as_pickle(data: bytes) -> bool:
    """Protocol 0/1 have no magic: accept a stream whose opcodes parse up to a STOP."""
    try:
        ops = list(pickletools.genops(io.BytesIO(data)))
    except Exception:  # noqa: BLE001 - any parse failure means "not a pickle"
        return False
    return bool(ops) and ops[-1][0].name == "STOP"


def detect_format(path: PathLike) -> str:
    """The format of a model or data file, from its content.

    Args:
        path: an existing file.

    Returns:
        One of :data:`FORMATS`.

    Raises:
        FileNotFoundError: ``path`` does not exist. ValueError: the content is none of :data:`FORMATS`.
    """
    p = check_path(path)
    size = p.stat().st_size
    with open(p, "rb") as f:
        head = f.read(1 << 16)
    if head.startswith(_ZIP_MAGIC):
        try:
            with zipfile.ZipFile(p) as z:
                names = z.namelist()
        except zipfile.BadZipFile:
            names = []
        if any(n.endswith("data.pkl") for n in names):
            return "torch"
        raise ValueError(f"path {str(p)!r} is a zip archive without a */data.pkl member (not a torch.save file); "
                         f"the formats known are {FORMATS}")
    if head.startswith(_NPY_MAGIC):
        return "npy"
    if _is_safetensors(head, size, p):  # before pickle: a header length can begin with the byte 0x80
        return "safetensors"
    is_pickle = (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5) or \
        (size <= len(head) and _parses_as_pickle(head))
    if is_pickle:
        if p.suffix.lower() == ".joblib" or _JOBLIB_MARK in head:
            return "joblib"
        return "pickle"
    raise ValueError(f"path {str(p)!r} is in none of the known formats {FORMATS} (first bytes {head[:8]!r})")
