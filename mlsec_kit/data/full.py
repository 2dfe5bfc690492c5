"""The ``full`` profile's datasets: MNIST, Fashion-MNIST, CIFAR-10 and Adult, with their official splits.

Each file is downloaded once into ``<root>/<dataset>/`` (``root`` defaults to :func:`cache_dir`:
``$MLSEC_DATA`` or ``~/.cache/mlsec_kit``) and checked against its published checksum on every load.
Offline, a loader raises :class:`DatasetUnavailableError` saying what failed and how to run the ``small``
profile instead.

Where the files come from is the module-level registry :data:`RESOURCES`, ``dataset -> role ->``
:class:`Resource`. To use a local or institutional mirror, replace an entry before loading::

    from dataclasses import replace
    from mlsec_kit.data import full
    res = full.RESOURCES["cifar10"]["archive"]
    full.RESOURCES["cifar10"]["archive"] = replace(res, urls=("https://mirror.example.edu/cifar-10-python.tar.gz",))

or copy the file by hand to ``<root>/<dataset>/<filename>``: it is used, after its checksum is checked.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

from .core import DataSplit
from .download import Resource, cache_dir, fetch
from .formats import ADULT_CATEGORICAL, ADULT_CLASSES, ADULT_NUMERIC, read_adult, read_cifar10, read_idx
from .small import standardize

__all__ = ["RESOURCES", "SENSITIVE_ATTRIBUTES", "load_mnist", "load_fashion_mnist", "load_cifar10",
           "load_adult"]

PathLike = Union[str, "os.PathLike[str]"]

_IDX_FILES = {"train_images": "train-images-idx3-ubyte.gz", "train_labels": "train-labels-idx1-ubyte.gz",
              "test_images": "t10k-images-idx3-ubyte.gz", "test_labels": "t10k-labels-idx1-ubyte.gz"}


def _idx_resources(mirrors: tuple[str, ...], md5: dict[str, str]) -> dict[str, Resource]:
    return {role: Resource(name, tuple(m + name for m in mirrors), f"md5:{md5[role]}")
            for role, name in _IDX_FILES.items()}


RESOURCES: dict[str, dict[str, Resource]] = {
    # MD5s and mirrors as in pytorch/vision, torchvision/datasets/mnist.py (class MNIST), commit 01977a18;
    # torchvision tries the original site first, we try its S3 mirror first (the original is often down).
    "mnist": _idx_resources(
        ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        {"train_images": "f68b3c2dcbeaaa9fbdd348bbdeb94873", "train_labels": "d53e105ee54ea40749a09fcbcd1e9432",
         "test_images": "9fb629c4189551a2d022fa330f9573f3", "test_labels": "ec29112dd5afa0611ce80d1b7f02629c"}),
    # MD5s as in pytorch/vision, torchvision/datasets/mnist.py (class FashionMNIST), commit 01977a18, and the
    # table in zalandoresearch/fashion-mnist, README.md; the README also says the files are in the repository
    # under data/fashion, hence the GitHub fallback.
    "fashion_mnist": _idx_resources(
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
         "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"),
        {"train_images": "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "train_labels": "25c81989df183df01b3e8a0aad5dffbe",
         "test_images": "bef4ecab320f06d8554ea6380940ec79", "test_labels": "bb300cfdad3c16e7a12a480ee83cd310"}),
    # URL and tgz_md5 as in pytorch/vision, torchvision/datasets/cifar.py (class CIFAR10), commit 5c2bb42d.
    "cifar10": {"archive": Resource("cifar-10-python.tar.gz",
                                    ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
                                    "md5:c58f30108f718f92721af3b95e74349a")},
    # SHA-256s as in gomlx/gomlx, examples/adult/preprocessing.go (AdultDatasetDataCecksum and
    # AdultDatasetTestCecksum), commit a3a9df04; adult.data's agrees with GruAna/PreprocessData.jl,
    # src/datasets/tabular/adult.jl.
    "adult": {
        "train": Resource("adult.data",
                          ("https://archive.ics.uci.edu/ml/machine-learning-databases/adult/adult.data",),
                          "sha256:5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d"),
        "test": Resource("adult.test",
                         ("https://archive.ics.uci.edu/ml/machine-learning-databases/adult/adult.test",),
                         "sha256:a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05"),
    },
}

SENSITIVE_ATTRIBUTES = ("sex", "race")
MNIST_CLASSES = tuple(str(d) for d in range(10))
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot")


def _fetch(dataset: str, role: str, root: Optional[PathLike], download: bool) -> Path:
    """Check the loader arguments and return the verified local path of one registered file."""
    if not isinstance(download, bool):
        raise TypeError(f"download must be a bool, got {type(download).__name__}")
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be None, a str or a path, got {type(root).__name__}")
    res = RESOURCES[dataset][role]
    folder = (Path(root).expanduser() if root is not None else cache_dir()) / dataset
    return fetch(res.urls, filename=res.filename, checksum=res.checksum, root=folder, download=download)


def _unit_images(X: np.ndarray) -> torch.Tensor:
    """uint8 images in [0, 255] to float32 in [0, 1]; a grayscale ``(N, H, W)`` gains its channel axis."""
    X = torch.from_numpy(X).to(torch.float32).div_(255.0)
    return X.unsqueeze(1) if X.ndim == 3 else X


def _idx_split(dataset: str, classes: tuple[str, ...], root: Optional[PathLike], download: bool) -> DataSplit:
    paths = {role: _fetch(dataset, role, root, download) for role in _IDX_FILES}  # all files before parsing
    arrays = {}
    for split in ("train", "test"):
        X = read_idx(paths[f"{split}_images"], ndim=3)
        y = read_idx(paths[f"{split}_labels"], ndim=1)
        if X.dtype != np.uint8 or X.shape[1:] != (28, 28):
            raise ValueError(f"{paths[f'{split}_images']}: expected uint8 images of 28x28, got {X.dtype} {X.shape}")
        if y.shape != (X.shape[0],) or (y.size and not 0 <= y.min() <= y.max() < len(classes)):
            raise ValueError(f"{paths[f'{split}_labels']}: expected {X.shape[0]} labels in [0, {len(classes)}), "
                             f"got shape {y.shape}")
        arrays[split] = (_unit_images(X), torch.from_numpy(y.astype(np.int64)))
    return DataSplit(dataset, *arrays["train"], *arrays["test"], classes, meta={"range": (0.0, 1.0)})


def load_mnist(*, root: Optional[PathLike] = None, download: bool = True) -> DataSplit:
    """MNIST handwritten digits (LeCun et al., 1998) with the official 60,000 / 10,000 split.

    Args:
        root: cache root; the files go to ``root/mnist/``. ``None`` means ``$MLSEC_DATA`` or
            ``~/.cache/mlsec_kit``.
        download: fetch missing files; with ``False`` a missing file raises ``DatasetUnavailableError``.

    Returns:
        A :class:`DataSplit` named ``"mnist"`` with classes ``"0"`` ... ``"9"``.

    Shape:
        ``X_train`` float32 ``(60000, 1, 28, 28)`` in [0, 1]; ``y_train`` int64 ``(60000,)`` in [0, 10);
        ``X_test`` ``(10000, 1, 28, 28)``, ``y_test`` ``(10000,)``.
    """
    return _idx_split("mnist", MNIST_CLASSES, root, download)


def load_fashion_mnist(*, root: Optional[PathLike] = None, download: bool = True) -> DataSplit:
    """Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017): Zalando article images, official 60,000 / 10,000 split.

    Args:
        root: cache root; the files go to ``root/fashion_mnist/``. ``None`` means ``$MLSEC_DATA`` or
            ``~/.cache/mlsec_kit``.
        download: fetch missing files; with ``False`` a missing file raises ``DatasetUnavailableError``.

    Returns:
        A :class:`DataSplit` named ``"fashion_mnist"`` with classes ``"T-shirt/top"`` ... ``"Ankle boot"``.

    Shape:
        As :func:`load_mnist`: float32 ``(N, 1, 28, 28)`` in [0, 1], int64 labels in [0, 10).
    """
    return _idx_split("fashion_mnist", FASHION_MNIST_CLASSES, root, download)


def load_cifar10(*, root: Optional[PathLike] = None, download: bool = True) -> DataSplit:
    """CIFAR-10 (Krizhevsky, 2009): 32x32 colour images of 10 classes, official 50,000 / 10,000 split.

    Args:
        root: cache root; the archive goes to ``root/cifar10/``. ``None`` means ``$MLSEC_DATA`` or
            ``~/.cache/mlsec_kit``.
        download: fetch the archive if missing; with ``False`` a missing file raises
            ``DatasetUnavailableError``.

    Returns:
        A :class:`DataSplit` named ``"cifar10"``, classes from the archive's ``batches.meta``
        (``"airplane"``, ``"automobile"``, ...).

    Shape:
        ``X_train`` float32 ``(50000, 3, 32, 32)`` in [0, 1], channels RGB; ``y_train`` int64 ``(50000,)`` in
        [0, 10); ``X_test`` ``(10000, 3, 32, 32)``, ``y_test`` ``(10000,)``.
    """
    arrays = read_cifar10(_fetch("cifar10", "archive", root, download))
    return DataSplit("cifar10", _unit_images(arrays.X_train), torch.from_numpy(arrays.y_train),
                     _unit_images(arrays.X_test), torch.from_numpy(arrays.y_test), arrays.classes,
                     meta={"range": (0.0, 1.0)})


def _one_hot(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One-hot encode each categorical column with the categories seen in training (sorted).

    A test value never seen in training (e.g. a country absent from adult.data) encodes as all zeros.
    """
    blocks_train, blocks_test, names = [], [], []
    for j, column in enumerate(ADULT_CATEGORICAL):
        categories = np.unique(train[:, j])
        blocks_train.append(train[:, j, None] == categories[None, :])
        blocks_test.append(test[:, j, None] == categories[None, :])
        names += [f"{column}={c}" for c in categories]
    return np.hstack(blocks_train), np.hstack(blocks_test), names


def _sensitive(train: np.ndarray, test: np.ndarray) -> dict[str, dict]:
    """Integer codes of the raw sensitive attributes, with category names sorted alphabetically."""
    meta = {}
    for attribute in SENSITIVE_ATTRIBUTES:
        j = ADULT_CATEGORICAL.index(attribute)
        names = np.unique(np.concatenate([train[:, j], test[:, j]]))
        meta[attribute] = {"names": tuple(str(n) for n in names),
                           "train": torch.from_numpy(np.searchsorted(names, train[:, j]).astype(np.int64)),
                           "test": torch.from_numpy(np.searchsorted(names, test[:, j]).astype(np.int64))}
    return meta


def load_adult(*, root: Optional[PathLike] = None, download: bool = True) -> DataSplit:
    """UCI Adult / Census Income (Kohavi, 1996): does a person earn more than $50K a year?

    The official split (``adult.data`` for training, ``adult.test`` for testing), rows with a missing value
    dropped (30,162 / 15,060 rows). All 14 attributes are features: the 6 numeric ones standardised with the
    training set's mean and std, then the 8 categorical ones one-hot encoded over the categories seen in
    training (0/1, not standardised). ``sex`` and ``race`` are among the features *and*, raw, in ``meta``,
    for the attribute-inference and fairness chapters.

    Args:
        root: cache root; the files go to ``root/adult/``. ``None`` means ``$MLSEC_DATA`` or
            ``~/.cache/mlsec_kit``.
        download: fetch missing files; with ``False`` a missing file raises ``DatasetUnavailableError``.

    Returns:
        A :class:`DataSplit` named ``"adult"``, classes ``("<=50K", ">50K")``, ``feature_names`` such as
        ``"age"`` or ``"sex=Female"``, and ``meta["sex"]``, ``meta["race"]``: dicts with ``"names"`` (the
        categories, sorted) and ``"train"`` / ``"test"`` (each row's category index).

    Shape:
        ``X_train`` float32 ``(N, D)`` with D = 6 + the number of training categories (104 on the real
        data); ``y_train`` int64 ``(N,)`` in {0, 1}; ``meta[a]["train"]`` int64 ``(N,)``; the same for test.
        :meth:`DataSplit.subset` subsets ``meta[a]["train"]`` with the training rows.
    """
    train = read_adult(_fetch("adult", "train", root, download))
    test = read_adult(_fetch("adult", "test", root, download))
    num_train, num_test = standardize(train.numeric, test.numeric)
    cat_train, cat_test, cat_names = _one_hot(train.categorical, test.categorical)
    X_train = torch.from_numpy(np.hstack([num_train, cat_train]).astype(np.float32))
    X_test = torch.from_numpy(np.hstack([num_test, cat_test]).astype(np.float32))
    return DataSplit("adult", X_train, torch.from_numpy(train.y), X_test, torch.from_numpy(test.y), ADULT_CLASSES,
                     feature_names=ADULT_NUMERIC + tuple(cat_names),
                     meta=_sensitive(train.categorical, test.categorical))
