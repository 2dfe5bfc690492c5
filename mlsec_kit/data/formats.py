"""Parsers for the files the ``full`` profile downloads, in their published formats, to numpy arrays.

* IDX (MNIST, Fashion-MNIST): http://yann.lecun.com/exdb/mnist/ describes it. A 4-byte magic number
  ``0x00 0x00 TT NN`` (``TT`` the element type, ``NN`` the number of dimensions), then ``NN`` big-endian
  uint32 sizes, then the elements in row-major order, big-endian.
* CIFAR-10, python version (https://www.cs.toronto.edu/~kriz/cifar.html): a ``.tar.gz`` holding
  ``cifar-10-batches-py/data_batch_1`` ... ``data_batch_5``, ``test_batch`` and ``batches.meta``, each a
  Python 2 pickle of a dict.
* UCI Adult (https://archive.ics.uci.edu/dataset/2/adult): comma-and-space separated text, ``?`` for a
  missing value; ``adult.test`` starts with a ``|1x3 Cross validator`` line and its labels end in ``.``.

Every parser raises ``ValueError`` naming the file and what is wrong with it.
"""
from __future__ import annotations

import codecs
import csv
import gzip
import io
import math
import os
import pickle
import struct
import tarfile
import zlib
from typing import Any, NamedTuple, Optional, Union

import numpy as np

__all__ = ["read_idx", "read_cifar10", "read_adult", "Cifar10Arrays", "AdultTable",
           "ADULT_COLUMNS", "ADULT_NUMERIC", "ADULT_CATEGORICAL", "ADULT_CLASSES"]

PathLike = Union[str, "os.PathLike[str]"]

# IDX element types (the third byte of the magic number); multi-byte types are big-endian in the file.
_IDX_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
               0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def _read_maybe_gzipped(path: PathLike) -> bytes:
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != b"\x1f\x8b":  # the gzip magic; without it the file is taken as raw IDX
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as err:
        raise ValueError(f"{os.fspath(path)}: broken or truncated gzip stream ({err})") from err


def read_idx(path: PathLike, *, ndim: Optional[int] = None) -> np.ndarray:
    """Read an IDX file (as MNIST and Fashion-MNIST ship), gzipped or not.

    Args:
        path: the ``.gz`` or uncompressed IDX file; compression is detected from the content.
        ndim: when given, the number of dimensions the file must have (3 for images, 1 for labels).

    Returns:
        The array in native byte order, e.g. uint8 ``(N, 28, 28)`` for MNIST images, ``(N,)`` for labels.

    Raises:
        ValueError: the magic number is wrong, the dimensions differ from ``ndim``, or the file is shorter
            or longer than its header says.
    """
    name = os.fspath(path)
    data = _read_maybe_gzipped(path)
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in _IDX_DTYPES or data[3] == 0:
        raise ValueError(f"{name}: bad IDX magic number 0x{data[:4].hex()}; expected 0x0000TTNN with element "
                         f"type TT in {{08, 09, 0b, 0c, 0d, 0e}} and NN >= 1 dims (MNIST images: 0x00000803)")
    dtype, n = _IDX_DTYPES[data[2]], data[3]
    if ndim is not None and n != ndim:
        raise ValueError(f"{name}: IDX file has {n} dimensions, expected {ndim}")
    header = 4 + 4 * n
    if len(data) < header:
        raise ValueError(f"{name}: truncated IDX header ({len(data)} bytes, the {n} sizes need {header})")
    dims = struct.unpack(f">{n}I", data[4:header])
    size = header + math.prod(dims) * dtype.itemsize
    if len(data) != size:
        problem = "truncated" if len(data) < size else "has trailing bytes"
        raise ValueError(f"{name}: IDX file {problem}: dims {dims} need {size} bytes, the file has {len(data)}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


class Cifar10Arrays(NamedTuple):
    """CIFAR-10 as arrays. Shape: ``X_*`` uint8 ``(N, 3, 32, 32)`` in [0, 255]; ``y_*`` int64 ``(N,)``."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]


_CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_FILES = _CIFAR_TRAIN + ("test_batch", "batches.meta")


class _ArrayUnpickler(pickle.Unpickler):
    """Rebuilds only dicts, lists, strings, numbers and numpy arrays.

    Loading a pickle runs whatever callables it names, so a tampered download could run code; the
    checksum guards the official file, and this allow-list guards every other file passed in.
    """

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"): np.empty(0).__reduce__()[0],
                ("numpy._core.multiarray", "_reconstruct"): np.empty(0).__reduce__()[0],
                ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
                ("_codecs", "encode"): codecs.encode}  # protocol 2 writes bytes as _codecs.encode(str)

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: CIFAR-10 batches hold only "
                                         "dicts, lists and numpy arrays") from None


def _unpickle(raw: bytes, what: str) -> dict:
    try:
        entry = _ArrayUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except Exception as err:  # a malformed pickle can raise almost anything; report it as a bad file
        raise ValueError(f"{what}: not a CIFAR-10 pickle ({type(err).__name__}: {err})") from err
    if not isinstance(entry, dict):
        raise ValueError(f"{what}: expected a pickled dict, got {type(entry).__name__}")
    return entry


def _cifar_members(tar_path: PathLike) -> dict[str, bytes]:
    """The bytes of the batch files inside the archive, read in memory (nothing is extracted to disk)."""
    name, wanted, out = os.fspath(tar_path), {f"{_CIFAR_DIR}/{f}" for f in _CIFAR_FILES}, {}
    try:
        with tarfile.open(tar_path, "r:*") as tar:
            for member in tar:
                if member.isfile() and member.name in wanted:
                    out[member.name.split("/")[-1]] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise ValueError(f"{name}: broken or truncated tar archive ({err})") from err
    missing = [f for f in _CIFAR_FILES if f not in out]
    if missing:
        listed = ", ".join(f"{_CIFAR_DIR}/{f}" for f in missing)
        raise ValueError(f"{name}: not the CIFAR-10 python archive, missing {listed}")
    return out


def _cifar_batch(entry: dict, what: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    data, labels = entry.get("data"), entry.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(f"{what}: 'data' must be a uint8 array of shape (N, 3072), got {got}")
    y = np.asarray(labels if labels is not None else [], dtype=np.int64)
    if y.shape != (data.shape[0],) or (y.size and not (0 <= y.min() and y.max() < num_classes)):
        raise ValueError(f"{what}: 'labels' must be {data.shape[0]} ints in [0, {num_classes}), got shape {y.shape}")
    return data.reshape(-1, 3, 32, 32), y  # rows hold the red, then green, then blue 32x32 plane


def read_cifar10(tar_path: PathLike) -> Cifar10Arrays:
    """Read the official ``cifar-10-python.tar.gz`` without extracting it.

    Args:
        tar_path: the archive (any compression ``tarfile`` reads).

    Returns:
        A :class:`Cifar10Arrays`: the 5 training batches concatenated in order, the test batch, and the
        class names from ``batches.meta``.

    Shape:
        ``X_train`` uint8 ``(N, 3, 32, 32)`` in [0, 255] (50,000 in the real file); ``y_train`` int64 ``(N,)``
        in [0, 10); the same for the test set (10,000).
    """
    name = os.fspath(tar_path)
    raw = _cifar_members(tar_path)
    names = _unpickle(raw["batches.meta"], f"{name}:batches.meta").get("label_names")
    if not isinstance(names, list) or not names or not all(isinstance(c, str) for c in names):
        raise ValueError(f"{name}:batches.meta: 'label_names' must be a non-empty list of str, got {names!r}")
    batches = [_cifar_batch(_unpickle(raw[f], f"{name}:{f}"), f"{name}:{f}", len(names))
               for f in _CIFAR_TRAIN + ("test_batch",)]
    X_train = np.concatenate([X for X, _ in batches[:5]])
    y_train = np.concatenate([y for _, y in batches[:5]])
    return Cifar10Arrays(X_train, y_train, batches[5][0], batches[5][1], tuple(names))


ADULT_COLUMNS = ("age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
                 "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week",
                 "native-country", "income")
ADULT_NUMERIC = ("age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week")
ADULT_CATEGORICAL = ("workclass", "education", "marital-status", "occupation", "relationship", "race", "sex",
                     "native-country")
ADULT_CLASSES = ("<=50K", ">50K")


class AdultTable(NamedTuple):
    """The complete rows of an Adult file.

    Shape: ``numeric`` float64 ``(N, 6)`` in ``ADULT_NUMERIC`` order; ``categorical`` str ``(N, 8)`` in
    ``ADULT_CATEGORICAL`` order; ``y`` int64 ``(N,)``, 1 for income >50K and 0 for <=50K.
    """

    numeric: np.ndarray
    categorical: np.ndarray
    y: np.ndarray


def _adult_row(fields: list[str], where: str) -> tuple[list[float], list[str], int]:
    if len(fields) != len(ADULT_COLUMNS):
        raise ValueError(f"{where}: expected {len(ADULT_COLUMNS)} comma-separated fields, got {len(fields)}")
    record = dict(zip(ADULT_COLUMNS, fields))
    try:
        numeric = [float(record[c]) for c in ADULT_NUMERIC]
    except ValueError as err:
        raise ValueError(f"{where}: a numeric field ({', '.join(ADULT_NUMERIC)}) is not a number: {err}") from None
    label = record["income"].rstrip(".")  # adult.test writes '>50K.' where adult.data writes '>50K'
    if label not in ADULT_CLASSES:
        raise ValueError(f"{where}: income must be one of {ADULT_CLASSES} (optionally ending in '.'), "
                         f"got {record['income']!r}")
    return numeric, [record[c] for c in ADULT_CATEGORICAL], ADULT_CLASSES.index(label)


def read_adult(path: PathLike) -> AdultTable:
    """Read UCI ``adult.data`` or ``adult.test``, keeping only rows without a missing (``?``) value.

    Spaces around fields are stripped, blank lines and lines starting with ``|`` (the header line of
    ``adult.test``) are skipped, and the label ``>50K`` or ``>50K.`` becomes 1, ``<=50K(.)`` 0.

    Args:
        path: the text file.

    Returns:
        An :class:`AdultTable` (30,162 rows for the real ``adult.data``, 15,060 for ``adult.test``).
    """
    numeric, categorical, labels = [], [], []
    with open(path, newline="", encoding="latin-1") as f:
        for lineno, row in enumerate(csv.reader(f), start=1):
            fields = [x.strip() for x in row]
            if not any(fields) or fields[0].startswith("|"):
                continue
            if "?" in fields:
                continue
            num, cat, label = _adult_row(fields, f"{os.fspath(path)}, line {lineno}")
            numeric.append(num)
            categorical.append(cat)
            labels.append(label)
    if not labels:
        raise ValueError(f"{os.fspath(path)}: no complete rows (is this an Adult file?)")
    return AdultTable(np.asarray(numeric, dtype=np.float64), np.asarray(categorical, dtype=str),
                      np.asarray(labels, dtype=np.int64))
