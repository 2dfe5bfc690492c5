"""Datasets as tensors with a fixed train/test split, and seeded loaders over them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, TensorDataset

__all__ = ["DataSplit", "make_loader", "check_split_args"]


@dataclass
class DataSplit:
    """A dataset split into train and test tensors.

    Shape:
        ``X_train``: ``(N, *input_shape)`` float32; images in ``[0, 1]``, tabular features standardised
        with the training set's mean and standard deviation. ``y_train``: ``(N,)`` int64 in
        ``[0, num_classes)``. The same for the test tensors.
    """

    name: str
    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple[str, ...]
    feature_names: Optional[tuple[str, ...]] = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            X, y = getattr(self, f"X_{split}"), getattr(self, f"y_{split}")
            if X.shape[0] != y.shape[0]:
                raise ValueError(f"X_{split} has {X.shape[0]} rows but y_{split} has {y.shape[0]}")
        if self.X_train.shape[1:] != self.X_test.shape[1:]:
            raise ValueError(f"train and test inputs differ in shape: {tuple(self.X_train.shape[1:])} "
                             f"vs {tuple(self.X_test.shape[1:])}")

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input, e.g. ``(1, 8, 8)`` for digits or ``(30,)`` for breast cancer."""
        return tuple(self.X_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def train_loader(self, *, batch_size: int = 64, shuffle: bool = True, seed: int = 0) -> DataLoader:
        """A loader over the training set; shuffled in a fixed order given by ``seed``."""
        return make_loader(self.X_train, self.y_train, batch_size=batch_size, shuffle=shuffle, seed=seed)

    def test_loader(self, *, batch_size: int = 256) -> DataLoader:
        """A loader over the test set, in order."""
        return make_loader(self.X_test, self.y_test, batch_size=batch_size, shuffle=False)

    def to(self, device: "torch.device | str") -> "DataSplit":
        """A copy whose four tensors live on ``device`` (small datasets fit on a GPU whole)."""
        return DataSplit(self.name, self.X_train.to(device), self.y_train.to(device), self.X_test.to(device),
                         self.y_test.to(device), self.classes, self.feature_names, dict(self.meta))

    def subset(self, n_train: int, *, seed: int = 0) -> "DataSplit":
        """A copy with a random ``n_train`` examples of the training set (the test set is kept whole).

        Per-row metadata stored as ``meta[key] = {"train": tensor, ...}`` (Adult's sensitive attributes)
        is subset alongside the training rows.
        """
        n = self.X_train.shape[0]
        if isinstance(n_train, bool) or not isinstance(n_train, int) or not 1 <= n_train <= n:
            raise ValueError(f"n_train must be an int in [1, {n}], got {n_train!r}")
        idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:n_train]
        meta = {k: ({**v, "train": v["train"][idx]} if isinstance(v, dict) and isinstance(v.get("train"), torch.Tensor)
                    else v) for k, v in self.meta.items()}
        return DataSplit(self.name, self.X_train[idx], self.y_train[idx], self.X_test, self.y_test,
                         self.classes, self.feature_names, meta)

    def __repr__(self) -> str:
        return (f"DataSplit({self.name!r}, train={tuple(self.X_train.shape)}, test={tuple(self.X_test.shape)}, "
                f"classes={self.num_classes})")


def make_loader(X: torch.Tensor, y: torch.Tensor, *, batch_size: int = 64, shuffle: bool = False,
                seed: int = 0) -> DataLoader:
    """A ``DataLoader`` over tensors ``X`` and ``y``; with ``shuffle``, the order depends only on ``seed``.

    Args:
        X: inputs, ``(N, ...)``.
        y: labels, ``(N,)``.
        batch_size: examples per batch, at least 1.
        shuffle: reshuffle every epoch (seeded by ``seed``).
        seed: seed of the shuffling generator.
    """
    if not isinstance(X, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(f"X and y must be torch tensors, got {type(X).__name__} and {type(y).__name__}")
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"X and y must have the same number of rows, got {X.shape[0]} and {y.shape[0]}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    dataset = TensorDataset(X, y)
    order = (RandomSampler(dataset, generator=torch.Generator().manual_seed(seed)) if shuffle
             else SequentialSampler(dataset))
    # The sampler hands over whole index batches and the tensors are sliced once per batch: a plain
    # DataLoader would index and re-stack example by example, which dominates small models' run time.
    return DataLoader(dataset, sampler=BatchSampler(order, batch_size, drop_last=False), batch_size=None)


def check_split_args(test_size: float, seed: int) -> None:
    """Validate the arguments shared by every loader that makes its own split."""
    if isinstance(test_size, bool) or not isinstance(test_size, (int, float)) or not 0 < test_size < 1:
        raise ValueError(f"test_size must be a fraction in (0, 1), got {test_size!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
