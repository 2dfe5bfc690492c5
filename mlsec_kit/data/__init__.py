"""Datasets for both profiles, as :class:`DataSplit` tensors.

``small`` datasets ship with scikit-learn and load offline; ``full`` datasets are downloaded once into a
cache directory (``MLSEC_DATA``, default ``~/.cache/mlsec_kit``) and checked against known checksums.
"""
from __future__ import annotations

from importlib import import_module

from .core import DataSplit, make_loader
from .small import load_breast_cancer, load_digits, load_wine

__all__ = ["DataSplit", "make_loader", "load_dataset", "SMALL_DATASETS", "FULL_DATASETS", "DATASETS",
           "load_digits", "load_breast_cancer", "load_wine"]

SMALL_DATASETS = ("digits", "breast_cancer", "wine")
FULL_DATASETS = ("mnist", "fashion_mnist", "cifar10", "adult")
DATASETS = SMALL_DATASETS + FULL_DATASETS


def load_dataset(name: str, **kwargs) -> DataSplit:
    """Load a dataset by name.

    Args:
        name: one of ``DATASETS``: ``digits``, ``breast_cancer``, ``wine`` (small profile, offline) or
            ``mnist``, ``fashion_mnist``, ``cifar10``, ``adult`` (full profile, downloaded once).
        **kwargs: passed to the dataset's loader, e.g. ``test_size`` and ``seed`` for the small ones,
            ``root`` and ``download`` for the full ones.

    Returns:
        A :class:`DataSplit`.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    key = name.strip().lower().replace("-", "_")
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")
    module = import_module(".small" if key in SMALL_DATASETS else ".full", __name__)
    return getattr(module, f"load_{key}")(**kwargs)
