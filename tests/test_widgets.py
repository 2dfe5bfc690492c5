"""The eps slider: nothing without a kernel, a working slider with one, and checked arguments."""
import pytest

from mlsec_kit import widgets


def test_without_a_kernel_it_shows_nothing():
    calls = []
    assert not widgets.has_kernel()
    assert widgets.eps_slider(calls.append, values=[0.1, 0.2]) is None
    assert calls == []


def test_with_a_kernel_the_slider_draws_each_value(monkeypatch):
    pytest.importorskip("ipywidgets")
    monkeypatch.setattr(widgets, "has_kernel", lambda: True)
    calls = []
    box = widgets.eps_slider(calls.append, values=[0.0, 0.1, 0.2], start=0.1, description="budget")
    slider = box.children[0]
    assert calls == [0.1] and slider.description == "budget"
    slider.value = 0.2
    assert calls == [0.1, 0.2]
    assert [label for label, _ in slider.options] == ["0", "0.1", "0.2"]


@pytest.mark.parametrize("kwargs, error, name", [
    ({"values": []}, ValueError, "values"),
    ({"values": [0.1], "start": 0.3}, ValueError, "start"),
])
def test_bad_arguments_raise(kwargs, error, name):
    with pytest.raises(error, match=name):
        widgets.eps_slider(print, **kwargs)


def test_draw_must_be_callable():
    with pytest.raises(TypeError, match="draw"):
        widgets.eps_slider(None, values=[0.1])
