"""How a dataset is split among federated clients: IID (:func:`iid_partition`) and label-skewed non-IID
(:func:`dirichlet_partition`)."""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from ._validate import check_generator, check_int, check_positive, numpy_rng

__all__ = ["iid_partition", "dirichlet_partition"]


def iid_partition(n: int, *, clients: int, generator: Optional[torch.Generator] = None) -> list[torch.Tensor]:
    """Deal ``n`` examples to ``clients`` clients uniformly at random, in near-equal shares.

    A random permutation of ``0 .. n-1`` cut into ``clients`` consecutive pieces whose sizes differ by at most 1
    (the IID setting of McMahan et al. 2017).

    Args:
        n: the number of examples, an int >= ``clients``.
        clients: the number of clients, an int >= 1.
        generator: the source of the permutation.

    Returns:
        ``clients`` sorted int64 index tensors, disjoint, covering ``0 .. n-1``.
    """
    clients = check_int("clients", clients)
    n = check_int("n", n, minimum=1)
    check_generator(generator)
    if clients > n:
        raise ValueError(f"clients must be at most n = {n} so that each client gets an example, got {clients}")
    perm = torch.randperm(n, generator=generator)
    return [part.sort().values for part in torch.tensor_split(perm, clients)]


def dirichlet_partition(labels: torch.Tensor, *, clients: int, alpha: float,
                        generator: Optional[torch.Generator] = None, min_size: int = 1,
                        max_tries: int = 100) -> list[torch.Tensor]:
    """Label-skewed non-IID split: each class is divided among the clients in Dirichlet(α) proportions.

    Hsu, Qi & Brown (2019, "Measuring the effects of non-identical data distribution for federated visual
    classification") give each client a class mix drawn from a Dirichlet distribution with concentration α:
    small α (0.1) leaves most clients with one or two classes, large α (100) approaches the IID split. This
    function uses the common finite-sample form of that idea (Yurochkin et al. 2019; Wang et al. 2020): for each
    class ``c`` it draws ``p_c ~ Dir(α·1_K)`` over the ``K`` clients and deals the class's examples (in random
    order) in those proportions. Draws are repeated until every client holds at least ``min_size`` examples.
    The Dirichlet draws come from a NumPy generator seeded by one draw from ``generator`` (torch has no seeded
    Dirichlet sampler), so the split is a function of the torch seed.

    Args:
        labels: integer class labels, shape ``(N,)``; not modified.
        clients: the number of clients, an int >= 1, at most ``N // min_size``.
        alpha: the concentration α > 0.
        generator: the source of randomness.
        min_size: the fewest examples a client may get, an int >= 0.
        max_tries: redraws allowed before giving up with a ``ValueError`` (raise α or lower ``min_size``).

    Returns:
        ``clients`` sorted int64 index tensors, disjoint, covering ``0 .. N-1``.
    """
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.is_floating_point() \
            or labels.dtype == torch.bool:
        raise ValueError(f"labels must be a 1-D integer tensor, got {getattr(labels, 'shape', type(labels).__name__)}"
                         f"{' of dtype ' + str(labels.dtype) if isinstance(labels, torch.Tensor) else ''}")
    clients = check_int("clients", clients)
    alpha = check_positive("alpha", alpha)
    min_size = check_int("min_size", min_size, minimum=0)
    max_tries = check_int("max_tries", max_tries)
    check_generator(generator)
    n = labels.numel()
    if clients * min_size > n:
        raise ValueError(f"clients * min_size must be at most the number of labels {n}, got {clients} * {min_size}")
    if n == 0:
        raise ValueError("labels must not be empty")
    y = labels.detach().cpu().numpy()
    rng = numpy_rng(generator)
    for _ in range(max_tries):
        parts: list[list[np.ndarray]] = [[] for _ in range(clients)]
        for c in np.unique(y):
            idx = np.flatnonzero(y == c)
            idx = idx[rng.permutation(len(idx))]
            p = rng.dirichlet(np.full(clients, alpha))
            cuts = (np.cumsum(p)[:-1] * len(idx)).round().astype(int)
            for k, piece in enumerate(np.split(idx, cuts)):
                parts[k].append(piece)
        sizes = [sum(len(p) for p in ps) for ps in parts]
        if min(sizes) >= min_size:
            return [torch.from_numpy(np.sort(np.concatenate(ps))).long() for ps in parts]
    raise ValueError(f"no split with every client holding at least min_size = {min_size} examples in "
                     f"{max_tries} draws at alpha = {alpha}: raise alpha or max_tries, or lower min_size")
