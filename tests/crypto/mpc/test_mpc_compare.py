"""Secure comparison and ReLU (mlsec_kit.crypto.mpc.compare)."""
import pytest
import torch

from mlsec_kit.crypto import mpc
from mlsec_kit.crypto.mpc import Network, compare, decode, encode


def _net(parties=2, seed=0, **kw):
    return Network(parties, generator=torch.Generator().manual_seed(seed), **kw)


def _fx(x):
    return decode(encode(x))


EDGES = torch.tensor([0.0, 2.0 ** -16, -(2.0 ** -16), 2.0 ** -17, 1.0, -1.0, 5e5, -5e5, 524287.0, -524287.0],
                     dtype=torch.float64)


@pytest.mark.parametrize("parties", [2, 3])
def test_sign_and_relu_are_exact(parties):
    g = torch.Generator().manual_seed(parties)
    x = torch.cat([EDGES, (torch.rand(500, generator=g, dtype=torch.float64) - 0.5) * 20])
    net = _net(parties)
    xs = net.share(x, owner=0)
    ge = net.reveal(mpc.greater_equal_zero(xs))
    assert torch.equal(ge, (_fx(x) >= 0).double())
    assert torch.equal(net.reveal(mpc.relu(xs)), torch.relu(_fx(x)))
    y = torch.zeros_like(x) + 0.5
    assert torch.equal(net.reveal(mpc.greater_equal(xs, net.share(y, owner=1))), (_fx(x) >= 0.5).double())


def test_the_carry_from_the_low_bits_matters():
    """Values whose low bits make c' < r' likely: dropping the comparison term [c' < r'] breaks the sign."""
    net = _net(2, seed=5)
    x = torch.linspace(-3, 3, 2001, dtype=torch.float64)
    b = net.reveal(mpc.greater_equal_zero(net.share(x, owner=0)))
    assert torch.equal(b, (_fx(x) >= 0).double())


def test_rounds_and_what_the_parties_receive():
    net = _net(2, seed=1)
    x = torch.tensor([-2.0, 3.0, 0.25], dtype=torch.float64)
    xs = net.share(x, owner=0)
    before = [len(p.received) for p in net.parties]
    r0 = net.log.rounds
    mpc.sign_bit(xs)
    assert net.log.rounds - r0 == compare.rounds() == 8
    for p, k in zip(net.parties, before):
        online = [m for m in p.received[k:] if m.phase == "online"]
        assert {m.tag for m in online} == {"compare.c", "beaver.e", "beaver.f"}
        for m in online:
            assert not any((m.payload == v).any() for v in (encode(x), *net.shares(xs)) if v.shape == m.payload.shape)


def test_opened_value_is_masked():
    """c = y + r with r uniform in [0, 2^62): the opened values for secrets 0 and 1000 look alike."""
    cs = {}
    for secret in (0.0, 1000.0):
        net = _net(2, seed=2)
        xs = net.share(torch.full((4000,), secret, dtype=torch.float64), owner=0)
        mpc.sign_bit(xs)
        c = [m.payload for m in net.parties[0].received if m.tag == "compare.c"][0] + \
            [m for m in net.parties[1].received if m.tag == "compare.c"][0].payload
        cs[secret] = c.double()
    # the difference of the means is far below the spread (2^62 / sqrt(12) / sqrt(4000))
    diff = (cs[0.0].mean() - cs[1000.0].mean()).abs().item()
    assert diff < 4 * 2.0 ** 62 / 12 ** 0.5 / 4000 ** 0.5
    assert cs[0.0].max() < 2.0 ** 63 and cs[0.0].min() >= 0  # no wrap


def test_relu_is_deterministic_for_a_seed():
    out = []
    for _ in range(2):
        net = _net(3, seed=9)
        out.append(net.reveal(mpc.relu(net.share(torch.linspace(-1, 1, 7), owner=2))))
    assert torch.equal(out[0], out[1])


def test_bad_input():
    net, other = _net(2), _net(2, seed=1)
    with pytest.raises(TypeError, match="SharedTensor"):
        mpc.relu(torch.zeros(3))
    with pytest.raises(ValueError, match="different Network"):
        mpc.greater_equal(net.share(torch.zeros(3), owner=0), other.share(torch.zeros(3), owner=0))
