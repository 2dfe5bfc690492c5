"""IID and Dirichlet (label-skewed) partitions."""
import math

import pytest
import torch

from mlsec_kit.fl import dirichlet_partition, iid_partition


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _covers(parts, n):
    allidx = torch.cat(parts).sort().values
    return torch.equal(allidx, torch.arange(n))


def test_iid_partition_is_a_random_near_equal_split():
    parts = iid_partition(103, clients=10, generator=_gen())
    assert _covers(parts, 103)
    assert {len(p) for p in parts} == {10, 11}
    again = iid_partition(103, clients=10, generator=_gen())
    assert all(torch.equal(a, b) for a, b in zip(parts, again))
    other = iid_partition(103, clients=10, generator=_gen(1))
    assert not all(torch.equal(a, b) for a, b in zip(parts, other))
    assert not torch.equal(parts[0], torch.arange(len(parts[0])))  # shuffled, not cut in order


def _label_entropy(labels, parts, classes):
    ent = []
    for p in parts:
        counts = torch.bincount(labels[p], minlength=classes).float()
        q = counts / counts.sum()
        ent.append(-(q[q > 0] * q[q > 0].log()).sum().item())
    return sum(ent) / len(ent)


def test_dirichlet_small_alpha_skews_the_labels():
    labels = torch.arange(10).repeat(100)  # 1000 labels, 10 classes
    skewed = dirichlet_partition(labels, clients=10, alpha=0.1, generator=_gen())
    mild = dirichlet_partition(labels, clients=10, alpha=100.0, generator=_gen())
    for parts in (skewed, mild):
        assert _covers(parts, 1000)
        assert min(len(p) for p in parts) >= 1
    assert _label_entropy(labels, mild, 10) > 0.95 * math.log(10)
    assert _label_entropy(labels, skewed, 10) < 0.6 * math.log(10)
    again = dirichlet_partition(labels, clients=10, alpha=0.1, generator=_gen())
    assert all(torch.equal(a, b) for a, b in zip(skewed, again))


def test_dirichlet_min_size_is_met_or_refused():
    labels = torch.arange(4).repeat(25)
    parts = dirichlet_partition(labels, clients=5, alpha=0.5, min_size=10, generator=_gen())
    assert min(len(p) for p in parts) >= 10
    with pytest.raises(ValueError, match="min_size"):
        dirichlet_partition(labels, clients=5, alpha=0.01, min_size=19, max_tries=3, generator=_gen())


@pytest.mark.parametrize("call, match", [
    (lambda: iid_partition(5, clients=6), "clients must be at most"),
    (lambda: iid_partition(5, clients=0), "clients"),
    (lambda: dirichlet_partition(torch.rand(10), clients=2, alpha=1.0), "labels"),
    (lambda: dirichlet_partition(torch.zeros(10, dtype=torch.long), clients=2, alpha=0.0), "alpha"),
    (lambda: dirichlet_partition(torch.zeros(10, dtype=torch.long), clients=6, alpha=1.0, min_size=2),
     "clients \\* min_size"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
