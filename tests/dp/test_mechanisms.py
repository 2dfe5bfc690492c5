"""The mechanisms sample the law they claim (KS tests with fixed seeds, so they cannot flake), agree in
distribution with diffprivlib on the same parameters, and refuse bad privacy parameters."""
import math

import numpy as np
import pytest
import torch
from scipy import stats

from mlsec_kit import dp

N = 20_000


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("sensitivity, epsilon", [(1.0, 1.0), (2.5, 0.3), (0.1, 4.0)])
def test_laplace_follows_the_laplace_law_with_scale_sensitivity_over_epsilon(sensitivity, epsilon):
    b = sensitivity / epsilon
    z = dp.laplace(torch.full((N,), 3.0, dtype=torch.float64), sensitivity=sensitivity, epsilon=epsilon,
                   generator=gen(1)).numpy()
    assert stats.kstest(z, "laplace", args=(3.0, b)).pvalue > 0.01
    # the test has the power to see a 10% error in the scale, so passing above means something
    assert stats.kstest(z, "laplace", args=(3.0, 1.1 * b)).pvalue < 1e-4
    assert stats.kstest(z, "norm", args=(3.0, math.sqrt(2) * b)).pvalue < 1e-4


def test_gaussian_uses_the_classic_sigma_and_analytic_gaussian_the_analytic_one():
    x = torch.zeros(N, dtype=torch.float64)
    sigma_c = math.sqrt(2 * math.log(1.25 / 1e-5)) * 2.0 / 0.5
    z = dp.gaussian(x, sensitivity=2.0, epsilon=0.5, delta=1e-5, generator=gen(2)).numpy()
    assert stats.kstest(z, "norm", args=(0.0, sigma_c)).pvalue > 0.01
    assert stats.kstest(z, "norm", args=(0.0, 1.1 * sigma_c)).pvalue < 1e-4
    sigma_a = dp.analytic_gaussian_sigma(sensitivity=2.0, epsilon=3.0, delta=1e-5)
    z = dp.analytic_gaussian(x, sensitivity=2.0, epsilon=3.0, delta=1e-5, generator=gen(3)).numpy()
    assert stats.kstest(z, "norm", args=(0.0, sigma_a)).pvalue > 0.01
    assert stats.kstest(z, "norm", args=(0.0, 0.9 * sigma_a)).pvalue < 1e-4


def test_noise_is_independent_per_entry_and_keeps_shape_dtype_and_seed():
    x = torch.zeros(50, 40)
    a = dp.laplace(x, sensitivity=1.0, epsilon=1.0, generator=gen(4))
    b = dp.laplace(x, sensitivity=1.0, epsilon=1.0, generator=gen(4))
    c = dp.laplace(x, sensitivity=1.0, epsilon=1.0, generator=gen(5))
    assert a.shape == x.shape and a.dtype == torch.float32 and torch.equal(a, b) and not torch.equal(a, c)
    r = np.corrcoef(a[:, :-1].flatten().numpy(), a[:, 1:].flatten().numpy())[0, 1]
    assert abs(r) < 0.05
    scalar = dp.laplace(2.0, sensitivity=1.0, epsilon=1.0, generator=gen(0))
    assert scalar.shape == () and scalar.dtype == torch.float64
    assert dp.laplace(torch.arange(3), sensitivity=1.0, epsilon=1.0).dtype == torch.float64
    assert torch.equal(dp.laplace(x, sensitivity=0.0, epsilon=1.0), x)  # no sensitivity, no noise


def test_randomized_response_keeps_each_bit_with_probability_e_eps_over_one_plus_e_eps():
    eps = 0.7
    bits = (torch.arange(N) % 3 == 0).long()
    reports = dp.randomized_response(bits, epsilon=eps, generator=gen(6))
    assert reports.dtype == bits.dtype and set(reports.unique().tolist()) <= {0, 1}
    kept = int((reports == bits).sum())
    p = math.exp(eps) / (1 + math.exp(eps))
    assert stats.binomtest(kept, N, p).pvalue > 0.01
    assert stats.binomtest(kept, N, p + 0.02).pvalue < 1e-4
    # Warner's coin protocol (truth on heads, else a fair coin) keeps 3/4 of the bits: epsilon = ln 3
    assert dp.randomized_response_keep_probability(epsilon=math.log(3)) == pytest.approx(0.75)


def test_the_randomized_response_estimate_is_unbiased():
    eps, n, reps, true = 0.5, 400, 2000, 0.3
    bits = (torch.arange(n) < true * n).long()
    g = gen(7)
    estimates = torch.stack([dp.randomized_response_estimate(dp.randomized_response(bits, epsilon=eps, generator=g),
                                                              epsilon=eps) for _ in range(reps)])
    se = estimates.std() / math.sqrt(reps)
    assert abs(estimates.mean().item() - true) < 4 * se.item()
    naive = torch.stack([dp.randomized_response(bits, epsilon=eps, generator=g).double().mean() for _ in range(200)])
    assert abs(naive.mean().item() - true) > 0.05  # the raw fraction of 1s is biased towards 1/2


def test_exponential_mechanism_samples_its_probabilities_and_they_respect_epsilon():
    scores = torch.tensor([3.0, 1.0, 0.0, 2.5, 2.0])
    probs = dp.exponential_probabilities(scores, sensitivity=1.0, epsilon=1.0)
    expected = torch.softmax(scores.double() / 2, 0)
    assert torch.allclose(probs, expected)
    draws = dp.exponential(scores.expand(N, 5), sensitivity=1.0, epsilon=1.0, generator=gen(8))
    counts = torch.bincount(draws, minlength=5).numpy()
    assert stats.chisquare(counts, N * probs.numpy()).pvalue > 0.01
    # neighbouring scores (each moved by at most the sensitivity) change no probability by more than e^eps
    g = gen(9)
    for _ in range(200):
        s = torch.randn(6, generator=g) * 3
        t = s + (torch.rand(6, generator=g) * 2 - 1)
        for mono, t_ in ((False, t), (True, s + torch.rand(6, generator=g))):
            p = dp.exponential_probabilities(s, sensitivity=1.0, epsilon=0.8, monotonic=mono)
            q = dp.exponential_probabilities(t_, sensitivity=1.0, epsilon=0.8, monotonic=mono)
            assert (p / q).log().abs().max() <= 0.8 + 1e-9
    assert dp.exponential(scores, sensitivity=0.0, epsilon=1.0).item() == 0  # no noise: the best


def test_report_noisy_max_passes_an_empirical_privacy_audit_and_picks_clear_winners():
    counts = torch.tensor([10.0, 9.0, 8.0])
    neighbour = counts + torch.tensor([0.0, 1.0, 1.0])  # one added record counted by two queries: not monotone
    a = dp.report_noisy_max(counts.expand(60_000, 3), sensitivity=1.0, epsilon=1.0, generator=gen(10))
    b = dp.report_noisy_max(neighbour.expand(60_000, 3), sensitivity=1.0, epsilon=1.0, generator=gen(11))
    edges = torch.tensor([0.5, 1.5])
    assert dp.epsilon_lower_bound(a.double(), b.double(), edges=edges) <= 1.0
    assert dp.empirical_epsilon(a.double(), b.double(), edges=edges) > 0.1  # the neighbour does change the law
    clear = dp.report_noisy_max(torch.tensor([0.0, 1000.0, 0.0]).expand(100, 3), sensitivity=1.0, epsilon=1.0,
                                generator=gen(12))
    assert bool((clear == 1).all())


def test_kit_laplace_and_gaussian_agree_in_distribution_with_diffprivlib():
    mechanisms = pytest.importorskip("diffprivlib.mechanisms")
    n = 5000
    ours = dp.laplace(torch.full((n,), 1.5, dtype=torch.float64), sensitivity=2.0, epsilon=0.5,
                      generator=gen(13)).numpy()
    lap = mechanisms.Laplace(epsilon=0.5, sensitivity=2.0, random_state=13)
    theirs = np.array([lap.randomise(1.5) for _ in range(n)])
    assert stats.ks_2samp(ours, theirs).pvalue > 0.01
    assert stats.ks_2samp(ours, theirs * 1.15).pvalue < 1e-3
    ours = dp.analytic_gaussian(torch.zeros(n, dtype=torch.float64), sensitivity=1.0, epsilon=2.0, delta=1e-6,
                                generator=gen(14)).numpy()
    gauss = mechanisms.GaussianAnalytic(epsilon=2.0, delta=1e-6, sensitivity=1.0, random_state=14)
    theirs = np.array([gauss.randomise(0.0) for _ in range(n)])
    assert stats.ks_2samp(ours, theirs).pvalue > 0.01


def test_kit_exponential_mechanism_agrees_with_diffprivlib_choice_frequencies():
    mechanisms = pytest.importorskip("diffprivlib.mechanisms")
    utility = [4.0, 3.0, 1.0, 0.0]
    n = 6000
    ours = torch.bincount(dp.exponential(torch.tensor(utility).expand(n, 4), sensitivity=1.0, epsilon=1.5,
                                         generator=gen(15)), minlength=4).numpy()
    mech = mechanisms.Exponential(epsilon=1.5, sensitivity=1.0, utility=utility, random_state=15)
    theirs = np.bincount([mech.randomise() for _ in range(n)], minlength=4)
    assert stats.chi2_contingency(np.stack([ours, theirs])).pvalue > 0.01
    # and the test can tell a different epsilon apart
    mech = mechanisms.Exponential(epsilon=2.5, sensitivity=1.0, utility=utility, random_state=16)
    other = np.bincount([mech.randomise() for _ in range(n)], minlength=4)
    assert stats.chi2_contingency(np.stack([ours, other])).pvalue < 1e-4


@pytest.mark.parametrize("kwargs, message", [
    (dict(sensitivity=1.0, epsilon=0.0), r"epsilon must be in \(0, inf\), got 0"),
    (dict(sensitivity=1.0, epsilon=-1.0), r"epsilon must be in \(0, inf\)"),
    (dict(sensitivity=1.0, epsilon=float("inf")), r"epsilon must be in \(0, inf\)"),
    (dict(sensitivity=1.0, epsilon=float("nan")), r"epsilon must be a real number"),
    (dict(sensitivity=-0.5, epsilon=1.0), r"sensitivity must be a finite number >= 0, got -0.5"),
])
def test_laplace_refuses_bad_parameters_naming_the_argument_and_range(kwargs, message):
    with pytest.raises(ValueError, match=message):
        dp.laplace(torch.zeros(3), **kwargs)


@pytest.mark.parametrize("fn", [dp.gaussian, dp.analytic_gaussian])
@pytest.mark.parametrize("delta", [0.0, 1.0, -0.1, 1.5])
def test_gaussian_mechanisms_refuse_delta_outside_zero_one(fn, delta):
    with pytest.raises(ValueError, match=r"delta must be in \(0, 1\), got"):
        fn(torch.zeros(3), sensitivity=1.0, epsilon=0.5, delta=delta)


def test_other_mechanisms_refuse_bad_parameters():
    with pytest.raises(ValueError, match=r"epsilon must be in \(0, 1\]"):
        dp.gaussian(0.0, sensitivity=1.0, epsilon=2.0, delta=1e-5)  # classic calibration needs epsilon <= 1
    with pytest.raises(ValueError, match="epsilon"):
        dp.randomized_response(torch.ones(3, dtype=torch.long), epsilon=-1.0)
    with pytest.raises(ValueError, match="only 0 and 1"):
        dp.randomized_response(torch.tensor([0, 2]), epsilon=1.0)
    with pytest.raises(TypeError, match="bits must be a bool or integer"):
        dp.randomized_response(torch.tensor([0.0, 1.0]), epsilon=1.0)
    with pytest.raises(ValueError, match="sensitivity"):
        dp.exponential(torch.ones(3), sensitivity=-1.0, epsilon=1.0)
    with pytest.raises(ValueError, match="last dimension"):
        dp.report_noisy_max(torch.tensor(1.0), sensitivity=1.0, epsilon=1.0)
    with pytest.raises(TypeError, match="generator"):
        dp.laplace(0.0, sensitivity=1.0, epsilon=1.0, generator=0)


def test_monotone_exponential_mechanism_costs_two_epsilon_under_replace_one_and_is_refused_there():
    eps = 0.8
    counts = torch.tensor([0.0, 20.0, 3.0, 6.0])
    # replace one record: it leaves candidate 1 (which dominates the normaliser) and joins candidate 0, two
    # counts move in opposite directions, and candidate 0's probability grows by e^eps twice over
    replaced = counts + torch.tensor([1.0, -1.0, 0.0, 0.0])
    mono = [dp.exponential_probabilities(c, sensitivity=1.0, epsilon=eps, monotonic=True,
                                         neighbours="add_remove") for c in (counts, replaced)]
    assert (mono[0] / mono[1]).log().abs().max().item() == pytest.approx(2 * eps, abs=1e-3)  # the real cost
    plain = [dp.exponential_probabilities(c, sensitivity=1.0, epsilon=eps, neighbours="replace")
             for c in (counts, replaced)]
    assert (plain[0] / plain[1]).log().abs().max().item() <= eps + 1e-12
    for fn in (dp.exponential_probabilities, dp.exponential, dp.report_noisy_max):
        with pytest.raises(ValueError, match="monotonic=True needs neighbours='add_remove'"):
            fn(counts, sensitivity=1.0, epsilon=eps, monotonic=True, neighbours="replace")
    # under add/remove counts only go up together, and the shortcut is sound
    added = counts + torch.tensor([0.0, 1.0, 0.0, 0.0])
    p, q = (dp.exponential_probabilities(c, sensitivity=1.0, epsilon=eps, monotonic=True, neighbours="add_remove")
            for c in (counts, added))
    assert (p / q).log().abs().max().item() <= eps + 1e-12


def test_every_mechanism_accepts_a_declared_relation_and_refuses_an_unknown_one():
    g = gen(20)
    calls = [lambda nb: dp.laplace(1.0, sensitivity=1.0, epsilon=1.0, neighbours=nb, generator=g),
             lambda nb: dp.gaussian(1.0, sensitivity=1.0, epsilon=1.0, delta=1e-5, neighbours=nb, generator=g),
             lambda nb: dp.analytic_gaussian(1.0, sensitivity=1.0, epsilon=1.0, delta=1e-5, neighbours=nb,
                                             generator=g),
             lambda nb: dp.exponential(torch.ones(3), sensitivity=1.0, epsilon=1.0, neighbours=nb, generator=g),
             lambda nb: dp.report_noisy_max(torch.ones(3), sensitivity=1.0, epsilon=1.0, neighbours=nb, generator=g),
             lambda nb: dp.above_threshold(torch.ones(3), threshold=0.0, sensitivity=1.0, epsilon=1.0,
                                           neighbours=nb, generator=g)]
    for call in calls:
        for nb in dp.NEIGHBOURS:
            call(nb)
        with pytest.raises(ValueError, match="neighbours must be one of"):
            call("swap")
