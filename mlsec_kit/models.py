"""The book's models: logistic regression, a multi-layer perceptron and a small CNN sized per dataset.

All take inputs shaped as :class:`mlsec_kit.data.DataSplit` delivers them and return logits ``(N, K)``.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["Square", "logistic_regression", "mlp", "small_cnn", "model_for", "num_parameters"]


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")


def _in_features(input_shape: Sequence[int]) -> int:
    shape = tuple(input_shape)
    if not shape:
        raise ValueError("input_shape must have at least one dimension, got ()")
    for d in shape:
        _check_positive("input_shape entries", d)
    n = 1
    for d in shape:
        n *= d
    return n


class Square(nn.Module):
    """Elementwise square activation, ``x -> x * x``: the lowest-degree polynomial non-linearity, so an MLP
    built with it can be evaluated under CKKS homomorphic encryption (CryptoNets, Gilad-Bachrach et al. 2016)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * x


def logistic_regression(input_shape: Sequence[int], num_classes: int) -> nn.Sequential:
    """Multinomial logistic regression: one linear layer on the flattened input.

    Shape:
        input ``(N, *input_shape)`` → logits ``(N, num_classes)``.
    """
    _check_positive("num_classes", num_classes)
    return nn.Sequential(nn.Flatten(), nn.Linear(_in_features(input_shape), num_classes))


def mlp(input_shape: Sequence[int], num_classes: int, *, hidden: Sequence[int] = (64,),
        dropout: float = 0.0, activation: str = "relu") -> nn.Sequential:
    """A multi-layer perceptron on the flattened input (ReLU, or square for encrypted inference).

    Args:
        input_shape: shape of one input, e.g. ``(30,)`` or ``(1, 8, 8)``.
        num_classes: number of output logits, at least 1.
        hidden: widths of the hidden layers (empty gives logistic regression).
        dropout: dropout probability after each hidden layer, in ``[0, 1)``.
        activation: ``"relu"`` or ``"square"`` (:class:`Square`, evaluable under homomorphic encryption).

    Shape:
        input ``(N, *input_shape)`` → logits ``(N, num_classes)``.
    """
    _check_positive("num_classes", num_classes)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    if activation not in ("relu", "square"):
        raise ValueError(f"activation must be 'relu' or 'square', got {activation!r}")
    layers: list[nn.Module] = [nn.Flatten()]
    width = _in_features(input_shape)
    for h in hidden:
        _check_positive("hidden widths", h)
        layers += [nn.Linear(width, h), nn.ReLU() if activation == "relu" else Square()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def small_cnn(input_shape: Sequence[int], num_classes: int, *, width: int = 16) -> nn.Sequential:
    """A small convolutional network sized to the input: two conv blocks, then two linear layers.

    For 8x8 digits the blocks keep the resolution at 8 then 4; for 28x28 (MNIST) and 32x32 (CIFAR-10)
    they halve it twice. ``width`` is the first block's channel count (the second has twice as many).

    Shape:
        input ``(N, C, H, W)`` with ``H, W >= 8`` → logits ``(N, num_classes)``.
    """
    shape = tuple(input_shape)
    if len(shape) != 3:
        raise ValueError(f"input_shape must be (C, H, W) for a CNN, got {shape}")
    _in_features(shape)
    _check_positive("num_classes", num_classes)
    _check_positive("width", width)
    c, h, w = shape
    if h < 8 or w < 8:
        raise ValueError(f"input_shape height and width must be >= 8, got {h}x{w}")
    tiny = max(h, w) <= 16  # digits: pool only once, the images are already tiny
    block1: list[nn.Module] = [nn.Conv2d(c, width, 3, padding=1), nn.ReLU()]
    if not tiny:
        block1.append(nn.MaxPool2d(2))
    block2 = [nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
    with torch.no_grad():
        features = nn.Sequential(*block1, *block2)(torch.zeros(1, c, h, w)).numel()
    return nn.Sequential(*block1, *block2, nn.Flatten(), nn.Linear(features, 4 * width), nn.ReLU(),
                         nn.Linear(4 * width, num_classes))


def model_for(data, *, kind: str = "auto", **kwargs) -> nn.Module:
    """A model suited to a :class:`~mlsec_kit.data.DataSplit`: a CNN for images, an MLP for tables.

    Args:
        data: the dataset the model will be trained on (gives the input shape and class count).
        kind: ``"auto"``, ``"cnn"``, ``"mlp"`` or ``"logreg"``.
        **kwargs: passed on to the model's constructor.
    """
    kinds = ("auto", "cnn", "mlp", "logreg")
    if kind not in kinds:
        raise ValueError(f"kind must be one of {kinds}, got {kind!r}")
    if kind == "auto":
        kind = "cnn" if len(data.input_shape) == 3 else "mlp"
    build = {"cnn": small_cnn, "mlp": mlp, "logreg": logistic_regression}[kind]
    return build(data.input_shape, data.num_classes, **kwargs)


def num_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
