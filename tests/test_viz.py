import numpy as np
import pytest
import torch

from mlsec_kit import viz


def test_confusion_matrix_counts():
    m = viz.confusion_matrix(torch.tensor([0, 0, 1, 2, 2, 2]), torch.tensor([0, 1, 1, 2, 0, 2]), num_classes=3)
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert m.sum() == 6 and np.trace(m) == 4


def test_confusion_matrix_bad_input():
    with pytest.raises(ValueError, match="same length"):
        viz.confusion_matrix([0, 1], [0], num_classes=2)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\)"):
        viz.confusion_matrix([0, 2], [0, 1], num_classes=2)


def test_image_grid_layout():
    fig = viz.image_grid(torch.rand(10, 1, 8, 8), labels=list(range(10)), ncols=4)
    assert len(fig.axes) == 12
    assert [ax.get_title() for ax in fig.axes[:3]] == ["0", "1", "2"]
    with pytest.raises(ValueError, match="images"):
        viz.image_grid(torch.rand(2, 2, 8, 8))
    with pytest.raises(ValueError, match="labels"):
        viz.image_grid(torch.rand(2, 1, 8, 8), labels=[1])


def test_plot_curves_and_confusion_plot():
    fig = viz.plot_curves({"train": [1, 0.5, 0.2], "test": [1, 0.7, 0.6]}, ylabel="loss")
    lines = fig.axes[0].get_lines()
    assert [l.get_label() for l in lines] == ["train", "test"] and list(lines[0].get_xdata()) == [1, 2, 3]
    with pytest.raises(ValueError):
        viz.plot_curves({})
    fig = viz.plot_confusion_matrix(np.eye(3, dtype=int) * 5)
    assert len(fig.axes[0].texts) == 3
    with pytest.raises(ValueError, match="square"):
        viz.plot_confusion_matrix(np.zeros((2, 3)))


def test_taxonomy_figure_draws_every_node():
    tree = {"root": {"a": {"a1": None, "a2": {}}, "b": None}}
    fig = viz.taxonomy_figure(tree)
    assert sorted(t.get_text() for t in fig.axes[0].texts) == ["a", "a1", "a2", "b", "root"]
    with pytest.raises(ValueError):
        viz.taxonomy_figure({})


def test_image_row_places_every_image_in_one_picture():
    images = torch.rand(5, 1, 8, 6)
    fig = viz.image_row(images, labels=list("abcde"), title="t")
    ax = fig.axes[0]
    (picture,) = ax.get_images()
    shown = np.asarray(picture.get_array())
    assert shown.shape == (8, 5 * 7 - 1)
    for i in range(5):                    # image i sits at its own offset, unchanged, with white gaps between
        np.testing.assert_allclose(shown[:, i * 7: i * 7 + 6], images[i, 0].numpy())
    assert np.all(shown[:, 6::7] == 1.0)
    assert [t.get_text() for t in ax.texts] == list("abcde")
    fig_rgb = viz.image_row(torch.rand(2, 3, 4, 4))
    assert np.asarray(fig_rgb.axes[0].get_images()[0].get_array()).shape == (4, 9, 3)
    with pytest.raises(ValueError, match="one entry per image"):
        viz.image_row(images, labels=[1])
    with pytest.raises(ValueError, match="C in"):
        viz.image_row(torch.rand(2, 2, 4, 4))
