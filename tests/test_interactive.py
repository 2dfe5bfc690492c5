"""The self-contained frame slider: every frame embedded, the right one visible, no external resource."""
import re

import matplotlib.pyplot as plt
import pytest

from mlsec_kit.interactive import frame_slider


def _fig(value):
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, value])
    return fig


def test_every_frame_is_embedded_and_only_the_start_frame_is_visible():
    s = frame_slider({f"{v}": _fig(v) for v in (1, 2, 3)}, label="eps", start="2")
    page = s._repr_html_()
    assert page.count('<img src="data:image/png;base64,') == 3
    shown = re.findall(r'data-index="(\d)" style="display:(\w+)"', page)
    assert shown == [("0", "none"), ("1", "block"), ("2", "none")]
    assert 'value="1"' in page and 'max="2"' in page


def test_no_external_resource_is_requested():
    page = frame_slider({"a": b"\x89PNG", "b": "<svg></svg>"}, label="x")._repr_html_()
    assert "http://" not in page and "https://" not in page and " src=\"//" not in page


def test_two_sliders_have_distinct_ids():
    a = frame_slider({"a": "<b>1</b>"}, label="x")._repr_html_()
    b = frame_slider({"a": "<b>1</b>"}, label="x")._repr_html_()
    assert re.search(r'id="([^"]+)"', a).group(1) != re.search(r'id="([^"]+)"', b).group(1)


@pytest.mark.parametrize("frames, kwargs, error, name", [
    ({}, {}, ValueError, "frames"),
    ([1, 2], {}, TypeError, "frames"),
    ({"a": "<b/>"}, {"start": "z"}, ValueError, "start"),
    ({"a": 3.0}, {}, TypeError, "frames"),
])
def test_bad_arguments_raise(frames, kwargs, error, name):
    with pytest.raises(error, match=name):
        frame_slider(frames, label="x", **kwargs)
