"""Interactive controls for the notebooks, written for ipywidgets 7.7 (Colab) and 8 alike.

A widget needs a live kernel. Where there is none (a plain script, the tests, an HTML page), the helpers
here show nothing and return ``None``, so a notebook calls them unconditionally and draws a static figure
beside them for readers of the book.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

__all__ = ["has_kernel", "eps_slider"]


def has_kernel() -> bool:
    """Whether code runs in a Jupyter kernel that can display widgets (not a script, not plain IPython)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def eps_slider(draw: Callable[[float], None], *, values: Sequence[float], description: str = "eps",
               fmt: str = "{:.3g}", start: Optional[float] = None):
    """A slider over the budgets ``values``; moving it calls ``draw(eps)`` and shows what it plots.

    ``draw`` should be cheap (compute the attacks for every value once, up front, and only plot here), so
    the slider feels immediate in Colab. Only the classes and calls that ipywidgets 7.7 and 8 share are
    used: ``SelectionSlider``, ``Output``, ``VBox`` and ``observe``.

    Args:
        draw: plots the figure for one budget (e.g. with Matplotlib; ``plt.show()`` is called after it).
        values: the budgets to offer, at least one, in the order the slider shows them.
        description: the slider's label.
        fmt: how a value is written on the slider.
        start: the value shown first (default: the first of ``values``); must be one of ``values``.

    Returns:
        The displayed ``ipywidgets.VBox``, or ``None`` without a kernel or without ipywidgets.
    """
    if not callable(draw):
        raise TypeError(f"draw must be callable, got {type(draw).__name__}")
    values = [float(v) for v in values]
    if not values:
        raise ValueError("values must hold at least one budget")
    if start is not None and float(start) not in values:
        raise ValueError(f"start must be one of values {values}, got {start!r}")
    if not has_kernel():
        return None
    try:
        import ipywidgets as widgets
    except ImportError:
        return None
    import matplotlib.pyplot as plt
    from IPython.display import clear_output, display

    slider = widgets.SelectionSlider(options=[(fmt.format(v), v) for v in values],
                                     value=values[0] if start is None else float(start),
                                     description=description, continuous_update=False)
    out = widgets.Output()

    def render(eps: float) -> None:
        with out:
            clear_output(wait=True)
            draw(eps)
            plt.show()

    slider.observe(lambda change: render(change["new"]), names="value")
    box = widgets.VBox([slider, out])
    display(box)
    render(slider.value)
    return box
