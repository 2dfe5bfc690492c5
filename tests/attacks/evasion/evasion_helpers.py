"""Helpers shared by the black-box attack tests."""
from torch import nn


class Counting(nn.Module):
    """Wraps a model and counts the rows it is asked to classify: ground truth for the oracle's accounting."""

    def __init__(self, model):
        super().__init__()
        self.model, self.rows = model, 0

    def forward(self, x):
        self.rows += len(x)
        return self.model(x)
