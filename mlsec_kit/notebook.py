"""Helpers for the book's notebooks that must also work outside the book build (Colab, a laptop)."""
from __future__ import annotations

from typing import Any

__all__ = ["glue"]


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
