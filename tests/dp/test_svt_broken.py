"""The broken sparse-vector variants are caught by the empirical audit; correct AboveThreshold is not."""
import torch

from mlsec_kit.dp import above_threshold, epsilon_lower_bound
from mlsec_kit.dp.svt_broken import svt_without_cutoff, svt_without_query_noise

N, EPS = 40_000, 1.0
EDGES = torch.arange(-1, 2) + 0.5   # outputs -1, 0, 1 -> bins


def _audit(mechanism, d, d_prime, seed):
    g = torch.Generator().manual_seed(seed)
    a = mechanism(d.expand(N, -1), threshold=0.5, sensitivity=1.0, epsilon=EPS, generator=g).double()
    b = mechanism(d_prime.expand(N, -1), threshold=0.5, sensitivity=1.0, epsilon=EPS, generator=g).double()
    return epsilon_lower_bound(a, b, edges=EDGES - 0.0)


def test_no_query_noise_is_flagged_and_above_threshold_is_not():
    d, d_prime = torch.tensor([0.0, 1.0]), torch.tensor([1.0, 0.0])
    for seed in range(3):
        assert _audit(svt_without_query_noise, d, d_prime, seed) > 3 * EPS
        assert _audit(above_threshold, d, d_prime, seed) <= EPS


def test_no_cutoff_is_flagged_and_its_loss_grows_with_the_number_of_queries():
    def bound(k, seed):
        d = torch.zeros(k)
        d_prime = torch.cat([torch.ones(k // 2), -torch.ones(k // 2)])   # each query moves by 1
        g = torch.Generator().manual_seed(seed)
        score = lambda out: (out[:, : k // 2].sum(1) - out[:, k // 2:].sum(1)).double()   # a fixed statistic
        a = score(svt_without_cutoff(d.expand(N, -1), threshold=0.0, sensitivity=1.0, epsilon=EPS, generator=g))
        b = score(svt_without_cutoff(d_prime.expand(N, -1), threshold=0.0, sensitivity=1.0, epsilon=EPS, generator=g))
        return epsilon_lower_bound(a, b, edges=torch.arange(-k, k + 1) + 0.5)
    for seed in range(3):
        assert bound(20, seed) > 2 * EPS
    assert bound(2, 0) < bound(20, 0)


def test_the_broken_variants_say_so_in_their_docstrings():
    for fn in (svt_without_cutoff, svt_without_query_noise):
        assert fn.__doc__.startswith("BROKEN (not DP)")
