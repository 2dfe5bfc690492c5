"""What each opening shows the parties: for every protocol that opens a value (Beaver's e and f, the square
pair's e, the dealer truncation's x - r, the comparison's c), the opened values must be uniform (over the ring, or
over [0, 2^62) for the comparison's statistical mask) and have the same distribution for two very different
secrets. Each check is shown to fail when the dealer's mask is replaced by zero (the step removed)."""
import numpy as np
import pytest
import torch
from scipy import stats

from mlsec_kit.crypto import mpc
from mlsec_kit.crypto.mpc import Network, encode
from mlsec_kit.crypto.mpc.network import Dealer

N = 256 * 60  # 60 expected draws per byte value


def _opened(net, tags):
    """The value opened under each tag, as a party learns it (2 parties, one opening: the two shares sent)."""
    out = {}
    for tag in tags:
        sent = [m.payload for m in net.log.messages if m.tag == tag and m.phase == "online"]
        assert len(sent) == 2, (tag, len(sent))
        out[tag] = (sent[0] + sent[1]).reshape(-1)
    return out


def _run(op, secret):
    net = Network(2, generator=torch.Generator().manual_seed(7), truncation="dealer" if op == "truncate" else "auto")
    x = torch.full((N,), secret, dtype=torch.float64)
    if op == "mul":
        xs, ys = net.share(x, owner=0), net.share(-x / 2, owner=1)
        mpc.beaver_product(xs, ys)
        return _opened(net, ["beaver.e", "beaver.f"])
    if op == "square":
        mpc.square(net.share(x, owner=0))
        return _opened(net, ["square.e"])
    if op == "matmul":
        xs = net.share(x.reshape(N // 64, 64), owner=0)
        ws = net.share(torch.full((64, 4), secret / 3, dtype=torch.float64), owner=1)
        mpc.matmul(xs, ws)
        return {"beaver.e": _opened(net, ["beaver.e"])["beaver.e"]}
    if op == "truncate":
        v = net.share(encode(x) * 2 ** 16, owner=0, encoded=True)  # a product at scale 2^(2f)
        mpc.truncate(v)
        return _opened(net, ["trunc.x_minus_r"])
    if op == "sign_bit":
        mpc.sign_bit(net.share(x, owner=0))
        return _opened(net, ["compare.c"])
    raise AssertionError(op)


def _bytes(v, op, top):
    if op == "sign_bit":  # c = y + r, r uniform in [0, 2^62): bits 54..61 are the mask's top byte
        return ((v >> 54) & 0xFF).numpy() if top else (v & 0xFF).numpy()
    return (((v >> 56) if top else v) & 0xFF).numpy()


def _checks(op):
    """The smallest p-value of: each opened value's top and low byte uniform, and the same for both secrets."""
    a, b = _run(op, 0.0), _run(op, 1000.0)
    ps = []
    for tag in a:
        for top in (True, False):
            ca, cb = (np.bincount(_bytes(v[tag], op, top), minlength=256)[:256] for v in (a, b))
            ps += [stats.chisquare(ca).pvalue, stats.chisquare(cb).pvalue,
                   stats.chi2_contingency(np.stack([ca, cb])[:, (ca + cb) > 0]).pvalue if ((ca + cb) > 0).sum() > 1
                   else 0.0]
    return min(ps)


OPS = ["mul", "square", "matmul", "truncate", "sign_bit"]


@pytest.mark.parametrize("op", OPS)
def test_opened_values_are_uniform_and_independent_of_the_secret(op):
    assert _checks(op) > 1e-4


def _zero_mask(method):
    """The dealer method with its random mask replaced by zero (everything else as before)."""
    def triple(self, shape_a, shape_b, *, matmul=False):
        a, b = torch.zeros(tuple(shape_a), dtype=torch.int64), torch.zeros(tuple(shape_b), dtype=torch.int64)
        d = self._deal({"triple.a": a, "triple.b": b, "triple.c": a @ b if matmul else a * b})
        return d["triple.a"], d["triple.b"], d["triple.c"]

    def square_pair(self, shape):
        a = torch.zeros(tuple(shape), dtype=torch.int64)
        d = self._deal({"square.a": a, "square.a2": a})
        return d["square.a"], d["square.a2"]

    def truncation_pair(self, shape, *, frac_bits):
        r = torch.zeros(tuple(shape), dtype=torch.int64)
        d = self._deal({"trunc.r": r, "trunc.r_shifted": r})
        return d["trunc.r"], d["trunc.r_shifted"]

    def comparison_mask(self, shape, *, low_bits, mask_bits):
        r = torch.zeros(tuple(shape), dtype=torch.int64)
        d = self._deal({"compare.r": r, "compare.r_high": r,
                        "compare.r_bits": torch.zeros(tuple(shape) + (low_bits,), dtype=torch.int64)})
        return d["compare.r"], d["compare.r_high"], d["compare.r_bits"]

    return {"triple": triple, "square_pair": square_pair, "truncation_pair": truncation_pair,
            "comparison_mask": comparison_mask}[method]


@pytest.mark.parametrize("op, method", [("mul", "triple"), ("square", "square_pair"), ("matmul", "triple"),
                                        ("truncate", "truncation_pair"), ("sign_bit", "comparison_mask")])
def test_the_check_fails_when_the_dealers_mask_is_removed(monkeypatch, op, method):
    monkeypatch.setattr(Dealer, method, _zero_mask(method))
    assert _checks(op) < 1e-12
