"""Parties, dealer, message log and the operations on shares (mlsec_kit.crypto.mpc.protocol)."""
import pytest
import torch

from mlsec_kit.crypto import mpc
from mlsec_kit.crypto.mpc import Network, encode, reconstruct

ULP = 2.0 ** -16


def _net(parties=2, seed=0, **kw):
    return Network(parties, generator=torch.Generator().manual_seed(seed), **kw)


def _data(seed=0, shape=(6, 4), scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g, dtype=torch.float64) - 0.5) * 2 * scale


def _fx(x):
    """The real value the network actually holds for x: x rounded to the fixed-point grid."""
    return mpc.decode(encode(x))


def test_parties_hold_only_their_own_shares():
    net = _net(3)
    x = _data()
    xs = net.share(x, owner=2)
    own = [p.share_of(xs.handle) for p in net.parties]
    assert torch.equal(reconstruct(own), encode(x))
    for s in own:
        assert not torch.equal(s, encode(x))
    # the owner sent one share to each other party, in one round; the owner received nothing
    assert net.log.rounds == 1
    assert [len(p.received) for p in net.parties] == [1, 1, 0]
    assert torch.equal(net.parties[0].received[0].payload, own[0])


@pytest.mark.parametrize("parties", [2, 3])
def test_add_sub_neg_and_public_operations_are_local(parties):
    net = _net(parties)
    x, y = _data(1), _data(2)
    xs, ys = net.share(x, owner=0), net.share(y, owner=1)
    rounds = net.log.rounds
    s, d, n = xs + ys, xs - ys, -xs
    p, k = xs + 2.5, xs * 3
    assert net.log.rounds == rounds  # no communication
    assert torch.equal(reconstruct(net.shares(s)), encode(x) + encode(y))
    assert torch.equal(reconstruct(net.shares(d)), encode(x) - encode(y))
    assert torch.equal(reconstruct(net.shares(n)), -encode(x))
    assert torch.equal(reconstruct(net.shares(p)), encode(x) + encode(torch.tensor(2.5)))
    assert torch.equal(reconstruct(net.shares(k)), 3 * encode(x))  # integer public: exact, no truncation
    # only party 0 adds a public constant
    assert torch.equal(net.shares(p)[1], net.shares(xs)[1])


@pytest.mark.parametrize("parties,truncation,ulps", [(2, "local", 1), (2, "dealer", 2), (3, "dealer", 2)])
def test_truncation_error_is_within_its_stated_ulps(parties, truncation, ulps):
    net = _net(parties, truncation=truncation)
    g = torch.Generator().manual_seed(1)
    v = torch.randint(-2 ** 45, 2 ** 45, (20000,), generator=g, dtype=torch.int64)  # a product at scale 2^32
    t = mpc.truncate(net.share(v, owner=0, encoded=True))
    out = reconstruct(net.shares(t)).to(torch.float64)
    err = out - v.to(torch.float64) / 2 ** 16
    assert err.abs().max().item() < ulps
    if truncation == "dealer":
        assert err.max().item() <= 0  # floor(c/2^f) + floor(r/2^f) never overshoots
    # the error is not always zero: truncation of shares is not exact division
    assert (err != 0).any()


def test_local_truncation_needs_two_parties():
    with pytest.raises(ValueError, match="exactly 2 parties"):
        _net(3, truncation="local")
    net = _net(3)
    assert net.truncation == "dealer"
    with pytest.raises(ValueError, match="2 parties"):
        mpc.truncate(net.share(torch.zeros(2), owner=0), method="local")


@pytest.mark.parametrize("parties", [2, 3])
def test_beaver_product_is_correct(parties):
    net = _net(parties)
    x, y = _data(3), _data(4)
    z = net.reveal(net.share(x, owner=0) * net.share(y, owner=parties - 1))
    assert (z - _fx(x) * _fx(y)).abs().max().item() < 2 * ULP


def test_beaver_product_reveals_only_masked_values():
    """Each party receives e = x - a and f = y - b (other parties' shares of them), never x, y or their shares."""
    net = _net(2, seed=3)
    x, y = _data(5), _data(6)
    xs, ys = net.share(x, owner=0), net.share(y, owner=1)
    before = [len(p.received) for p in net.parties]
    shares_x, shares_y = net.shares(xs), net.shares(ys)
    z = xs * ys
    for p, k in zip(net.parties, before):
        got = p.received[k:]
        assert {m.tag for m in got if m.phase == "online"} == {"beaver.e", "beaver.f"}
        assert {m.sender for m in got if m.phase == "offline"} == {"dealer"}
        for m in got:
            for secret in [encode(x), encode(y)] + shares_x + shares_y:
                if m.payload.shape == secret.shape:
                    assert not torch.equal(m.payload, secret)
                    assert not (m.payload == secret).any()
    # the opened e equals x - a exactly (a from the dealer's shares, which the parties together hold)
    tags = {}
    for p in net.parties:
        for m in p.received:
            tags.setdefault(m.tag, []).append(m)
    e_opened = sum(m.payload for m in tags["beaver.e"]) if len(net.parties) == 2 else None
    a = reconstruct([m.payload for m in tags["triple.a"]])
    assert torch.equal(e_opened, encode(x) - a)
    assert not torch.equal(e_opened, encode(x))
    assert (net.reveal(z) - _fx(x) * _fx(y)).abs().max().item() < 2 * ULP


@pytest.mark.parametrize("parties,rounds", [(2, 1), (3, 2)])
def test_message_log_counts_rounds_and_bytes(parties, rounds):
    net = _net(parties)
    xs, ys = net.share(torch.ones(5), owner=0), net.share(torch.ones(5), owner=1)
    r0 = net.log.rounds
    b0 = [net.log.bytes_sent(i) for i in range(parties)]
    off0 = net.log.total_bytes(phase="offline")
    xs * ys
    # one round to open e and f; with dealer truncation one more to open x - r
    assert net.log.rounds - r0 == rounds
    per_party = 2 * (parties - 1) * 5 * 8 + (0 if parties == 2 else (parties - 1) * 5 * 8)
    assert [net.log.bytes_sent(i) - b0[i] for i in range(parties)] == [per_party] * parties
    assert net.log.bytes_received(0) >= per_party
    # the dealer sent a, b, c (and r, r >> f with 3 parties) to every party
    dealt = 3 * parties * 5 * 8 + (0 if parties == 2 else 2 * parties * 5 * 8)
    assert net.log.total_bytes(phase="offline") - off0 == dealt
    assert net.dealer.issued["triple"] == 1


def test_square_uses_one_opening():
    net = _net(2)
    x = _data(7)
    xs = net.share(x, owner=0)
    r0 = net.log.rounds
    b0 = net.log.total_bytes()
    sq = mpc.square(xs)
    assert net.log.rounds - r0 == 1 and net.log.total_bytes() - b0 == 2 * x.numel() * 8
    assert (net.reveal(sq) - _fx(x) ** 2).abs().max().item() < 2 * ULP
    assert (net.reveal(xs * xs) - _fx(x) ** 2).abs().max().item() < 2 * ULP


@pytest.mark.parametrize("parties", [2, 3])
def test_matmul_secret_by_secret_and_by_public(parties):
    net = _net(parties)
    x, w = _data(8, (5, 7)), _data(9, (7, 3))
    xs, ws = net.share(x, owner=parties - 1), net.share(w, owner=0)
    r0 = net.log.rounds
    prod = xs @ ws
    assert net.log.rounds - r0 == (1 if parties == 2 else 2)
    assert net.dealer.issued["matmul_triple"] == 1
    want = _fx(x) @ _fx(w)
    assert (net.reveal(prod) - want).abs().max().item() < 2 * ULP
    r1 = net.log.rounds
    pub = xs @ w
    assert net.log.rounds - r1 == (0 if parties == 2 else 1)
    assert (net.reveal(pub) - want).abs().max().item() < 2 * ULP


def test_multiply_by_public_real_truncates():
    net = _net(2)
    x = _data(10)
    out = net.reveal(net.share(x, owner=0) * 0.3)
    assert (out - _fx(x) * _fx(torch.tensor(0.3))).abs().max().item() < ULP
    out2 = net.reveal(net.share(x, owner=0) * torch.tensor([1.0, -2.0, 0.5, 4.0], dtype=torch.float64))
    assert (out2 - _fx(x) * torch.tensor([1.0, -2.0, 0.5, 4.0])).abs().max().item() < ULP


def test_integer_network_is_exact():
    net = _net(3, frac_bits=0)
    x = torch.arange(-5, 5)
    y = torch.arange(3, 13)
    assert torch.equal(net.reveal(net.share(x, owner=0) * net.share(y, owner=1)), (x * y).to(torch.float64))


def test_polynomial_and_sigmoid_approximation():
    net = _net(2)
    x = torch.linspace(-8, 8, 161, dtype=torch.float64)
    xs = net.share(x, owner=0)
    coeffs = (0.25, -1.0, 0.5, 0.125)
    poly = net.reveal(mpc.polynomial(xs, coeffs))
    want = sum(c * _fx(x) ** k for k, c in enumerate(coeffs))
    assert (poly - want).abs().max().item() < 1e-3
    sig = net.reveal(mpc.sigmoid_approx(xs))
    plain = sum(c * x ** k for k, c in enumerate(mpc.SIGMOID3))
    # against the polynomial with fixed-point coefficients: tight; against the exact coefficients, the rounding of
    # c_3 = -0.001593 (up to 2^-17) times |x|^3 <= 512 adds up to 4e-3
    encoded = sum(_fx(torch.tensor(c, dtype=torch.float64)) * _fx(x) ** k for k, c in enumerate(mpc.SIGMOID3))
    assert (sig - encoded).abs().max().item() < 1e-3
    assert (sig - plain).abs().max().item() < 4e-3
    approx_err = (plain - torch.sigmoid(x)).abs().max().item()
    assert 0.05 < approx_err < 0.12  # the price of a degree-3 polynomial on [-8, 8]
    assert abs(sig[80].item() - 0.5) < 1e-4 and (sig[81:] > 0.5).all() and (sig[:80] < 0.5).all()


def test_deterministic_for_a_seed():
    outs = []
    for _ in range(2):
        net = _net(3, seed=11)
        xs = net.share(_data(1), owner=0)
        outs.append((net.reveal(xs * xs), net.shares(xs)[0]))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])


def test_bad_input():
    g = torch.Generator().manual_seed(0)
    for bad in (1, 0, 2.5):
        with pytest.raises(ValueError, match="parties must be an int >= 2"):
            Network(bad, generator=g)
    with pytest.raises(TypeError, match="generator"):
        Network(2, generator=None)
    with pytest.raises(ValueError, match="truncation must be one of"):
        Network(2, generator=g, truncation="exact")
    net, other = _net(2), _net(2, seed=1)
    a, b = net.share(torch.zeros(3), owner=0), net.share(torch.zeros(4), owner=0)
    with pytest.raises(ValueError, match="same shape"):
        a + b
    with pytest.raises(ValueError, match="same shape"):
        a * b
    with pytest.raises(ValueError, match="different Network"):
        a + other.share(torch.zeros(3), owner=0)
    with pytest.raises(ValueError, match="different Network"):
        a * _net(3).share(torch.zeros(3), owner=0)
    with pytest.raises(ValueError, match="fixed-point range"):
        net.share(torch.tensor([1e10]), owner=0)
    with pytest.raises(ValueError, match=r"owner must be a party index in \[0, 1\]"):
        net.share(torch.zeros(3), owner=2)
    with pytest.raises(ValueError, match="matrices"):
        net.share(torch.zeros(2, 3), owner=0) @ net.share(torch.zeros(2, 3), owner=0)
    with pytest.raises(ValueError, match="w must be a matrix"):
        net.share(torch.zeros(2, 3), owner=0) @ torch.zeros(4, 2)
    with pytest.raises(ValueError, match="does not broadcast"):
        a * torch.ones(5)
    with pytest.raises(ValueError, match="at least 2 values"):
        mpc.polynomial(a, [1.0])


def test_errors_name_the_argument_at_fault():
    net = _net(2)
    a = net.share(torch.ones(3), owner=0)
    with pytest.raises(ValueError, match="^c must be finite"):
        a * float("nan")
    with pytest.raises(ValueError, match="^c must be finite"):
        a + float("inf")
    with pytest.raises(ValueError, match="^w must be finite"):
        a.reshape(1, 3) @ torch.full((3, 2), float("nan"))
    with pytest.raises(ValueError, match="^coefficients must be finite"):
        mpc.polynomial(a, [1.0, float("nan")])
    with pytest.raises(ValueError, match=r"shape \(2, 2\) does not fit the 3 elements"):
        a.reshape(2, 2)
    for bad in ("Online", "bogus"):
        with pytest.raises(ValueError, match="phase must be one of"):
            net.log.bytes_sent(0, phase=bad)
        with pytest.raises(ValueError, match="phase must be one of"):
            net.log.bytes_received(1, phase=bad)
    assert torch.allclose(net.reveal(3 - a), torch.full((3,), 2.0, dtype=torch.float64))  # __rsub__
