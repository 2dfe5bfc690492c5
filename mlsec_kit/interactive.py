"""Interactive figures that work everywhere: frames computed up front, shown with a self-contained slider.

A figure is a list of frames (Matplotlib figures, PNG bytes or SVG/HTML strings), one per value of a
control (a budget, an epsilon, a poison rate, ...). :func:`frame_slider` embeds every frame in one piece of
HTML with a few lines of plain JavaScript and no external resource, so the same output works in the
published book (no kernel), in Colab, in Jupyter and in VS Code. Moving the slider swaps the visible frame;
nothing is recomputed. Where a reader wants to recompute (a value that was not precomputed), the live
ipywidgets variant :func:`mlsec_kit.widgets.eps_slider` adds that on top in a kernel.

    frames = {f"{eps:.2g}": draw(eps) for eps in budgets}   # each draw(...) returns a Matplotlib figure
    frame_slider(frames, label="eps", start="0.1")           # last expression of a cell: displayed
"""
from __future__ import annotations

import base64
import html
import io
import itertools
import json
import uuid
from typing import Any, Mapping, Optional, Sequence, Union

__all__ = ["FrameSlider", "frame_slider", "figure_to_png"]

Frame = Union[bytes, str, Any]  # PNG bytes, an SVG/HTML string, or a Matplotlib figure
_COUNTER = itertools.count()


def figure_to_png(fig: Any, *, dpi: int = 90) -> bytes:
    """The PNG bytes of a Matplotlib figure; the figure is closed so it is not shown a second time."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _frame_html(frame: Frame, alt: str) -> str:
    if isinstance(frame, (bytes, bytearray)):
        data = base64.b64encode(bytes(frame)).decode("ascii")
        return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}" style="max-width:100%">'
    if isinstance(frame, str):
        return frame
    if hasattr(frame, "savefig"):
        return _frame_html(figure_to_png(frame), alt)
    raise TypeError(f"frames must be Matplotlib figures, PNG bytes or SVG/HTML strings, got {type(frame).__name__}")


class FrameSlider:
    """Frames and a slider over their labels, rendered as self-contained HTML (``_repr_html_``)."""

    def __init__(self, frames: Sequence[str], labels: Sequence[str], *, label: str, start: int,
                 caption: str = "") -> None:
        self.frames = list(frames)
        self.labels = list(labels)
        self.label = label
        self.start = start
        self.caption = caption
        # unique per page even when a notebook shows several sliders or the book concatenates outputs
        self.id = f"mkfs-{next(_COUNTER)}-{uuid.uuid4().hex[:8]}"

    def __len__(self) -> int:
        return len(self.frames)

    def _repr_html_(self) -> str:
        i = self.id
        divs = "".join(
            f'<div class="mk-frame" data-index="{k}" style="display:{"block" if k == self.start else "none"}">'
            f"{frame}</div>" for k, frame in enumerate(self.frames))
        caption = f'<div class="mk-caption">{html.escape(self.caption)}</div>' if self.caption else ""
        labels = json.dumps(self.labels)
        return (
            f'<div id="{i}" class="mk-frame-slider" data-labels="{html.escape(labels)}">'
            f'<label style="font-family:sans-serif">{html.escape(self.label)} '
            f'<input type="range" min="0" max="{len(self.frames) - 1}" step="1" value="{self.start}" '
            f'aria-label="{html.escape(self.label)}" style="vertical-align:middle;width:16em"> '
            f'<output class="mk-value">{html.escape(self.labels[self.start])}</output></label>'
            f"{divs}{caption}</div>"
            "<script>(function(){"
            f'var root=document.getElementById("{i}");if(!root)return;'
            'var input=root.querySelector("input"),out=root.querySelector("output"),'
            'labels=JSON.parse(root.getAttribute("data-labels")),'
            'frames=root.querySelectorAll(".mk-frame");'
            'function show(){var k=parseInt(input.value,10);'
            'for(var j=0;j<frames.length;j++){frames[j].style.display=(j===k)?"block":"none";}'
            'out.textContent=labels[k];}'
            'input.addEventListener("input",show);input.addEventListener("change",show);show();'
            "})();</script>")

    def __repr__(self) -> str:
        return f"FrameSlider({self.label!r}, {len(self)} frames: {self.labels[0]} .. {self.labels[-1]})"


def frame_slider(frames: Mapping[str, Frame], *, label: str, start: Optional[str] = None,
                 caption: str = "") -> FrameSlider:
    """A slider over precomputed frames, shown as self-contained HTML wherever the output is displayed.

    Args:
        frames: ``{value label: frame}`` in the order the slider offers them, at least one; a frame is a
            Matplotlib figure (converted to PNG and closed), PNG bytes, or an SVG/HTML string.
        label: the control's name, shown beside it (e.g. ``"eps"``, ``"poison rate"``).
        start: the label of the frame shown first (default: the first).
        caption: optional text under the figure.

    Returns:
        A :class:`FrameSlider`; as the last expression of a cell (or passed to ``display``) it renders.
    """
    if not isinstance(frames, Mapping):
        raise TypeError(f"frames must be a mapping from value labels to frames, got {type(frames).__name__}")
    if len(frames) == 0:
        raise ValueError("frames must hold at least one frame")
    labels = [str(k) for k in frames]
    if start is not None and str(start) not in labels:
        raise ValueError(f"start must be one of the frame labels {labels}, got {start!r}")
    rendered = [_frame_html(f, f"{label} = {k}") for k, f in zip(labels, frames.values())]
    return FrameSlider(rendered, labels, label=str(label), start=0 if start is None else labels.index(str(start)),
                       caption=caption)
