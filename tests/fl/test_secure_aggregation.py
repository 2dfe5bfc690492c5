"""Secure aggregation (Bonawitz et al. 2017): Shamir sharing, exact survivors' sum under dropouts, refusal past
the threshold, and a server view that is uniform and uncorrelated with the updates."""
import itertools

import pytest
import torch
from scipy import stats

from mlsec_kit.fl import (PRIME, RING_BITS, decode_fixed, encode_fixed, secure_aggregate, shamir_reconstruct,
                          shamir_share)
from mlsec_kit.fl import secure_aggregation as sa


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _updates(n, shape=(4, 3), seed=0, scale=1.0):
    g = _gen(seed)
    return [scale * torch.randn(shape, generator=g) for _ in range(n)]


def test_shamir_any_threshold_shares_rebuild_the_secret():
    secret = 123456789012345678901234567890
    shares = shamir_share(secret, threshold=3, parties=5, generator=_gen())
    for subset in itertools.combinations(shares, 3):
        assert shamir_reconstruct(list(subset)) == secret
    assert shamir_reconstruct(shares) == secret
    for subset in itertools.combinations(shares, 2):  # below the threshold: some other field element
        assert shamir_reconstruct(list(subset)) != secret


def test_shamir_shares_below_the_threshold_do_not_depend_on_the_secret():
    # the same coefficients' randomness with two different secrets: t-1 = 1 share is uniform either way; over many
    # draws the first share's top bits are spread evenly for both secrets
    for secret in (0, PRIME - 1):
        g = _gen(5)
        tops = [shamir_share(secret, threshold=2, parties=3, generator=g)[0][1] >> 123 for _ in range(800)]
        counts = torch.bincount(torch.tensor(tops), minlength=16).float()
        assert stats.chisquare(counts.numpy()).pvalue > 0.001


@pytest.mark.parametrize("n, threshold, dropped", [(5, 3, []), (5, 3, [1]), (5, 3, [0, 4]), (8, 5, [2, 3, 7]),
                                                   (3, 2, [2]), (4, 4, [])])
def test_secure_sum_equals_the_survivors_plain_sum(n, threshold, dropped):
    ups = _updates(n)
    copies = [u.clone() for u in ups]
    res = secure_aggregate(ups, threshold=threshold, dropped=dropped, generator=_gen(1))
    plain = sum(u for i, u in enumerate(ups) if i not in dropped)
    assert res.total.shape == ups[0].shape
    assert torch.allclose(res.total, plain, atol=n * 2.0 ** -20)
    assert res.survivors == [i for i in range(n) if i not in dropped] and res.dropped == sorted(dropped)
    assert all(torch.equal(a, b) for a, b in zip(ups, copies))
    # the server rebuilt the self-mask seed of each survivor and the key of each dropped client, never both
    assert res.shares_used == {**{i: "b" for i in res.survivors}, **{i: "sk" for i in dropped}}


def test_dropout_beyond_the_threshold_is_refused():
    with pytest.raises(ValueError, match="fewer than threshold = 4"):
        secure_aggregate(_updates(6), threshold=4, dropped=[0, 1, 2], generator=_gen())
    secure_aggregate(_updates(6), threshold=4, dropped=[0, 1], generator=_gen())  # exactly t survivors: fine


def _uniformity_p(masked):
    u = masked.double() / 2.0 ** RING_BITS
    return stats.kstest(u.numpy(), "uniform").pvalue


def test_the_server_sees_uniform_values_uncorrelated_with_the_update():
    g = _gen(2)
    ups = [torch.randn(4000, generator=g) + 5 * i for i in range(4)]  # very different, non-uniform updates
    res = secure_aggregate(ups, threshold=3, dropped=[3], generator=_gen(3))
    assert set(res.masked) == {0, 1, 2}
    for i, y in res.masked.items():
        assert y.dtype == torch.int64 and y.min() >= 0 and y.max() < 2 ** RING_BITS
        assert _uniformity_p(y) > 0.01
        r = torch.corrcoef(torch.stack([y.double(), ups[i].double()]))[0, 1].abs()
        assert r < 0.05
        assert _uniformity_p(encode_fixed(ups[i])) < 1e-6  # the update itself is far from uniform


def test_without_the_masks_the_server_would_see_the_update(monkeypatch):
    # breaking the masking on purpose (a PRG that returns zeros) makes the uniformity check fail: the test above
    # has the power to catch a protocol that sends the encoded update in the clear
    monkeypatch.setattr(sa, "_prg", lambda seed, size: torch.zeros(size, dtype=torch.int64))
    ups = _updates(3, shape=(4000,))
    res = secure_aggregate(ups, threshold=2, generator=_gen())
    assert _uniformity_p(res.masked[0]) < 1e-6
    assert torch.allclose(decode_fixed(res.masked[0]).float(), ups[0], atol=1e-6)


def _server_strips_pair_masks(res, u):
    """What a curious server can compute for client u from its own view alone: u's masked update minus u's pairwise
    masks, regenerated from the key sk_u it rebuilt from the survivors' shares and the broadcast public keys."""
    y = res.masked[u]
    pairs = sa._pair_mask_sum(u, res.rebuilt[u], res.public_keys, range(len(res.public_keys)), y.numel())
    return (y - pairs) % 2 ** RING_BITS


def _late_run(n=5, late=1, seed=2):
    g = _gen(seed)
    ups = [torch.randn(4000, generator=g) + 5 * i for i in range(n)]
    return ups, secure_aggregate(ups, threshold=3, late=[late], generator=_gen(seed + 1))


def test_a_late_client_stays_hidden_by_its_self_mask():
    # Bonawitz et al.'s reason for b_u: client 1 is slow, not gone; the server declares it dropped, rebuilds its
    # sk_1 (so its pairwise masks) to unmask the others' sum, and then receives y_1 after all. Stripping every
    # pairwise mask it can still leaves x_1 + PRG(b_1): uniform, and the server never got shares of b_1.
    ups, res = _late_run()
    assert res.late == [1] and res.survivors == [0, 2, 3, 4] and res.dropped == []
    assert torch.allclose(res.total, ups[0] + ups[2] + ups[3] + ups[4], atol=5 * 2.0 ** -20)  # y_1 not counted
    assert res.shares_used[1] == "sk" and 1 in res.masked  # the server holds sk_1 and y_1 ...
    stripped = _server_strips_pair_masks(res, 1)
    assert _uniformity_p(stripped) > 0.01  # ... and still sees a uniform vector
    r = torch.corrcoef(torch.stack([stripped.double(), ups[1].double()]))[0, 1].abs()
    assert r < 0.05
    assert (decode_fixed(stripped) - ups[1].double()).abs().median() > 1000


def test_without_the_self_mask_a_late_client_is_exposed(monkeypatch):
    # the same run with b_u removed on both sides (client adds no PRG(b_u), server subtracts none): the sum is
    # still right, so no other test notices; but the late client's update is now in the clear, which the test above
    # catches
    monkeypatch.setattr(sa, "_self_mask", lambda b_u, size: torch.zeros(size, dtype=torch.int64))
    ups, res = _late_run()
    assert torch.allclose(res.total, ups[0] + ups[2] + ups[3] + ups[4], atol=5 * 2.0 ** -20)
    stripped = _server_strips_pair_masks(res, 1)
    assert _uniformity_p(stripped) < 1e-6
    assert torch.allclose(decode_fixed(stripped).float(), ups[1], atol=2.0 ** -20)


def test_the_server_cannot_strip_a_survivors_pairwise_masks():
    # the mirror image of the self-mask test: for a survivor the server rebuilds b_u (never sk_u), so the most it
    # can compute is y_u - PRG(b_u) = x_u + (u's pairwise masks), which must still look uniform; without the
    # pairwise masks it would be x_u in the clear
    g = _gen(2)
    ups = [torch.randn(4000, generator=g) + 5 * i for i in range(4)]
    res = secure_aggregate(ups, threshold=3, dropped=[3], generator=_gen(3))
    for u in res.survivors:
        assert res.shares_used[u] == "b"
        view = (res.masked[u] - sa._self_mask(res.rebuilt[u], 4000)) % 2 ** RING_BITS
        assert _uniformity_p(view) > 0.01
        assert torch.corrcoef(torch.stack([view.double(), ups[u].double()]))[0, 1].abs() < 0.05


def test_without_the_pairwise_masks_the_survivors_are_exposed(monkeypatch):
    monkeypatch.setattr(sa, "_pair_mask_sum", lambda u, secret_u, public_keys, partners, size:
                        torch.zeros(size, dtype=torch.int64))
    g = _gen(2)
    ups = [torch.randn(4000, generator=g) + 5 * i for i in range(4)]
    res = secure_aggregate(ups, threshold=3, dropped=[3], generator=_gen(3))
    assert torch.allclose(res.total, ups[0] + ups[1] + ups[2], atol=3 * 2.0 ** -20)  # the sum is still right
    view = (res.masked[0] - sa._self_mask(res.rebuilt[0], 4000)) % 2 ** RING_BITS
    assert _uniformity_p(view) < 1e-6


def test_a_late_client_changes_nothing_for_the_others():
    # the same seed with client 1 late or dropped: the same total and the same in-time masked updates (no extra
    # randomness is drawn); the late client's bytes are counted
    ups, late = _late_run()
    gone = secure_aggregate(ups, threshold=3, dropped=[1], generator=_gen(3))
    assert torch.equal(late.total, gone.total)
    assert all(torch.equal(late.masked[u], gone.masked[u]) for u in gone.masked)
    assert late.bytes_sent == gone.bytes_sent + 4000 * sa.RING_BYTES


def test_fixed_point_round_trip_and_range():
    x = torch.tensor([-3.25, 0.0, 1e-7, 1000.5])
    assert torch.allclose(decode_fixed(encode_fixed(x)).float(), x, atol=2.0 ** -21)
    with pytest.raises(ValueError, match="updates must stay below"):
        secure_aggregate([torch.full((2,), 1e8), torch.zeros(2)], threshold=2, generator=_gen())


def test_bytes_follow_the_four_rounds():
    # n clients, d coordinates, s survivors: round 0 two 16-byte public keys per client (broadcast to all); round 1
    # two shares + ids per ordered pair, relayed; round 2 s masked vectors of 6-byte ring elements; round 3 the
    # survivor list (4-byte ids) to each survivor and one 16-byte share + 4-byte id per other client back
    n, d, s = 5, 100, 4
    res = secure_aggregate(_updates(n, shape=(d,)), threshold=3, dropped=[2], generator=_gen())
    pair = 2 * 16 + 8
    assert res.bytes_sent == n * 2 * 16 + n * (n - 1) * pair + s * d * 6 + s * (n - 1) * (16 + 4)
    assert res.bytes_received == n * n * 2 * 16 + n * (n - 1) * pair + s * s * 4


def test_costs_grow_with_the_clients():
    small = secure_aggregate(_updates(4, shape=(100,)), threshold=3, generator=_gen())
    big = secure_aggregate(_updates(12, shape=(100,)), threshold=7, generator=_gen())
    assert small.rounds == 4
    assert big.bytes_sent > 3 * small.bytes_sent and big.bytes_received > 9 * small.bytes_received
    assert small.bytes_sent > 4 * 100 * 4  # more than the plain updates in float32


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(updates=_updates(1), threshold=2), ValueError, "at least 2"),
    (dict(updates=[torch.zeros(3), torch.zeros(4)], threshold=2), ValueError, "same shape"),
    (dict(updates=_updates(4), threshold=5), ValueError, "threshold must be an int in \\[2, 4\\]"),
    (dict(updates=_updates(4), threshold=1), ValueError, "threshold"),
    (dict(updates=_updates(4), threshold=2, dropped=[4]), ValueError, "dropped must hold client indices"),
    (dict(updates=_updates(4), threshold=2, frac_bits=41), ValueError, "frac_bits"),
    (dict(updates=[torch.zeros(2, dtype=torch.long)] * 2, threshold=2), TypeError, "floating"),
    (dict(updates=[torch.tensor([float("nan")])] * 2, threshold=2), ValueError, "non-finite"),
    (dict(updates=_updates(4), threshold=2, late=[1], dropped=[1]), ValueError, "late and dropped must be disjoint"),
    (dict(updates=_updates(4), threshold=2, late=[-1]), ValueError, "late must hold client indices"),
    (dict(updates=_updates(4), threshold=3, late=[0], dropped=[1]), ValueError, "dropped and late leave 2 of 4"),
    (dict(updates=_updates(4), threshold=2, late="0"), TypeError, "late must be an iterable"),
])
def test_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        secure_aggregate(kwargs.pop("updates"), generator=_gen(), **kwargs)


def test_shamir_bad_input():
    with pytest.raises(ValueError, match="threshold"):
        shamir_share(1, threshold=4, parties=3)
    with pytest.raises(ValueError, match="secret"):
        shamir_share(PRIME, threshold=2, parties=3)
    with pytest.raises(ValueError, match="distinct"):
        shamir_reconstruct([(1, 2), (1, 3)])
