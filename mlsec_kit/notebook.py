"""Helpers for the book's notebooks that must also work outside the book build (Colab, a laptop)."""
from __future__ import annotations

from typing import Any

__all__ = ["glue", "execute_notebook", "glued_values"]


def glue(name: str, value: Any, *, display: bool = False) -> None:
    """Store ``value`` under ``name`` for the book's prose (``{glue:text}`name``).

    In the book build this is ``myst_nb.glue``. Where myst-nb is not installed (Colab), the value is
    only shown when ``display`` is true, so the notebook runs unchanged everywhere. Nothing is returned,
    so a ``glue`` call as a cell's last line adds no stray output.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be a Python identifier, got {name!r}")
    try:
        from myst_nb import glue as _glue
    except ImportError:  # Colab and plain Jupyter: nothing to store the value in
        if display:
            from IPython.display import display as _display

            _display(value)
        return
    _glue(name, value, display=display)


def execute_notebook(path, *, timeout: int = 600, kernel_name: str = "python3", env: dict | None = None):
    """Execute a notebook file in a fresh kernel, in its own folder, as the book build does.

    Args:
        path: the ``.ipynb`` file.
        timeout: seconds allowed per cell, at least 1.
        kernel_name: the Jupyter kernel to start.
        env: extra environment variables for the kernel (e.g. ``{"MLSEC_PROFILE": "small"}``).

    Returns:
        ``(notebook, seconds)``: the executed ``nbformat`` notebook and the wall-clock time, kernel start
        included. A failing cell raises ``nbclient.exceptions.CellExecutionError``.
    """
    import os
    import time
    from pathlib import Path

    import nbformat
    from nbclient import NotebookClient

    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
        raise ValueError(f"timeout must be an int >= 1 (seconds), got {timeout!r}")
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path must be an existing .ipynb file, got {str(path)!r}")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name=kernel_name,
                            resources={"metadata": {"path": str(path.parent.resolve())}})
    start = time.perf_counter()
    kernel_env = {**os.environ, **(env or {})}
    client.execute(env=kernel_env)
    return nb, time.perf_counter() - start


def is_timing(name: str) -> bool:
    """Whether a glued value is a wall-clock measurement (training time, ms per input, a speed ratio), by the
    book's naming convention: names ending in ``_seconds``, ``_ms`` or ``_time_ratio``. Such values differ
    between two runs by nature, so the determinism and edition checks compare them by presence only."""
    return name.endswith(("_seconds", "_ms", "_time_ratio"))


def is_unseeded(name: str) -> bool:
    """Whether a glued value differs between two runs by nature, by the book's naming convention: a wall-clock
    measurement (:func:`is_timing`), or a value computed from homomorphic ciphertexts (names ending in
    ``_ckks``): SEAL draws its key and encryption randomness from the operating system and offers TenSEAL no
    seed, so CKKS's approximation errors change from run to run, within the bounds the chapter's tests assert.
    The determinism and edition checks compare such values by presence only."""
    return is_timing(name) or name.endswith("_ckks")


def glued_values(nb) -> dict[str, str]:
    """The values an executed notebook stored with :func:`glue`, as their plain-text form, by name."""
    values = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            record = out.get("metadata", {}).get("scrapbook", {})
            if "name" in record:
                values[record["name"]] = out.get("data", {}).get(record.get("mime_prefix", "") + "text/plain")
    return values
