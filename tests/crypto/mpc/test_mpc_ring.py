"""Fixed-point encoding and additive secret sharing over Z_2^64 (mlsec_kit.crypto.mpc.ring)."""
import numpy as np
import pytest
import torch
from scipy import stats

from mlsec_kit.crypto.mpc import decode, encode, max_abs, random_ring, reconstruct, share

N = 256 * 200  # 200 expected draws per bin of 8 bits


def _bits(s: torch.Tensor, *, top: bool) -> np.ndarray:
    return (((s >> 56) if top else s) & 0xFF).numpy()


def uniform_p(s: torch.Tensor, *, top: bool) -> float:
    """Chi-square test of 8 bits (the top byte or the low byte) of ring elements against uniform."""
    counts = np.bincount(_bits(s, top=top), minlength=256)
    return stats.chisquare(counts).pvalue


def same_distribution_p(s1: torch.Tensor, s2: torch.Tensor, *, top: bool) -> float:
    """Chi-square test of homogeneity: do the two samples' bytes have one distribution?"""
    table = np.stack([np.bincount(_bits(s, top=top), minlength=256) for s in (s1, s2)])
    table = table[:, table.sum(0) > 0]
    if table.shape[1] < 2:
        return 1.0
    return stats.chi2_contingency(table).pvalue


def wrong_share(x, *, parties, generator):
    """A broken sharing: the secret minus a small random value."""
    small = torch.randint(0, 1000, x.shape, generator=generator, dtype=torch.int64)
    return [small] + [torch.zeros_like(x)] * (parties - 2) + [x - small]


def _samples(share_fn, secret: int, parties: int, seed: int):
    x = torch.full((N,), secret, dtype=torch.int64)
    return share_fn(x, parties=parties, generator=torch.Generator().manual_seed(seed))


SECRETS = (0, 123456789, -(2 ** 62) + 17)


def check_shares_hide_secret(share_fn, parties: int) -> bool:
    """Every single share is uniform (top and low byte) and its distribution is the same for different secrets."""
    ok = True
    samples = [_samples(share_fn, s, parties, seed=7 + i) for i, s in enumerate(SECRETS)]
    for i in range(parties):
        for top in (True, False):
            for sh in samples:
                ok &= uniform_p(sh[i], top=top) > 1e-4
            ok &= same_distribution_p(samples[0][i], samples[2][i], top=top) > 1e-4
    return bool(ok)


@pytest.mark.parametrize("parties", [2, 3])
def test_each_share_is_uniform_and_independent_of_the_secret(parties):
    assert check_shares_hide_secret(share, parties)


@pytest.mark.parametrize("parties", [2, 3])
def test_secret_minus_small_random_value_fails_the_uniformity_check(parties):
    assert not check_shares_hide_secret(wrong_share, parties)
    sh = _samples(wrong_share, SECRETS[2], parties, seed=1)
    assert uniform_p(sh[0], top=True) < 1e-12


def test_random_ring_uses_both_halves():
    r = random_ring((N,), generator=torch.Generator().manual_seed(3))
    assert uniform_p(r, top=True) > 1e-4 and uniform_p(r, top=False) > 1e-4
    assert ((r >> 32) & 0xFFFFFFFF).unique().numel() > N // 2 and (r & 0xFFFFFFFF).unique().numel() > N // 2
    assert (r < 0).float().mean().item() == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize("parties", [2, 3, 5])
def test_reconstruct_is_exact_including_wrap_around(parties):
    g = torch.Generator().manual_seed(0)
    x = torch.tensor([0, 1, -1, 2 ** 63 - 1, -(2 ** 63), 42], dtype=torch.int64)
    x0 = x.clone()
    sh = share(x, parties=parties, generator=g)
    assert len(sh) == parties and all(s.shape == x.shape and s.dtype == torch.int64 for s in sh)
    assert torch.equal(reconstruct(sh), x) and torch.equal(x, x0)
    # no proper subset reconstructs it
    assert not torch.equal(reconstruct(sh[:-1]) if parties > 2 else sh[0], x)


def test_share_is_deterministic_for_a_seed():
    x = torch.arange(10, dtype=torch.int64)
    a = share(x, parties=3, generator=torch.Generator().manual_seed(5))
    b = share(x, parties=3, generator=torch.Generator().manual_seed(5))
    c = share(x, parties=3, generator=torch.Generator().manual_seed(6))
    assert all(torch.equal(u, v) for u, v in zip(a, b)) and not torch.equal(a[0], c[0])


@pytest.mark.parametrize("frac_bits", [0, 8, 16, 24])
def test_encode_decode_round_trip_within_half_an_ulp(frac_bits):
    x = torch.linspace(-1000, 1000, 2001, dtype=torch.float64) + 1 / 3
    r = encode(x, frac_bits=frac_bits)
    assert r.dtype == torch.int64
    assert (decode(r, frac_bits=frac_bits) - x).abs().max() <= 2.0 ** -(frac_bits + 1) + 1e-12
    assert torch.equal(encode(torch.tensor([-1.5, 2.25]), frac_bits=2), torch.tensor([-6, 9]))


def test_encoded_arithmetic_wraps_like_the_ring():
    a, b = encode(torch.tensor([3.5])), encode(torch.tensor([-1.25]))
    big = torch.tensor([2 ** 63 - 1], dtype=torch.int64)
    assert torch.equal(big + 1, torch.tensor([-(2 ** 63)]))  # two's complement wrap
    assert decode(a + b).item() == 2.25 and decode((a * b) >> 16).item() == -4.375


def test_range_limit():
    lim = max_abs(frac_bits=16, headroom=16)
    assert lim == 2.0 ** 31
    encode(torch.tensor([lim - 1, -(lim - 1)], dtype=torch.float64))
    with pytest.raises(ValueError, match=r"fixed-point range.*2\^31"):
        encode(torch.tensor([lim]))
    with pytest.raises(ValueError, match="fixed-point range"):
        encode(torch.tensor([0.0, -3e9]))
    with pytest.raises(ValueError, match="finite"):
        encode(torch.tensor([float("nan")]))
    with pytest.raises(ValueError, match="frac_bits"):
        encode(torch.tensor([1.0]), frac_bits=40)
    with pytest.raises(ValueError, match="headroom"):
        encode(torch.tensor([1.0]), headroom=-1)


def test_bad_input():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(3, dtype=torch.int64)
    for bad in (1, 0, -2, 2.0, True):
        with pytest.raises(ValueError, match="parties must be an int >= 2"):
            share(x, parties=bad, generator=g)
    with pytest.raises(TypeError, match="int64"):
        share(torch.zeros(3), parties=2, generator=g)
    with pytest.raises(TypeError, match="generator"):
        share(x, parties=2, generator=0)
    with pytest.raises(ValueError, match="same shape|one shape"):
        reconstruct([torch.zeros(3, dtype=torch.int64), torch.zeros(4, dtype=torch.int64)])
    with pytest.raises(ValueError, match="at least 2"):
        reconstruct([x])
    with pytest.raises(TypeError, match="list or tuple"):
        reconstruct(x)
    with pytest.raises(TypeError, match=r"shares\[1\]"):
        reconstruct([x, torch.zeros(3)])
    with pytest.raises(TypeError, match="int64"):
        decode(torch.zeros(3))
