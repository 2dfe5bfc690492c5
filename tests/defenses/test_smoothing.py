"""Randomized smoothing: the Clopper–Pearson bound, the noise counts, PREDICT, CERTIFY, and the certificate
holding against attacks on a small noise-trained model."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import binom, norm
from torch import nn

import mlsec_kit as mk
from mlsec_kit.attacks.evasion import pgd
from mlsec_kit.defenses.smoothing import (ABSTAIN, certified_accuracy, certify, clopper_pearson_lower,
                                          noise_augmented_fit, sample_counts, smoothed_predict)
from mlsec_kit.models import mlp
from mlsec_kit.train import fit

SIGMA = 0.5


# ---- models whose smoothed probabilities are known in closed form -----------------------------------------
class Intervals(nn.Module):
    """Class ``c`` where the first coordinate lies in ``[cuts[c-1], cuts[c])``: under N(0, sigma^2) noise
    around ``x`` the class probabilities are differences of normal CDFs, and the smoothed classifier of the
    two-class version is a half-space whose exact robust radius is the distance to its boundary."""

    def __init__(self, cuts):
        super().__init__()
        self.register_buffer("cuts", torch.tensor(cuts, dtype=torch.float32))

    def forward(self, x):
        z = x.flatten(1)[:, :1]
        cls = (z > self.cuts).sum(1)
        return F.one_hot(cls, len(self.cuts) + 1).float() * 10.0 + 0.0 * z


class Constant(nn.Module):
    """Always class ``c``, whatever the input: every noise sample counts for ``c``."""

    def __init__(self, c, k=4):
        super().__init__()
        self.c, self.k = c, k

    def forward(self, x):
        return F.one_hot(torch.full((len(x),), self.c), self.k).float() + 0.0 * x.flatten(1)[:, :1]


def at(mu, n_inputs=1, dim=5):
    """Inputs whose first coordinate is ``mu`` (the rest 0.5, which the toy models ignore)."""
    x = torch.full((n_inputs, dim), 0.5)
    x[:, 0] = mu
    return x


def gen(seed):
    return torch.Generator().manual_seed(seed)


def binomial_inversion_lower(k, n, alpha):
    """The smallest p with P(Binomial(n, p) >= k) >= alpha, by bisection on the binomial tail: the
    definition of the one-sided Clopper–Pearson bound, computed without the beta distribution."""
    if k == 0:
        return 0.0
    lo, hi = 0.0, k / n
    for _ in range(200):
        mid = (lo + hi) / 2
        if binom.sf(k - 1, n, mid) < alpha:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


# ---- Clopper–Pearson -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("k,n,alpha", [(1, 10, 0.05), (7, 10, 0.05), (10, 10, 0.001), (500, 1000, 0.001),
                                       (990, 1000, 0.01), (99_000, 100_000, 0.001), (3, 7, 0.3)])
def test_clopper_pearson_agrees_with_inverting_the_binomial_tail(k, n, alpha):
    bound = clopper_pearson_lower(k, n, alpha=alpha)
    assert bound == pytest.approx(binomial_inversion_lower(k, n, alpha), abs=1e-9)
    assert 0 < bound < k / n


def test_clopper_pearson_edge_cases_in_closed_form():
    assert clopper_pearson_lower(0, 50, alpha=0.05) == 0.0
    # all n successes: P(Bin(n, p) >= n) = p^n = alpha
    assert clopper_pearson_lower(200, 200, alpha=0.01) == pytest.approx(0.01 ** (1 / 200), rel=1e-12)
    # a smaller alpha (more confidence) gives a lower bound
    assert clopper_pearson_lower(80, 100, alpha=0.001) < clopper_pearson_lower(80, 100, alpha=0.1)


def test_clopper_pearson_covers_the_true_proportion():
    """Over repeated draws the bound lies below the true p at least 1 - alpha of the time (the point
    estimate k/n would be below it only about half the time)."""
    rng = np.random.default_rng(0)
    p, n, alpha = 0.7, 60, 0.1
    draws = rng.binomial(n, p, size=3000)
    covered = np.mean([clopper_pearson_lower(int(k), n, alpha=alpha) <= p for k in draws])
    assert covered >= 1 - alpha - 0.01
    assert np.mean(draws / n <= p) < 0.65


# ---- noise counts --------------------------------------------------------------------------------------------
def test_counts_follow_the_noise_distribution_and_restore_the_mode():
    model = Intervals([0.0]).train()
    x = torch.cat([at(0.25), at(-0.5), at(1.0)])
    counts = sample_counts(model, x, sigma=SIGMA, n=4000, batch_size=512, generator=gen(0))
    assert counts.dtype == torch.int64 and counts.shape == (3, 2)
    assert counts.sum(1).tolist() == [4000] * 3
    p_class1 = norm.cdf(x[:, 0].numpy() / SIGMA)  # P(x0 + noise > 0)
    assert np.allclose(counts[:, 1].numpy() / 4000, p_class1, atol=0.03)
    assert model.training  # mode restored


@pytest.mark.parametrize("dim", [3, 64])
def test_batched_counts_equal_one_sample_at_a_time(dim):
    """The same generator seed gives the same noise, and so the same counts, whatever the batch size."""
    torch.manual_seed(0)
    model = mlp((dim,), 4, hidden=(16,)).eval()
    x = torch.rand(3, dim)
    ref = sample_counts(model, x, sigma=1.0, n=60, batch_size=1, generator=gen(5))
    for batch_size in (7, 60, 1000):
        assert torch.equal(sample_counts(model, x, sigma=1.0, n=60, batch_size=batch_size, generator=gen(5)), ref)
    assert len(ref.unique(dim=0)) > 1 or ref.max() < 60  # the model is not constant on this noise


def test_same_generator_same_certificate_and_other_seed_differs():
    model = Intervals([0.0])
    x = torch.cat([at(0.3), at(0.6), at(0.1)])
    a = certify(model, x, sigma=SIGMA, n0=50, n=500, alpha=0.01, generator=gen(3))
    b = certify(model, x, sigma=SIGMA, n0=50, n=500, alpha=0.01, generator=gen(3))
    c = certify(model, x, sigma=SIGMA, n0=50, n=500, alpha=0.01, generator=gen(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


# ---- CERTIFY -------------------------------------------------------------------------------------------------
def test_radius_from_the_lower_bound_on_a_constant_model():
    """Every sample votes for class 2: k = n, so the point estimate 1 would give an infinite radius; the
    certificate is sigma * Phi^-1(alpha^(1/n)) instead."""
    x = torch.rand(4, 1, 8, 8)
    classes, radii = certify(Constant(2), x, sigma=0.25, n0=10, n=1000, alpha=0.001, generator=gen(0))
    assert classes.tolist() == [2] * 4
    expected = 0.25 * norm.ppf(0.001 ** (1 / 1000))
    assert torch.allclose(radii, torch.full((4,), expected, dtype=radii.dtype))
    assert math.isfinite(expected)


def test_radius_uses_the_clopper_pearson_bound_of_the_estimation_counts():
    """The radius is sigma * Phi^-1 of the lower bound computed from the n estimation samples (drawn after the
    n0 selection samples from the same generator), not of the point estimate n_A / n; and it stays below the
    exact robust radius of this smoothed half-space classifier (the distance mu to its boundary)."""
    model = Intervals([0.0])
    mus = [0.3, 0.5, 0.8]
    x = torch.cat([at(m) for m in mus])
    n0, n, alpha = 30, 3000, 0.001
    classes, radii = certify(model, x, sigma=SIGMA, n0=n0, n=n, alpha=alpha, batch_size=256, generator=gen(9))
    g = gen(9)
    sample_counts(model, x, sigma=SIGMA, n=n0, batch_size=256, generator=g)  # the selection draws
    counts = sample_counts(model, x, sigma=SIGMA, n=n, batch_size=256, generator=g)
    assert classes.tolist() == [1, 1, 1]
    for i, mu in enumerate(mus):
        k = int(counts[i, 1])
        lower = clopper_pearson_lower(k, n, alpha=alpha)
        assert radii[i].item() == pytest.approx(SIGMA * norm.ppf(lower), rel=1e-5)
        assert radii[i].item() < SIGMA * norm.ppf(k / n) - 1e-3  # strictly below the point-estimate radius
        assert 0.6 * mu < radii[i].item() < mu  # a sound and not vacuous certificate


def test_abstains_when_the_top_class_is_not_dominant():
    """Class 0 has probability 0.45 and the other two 0.275 each: the top class is clear (PREDICT returns it)
    but p_A_lower < 1/2, so CERTIFY abstains with radius 0."""
    cuts = [SIGMA * norm.ppf(0.45), SIGMA * norm.ppf(0.725)]
    model = Intervals(cuts)
    x = at(0.0, n_inputs=3)
    classes, radii = certify(model, x, sigma=SIGMA, n0=100, n=2000, alpha=0.001, generator=gen(1))
    assert classes.tolist() == [ABSTAIN] * 3 and radii.tolist() == [0.0] * 3
    assert smoothed_predict(model, x, sigma=SIGMA, n=2000, alpha=0.001, generator=gen(1)).tolist() == [0] * 3
    # the same model at an input where class 0 holds 0.8 of the mass is certified
    x_dominant = at(cuts[0] - SIGMA * norm.ppf(0.8))
    classes, radii = certify(model, x_dominant, sigma=SIGMA, n0=100, n=2000, alpha=0.001, generator=gen(1))
    assert classes.tolist() == [0] and radii.item() > 0


# ---- PREDICT -------------------------------------------------------------------------------------------------
def test_predict_abstains_on_a_tie_at_rate_alpha_and_answers_when_clear():
    model = Intervals([0.0])
    alpha = 0.05
    tie = smoothed_predict(model, at(0.0, n_inputs=300), sigma=SIGMA, n=200, alpha=alpha, generator=gen(2))
    answered = (tie != ABSTAIN).float().mean().item()
    assert answered <= alpha + 0.03  # a wrong-or-arbitrary answer at most about alpha of the time
    assert (tie == ABSTAIN).any()
    clear = smoothed_predict(model, torch.cat([at(0.4), at(-0.4)]), sigma=SIGMA, n=500, alpha=alpha, generator=gen(2))
    assert clear.tolist() == [1, 0]


def test_predict_tests_the_top_two_not_the_top_against_all():
    """Classes with probabilities 0.4, 0.35, 0.25: the top class is far from half of all samples, but the
    race between the top two is close, and that race is what PREDICT tests, so it mostly abstains."""
    model = Intervals([SIGMA * norm.ppf(0.4), SIGMA * norm.ppf(0.75)])
    pred = smoothed_predict(model, at(0.0, n_inputs=5), sigma=SIGMA, n=500, alpha=0.01, generator=gen(4))
    assert (pred == ABSTAIN).sum() >= 3
    assert set(pred.tolist()) <= {ABSTAIN, 0}


# ---- the certificate holds against attacks, on a small noise-trained model ------------------------------------
@pytest.fixture(scope="module")
def smoothed(digits):
    """An MLP trained with Gaussian noise (sigma 0.5) on the digits, and certificates for 40 test digits."""
    mk.seed_everything(0)
    model = mlp(digits.input_shape, digits.num_classes, hidden=(128,))
    history = noise_augmented_fit(model, digits.train_loader(batch_size=64, seed=0), sigma=SIGMA, epochs=15, lr=3e-3,
                                  generator=gen(0))
    x, y = digits.X_test[:40], digits.y_test[:40]
    classes, radii = certify(model, x, sigma=SIGMA, n0=100, n=2000, alpha=0.001, generator=gen(1))
    return model, history, x, y, classes, radii


def smoothed_attack(model, x, y, radii, *, sigma, steps, samples, generator):
    """L2 PGD on the smoothed classifier's Monte-Carlo class probabilities (EOT: the gradient of
    -log mean_j softmax(f(x + delta + noise_j))_y), each example in its own ball of radius radii[i]."""
    shape = (-1,) + (1,) * (x.dim() - 1)
    r = radii.view(shape)
    delta = torch.zeros_like(x)
    for _ in range(steps):
        delta.requires_grad_(True)
        noise = torch.randn((len(x) * samples, *x.shape[1:]), generator=generator) * sigma
        logits = model((x + delta).repeat_interleave(samples, 0) + noise)
        prob = logits.softmax(1).view(len(x), samples, -1).mean(1)
        loss = -prob.gather(1, y[:, None]).clamp_min(1e-12).log().sum()
        (grad,) = torch.autograd.grad(loss, delta)
        step = grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(shape)
        delta = (x + delta.detach() + 2.5 * r / steps * step).clamp(0, 1) - x
        delta = delta * (r / delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(shape)).clamp(max=1.0)
    return (x + delta).detach()


def test_noise_training_makes_the_base_classifier_accurate_under_noise(digits, smoothed):
    model, history, *_ = smoothed
    mk.seed_everything(0)
    plain = mlp(digits.input_shape, digits.num_classes, hidden=(128,))
    fit(plain, digits.train_loader(batch_size=64, seed=0), epochs=15, lr=3e-3)
    x_noisy = digits.X_test + torch.randn(digits.X_test.shape, generator=gen(7)) * SIGMA
    noisy_acc = (model(x_noisy).argmax(1) == digits.y_test).float().mean().item()
    plain_acc = (plain(x_noisy).argmax(1) == digits.y_test).float().mean().item()
    assert noisy_acc > plain_acc + 0.1
    assert history.epochs == 15 and history.seconds > 0 and not model.training


def test_certificate_holds_against_attacks_inside_the_radius(smoothed):
    """No L2 attack inside an example's certified radius changes the smoothed prediction: neither the kit's
    PGD on the base classifier nor EOT-PGD on the smoothed classifier's Monte-Carlo estimate. The smoothed
    probability of the certified class at the attack point stays above what the certificate promises,
    Phi(Phi^-1(p_A_lower) - ||delta|| / sigma). The same attack with a budget one sigma beyond the radius does
    flip predictions, so the attacks are strong enough for the check to mean something."""
    model, _, x, y, classes, radii = smoothed
    ok = classes != ABSTAIN
    assert ok.float().mean() >= 0.6 and certified_accuracy(classes, radii, y, 0.5) >= 0.3
    xc, cc, rc = x[ok], classes[ok], radii[ok]
    torch.manual_seed(0)
    eot = smoothed_attack(model, xc, cc, rc * 0.999, sigma=SIGMA, steps=20, samples=64, generator=gen(11))
    base = torch.cat([pgd(model, xc[i:i + 1], cc[i:i + 1], eps=rc[i].item() * 0.999, alpha=rc[i].item() / 8,
                          steps=20, norm="l2") for i in range(len(xc))])
    n = 4000
    for x_adv in (eot, base):
        dist = (x_adv - xc).flatten(1).norm(dim=1)
        assert (dist <= rc + 1e-5).all()
        counts = sample_counts(model, x_adv, sigma=SIGMA, n=n, generator=gen(12))
        assert torch.equal(counts.argmax(1), cc)
        p_lower_clean = torch.tensor([clopper_pearson_lower(int(k), 2000, alpha=0.001) for k in
                                      sample_counts(model, xc, sigma=SIGMA, n=2000, generator=gen(1)).gather(
                                          1, cc[:, None])[:, 0]])
        promised = norm.cdf(norm.ppf(p_lower_clean.numpy()) - dist.numpy() / SIGMA)
        p_adv = counts.gather(1, cc[:, None])[:, 0].numpy() / n
        assert (p_adv >= promised - 0.03).all()
    beyond = smoothed_attack(model, xc, cc, rc + SIGMA, sigma=SIGMA, steps=20, samples=64, generator=gen(11))
    flipped = sample_counts(model, beyond, sigma=SIGMA, n=500, generator=gen(12)).argmax(1) != cc
    assert flipped.float().mean() >= 0.5


def test_certified_accuracy_counts_correct_certificates_at_least_the_radius():
    classes = torch.tensor([1, 2, ABSTAIN, 0])
    radii = torch.tensor([0.5, 0.2, 0.0, 1.0])
    y = torch.tensor([1, 2, 2, 1])
    assert certified_accuracy(classes, radii, y, 0.0) == 0.5
    assert certified_accuracy(classes, radii, y, 0.3) == 0.25
    assert certified_accuracy(classes, radii, y, 0.6) == 0.0


# ---- bad input -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,name", [
    (dict(sigma=0.0), "sigma"), (dict(sigma=-1.0), "sigma"),
    (dict(alpha=0.0), "alpha"), (dict(alpha=1.0), "alpha"), (dict(alpha=1.5), "alpha"),
    (dict(n0=20, n=10), "n0"), (dict(n0=0), "n0"), (dict(n=0), "n"),
    (dict(batch_size=0), "batch_size"),
])
def test_certify_rejects_bad_arguments(kwargs, name):
    args = dict(sigma=0.5, n0=5, n=10, alpha=0.01, batch_size=4)
    args.update(kwargs)
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        certify(Constant(0), torch.rand(2, 3), **args)


@pytest.mark.parametrize("call,name", [
    (lambda: smoothed_predict(Constant(0), torch.rand(2, 3), sigma=0.5, n=10, alpha=0.0), "alpha"),
    (lambda: smoothed_predict(Constant(0), torch.rand(2, 3), sigma=-0.5, n=10, alpha=0.1), "sigma"),
    (lambda: sample_counts(Constant(0), torch.rand(2, 3), sigma=0.5, n=10, batch_size=0), "batch_size"),
    (lambda: sample_counts(Constant(0), torch.rand(2, 3), sigma=0.5, n=0), "n"),
    (lambda: clopper_pearson_lower(5, 4, alpha=0.1), "k"),
    (lambda: clopper_pearson_lower(1, 4, alpha=1.0), "alpha"),
    (lambda: clopper_pearson_lower(0, 0, alpha=0.1), "n"),
    (lambda: certified_accuracy(torch.tensor([0]), torch.tensor([1.0]), torch.tensor([0]), -0.1), "radius"),
    (lambda: noise_augmented_fit(Constant(0), [], sigma=0.0, epochs=1), "sigma"),
])
def test_bad_input_names_the_argument(call, name):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        call()


def test_non_tensor_input_is_a_type_error():
    with pytest.raises(TypeError, match="x"):
        certify(Constant(0), [[0.1, 0.2]], sigma=0.5, n0=1, n=2, alpha=0.1)
