"""Datasets for both profiles, as :class:`DataSplit` tensors.

``small`` datasets ship with scikit-learn and load offline; ``full`` datasets are downloaded once into a
cache directory (``MLSEC_DATA``, default ``~/.cache/mlsec_kit``) and checked against known checksums.
"""
from __future__ import annotations

from importlib import import_module

from .core import DataSplit, make_loader
from .download import DatasetUnavailableError
from .small import load_breast_cancer, load_diabetes, load_digits, load_wine

__all__ = ["DataSplit", "make_loader", "DatasetUnavailableError", "load_dataset", "SMALL_DATASETS", "FULL_DATASETS", "DATASETS",
           "load_digits", "load_breast_cancer", "load_wine", "load_diabetes"]

SMALL_DATASETS = ("digits", "breast_cancer", "wine", "diabetes")
FULL_DATASETS = ("mnist", "fashion_mnist", "cifar10", "adult")
DATASETS = SMALL_DATASETS + FULL_DATASETS


def load_dataset(name: str, **kwargs) -> DataSplit:
    """Load a dataset by name.

    Args:
        name: one of ``DATASETS``: ``digits``, ``breast_cancer``, ``wine``, ``diabetes`` (small profile,
            offline) or ``mnist``, ``fashion_mnist``, ``cifar10``, ``adult`` (full profile, downloaded once).
        **kwargs: passed to the dataset's loader, e.g. ``test_size`` and ``seed`` for the small ones,
            ``root`` and ``download`` for the full ones. The full datasets come with an official split,
            so a ``seed`` passed to them is accepted and has nothing to do; this lets one call serve both
            profiles: ``load_dataset(mk.by_profile(small="digits", full="mnist"), seed=SEED)``.

    Returns:
        A :class:`DataSplit`.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    key = name.strip().lower().replace("-", "_")
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")
    if key in FULL_DATASETS:
        kwargs.pop("seed", None)
    module = import_module(".small" if key in SMALL_DATASETS else ".full", __name__)
    return getattr(module, f"load_{key}")(**kwargs)
