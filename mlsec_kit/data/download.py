"""Download a file once into a local cache, check its checksum, and say clearly when that is impossible.

The ``full`` profile's datasets come from the web; the ``small`` profile never calls this module. A file is
downloaded to a temporary name beside its final place, checked against a published checksum and only
then renamed, so an interrupted or tampered download never sits in the cache under the real name.

``urllib`` does the transfer, so ``http(s)://``, ``ftp://`` and ``file://`` URLs all work; the tests use
``file://`` URLs to files they write themselves.
"""
from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from typing import Optional, Sequence, Union

__all__ = ["DATA_ENV", "DatasetUnavailableError", "ChecksumMismatchError", "Resource", "cache_dir",
           "file_digest", "fetch"]

DATA_ENV = "MLSEC_DATA"
HASH_ALGORITHMS = ("md5", "sha256")
_SMALL_HINT = ("To work offline, unset MLSEC_PROFILE or set MLSEC_PROFILE=small and use the small profile's "
               "datasets (digits, breast_cancer, wine), which ship with scikit-learn.")
PathLike = Union[str, "os.PathLike[str]"]


class DatasetUnavailableError(RuntimeError):
    """A ``full``-profile file could not be obtained: offline, HTTP error, not cached, or corrupted."""


class ChecksumMismatchError(DatasetUnavailableError):
    """A downloaded (or cached) file does not match its published checksum; the file has been deleted."""


@dataclass(frozen=True)
class Resource:
    """One file of a dataset: where it lives, what it is called in the cache, and its checksum.

    Args:
        filename: the file's name inside the dataset's cache folder.
        urls: mirrors, tried in order until one delivers a file with the right checksum.
        checksum: ``"md5:<32 hex digits>"`` or ``"sha256:<64 hex digits>"``.
    """

    filename: str
    urls: tuple[str, ...]
    checksum: str

    def __post_init__(self) -> None:
        _parse_checksum(self.checksum)
        object.__setattr__(self, "urls", _check_urls(self.urls))  # accept a list or one URL; store a tuple
        _check_filename(self.filename)


def cache_dir() -> Path:
    """The cache root: ``$MLSEC_DATA`` when set, else ``~/.cache/mlsec_kit`` (not created here)."""
    value = os.environ.get(DATA_ENV, "").strip()
    return Path(value).expanduser() if value else Path.home() / ".cache" / "mlsec_kit"


def _parse_checksum(checksum: str) -> tuple[str, str]:
    algorithm, _, digest = checksum.partition(":") if isinstance(checksum, str) else ("", "", "")
    size = {"md5": 32, "sha256": 64}.get(algorithm.lower())
    if size is None or len(digest) != size or any(c not in "0123456789abcdefABCDEF" for c in digest):
        raise ValueError(f"checksum must be 'md5:<32 hex digits>' or 'sha256:<64 hex digits>', got {checksum!r}")
    return algorithm.lower(), digest.lower()


def _check_filename(filename: str) -> None:
    if not isinstance(filename, str) or filename in ("", ".", "..") or Path(filename).name != filename:
        raise ValueError(f"filename must be a bare file name (no folders), got {filename!r}")


def _check_urls(urls: Sequence[str]) -> tuple[str, ...]:
    if isinstance(urls, str):
        urls = (urls,)
    urls = tuple(urls)
    if not urls or not all(isinstance(u, str) and "://" in u for u in urls):
        raise ValueError(f"url must be a URL string or a non-empty sequence of them (scheme://...), got {urls!r}")
    return urls


def file_digest(path: PathLike, algorithm: str) -> str:
    """The hex digest of a file, read in 1 MiB chunks.

    Args:
        path: the file.
        algorithm: ``"md5"`` or ``"sha256"``.
    """
    if algorithm not in HASH_ALGORITHMS:
        raise ValueError(f"algorithm must be one of {HASH_ALGORITHMS}, got {algorithm!r}")
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _offline_message(what: str, path: Path) -> str:
    return f"{what}\nYou can also place the file at {path} by hand (it is checked against its checksum).\n{_SMALL_HINT}"


def _download_to(url: str, directory: Path, filename: str, algorithm: str, timeout: float) -> tuple[Path, str]:
    """Stream ``url`` into a fresh temporary file in ``directory``; return its path and digest."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{filename}.", suffix=".part")
    h = hashlib.new(algorithm)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                h.update(chunk)
                out.write(chunk)
    except BaseException:
        os.unlink(tmp)
        raise
    return Path(tmp), h.hexdigest()


def _reason(err: BaseException) -> str:
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):
        return str(err.reason)
    return str(err) or type(err).__name__


def _cached(path: Path, algorithm: str, expected: str, download: bool) -> Optional[Path]:
    """``path`` when it is cached and intact; ``None`` when it must be downloaded (a bad copy is deleted)."""
    if not path.is_file():
        if not download:
            raise DatasetUnavailableError(_offline_message(
                f"{path.name} is not in the cache ({path}) and download=False.", path))
        return None
    actual = file_digest(path, algorithm)
    if actual == expected:
        return path
    path.unlink()
    if not download:
        raise ChecksumMismatchError(_offline_message(
            f"The cached file {path} has {algorithm} {actual}, expected {expected}; it was deleted "
            "and download=False.", path))
    return None


def fetch(url: Union[str, Sequence[str]], *, filename: str, checksum: str, root: Optional[PathLike] = None,
          download: bool = True, timeout: float = 60.0, verbose: bool = True) -> Path:
    """Return the path of a cached file, downloading it first if it is not cached yet.

    The file is streamed to a temporary name in the cache folder, its checksum compared with ``checksum``,
    and only then renamed to ``filename``; a file with the wrong checksum is deleted and the next mirror
    tried. A cached file is checked too, and downloaded again if it no longer matches.

    Args:
        url: a URL, or a sequence of mirror URLs tried in order (``http(s)://``, ``ftp://`` or ``file://``).
        filename: the file's name in the cache folder (a bare name, no directories).
        checksum: ``"md5:<hex>"`` or ``"sha256:<hex>"``, the published digest of the file.
        root: the cache folder; ``None`` means :func:`cache_dir`.
        download: when ``False``, never touch the network: a file missing from the cache is an error.
        timeout: seconds to wait for a server to answer, > 0.
        verbose: print one line per download attempt to stderr.

    Returns:
        The path of the verified file, ``root / filename``.

    Raises:
        DatasetUnavailableError: every mirror failed (offline, refused, HTTP error), or the file is not
            cached and ``download`` is ``False``. The message names each URL with its reason and says how
            to run the ``small`` profile instead.
        ChecksumMismatchError: a subclass of the above, when the only files obtained had the wrong digest.
    """
    urls = _check_urls(url)
    algorithm, expected = _parse_checksum(checksum)
    _check_filename(filename)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
    directory = Path(root).expanduser() if root is not None else cache_dir()
    path = directory / filename
    if _cached(path, algorithm, expected, download) is not None:
        return path
    directory.mkdir(parents=True, exist_ok=True)
    failures, mismatch = [], False
    for u in urls:
        if verbose:
            print(f"Downloading {u} -> {path}", file=sys.stderr)
        try:
            tmp, actual = _download_to(u, directory, filename, algorithm, timeout)
        except (urllib.error.URLError, HTTPException, OSError) as err:
            failures.append(f"{u}: {_reason(err)}")
            continue
        if actual != expected:
            tmp.unlink()
            mismatch = True
            failures.append(f"{u}: the file's {algorithm} is {actual}, expected {expected}; the file was deleted")
            continue
        os.replace(tmp, path)
        return path
    error = ChecksumMismatchError if mismatch else DatasetUnavailableError
    raise error(_offline_message(f"Could not download {filename}:\n  " + "\n  ".join(failures), path))
