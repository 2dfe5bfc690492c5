"""The breast-cancer split the performance-degradation tests share: a victim's training half, an attacker's
(surrogate) half, the attacker's validation set and a held-out evaluation set, all fixed by seed 0."""
from functools import lru_cache

import torch

from mlsec_kit.data import load_dataset

L2 = 1e-2  # the learner's penalty in these tests (gradient_poisoning's default)


@lru_cache(maxsize=1)
def degradation_split() -> dict[str, torch.Tensor]:
    d = load_dataset("breast_cancer")
    perm = torch.randperm(len(d.y_train), generator=torch.Generator().manual_seed(0))
    half = len(perm) // 2
    vic, sur = perm[:half], perm[half:]
    m = len(d.y_test) // 2
    return {"x": d.X_train[vic], "y": d.y_train[vic], "x_s": d.X_train[sur], "y_s": d.y_train[sur],
            "x_val": d.X_test[:m], "y_val": d.y_test[:m], "x_eval": d.X_test[m:], "y_eval": d.y_test[m:]}
