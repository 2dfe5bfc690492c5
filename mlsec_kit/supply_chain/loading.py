"""Loading a model file without running its code: choose the safe loader by the file's real format.

* safetensors holds a JSON header and raw tensor bytes and nothing that a loader executes (the safetensors format
  specification): ``safetensors.torch.load_file``;
* a ``torch.save`` zip: ``torch.load(weights_only=True)``, PyTorch's restricted unpickler (the default since
  PyTorch 2.6) that only rebuilds tensors, containers and primitive types and refuses any other global;
* ``.npy``: ``np.load(allow_pickle=False)`` (NumPy's default since 1.16.3, after CVE-2019-6446) refuses object
  arrays;
* a plain pickle or a joblib file can only be loaded by running an unpickler that imports whatever the file
  names, so :func:`safe_load` refuses them with :class:`UnsafeFormatError` and says how to convert.
"""
from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any, Mapping, Union

from .formats import MAX_BYTES, check_size, detect_format

__all__ = ["UnsafeFormatError", "safe_load", "to_safetensors"]

PathLike = Union[str, "os.PathLike[str]"]


class UnsafeFormatError(ValueError):
    """The file's format (or a global inside a torch file) cannot be loaded without running its code."""


_HOW = ("re-save it as safetensors where it was made (mlsec_kit.supply_chain.to_safetensors(model.state_dict(), "
        "path)), or load it with pickle/joblib only if you trust whoever wrote it, in a sandbox")


def safe_load(path: PathLike, *, max_bytes: int = MAX_BYTES) -> Any:
    """Load a file by its detected format with a loader that cannot run code, or refuse.

    Args:
        path: an existing file.
        max_bytes: refuse files larger than this, an int >= 1 (default 1 GiB).

    Returns:
        safetensors: a dict of str to tensors; torch: what ``torch.load(weights_only=True)`` returns (a state
        dict); npy: a numeric ``numpy.ndarray``.

    Raises:
        UnsafeFormatError: a pickle or joblib file, a torch file naming a global outside the weights-only
            allow-list (the message names it), or an ``.npy`` of Python objects.
        FileNotFoundError / ValueError: no such file, a file larger than ``max_bytes``, an unknown format.
    """
    check_size(path, max_bytes=max_bytes)
    fmt = detect_format(path)
    p = str(Path(path))
    if fmt == "safetensors":
        from safetensors.torch import load_file

        return load_file(p)
    if fmt == "torch":
        import torch

        try:
            return torch.load(p, weights_only=True, map_location="cpu")
        except pickle.UnpicklingError as e:
            # torch words it "Unsupported global: GLOBAL exec ..." or "... unsupported GLOBAL posix.system ..."
            found = re.search(r"[Uu]nsupported (?:global: )?GLOBAL ([\w.]+)", str(e))
            if found is None:  # another wording: name the first global the kit's own scanner flags
                from .scan import scan

                flagged = scan(p, max_bytes=max_bytes).findings
                what = f"the global {flagged[0].callable}" if flagged else str(e).strip().splitlines()[0]
            else:  # as Python 3 names it: protocol 2 writes subprocess as Python 2's "commands"
                from .scan import _normalise

                module, _, name = found.group(1).rpartition(".")
                what = f"the global {'.'.join(_normalise(module, name)) if module else name}"
            raise UnsafeFormatError(f"{p!r} is a torch file whose pickle names {what}, which "
                                    f"torch.load(weights_only=True) refuses: it is not a plain state dict. "
                                    f"Only if you trust its author: {_HOW}") from None
    if fmt == "npy":
        import numpy as np

        try:
            return np.load(p, allow_pickle=False)
        except ValueError as e:
            if "allow_pickle" not in str(e):
                raise
            raise UnsafeFormatError(f"{p!r} is an .npy array of Python objects, stored as a pickle; "
                                    f"np.load(allow_pickle=False) refuses it. Store numeric arrays only") from None
    raise UnsafeFormatError(f"{p!r} is a {fmt} file: loading it runs an unpickler that imports and calls whatever "
                            f"the file names. Convert it: {_HOW}")


def to_safetensors(state_dict: Mapping[str, Any], path: PathLike) -> Path:
    """Save a state dict of tensors as safetensors (shared or non-contiguous tensors are copied).

    Args:
        state_dict: a mapping of str to ``torch.Tensor`` (e.g. ``model.state_dict()``).
        path: the file to write; its folder must exist.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    import torch
    from safetensors.torch import save_file

    if not isinstance(state_dict, Mapping) or not state_dict:
        raise TypeError(f"state_dict must be a non-empty mapping of str to torch.Tensor, "
                        f"got {type(state_dict).__name__}")
    bad = [k for k, v in state_dict.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise TypeError(f"state_dict must map str to torch.Tensor; not so for {bad[:3]}")
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or path-like, got {type(path).__name__}")
    p = Path(path)
    if not p.parent.is_dir():
        raise ValueError(f"path's folder must exist, got {str(p.parent)!r}")
    save_file({k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()}, str(p))
    return p
