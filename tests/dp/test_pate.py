"""PATE: disjoint teachers, vote histograms, noisy argmax (Laplace and Gaussian), the data-independent and
data-dependent privacy costs against hand-computed formulas, a student, and bad input."""
import math

import numpy as np
import pytest
import torch
from scipy.special import erfc
from torch import nn

from mlsec_kit.dp import pate, renyi


def _blobs(n, generator):
    centres = torch.tensor([[0.0, 3.0], [3.0, -2.0], [-3.0, -2.0]])
    y = torch.randint(0, 3, (n,), generator=generator)
    return centres[y] + torch.randn(n, 2, generator=generator), y


def _linear():
    return nn.Linear(2, 3)


def test_partition_is_disjoint_equal_and_random():
    g = torch.Generator().manual_seed(0)
    parts = pate.partition(103, 10, generator=g)
    assert parts.shape == (10, 10)
    assert parts.unique().numel() == 100 and int(parts.min()) >= 0 and int(parts.max()) < 103
    assert not torch.equal(parts, pate.partition(103, 10, generator=g))          # fresh draws differ
    assert torch.equal(pate.partition(103, 10, generator=torch.Generator().manual_seed(0)),
                       pate.partition(103, 10, generator=torch.Generator().manual_seed(0)))


def test_teachers_train_on_disjoint_parts_and_student_learns_from_noisy_votes():
    g = torch.Generator().manual_seed(1)
    x, y = _blobs(600, g)
    teachers = pate.train_teachers(_linear, x, y, num_teachers=10, epochs=15, lr=0.05, batch_size=20, generator=g)
    members = teachers.members
    assert members.shape == (10, 600) and members.sum(1).eq(60).all() and members.sum(0).le(1).all()
    xq, yq = _blobs(300, g)
    votes = pate.teacher_votes(teachers, xq)
    assert votes.dtype == torch.int64 and votes.shape == (300, 3) and votes.sum(1).eq(10).all()
    # the same histogram from the teachers as separate modules
    assert torch.equal(pate.teacher_votes([teachers.model(t) for t in range(10)], xq), votes)
    plurality = votes.argmax(1)
    assert (plurality == yq).float().mean() > 0.9
    labels = pate.noisy_argmax(votes, mechanism="gaussian", scale=2.0, generator=g)
    assert 0.8 < (labels == plurality).float().mean() < 1.0
    student = pate.train_student(_linear, xq, labels, epochs=20, lr=0.05, batch_size=30, generator=g)
    xt, yt = _blobs(500, g)
    assert (student(xt).argmax(1) == yt).float().mean() > 0.9


def test_scale_to_zero_gives_the_plurality_for_both_mechanisms():
    g = torch.Generator().manual_seed(2)
    votes = torch.randint(0, 50, (200, 5), generator=g)
    votes[:, 2] += 1                 # no ties among the largest counts, in most rows
    top2 = votes.topk(2, dim=1).values
    rows = top2[:, 0] > top2[:, 1]
    for mechanism in pate.MECHANISMS:
        labels = pate.noisy_argmax(votes, mechanism=mechanism, scale=1e-6, generator=g)
        assert torch.equal(labels[rows], votes.argmax(1)[rows])
    assert not torch.equal(pate.noisy_argmax(votes, scale=30.0, generator=g)[rows], votes.argmax(1)[rows])


@pytest.mark.parametrize("mechanism,scale,gap", [("gaussian", 2.0, 2), ("gaussian", 4.0, 5), ("laplace", 2.0, 2),
                                                 ("laplace", 1.0, 3)])
def test_noise_distribution_matches_the_exact_two_class_error(mechanism, scale, gap):
    # with two classes the union bound is exact: Pr[answer != plurality] = q~
    n = 40_000
    votes = torch.tensor([[10 + gap, 10]]).repeat(n, 1)
    g = torch.Generator().manual_seed(3)
    wrong = (pate.noisy_argmax(votes, mechanism=mechanism, scale=scale, generator=g) == 1).double().mean().item()
    if mechanism == "gaussian":
        q = 0.5 * erfc(gap / (2 * scale))
        assert math.exp(pate.gnmax_log_q(votes[:1], sigma=scale)[0]) == pytest.approx(q, rel=1e-12)
    else:
        q = (2 + gap / scale) / (4 * math.exp(gap / scale))
        assert math.exp(pate.lnmax_log_q(votes[:1], scale=scale)[0]) == pytest.approx(q, rel=1e-12)
    assert wrong == pytest.approx(q, abs=4 * math.sqrt(q * (1 - q) / n))


def test_gnmax_log_q_is_the_union_bound_of_proposition_7_capped():
    votes = torch.tensor([[9, 1, 0], [4, 3, 3]])
    sigma = 2.0
    expected0 = 0.5 * erfc(8 / 4) + 0.5 * erfc(9 / 4)
    lq = pate.gnmax_log_q(votes, sigma=sigma)
    assert lq[0] == pytest.approx(math.log(expected0), rel=1e-12)
    assert lq[1] == pytest.approx(math.log(1 - 1 / 3))          # the union bound exceeds 1 - 1/C: capped


def _theorem6(q, sigma, lam):
    """Theorem 6 with Prop. 10's orders, written out once more by hand."""
    mu2 = sigma * math.sqrt(math.log(1 / q))
    mu1 = mu2 + 1
    e1, e2 = mu1 / sigma ** 2, mu2 / sigma ** 2
    assert lam < mu1 and mu2 > 1 and q * math.exp(e2) < 1
    assert q <= math.exp((mu2 - 1) * e2) / ((mu1 / (mu1 - 1)) * (mu2 / (mu2 - 1))) ** mu2
    a = (1 - q) / (1 - (q * math.exp(e2)) ** ((mu2 - 1) / mu2))
    b = math.exp(e1) / q ** (1 / (mu1 - 1))
    return math.log((1 - q) * a ** (lam - 1) + q * b ** (lam - 1)) / (lam - 1)


def test_gnmax_data_dependent_rdp_matches_theorem_6_by_hand():
    votes = torch.tensor([[9, 1, 0]])
    sigma = 2.0
    q = 0.5 * erfc(8 / 4) + 0.5 * erfc(9 / 4)
    got = pate.gnmax_rdp(votes, sigma=sigma, orders=[2.0, 3.0, 4.5])[0]
    expected = [min(_theorem6(q, sigma, lam), lam / sigma ** 2) for lam in (2.0, 3.0, 4.5)]
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    assert got[0] < 0.2 * 2 / sigma ** 2                     # far below the data-independent 2/sigma^2
    # orders at or beyond mu1 fall back to the data-independent bound
    # (Theorem 6 needs lambda < mu1: beyond it the formula would undercut lambda / sigma^2, and is not used)
    mu1 = sigma * math.sqrt(math.log(1 / q)) + 1
    beyond = np.array([mu1 + 0.5, 2 * mu1, 4 * mu1])
    mixed = pate.gnmax_rdp(votes, sigma=sigma, orders=[2.0, *beyond])[0]
    np.testing.assert_allclose(mixed, [expected[0], *(beyond / sigma ** 2)], rtol=1e-10)


def test_lnmax_rdp_matches_the_2017_bound_by_hand():
    votes = torch.tensor([[20, 2, 1]])
    b = 4.0
    eps0, gamma = 2 / b, 1 / b
    q = sum((2 + gamma * d) / (4 * math.exp(gamma * d)) for d in (18, 19))
    assert q <= 1 / (math.exp(eps0) + 1)
    for lam in (2.0, 6.0):
        dep = math.log((1 - q) * ((1 - q) / (1 - math.exp(eps0) * q)) ** (lam - 1)
                       + q * math.exp(eps0 * (lam - 1))) / (lam - 1)
        got = pate.lnmax_rdp(votes, scale=b, orders=[lam])[0, 0]
        assert got == pytest.approx(min(dep, eps0, eps0 ** 2 * lam / 2), rel=1e-10)
        assert got < min(eps0, eps0 ** 2 * lam / 2)


def test_data_dependent_never_exceeds_data_independent_and_is_smaller_on_consensus():
    g = torch.Generator().manual_seed(4)
    votes = torch.stack([torch.bincount(torch.randint(0, 10, (100,), generator=g), minlength=10)
                         for _ in range(50)])                                      # random, low-consensus votes
    consensus = torch.zeros(50, 10, dtype=torch.int64)
    consensus[:, 3] = 95
    consensus[:, 7] = 5
    for v in (votes, consensus):
        dep = pate.gnmax_rdp(v, sigma=20.0)
        ind = pate.gnmax_rdp(v, sigma=20.0, data_dependent=False)
        assert np.all(dep <= ind + 1e-15)
        assert np.all(pate.lnmax_rdp(v, scale=20.0) <= pate.lnmax_rdp(v, scale=20.0, data_dependent=False) + 1e-15)
    e_dep = pate.pate_epsilon(consensus, sigma=20.0, delta=1e-5)
    e_ind = pate.pate_epsilon(consensus, sigma=20.0, delta=1e-5, data_dependent=False)
    assert e_dep < 0.5 * e_ind
    assert pate.pate_epsilon(votes, sigma=20.0, delta=1e-5) == pytest.approx(e_ind, rel=1e-9)   # no consensus
    assert pate.pate_laplace_epsilon(consensus, scale=20.0, delta=1e-5) < \
        pate.pate_laplace_epsilon(consensus, scale=20.0, delta=1e-5, data_dependent=False)


def test_pate_epsilon_composes_the_answers_and_converts():
    votes = torch.tensor([[30, 10, 0]] * 7)
    orders = np.array(pate.PATE_ORDERS)
    per = pate.gnmax_rdp(votes[:1], sigma=8.0)[0]
    for conversion in ("balle2020", "mironov"):
        expected = renyi.rdp_to_dp(orders=orders, rdp=7 * per, delta=1e-6, method=conversion)[0]
        assert pate.pate_epsilon(votes, sigma=8.0, delta=1e-6, conversion=conversion) == pytest.approx(expected)
    # data-independent: k answers of the Gaussian with sensitivity sqrt(2), i.e. RDP k alpha / sigma^2
    ind = pate.pate_epsilon(votes, sigma=8.0, delta=1e-6, data_dependent=False)
    assert ind == pytest.approx(renyi.rdp_to_dp(orders=orders, rdp=7 * orders / 64, delta=1e-6)[0])
    assert ind == pytest.approx(renyi.rdp_to_dp(orders=orders, rdp=7 * renyi.gaussian_rdp(
        sigma=8.0, sensitivity=math.sqrt(2), orders=orders), delta=1e-6)[0])
    # LNMax data-independent: eps0 = 2/b per answer, and eps0^2 alpha / 2 (zCDP) at small orders
    np.testing.assert_allclose(pate.lnmax_rdp(votes[:1], scale=10.0, orders=[2.0, 50.0], data_dependent=False),
                               [[0.04, 0.2]])
    # Laplace: few answers are cheapest by plain composition of 2/b each
    assert pate.pate_laplace_epsilon(votes[:1], scale=10.0, delta=1e-6, data_dependent=False) == pytest.approx(0.2)


@pytest.mark.parametrize("call,match", [
    (lambda v: pate.noisy_argmax(v, scale=0.0), "scale"),
    (lambda v: pate.noisy_argmax(v, scale=-1.0, mechanism="laplace"), "scale"),
    (lambda v: pate.noisy_argmax(v, scale=1.0, mechanism="uniform"), "mechanism"),
    (lambda v: pate.noisy_argmax(v.double() + 0.5, scale=1.0), "integer counts"),
    (lambda v: pate.noisy_argmax(-v, scale=1.0), ">= 0"),
    (lambda v: pate.noisy_argmax(v[:, :1], scale=1.0), "C >= 2"),
    (lambda v: pate.pate_epsilon(v, sigma=0.0, delta=1e-5), "sigma"),
    (lambda v: pate.pate_epsilon(v, sigma=1.0, delta=1.0), "delta"),
    (lambda v: pate.pate_epsilon(v, sigma=1.0, delta=1e-5, conversion="x"), "method"),
    (lambda v: pate.gnmax_rdp(v, sigma=1.0, orders=[0.5]), "orders"),
    (lambda v: pate.partition(5, 6), "num_teachers"),
    (lambda v: pate.partition(5, 0), "num_teachers"),
    (lambda v: pate.train_teachers(_linear, torch.randn(4, 2), torch.zeros(4, dtype=torch.int64),
                                   num_teachers=5, epochs=1), "num_teachers"),
])
def test_bad_input_is_refused(call, match):
    v = torch.tensor([[3, 1], [2, 2]])
    with pytest.raises(ValueError, match=match):
        call(v)


def test_votes_are_not_modified_and_wrong_types_are_refused():
    v = torch.tensor([[3, 1, 0]])
    before = v.clone()
    pate.noisy_argmax(v, scale=1.0, generator=torch.Generator().manual_seed(0))
    pate.pate_epsilon(v, sigma=1.0, delta=1e-5)
    assert torch.equal(v, before)
    with pytest.raises(TypeError, match="votes"):
        pate.noisy_argmax([[3, 1]], scale=1.0)
    with pytest.raises(TypeError, match="teachers"):
        pate.teacher_votes(_linear(), torch.randn(3, 2))
