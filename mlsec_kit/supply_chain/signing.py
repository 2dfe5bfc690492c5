"""Integrity and provenance: pinning file digests, and signing a model folder with OpenSSF model-signing.

* A pin is a file's SHA-256 recorded where you trust it (a lock file, the code that downloads): a file that
  changed by one bit no longer matches. The kit's own downloads check digests this way
  (:func:`mlsec_kit.data.download.file_digest`); :func:`pin` and :func:`verify_pins` do it for a folder.
* A signature (the OpenSSF ``model-signing`` library, v1: a manifest of every file's digest, signed as a
  DSSE envelope in a Sigstore bundle) binds the whole folder to a key: :func:`verify_model` fails when a byte
  changes, a file is added or removed, or the key is another one (except git's own files, ``.git``,
  ``.gitattributes`` and ``.gitignore``, which model-signing leaves out of the manifest by default: one added after
  signing still verifies). Here the key is a local elliptic-curve pair
  (:func:`generate_keypair`), so nothing touches the network (no Sigstore transparency log).

What verification does NOT prove: that the model is benign. An author who trains a backdoor and signs it gets a
signature that verifies; signing says who published these exact bytes, not what the bytes do.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping, Optional, Union

from ..data.download import file_digest
from .formats import check_folder, check_path

__all__ = ["sha256_file", "pin", "verify_pins", "generate_keypair", "sign_model", "verify_model"]

PathLike = Union[str, "os.PathLike[str]"]
_PREFIX = "sha256:"


def sha256_file(path: PathLike) -> str:
    """``"sha256:<hex>"`` of a file (read in 1 MiB chunks by :func:`mlsec_kit.data.download.file_digest`)."""
    return _PREFIX + file_digest(check_path(path, name="path"), "sha256")


def pin(paths: Iterable[PathLike]) -> dict:
    """Pin files by digest.

    Args:
        paths: existing files with distinct names.

    Returns:
        ``{file name: "sha256:<hex>"}``, in the order given.
    """
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise TypeError("paths must be a collection of files, not one path")
    files = [check_path(p, name="paths") for p in paths]
    if not files:
        raise ValueError("paths must name at least one file")
    names = [p.name for p in files]
    if len(set(names)) != len(names):
        raise ValueError(f"paths must have distinct file names (pins are keyed by name), got {names}")
    return {p.name: sha256_file(p) for p in files}


def verify_pins(pins: Mapping[str, str], folder: PathLike) -> list:
    """The pinned files in ``folder`` whose digest differs, or that are missing.

    Args:
        pins: ``{file name: "sha256:<64 hex digits>"}`` from :func:`pin`.
        folder: an existing folder.

    Returns:
        ``[(name, expected, actual or None if missing)]``; empty when every pin holds.
    """
    d = check_folder(folder, name="folder")
    if not isinstance(pins, Mapping) or not pins:
        raise TypeError("pins must be a non-empty mapping of file name to 'sha256:<hex>' (from pin)")
    out = []
    for name, expected in pins.items():
        if not isinstance(expected, str) or not expected.startswith(_PREFIX) or len(expected) != len(_PREFIX) + 64:
            raise ValueError(f"pins[{name!r}] must be 'sha256:' and 64 hex digits, got {expected!r}")
        if not isinstance(name, str) or Path(name).name != name:
            raise ValueError(f"pins must be keyed by bare file names, got {name!r}")
        p = d / name
        actual = sha256_file(p) if p.is_file() else None
        if actual != expected:
            out.append((name, expected, actual))
    return out


def generate_keypair(folder: PathLike, *, name: str = "signing") -> tuple[Path, Path]:
    """A fresh EC P-256 key pair as PEM files (the private key unencrypted: for a demonstration only).

    Args:
        folder: an existing folder; ``<name>.key`` and ``<name>.pub`` are written there (not overwritten).
        name: the files' stem.

    Returns:
        ``(private_key_path, public_key_path)``.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    d = check_folder(folder, name="folder")
    if not isinstance(name, str) or not name or Path(name).name != name:
        raise ValueError(f"name must be a bare file stem, got {name!r}")
    priv, pub = d / f"{name}.key", d / f"{name}.pub"
    if priv.exists() or pub.exists():
        raise ValueError(f"folder already holds {priv.name} or {pub.name}; keys are never overwritten")
    key = ec.generate_private_key(ec.SECP256R1())
    priv.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv, pub


def _hashing(model_dir: Path, signature: Path):
    from model_signing import hashing

    cfg = hashing.Config()
    try:  # a signature kept inside the folder is not part of what it signs
        cfg.set_ignored_paths(paths=[signature.resolve().relative_to(model_dir.resolve())])
    except ValueError:
        pass
    return cfg


def _signature_path(model_dir: Path, signature: Optional[PathLike]) -> Path:
    if signature is None:
        return model_dir.parent / f"{model_dir.name}.sig"
    if isinstance(signature, bytes) or not isinstance(signature, (str, os.PathLike)):
        raise TypeError(f"signature must be a str or path-like, got {type(signature).__name__}")
    return Path(signature)


def sign_model(model_dir: PathLike, *, private_key: PathLike, signature: Optional[PathLike] = None) -> Path:
    """Sign every file of a model folder with a local EC key (OpenSSF model-signing, no network).

    Args:
        model_dir: an existing folder (its files are hashed into the signed manifest).
        private_key: a PEM EC private key (:func:`generate_keypair`).
        signature: where to write the signature; default ``<model_dir>.sig`` beside the folder.

    Returns:
        The signature's path.
    """
    from model_signing import signing

    d = check_folder(model_dir, name="model_dir")
    key = check_path(private_key, name="private_key")
    sig = _signature_path(d, signature)
    if not sig.parent.is_dir():
        raise ValueError(f"signature's folder must exist, got {str(sig.parent)!r}")
    signing.Config().use_elliptic_key_signer(private_key=key).set_hashing_config(_hashing(d, sig)).sign(d, sig)
    return sig


def verify_model(model_dir: PathLike, *, public_key: PathLike, signature: Optional[PathLike] = None,
                 raise_on_failure: bool = False) -> bool:
    """Whether the folder is exactly what the key's owner signed.

    Args:
        model_dir: an existing folder.
        public_key: the signer's PEM public key.
        signature: the signature file (default ``<model_dir>.sig`` beside the folder).
        raise_on_failure: raise the library's ``ValueError`` (it lists the changed files) instead of returning
            ``False``.

    Returns:
        ``True`` when every file's digest matches the signed manifest, no file was added or removed (git's own
        files aside, which the manifest leaves out), and the
        signature checks under ``public_key``; else ``False``. It does not say the model is benign.
    """
    from model_signing import verifying

    d = check_folder(model_dir, name="model_dir")
    key = check_path(public_key, name="public_key")
    sig = check_path(_signature_path(d, signature), name="signature")
    try:
        verifying.Config().use_elliptic_key_verifier(public_key=key).set_hashing_config(_hashing(d, sig)).verify(
            d, sig)
    except Exception:  # noqa: BLE001 - a bad signature, a wrong key, a changed file: all are "does not verify"
        if raise_on_failure:
            raise
        return False
    return True
