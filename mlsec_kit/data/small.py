"""The ``small`` profile's datasets: they ship with scikit-learn, so they load offline in milliseconds."""
from __future__ import annotations

import numpy as np
import torch
from sklearn import datasets as skds
from sklearn.model_selection import train_test_split

from .core import DataSplit, check_split_args

__all__ = ["load_digits", "load_breast_cancer", "load_wine", "load_diabetes", "standardize"]


def standardize(X_train: np.ndarray, X_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale features with the training set's mean and std, so nothing about the test set leaks in."""
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (X_train - mean) / std, (X_test - mean) / std


def _split(X: np.ndarray, y: np.ndarray, test_size: float, seed: int):
    check_split_args(test_size, seed)
    return train_test_split(X, y, test_size=test_size, random_state=seed, stratify=y)


def _tensors(*arrays: np.ndarray) -> list[torch.Tensor]:
    out = []
    for a in arrays:
        out.append(torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32 if a.dtype.kind == "f" else np.int64)))
    return out


def load_digits(*, test_size: float = 0.25, seed: int = 0) -> DataSplit:
    """scikit-learn's 1,797 handwritten digits as ``(N, 1, 8, 8)`` images in ``[0, 1]``, 10 classes.

    The split is stratified by class and fixed by ``seed``.
    """
    raw = skds.load_digits()
    X = (raw.images / 16.0).astype(np.float32)[:, None, :, :]
    Xtr, Xte, ytr, yte = _split(X, raw.target, test_size, seed)
    Xtr, Xte, ytr, yte = _tensors(Xtr, Xte, ytr, yte)
    return DataSplit("digits", Xtr, ytr, Xte, yte, tuple(str(c) for c in range(10)),
                     meta={"range": (0.0, 1.0)})


def _tabular(name: str, raw, test_size: float, seed: int) -> DataSplit:
    Xtr, Xte, ytr, yte = _split(raw.data.astype(np.float64), raw.target, test_size, seed)
    Xtr, Xte = standardize(Xtr, Xte)
    Xtr, Xte, ytr, yte = _tensors(Xtr.astype(np.float32), Xte.astype(np.float32), ytr, yte)
    return DataSplit(name, Xtr, ytr, Xte, yte, tuple(str(c) for c in raw.target_names),
                     feature_names=tuple(str(f) for f in raw.feature_names))


def load_breast_cancer(*, test_size: float = 0.25, seed: int = 0) -> DataSplit:
    """Wisconsin breast cancer: 569 patients, 30 standardised features, malignant (0) vs benign (1)."""
    return _tabular("breast_cancer", skds.load_breast_cancer(), test_size, seed)


def load_wine(*, test_size: float = 0.25, seed: int = 0) -> DataSplit:
    """UCI wine: 178 wines, 13 standardised chemical features, 3 cultivars."""
    return _tabular("wine", skds.load_wine(), test_size, seed)


def load_diabetes(*, test_size: float = 0.25, seed: int = 0) -> DataSplit:
    """scikit-learn's diabetes data (Efron et al., 2004) as a binary task with a sensitive attribute.

    442 patients, 10 baseline features (age, sex, body-mass index, blood pressure, six blood-serum
    measurements), standardised with the training set's mean and std. The original target, a quantitative
    measure of disease progression one year after baseline, is binarised at its median over all 442
    patients (140.5; no patient lies on it, so the classes have 221 patients each): class 1, ``"high"``,
    is progression above the median; class 0, ``"low"``, at most the median. The split is stratified by
    this class and fixed by ``seed``.

    ``sex`` is a feature (column 1, standardised, so it takes two values) *and*, as in
    :func:`~mlsec_kit.data.full.load_adult`, a sensitive attribute in ``meta["sex"]``: ``"names"`` are the
    source's codes ``("1", "2")`` (235 and 207 patients; the source does not say which code is which sex),
    ``"train"`` / ``"test"`` each row's code index in {0, 1}, ``"column"`` the feature's index (1) and
    ``"values"`` the standardised feature value of each code, float32 ``(2,)`` — what an attribute-inference
    attack substitutes into the column.

    Shape:
        ``X_train`` float32 ``(N, 10)``, ``y_train`` int64 ``(N,)`` in {0, 1}; ``meta["sex"]["train"]`` int64
        ``(N,)`` in {0, 1}; the same for test.
    """
    raw = skds.load_diabetes(scaled=False)
    X = raw.data.astype(np.float64)
    y = (raw.target > np.median(raw.target)).astype(np.int64)
    column = list(raw.feature_names).index("sex")
    codes = np.unique(X[:, column])  # 1.0 and 2.0
    Xtr, Xte, ytr, yte = _split(X, y, test_size, seed)
    sex_train, sex_test = np.searchsorted(codes, Xtr[:, column]), np.searchsorted(codes, Xte[:, column])
    mean, std = Xtr[:, column].mean(), Xtr[:, column].std()
    Xtr, Xte = standardize(Xtr, Xte)
    Xtr, Xte, ytr, yte = _tensors(Xtr.astype(np.float32), Xte.astype(np.float32), ytr, yte)
    meta = {"sex": {"names": tuple(str(int(c)) for c in codes),
                    "train": torch.from_numpy(sex_train.astype(np.int64)),
                    "test": torch.from_numpy(sex_test.astype(np.int64)),
                    "column": column,
                    "values": torch.tensor((codes - mean) / std, dtype=torch.float32)}}
    return DataSplit("diabetes", Xtr, ytr, Xte, yte, ("low", "high"),
                     feature_names=tuple(str(f) for f in raw.feature_names), meta=meta)
