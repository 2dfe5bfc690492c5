"""Secure inference of logistic regression and a square-activation MLP (mlsec_kit.crypto.mpc.inference)."""
import copy

import pytest
import torch
from torch import nn

from mlsec_kit import models
from mlsec_kit.crypto.mpc import (Network, SecureLogReg, SecureMLP, error_bound, secure_predict,
                                  truncation_failure_probability)
from mlsec_kit.crypto.mpc.inference import SquareActivation
from mlsec_kit.data import load_digits
from mlsec_kit.train import fit


@pytest.fixture(scope="module")
def digits():
    return load_digits(seed=0)


def _train(model, data, epochs):
    torch.manual_seed(0)
    fit(model, data.train_loader(batch_size=64, shuffle=True, seed=0), epochs=epochs, lr=1e-2, progress=False)
    return model.eval()


@pytest.fixture(scope="module")
def logreg(digits):
    torch.manual_seed(0)
    return _train(models.logistic_regression(digits.input_shape, 10), digits, 10)


@pytest.fixture(scope="module")
def relu_mlp(digits):
    torch.manual_seed(0)
    return _train(models.mlp(digits.input_shape, 10, hidden=(16,)), digits, 10)


@pytest.fixture(scope="module")
def square_mlp(digits):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), SquareActivation(), nn.Linear(32, 10))
    return _train(model, digits, 10)


def _plain(model, x):
    return copy.deepcopy(model).double()(x.double()).detach()


@pytest.mark.parametrize("parties", [2, 3])
@pytest.mark.parametrize("private_weights", [True, False])
@pytest.mark.parametrize("which", ["logreg", "square_mlp", "relu_mlp"])
def test_secure_prediction_equals_plaintext_within_the_stated_tolerance(digits, request, which, parties,
                                                                        private_weights):
    model = request.getfixturevalue(which)
    x = digits.X_test[:120]
    x0, state0 = x.clone(), {k: v.clone() for k, v in model.state_dict().items()}
    res = secure_predict(model, x, parties=parties, generator=torch.Generator().manual_seed(1),
                         private_weights=private_weights)
    plain = _plain(model, x)
    err = (res.logits - plain).abs()
    assert res.logits.shape == plain.shape == res.tolerance.shape
    assert (err <= res.tolerance).all(), (err - res.tolerance).max()
    # the tolerance is small compared with the logits, and the error is not zero (fixed point is not exact)
    assert res.tolerance.max().item() < (0.2 if which == "square_mlp" else 0.01)
    assert err.max().item() > 0
    assert torch.equal(res.logits.argmax(1), plain.argmax(1))
    # inputs untouched
    assert torch.equal(x, x0) and all(torch.equal(v, state0[k]) for k, v in model.state_dict().items())
    assert res.rounds > 0 and res.bytes > 0 and res.seconds > 0
    # the dealer is needed for secret products and 3-party truncation; a public linear layer on 2 parties is local
    assert (res.offline_bytes > 0) == (private_weights or which != "logreg" or parties == 3)
    assert (res.setup_bytes > 0) == private_weights


def test_accuracy_is_that_of_the_plaintext_model(digits, square_mlp):
    x, y = digits.X_test, digits.y_test
    res = secure_predict(square_mlp, x, generator=torch.Generator().manual_seed(0))
    plain_acc = (_plain(square_mlp, x).argmax(1) == y).float().mean().item()
    assert plain_acc > 0.85
    assert (res.logits.argmax(1) == y).float().mean().item() == pytest.approx(plain_acc, abs=1 / len(y))


def test_rounds_and_bytes_follow_the_layers(digits, logreg, square_mlp):
    x = digits.X_test[:10]
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    lr2 = secure_predict(logreg, x, parties=2, generator=g())
    # input sharing, one Beaver matmul (e and f together), output: 3 rounds; local truncation is free
    assert lr2.rounds == 3
    # bytes online: input (10x64 to 1 party), e (10x64) and f (64x10) both ways, output (10x10) to the data owner
    assert lr2.bytes == 8 * (10 * 64 + 2 * (10 * 64 + 64 * 10) + 10 * 10)
    mlp2 = secure_predict(square_mlp, x, parties=2, generator=g())
    assert mlp2.rounds == 5  # input, matmul, square, matmul, output
    mlp3 = secure_predict(square_mlp, x, parties=3, generator=g())
    assert mlp3.rounds == 8  # each of the 3 products needs one more round to truncate with the dealer
    pub = secure_predict(square_mlp, x, parties=2, generator=g(), private_weights=False)
    assert pub.rounds == 3 and pub.bytes < mlp2.bytes  # public weights: only the square needs communication
    relu = nn.Sequential(nn.Flatten(), nn.Linear(64, 4), nn.ReLU(), nn.Linear(4, 10))
    # input, matmul, the ReLU (open the masked value, 6 scan levels for 35 bits, the final products, the product
    # with the bit), matmul, output
    assert secure_predict(relu, x, parties=2, generator=g()).rounds == 1 + 1 + (1 + 6 + 1 + 1) + 1 + 1


def test_square_module_of_the_kit_models_is_accepted(digits):
    make = getattr(models, "mlp")
    try:
        model = make(digits.input_shape, 10, hidden=(8,), activation="square")
    except TypeError:
        pytest.skip("mlsec_kit.models.mlp has no activation argument on this branch (chapter 12 adds it)")
    res = secure_predict(model.eval(), digits.X_test[:5], generator=torch.Generator().manual_seed(0))
    assert ((res.logits - _plain(model, digits.X_test[:5])).abs() <= res.tolerance).all()


def test_error_bound_grows_with_depth_and_shrinks_with_frac_bits(digits, logreg, square_mlp):
    x = digits.X_test[:20]
    assert (error_bound(square_mlp, x).max() > error_bound(logreg, x).max())
    assert (error_bound(logreg, x, frac_bits=20) < error_bound(logreg, x, frac_bits=16)).all()
    assert (error_bound(logreg, x, truncation="dealer") > error_bound(logreg, x, truncation="local")).all()
    res = secure_predict(logreg, x, generator=torch.Generator().manual_seed(0), frac_bits=20)
    assert ((res.logits - _plain(logreg, x)).abs() <= res.tolerance).all()
    assert res.tolerance.max() < error_bound(logreg, x, frac_bits=16).max()


def test_record_payloads_off_keeps_the_counts(digits, relu_mlp):
    x = digits.X_test[:6]
    a = secure_predict(relu_mlp, x, generator=torch.Generator().manual_seed(2))
    b = secure_predict(relu_mlp, x, generator=torch.Generator().manual_seed(2), record_payloads=False)
    assert torch.equal(a.logits, b.logits) and (a.rounds, a.bytes, a.offline_bytes) == (b.rounds, b.bytes,
                                                                                         b.offline_bytes)
    assert all(m.payload is None for m in b.log.messages) and all(m.payload is not None for m in a.log.messages)


def test_deterministic_for_a_seed(digits, square_mlp):
    a = secure_predict(square_mlp, digits.X_test[:8], parties=3, generator=torch.Generator().manual_seed(4))
    b = secure_predict(square_mlp, digits.X_test[:8], parties=3, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a.logits, b.logits) and a.bytes == b.bytes


def test_secure_model_classes(digits, logreg, square_mlp):
    net = Network(2, generator=torch.Generator().manual_seed(0))
    xs = net.share(digits.X_test[:4].double(), owner=1)
    out = net.reveal(SecureLogReg(logreg, net)(xs))
    assert ((out - _plain(logreg, digits.X_test[:4])).abs() <= error_bound(logreg, digits.X_test[:4])).all()
    with pytest.raises(ValueError, match="logistic regression"):
        SecureLogReg(square_mlp, net)
    SecureMLP(square_mlp, net)


def test_bad_input(digits, logreg):
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="layer of type Sigmoid"):
        secure_predict(nn.Sequential(nn.Linear(64, 3), nn.Sigmoid()), torch.zeros(2, 64), generator=g)
    with pytest.raises(ValueError, match="layer of type Conv2d"):
        secure_predict(nn.Sequential(nn.Conv2d(1, 2, 3)), digits.X_test[:2], generator=g)
    with pytest.raises(ValueError, match="parties must be an int >= 2"):
        secure_predict(logreg, digits.X_test[:2], parties=1, generator=g)
    with pytest.raises(ValueError, match="expects 64 features"):
        secure_predict(logreg, torch.zeros(2, 1, 4, 4), generator=g)
    with pytest.raises(ValueError, match="fixed-point range"):
        secure_predict(logreg, torch.full((2, 1, 8, 8), 1e12), generator=g)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        secure_predict(logreg, [[0.0] * 64], generator=g)
    with pytest.raises(TypeError, match="generator"):
        secure_predict(logreg, digits.X_test[:2], generator=None)
    with pytest.raises(ValueError, match="truncation"):
        error_bound(logreg, digits.X_test[:2], truncation="auto")


def test_error_bound_holds_for_worst_case_rounding():
    """Inputs just below half an ulp off the grid: encoding error ~2^-17, amplified 2|x| times by the square."""
    model = nn.Sequential(SquareActivation(), nn.Linear(1, 1, bias=False))
    with torch.no_grad():
        model[1].weight.fill_(1.0)
    x = torch.tensor([[100.0], [-250.0], [37.0]], dtype=torch.float64) + 2.0 ** -17 * (1 - 1e-6)
    for parties in (2, 3):
        res = secure_predict(model, x, parties=parties, generator=torch.Generator().manual_seed(0))
        err = (res.logits - _plain(model, x)).abs()
        assert (err <= res.tolerance).all()
        assert (err > 0.6 * res.tolerance).all()  # nearly tight here


def test_error_bound_counts_the_bias_rounding():
    on_grid, off_grid = (nn.Linear(1, 1) for _ in range(2))
    with torch.no_grad():
        for m, b in ((on_grid, 0.25), (off_grid, 0.25 + 2.0 ** -18)):
            m.weight.fill_(1.0)
            m.bias.fill_(b)
    x = torch.tensor([[1.0]])
    diff = error_bound(off_grid, x) - error_bound(on_grid, x)
    assert diff.item() == pytest.approx(2.0 ** -18, rel=1e-6)


# ------------------------------------------------------------------------- where the tolerance stops holding

def _lin(w):
    layer = nn.Linear(1, 1)
    with torch.no_grad():
        layer.weight.fill_(w)
        layer.bias.zero_()
    return layer


def _raw_secure(model, x, parties=2, seed=0):
    """The protocol without secure_predict's range check: what the parties would compute."""
    net = Network(parties, generator=torch.Generator().manual_seed(seed))
    return net.reveal(SecureMLP(model, net)(net.share(x.double())))


def test_relu_beyond_the_comparison_range_gets_an_infinite_bound_and_is_refused():
    # |x| >= 2^(COMPARE_BITS - 1 - f) = 2^19: the comparison reads the wrong sign; the bound must not claim 3e-5
    model = nn.Sequential(_lin(1.0), nn.ReLU(), _lin(1.0))
    x = torch.tensor([[6e5], [-6e5], [3e5], [-3e5]])
    bound = error_bound(model, x)
    assert torch.isinf(bound[:2]).all() and torch.isfinite(bound[2:]).all()
    err = (_raw_secure(model, x) - _plain(model, x)).abs()
    assert (err[:2] > 1e5).all() and (err[2:] <= bound[2:]).all()  # the inf was deserved; the rest holds
    with pytest.raises(ValueError, match="x is beyond the range.*ReLU.*524288"):
        secure_predict(model, x, generator=torch.Generator().manual_seed(0))
    ok = secure_predict(model, x[2:], generator=torch.Generator().manual_seed(0))
    assert ((ok.logits - _plain(model, x[2:])).abs() <= ok.tolerance).all()


def test_a_product_that_overflows_the_ring_gets_an_infinite_bound_and_is_refused():
    # (5e4)^2 = 2.5e9 >= 2^31: the square's ring value 2.5e9 * 2^32 wraps Z_2^64
    model = nn.Sequential(_lin(1.0), SquareActivation(), _lin(1.0))
    x = torch.tensor([[5e4], [1e3]])
    bound = error_bound(model, x)
    assert torch.isinf(bound[0]).all() and torch.isfinite(bound[1]).all()
    assert truncation_failure_probability(model, x)[0] == 1.0
    many = x[:1].expand(200, 1)
    wrong = ((_raw_secure(model, many) - _plain(model, many)).abs() > 1e8).sum().item()
    assert wrong > 50  # the inf was deserved: most of 200 sharings come out off by 2^32
    with pytest.raises(ValueError, match="x is beyond the range.*square of layer 1"):
        secure_predict(model, x, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("parties", [2, 3])
def test_the_truncation_failure_probability_is_the_measured_rate(parties):
    # x = 3e4: the square's ring value V = (3e4 * 2^16)^2 has |V| / 2^64 = 0.2095 (SecureML's failure probability,
    # for local and dealer truncation alike); measured over 4000 independent sharings it is that rate, and the
    # per-row union bound of the model (square, then a Linear of weight 1 whose product has the same V) is 2p
    x = torch.full((4000, 1), 3e4)
    net = Network(parties, generator=torch.Generator().manual_seed(3))
    sq = net.reveal(net.share(x.double()) * net.share(x.double()))
    failed = ((sq - 9e8).abs() > 1.0).double().mean().item()
    p = (3e4 * 2 ** 16) ** 2 / 2 ** 64
    assert abs(failed - p) < 5 * (p * (1 - p) / 4000) ** 0.5
    model = nn.Sequential(_lin(1.0), SquareActivation(), _lin(1.0))
    q = truncation_failure_probability(model, x[:3])
    assert torch.allclose(q, torch.full((3,), 2 * p + 3e4 * 2 ** 32 / 2 ** 64, dtype=torch.float64), rtol=1e-3)


def test_raising_frac_bits_makes_truncation_failures_likely(digits, logreg, square_mlp):
    # the price of precision: the failure probability grows as 2^(2f); negligible at the default f = 16 on digits,
    # a near-certain failure somewhere in the test set at f = 24 for the square MLP
    x = digits.X_test
    for model in (logreg, square_mlp):
        low = truncation_failure_probability(model, x, frac_bits=16)
        high = truncation_failure_probability(model, x, frac_bits=24)
        assert low.sum() < 1e-3 and torch.allclose(high, (low * 2 ** 16).clamp(max=1.0), rtol=1e-2)
    assert truncation_failure_probability(square_mlp, x, frac_bits=24).sum() > 1
    res = secure_predict(logreg, x[:4], generator=torch.Generator().manual_seed(0))
    assert torch.equal(res.failure_probability, truncation_failure_probability(logreg, x[:4]))
