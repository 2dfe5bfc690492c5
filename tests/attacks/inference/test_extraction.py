"""Model extraction (Tramèr et al. 2016): equation solving recovers a softmax regression exactly, up to the
softmax's shift invariance; rounding the API's answers degrades it; a learned substitute agrees more with more
queries."""
import warnings

import pytest
import torch

import mlsec_kit as mk
from mlsec_kit.attacks.evasion import Oracle
from mlsec_kit.attacks.inference.extraction import (agreement, agreement_curve, check_probabilities,
                                                     extract_by_training, extract_softmax_regression)
from mlsec_kit.attacks.inference.inversion import defended_query
from mlsec_kit.models import mlp

from trained_models import digits, digits_mlp, digits_softmax  # noqa: F401  (shared fixtures)


def _softmax_api(W, b):
    return lambda x: torch.softmax(x.to(W.dtype) @ W.T + b, 1)


def _linear(W, b):
    return lambda x: x.reshape(len(x), -1).double() @ W.T + b


def _centred(W, b):
    W, b = W.double(), b.double()
    return W - W.mean(0), b - b.mean()


@pytest.mark.parametrize("seed", range(5))
def test_random_softmax_regression_is_recovered(seed):
    g = torch.Generator().manual_seed(seed)
    d, K = 20, 5
    W, b = torch.randn(K, d, generator=g) * 3, torch.randn(K, generator=g)
    api = _softmax_api(W, b)
    W_hat, b_hat = extract_softmax_regression(api, num_features=d, num_classes=K, num_queries=4 * (d + 1),
                                              generator=g)
    assert W_hat.shape == (K, d) and b_hat.shape == (K,) and W_hat.dtype == torch.float64
    x = torch.rand(10_000, d, generator=g)
    assert agreement(api, _linear(W_hat, b_hat), x) >= 0.999
    Wc, bc = _centred(W, b)
    assert (W_hat - Wc).abs().max() < 1e-4 and (b_hat - bc).abs().max() < 1e-4


def test_digits_softmax_regression_650_queries_gives_full_agreement(digits, digits_softmax):
    """Tramèr et al. 2016: 650 queries extract the 64-feature, 10-class digits model with 100% agreement."""
    oracle = Oracle(digits_softmax)                      # counts the queries; inputs must lie in [0, 1]
    W_hat, b_hat = extract_softmax_regression(oracle, num_features=64, num_classes=10, num_queries=650,
                                              generator=torch.Generator().manual_seed(1))
    assert oracle.total == 650
    stolen = _linear(W_hat, b_hat)
    assert agreement(digits_softmax, stolen, digits.X_test) == 1.0
    uniform = torch.rand(5000, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    assert agreement(digits_softmax, stolen, uniform) == 1.0


def test_recovery_is_up_to_the_softmax_shift_invariance(digits_softmax):
    """Only differences between rows are identifiable: the attack returns the zero-sum representative."""
    layer = digits_softmax[1]
    W, b = layer.weight.detach(), layer.bias.detach()
    g = torch.Generator().manual_seed(3)
    W_hat, b_hat = extract_softmax_regression(_softmax_api(W, b), num_features=64, num_classes=10,
                                              num_queries=650, generator=g)
    Wc, bc = _centred(W, b)
    assert (W_hat - Wc).abs().max() < 1e-4 and (b_hat - bc).abs().max() < 1e-4   # equal up to a common row
    assert (W_hat - W.double()).abs().max() > 0.1                                # but not equal as raw weights
    assert W_hat.sum(0).abs().max() < 1e-9 and abs(b_hat.sum()) < 1e-9
    # A victim whose rows are all shifted by the same vector answers identically, and is extracted identically.
    shift = torch.randn(64, generator=g)
    W2, b2 = extract_softmax_regression(_softmax_api(W + shift, b + 5.0), num_features=64, num_classes=10,
                                        num_queries=650, generator=torch.Generator().manual_seed(3))
    assert (W2 - W_hat).abs().max() < 1e-3 and (b2 - b_hat).abs().max() < 1e-3


def test_too_few_queries_leave_the_system_underdetermined():
    g = torch.Generator().manual_seed(4)
    d, K = 20, 5
    W, b = torch.randn(K, d, generator=g) * 3, torch.randn(K, generator=g)
    Wc, _ = _centred(W, b)
    errors = {}
    for n in (d // 2, d + 1):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            W_hat, _ = extract_softmax_regression(_softmax_api(W, b), num_features=d, num_classes=K, num_queries=n,
                                                  generator=torch.Generator().manual_seed(5))
        errors[n] = (W_hat - Wc).abs().max().item()
        # below d + 1 queries the solve is under-determined, and says so; at d + 1 it is silent
        warned = any("under-determined" in str(w.message) for w in caught)
        assert warned == (n < d + 1)
    assert errors[d // 2] > 0.1 and errors[d + 1] < 1e-3            # d + 1 unknowns per class need d + 1 queries


def test_rounded_answers_lower_agreement_and_raise_the_parameter_error(digits, digits_softmax):
    layer = digits_softmax[1]
    Wc, _ = _centred(layer.weight.detach(), layer.bias.detach())
    agree, error = {}, {}
    for decimals in (None, 6, 4, 2, 1):
        api = (lambda x: torch.softmax(digits_softmax(x), 1)) if decimals is None else \
            (lambda x, d=decimals: torch.round(torch.softmax(digits_softmax(x), 1), decimals=d))
        with torch.no_grad():
            W_hat, b_hat = extract_softmax_regression(api, num_features=64, num_classes=10, num_queries=650,
                                                      sum_atol=0.5, generator=torch.Generator().manual_seed(1))
        agree[decimals] = agreement(digits_softmax, _linear(W_hat, b_hat), digits.X_test)
        error[decimals] = (W_hat - Wc).abs().max().item()
    # Measured (seed 1): errors ~3e-7, 0.013, 0.099, 2.3, 2.4; agreement 1, 1, 0.996, 0.82, 0.51.
    assert error[None] < 1e-5 < error[6] < error[4] < error[2]
    assert error[1] > 1.0
    assert agree[None] == 1.0 and agree[2] < 0.95 and agree[1] < agree[2] and agree[1] < 0.7


def test_underflowed_answers_are_skipped_not_propagated():
    """Probabilities that underflow to exactly 0 give no equation (log 0 = -inf) and do not poison the solve."""
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        W, b = torch.randn(4, 10, generator=g) * 40, torch.randn(4, generator=g)
        api = _softmax_api(W, b)
        assert (api(torch.rand(200, 10, generator=g)) == 0).any()
        W_hat, b_hat = extract_softmax_regression(api, num_features=10, num_classes=4, num_queries=200, generator=g)
        assert torch.isfinite(W_hat).all() and torch.isfinite(b_hat).all()
        assert agreement(api, _linear(W_hat, b_hat), torch.rand(5000, 10, generator=g)) >= 0.99


def test_learning_based_extraction_agrees_more_with_more_queries(digits, digits_mlp):
    mk.seed_everything(0)
    fresh = mlp(digits.input_shape, digits.num_classes, hidden=(64,))
    before = [p.clone() for p in fresh.parameters()]
    oracle = Oracle(digits_mlp)
    stolen = extract_by_training(oracle, digits.X_train, model=fresh, num_queries=100, epochs=100,
                                 generator=torch.Generator().manual_seed(0))
    assert oracle.total == 100                                          # the budget is exactly what was spent
    assert all(torch.equal(p, q) for p, q in zip(before, fresh.parameters()))   # a copy is trained
    curves = {}
    for output in ("scores", "label"):
        oracle = Oracle(digits_mlp, output=output)
        curves[output] = agreement_curve(oracle, digits.X_train, digits.X_test, model=fresh,
                                         budgets=(10, 100, 1000), reference=digits_mlp, epochs=100,
                                         generator=torch.Generator().manual_seed(0))
        assert oracle.total == 10 + 100 + 1000                          # evaluating against the model is free
    same = agreement_curve(Oracle(digits_mlp), digits.X_train, digits.X_test, model=fresh, budgets=(100,),
                           epochs=100, generator=torch.Generator().manual_seed(0))
    assert same == [agreement(digits_mlp, stolen, digits.X_test)]      # one point of the curve is one attack
    # Measured: scores 0.39, 0.95, 0.99; labels 0.35, 0.91, 0.99.
    for a10, a100, a1000 in curves.values():
        assert a10 < a100 < a1000 and a10 < 0.6 and a1000 >= 0.95


def test_agreement_curve_uses_nested_query_sets(digits, digits_mlp):
    """One permutation of the pool, budget n its first n inputs: a point of the curve does not depend on the
    other budgets or their order, and equals one extract_by_training run from the same generator state."""
    mk.seed_everything(0)
    fresh = mlp(digits.input_shape, digits.num_classes, hidden=(16,))
    curve = lambda budgets: agreement_curve(Oracle(digits_mlp), digits.X_train, digits.X_test,   # noqa: E731
                                            model=fresh, budgets=budgets, reference=digits_mlp, epochs=10,
                                            generator=torch.Generator().manual_seed(0))
    both, alone, reversed_ = curve((10, 100)), curve((100,)), curve((100, 10))
    assert both[1] == alone[0] and reversed_ == both[::-1]
    single = extract_by_training(Oracle(digits_mlp), digits.X_train, model=fresh, num_queries=10, epochs=10,
                                 generator=torch.Generator().manual_seed(0))
    assert both[0] == agreement(digits_mlp, single, digits.X_test)
    assert both[0] != both[1]   # the budgets do differ


def test_agreement_asks_modules_in_eval_mode_and_restores_their_mode():
    torch.manual_seed(0)
    noisy = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 32), torch.nn.Dropout(0.5),
                                torch.nn.Linear(32, 5)).train()
    x = torch.randn(500, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (noisy(x).argmax(1) != noisy(x).argmax(1)).any()   # in train mode two passes disagree
    assert agreement(noisy, noisy, x) == 1.0
    assert noisy.training and noisy[2].training                   # the caller's mode is restored
    noisy[1].eval()                                               # a mixed mode, restored module by module
    agreement(noisy, noisy, x)
    assert noisy.training and not noisy[1].training and noisy[2].training


def test_rounding_weakens_learning_based_extraction(digits, digits_mlp):
    """Rounding the returned probabilities (a defended_query with 0..3 decimals) starves a learned substitute of
    the soft labels' information: at 100 queries, over three seeds, agreement falls as the rounding coarsens.
    Measured (seeds 0-2, mean): 0.895, 0.935, 0.958, 0.964 at 0, 1, 2, 3 decimals; 0.964 unrounded. Every
    rounded API is accepted: at 0 decimals a row may be all zeros (no class at 0.5 or more)."""
    mk.seed_everything(0)
    fresh = mlp(digits.input_shape, digits.num_classes, hidden=(64,))

    def mean_agreement(decimals):
        out = []
        for seed in range(3):
            stolen = extract_by_training(defended_query(digits_mlp, decimals=decimals), digits.X_train,
                                         model=fresh, num_queries=100, epochs=100,
                                         generator=torch.Generator().manual_seed(seed))
            out.append(agreement(digits_mlp, stolen, digits.X_test))
        return sum(out) / len(out)

    agree = {d: mean_agreement(d) for d in (0, 1, 2, 3, None)}
    assert agree[0] < agree[1] < agree[2] <= agree[3] + 0.005, agree
    assert agree[0] <= agree[3] - 0.04, agree
    assert abs(agree[3] - agree[None]) <= 0.01, agree        # 3 decimals keep nearly all of it


def test_rounded_apis_pass_the_sum_check_and_scaled_ones_do_not(digits_softmax):
    pool = torch.rand(50, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    for decimals in (0, 1, 2):
        api = defended_query(digits_softmax, decimals=decimals)
        extract_by_training(api, pool, model=mlp((1, 8, 8), 10, hidden=(8,)), num_queries=50, epochs=1)
        W, _ = extract_softmax_regression(api, num_features=64, num_classes=10, num_queries=65,
                                          generator=torch.Generator().manual_seed(0))
        assert torch.isfinite(W).all()
    scaled = lambda x: 1.4 * torch.softmax(digits_softmax(x), 1).clamp(max=0.7)    # noqa: E731
    for call in (lambda **kw: extract_by_training(scaled, pool, model=mlp((1, 8, 8), 10), num_queries=5, **kw),
                 lambda **kw: extract_softmax_regression(scaled, num_features=64, num_classes=10, num_queries=65,
                                                         **kw)):
        with pytest.raises(ValueError, match="sum to 1"):
            call()
        call(sum_atol=1.0)        # a caller who knows the API rounds (or scales) says how far it may be off


def test_a_float64_api_trains_a_float32_substitute_as_a_float32_api_would(digits_softmax):
    pool = torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    fresh = mlp((1, 8, 8), 10, hidden=(8,))
    stolen = {dtype: extract_by_training(lambda x, t=dtype: torch.softmax(digits_softmax(x).to(t), 1), pool,
                                         model=fresh, num_queries=40, epochs=5,
                                         generator=torch.Generator().manual_seed(1))
              for dtype in (torch.float32, torch.float64)}
    p32, p64 = (list(stolen[t].parameters()) for t in (torch.float32, torch.float64))
    assert all(p.dtype == torch.float32 for p in p64)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(p32, p64))
    assert not all(torch.equal(a, b) for a, b in zip(p32, fresh.parameters()))   # it did train


def test_agreement_counts_matching_labels():
    x = torch.zeros(4, 2)
    first = lambda x: torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])   # noqa: E731
    second = lambda x: torch.tensor([0, 1, 1, 1])                                       # noqa: E731
    assert agreement(first, second, x) == 0.75
    assert agreement(first, first, x) == 1.0


def test_bad_input_names_the_argument(digits_softmax):
    api = _softmax_api(torch.randn(3, 4), torch.zeros(3))
    kw = dict(num_features=4, num_classes=3)
    with pytest.raises(ValueError, match="num_queries"):
        extract_softmax_regression(api, **kw, num_queries=0)
    with pytest.raises(ValueError, match="num_classes"):
        extract_softmax_regression(api, num_features=4, num_classes=1, num_queries=10)
    with pytest.raises(ValueError, match="labels"):
        extract_softmax_regression(lambda x: api(x).argmax(1), **kw, num_queries=10)
    with pytest.raises(ValueError, match="labels"):
        extract_softmax_regression(Oracle(digits_softmax, output="label"), num_features=64, num_classes=10,
                                   num_queries=65)
    with pytest.raises(ValueError, match="sum to 1"):
        extract_softmax_regression(lambda x: api(x) * 0.5, **kw, num_queries=10)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        extract_softmax_regression(lambda x: torch.log(api(x)), **kw, num_queries=10)   # log-probs
    with pytest.raises(ValueError, match="shape"):
        extract_softmax_regression(api, num_features=4, num_classes=5, num_queries=10)  # API has 3 classes
    with pytest.raises(ValueError, match="shape"):
        check_probabilities(torch.full((4, 2), 0.5), num_rows=5)
    with pytest.raises(TypeError, match="query"):
        extract_softmax_regression("not callable", **kw, num_queries=10)
    pool = torch.rand(20, 4)
    with pytest.raises(ValueError, match="num_queries"):
        extract_by_training(api, pool, model=mlp((4,), 3), num_queries=21)
    with pytest.raises(ValueError, match="num_queries"):
        extract_by_training(api, pool, model=mlp((4,), 3), num_queries=0)
    with pytest.raises(ValueError, match="query"):
        extract_by_training(lambda x: api(x)[:5], pool, model=mlp((4,), 3), num_queries=10)
    with pytest.raises(ValueError, match="budgets"):
        agreement_curve(api, pool, pool, model=mlp((4,), 3), budgets=(5, 0))
    with pytest.raises(ValueError, match="first and second"):
        agreement(lambda x: torch.zeros(3, 2), lambda x: torch.zeros(4, 2), torch.zeros(3, 2))
