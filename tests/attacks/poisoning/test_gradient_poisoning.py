"""Gradient poisoning of L2 logistic regression: the learner is trained to optimality, the Hessian and the
implicit gradient are exact (finite differences agree), the ascent and the box projection matter, and the
poisons hurt more than random label flipping at the same rate; the black-box (surrogate) variant is weaker."""
import pytest
import torch
import torch.nn.functional as F

from degradation_data import L2, degradation_split
from mlsec_kit.attacks.poisoning.gradient import (_augment, _loss, _newton, fit_logistic_regression,
                                                  gradient_poisoning, implicit_poison_gradient, logreg_hessian)
from mlsec_kit.attacks.poisoning.label_flip import random_label_flip
from mlsec_kit.train import accuracy


def _small(n=60, k=3, classes=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g, dtype=torch.float64)
    y = (x[:, 0] + 0.5 * torch.randn(n, generator=g, dtype=torch.float64) > 0).long()
    if classes > 2:
        y = torch.where(x[:, 1] > 0.8, torch.full_like(y, 2), y)
    xp = torch.randn(k, 4, generator=g, dtype=torch.float64)
    yp = torch.randint(0, classes, (k,), generator=g)
    xv = torch.randn(40, 4, generator=g, dtype=torch.float64)
    yv = (xv[:, 0] > 0).long()
    return x, y, xp, yp, xv, yv


def _val_loss(x, y, xp, yp, xv, yv, l2, classes):
    theta = _newton(_augment(torch.cat([x, xp])), torch.cat([y, yp]), classes, l2, tol=1e-13)
    return F.cross_entropy(_augment(xv) @ theta.T, yv).item()


@pytest.mark.parametrize("classes", [2, 3])
def test_implicit_gradient_matches_finite_differences(classes):
    x, y, xp, yp, xv, yv = _small(classes=classes)
    l2 = 0.05
    grad = implicit_poison_gradient(x, y, xp, yp, x_val=xv, y_val=yv, l2=l2, num_classes=classes)
    h = 1e-5
    for i, j in [(0, 0), (1, 2), (2, 3)]:
        e = torch.zeros_like(xp)
        e[i, j] = h
        up, down = (_val_loss(x, y, xp + s * e, yp, xv, yv, l2, classes) for s in (1, -1))
        fd = (up - down) / (2 * h)
        assert abs(grad[i, j].item() - fd) <= 1e-5 + 1e-4 * abs(fd), (i, j, grad[i, j].item(), fd)
    assert grad.abs().max() > 1e-4  # a zero gradient would pass a loose check


def test_hessian_is_the_exact_second_derivative():
    x, y, *_ = _small(classes=3)
    xa = _augment(x)
    theta = torch.randn(3, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    auto = torch.autograd.functional.hessian(lambda t: _loss(t.view(3, 5), xa, y, 0.1), theta.flatten())
    assert torch.allclose(logreg_hessian(theta, xa, 0.1), auto, atol=1e-10)


def test_fit_logistic_regression_reaches_the_optimum():
    d = degradation_split()
    model = fit_logistic_regression(d["x"], d["y"], l2=L2)
    w, b = model[1].weight.double(), model[1].bias.double()
    theta = torch.cat([w, b[:, None]], 1).requires_grad_(True)
    (g,) = torch.autograd.grad(_loss(theta, _augment(d["x"]), d["y"], L2), theta)
    assert g.norm() < 1e-5  # float32 weights: the float64 optimum's gradient is ~1e-12
    assert accuracy(model, d["x_eval"], d["y_eval"]) > 0.9


def test_fit_agrees_with_scikit_learns_liblinear():
    # two softmax logits with L2 on both equal one logit w = theta_1 - theta_0 with penalty l2/4 ||w||^2, and
    # liblinear penalises the intercept too: its C is 2 / (l2 n)
    from sklearn.linear_model import LogisticRegression

    d = degradation_split()
    model = fit_logistic_regression(d["x"], d["y"], l2=L2)
    with torch.no_grad():
        w = (model[1].weight[1] - model[1].weight[0]).double()
        b = (model[1].bias[1] - model[1].bias[0]).item()
    sk = LogisticRegression(C=2 / (L2 * len(d["y"])), solver="liblinear", tol=1e-10, max_iter=10_000)
    sk.fit(d["x"].numpy(), d["y"].numpy())
    assert torch.allclose(w, torch.from_numpy(sk.coef_[0]), atol=1e-5)
    assert abs(b - sk.intercept_[0]) < 1e-5


def test_zero_steps_is_the_random_label_flip():
    d = degradation_split()
    a = gradient_poisoning(d["x"], d["y"], rate=0.1, x_val=d["x_val"], y_val=d["y_val"], steps=0, step_size=0.5,
                           generator=torch.Generator().manual_seed(4))
    b = random_label_flip(d["x"], d["y"], rate=0.1, generator=torch.Generator().manual_seed(4))
    assert all(torch.equal(u, v) for u, v in zip(a, b))


def _attack(rate, **kw):
    d = degradation_split()
    kw.setdefault("generator", torch.Generator().manual_seed(1))
    return gradient_poisoning(d["x"], d["y"], rate=rate, x_val=d["x_val"], y_val=d["y_val"], steps=50, step_size=0.5,
                              l2=L2, **kw)


def _eval_acc(xp, yp):
    d = degradation_split()
    return accuracy(fit_logistic_regression(xp, yp, l2=L2), d["x_eval"], d["y_eval"])


def test_contract_immutability_count_and_untouched_rows():
    d = degradation_split()
    x0, y0 = d["x"].clone(), d["y"].clone()
    xp, yp, idx = _attack(0.1)
    assert torch.equal(d["x"], x0) and torch.equal(d["y"], y0)
    assert len(idx) == round(0.1 * len(x0)) and torch.equal(idx, idx.sort().values)
    rest = torch.ones(len(x0), dtype=torch.bool)
    rest[idx] = False
    assert torch.equal(xp[rest], x0[rest]) and torch.equal(yp[rest], y0[rest])
    assert (yp[idx] != y0[idx]).all() and xp.dtype == x0.dtype and xp.shape == x0.shape
    assert (xp[idx] - x0[idx]).norm(dim=1).min() > 0  # every poison moved
    again = _attack(0.1)
    assert all(torch.equal(u, v) for u, v in zip((xp, yp, idx), again))


def test_poisons_stay_inside_the_attackers_data_range():
    d = degradation_split()
    xp, _, idx = gradient_poisoning(d["x"], d["y"], rate=0.1, x_val=d["x_val"], y_val=d["y_val"], steps=3,
                                    step_size=100.0, generator=torch.Generator().manual_seed(2))
    lo, hi = d["x"].min(0).values, d["x"].max(0).values
    assert (xp[idx] >= lo - 1e-6).all() and (xp[idx] <= hi + 1e-6).all()
    assert ((xp[idx] - lo).abs() < 1e-6).any() or ((xp[idx] - hi).abs() < 1e-6).any()  # the box was hit


def test_white_box_beats_random_flipping_and_the_black_box_is_weaker():
    """Averaged over 3 attack seeds (which rows are poisoned and their starting labels) on the fixed split: one
    seed and 72 evaluation rows are too few for an ordering (on seed 3 the black box beats the white box)."""
    d = degradation_split()
    clean = _eval_acc(d["x"], d["y"])
    acc = {"rand": [], "white": [], "black": []}
    for seed in (1, 2, 3):
        g = lambda: torch.Generator().manual_seed(seed)  # noqa: E731
        acc["rand"].append(_eval_acc(*random_label_flip(d["x"], d["y"], rate=0.1, generator=g())[:2]))
        acc["white"].append(_eval_acc(*_attack(0.1, generator=g())[:2]))
        acc["black"].append(_eval_acc(*_attack(0.1, surrogate=(d["x_s"], d["y_s"]), generator=g())[:2]))
    rand, white, black = (sum(v) / len(v) for v in (acc["rand"], acc["white"], acc["black"]))
    # measured (seed 0 split; 213 victim rows, 72 evaluation rows; rate 0.1 = 21 poisons, 50 steps of 0.5;
    # seeds 1-3): clean 0.972; random flip 0.958 / 0.931 / 0.944 (mean 0.944); white box 0.792 / 0.847 / 0.889
    # (mean 0.843); black box (surrogate half of the training data) 0.861 / 0.875 / 0.875 (mean 0.870)
    assert white < rand - 0.07, acc
    assert white <= black < rand, acc
    assert rand <= clean, acc


def test_ascent_raises_the_attackers_validation_loss():
    d = degradation_split()
    loss = {}
    for steps in (0, 20):
        xp, yp, _ = gradient_poisoning(d["x"], d["y"], rate=0.1, x_val=d["x_val"], y_val=d["y_val"], steps=steps,
                                       step_size=0.5, generator=torch.Generator().manual_seed(1))
        model = fit_logistic_regression(xp, yp, l2=L2)
        with torch.no_grad():
            loss[steps] = F.cross_entropy(model(d["x_val"]), d["y_val"]).item()
    assert loss[20] > 2 * loss[0]


def test_black_box_uses_only_the_surrogate_data():
    d = degradation_split()
    kw = dict(rate=0.1, x_val=d["x_val"], y_val=d["y_val"], steps=5, step_size=0.5, surrogate=(d["x_s"], d["y_s"]))
    a = gradient_poisoning(d["x"], d["y"], generator=torch.Generator().manual_seed(3), **kw)
    shuffled = d["x"][torch.randperm(len(d["x"]), generator=torch.Generator().manual_seed(9))]
    b = gradient_poisoning(shuffled, d["y"], generator=torch.Generator().manual_seed(3), **kw)
    assert torch.equal(a[2], b[2]) and torch.equal(a[0][a[2]], b[0][b[2]])  # the victim's rows never entered


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"rate": 1.2}, ValueError, "rate must be in \\[0, 1\\]"),
    ({"steps": -1}, ValueError, "steps must be an int >= 0"),
    ({"step_size": 0.0}, ValueError, "step_size must be > 0"),
    ({"l2": 0.0}, ValueError, "l2 must be > 0"),
    ({"x_val": torch.zeros(5, 3)}, ValueError, "y_val must have shape|x_val must have rows"),
    ({"surrogate": torch.zeros(3, 30)}, TypeError, "surrogate must be a pair"),
    ({"num_classes": 1}, ValueError, "num_classes must be an int >= 2"),
])
def test_bad_input(kwargs, exc, match):
    d = degradation_split()
    args = dict(rate=0.1, x_val=d["x_val"], y_val=d["y_val"], steps=1, step_size=0.5)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        gradient_poisoning(d["x"], d["y"], **args)
    with pytest.raises(ValueError, match="surrogate data has only 3 rows"):
        gradient_poisoning(d["x"], d["y"], rate=0.1, x_val=d["x_val"], y_val=d["y_val"], steps=1, step_size=0.5,
                           surrogate=(d["x_s"][:3], d["y_s"][:3]))


@pytest.mark.parametrize("num_classes", [0, 1, 2, 2.5, True])
def test_implicit_gradient_rejects_bad_num_classes(num_classes):
    x, y, xp, yp, xv, yv = _small(classes=3)  # labels up to 2, so 2 classes is too few
    with pytest.raises(ValueError, match="num_classes must be an int >= 2 above every label"):
        implicit_poison_gradient(x, y, xp, yp, x_val=xv, y_val=yv, l2=0.05, num_classes=num_classes)


def test_gradient_poisoning_rejects_num_classes_below_a_label():
    d = degradation_split()
    with pytest.raises(ValueError, match="num_classes must be an int >= 2 above every label"):
        gradient_poisoning(d["x"], d["y"], rate=0.1, x_val=d["x_val"], y_val=d["y_val"], steps=1, step_size=0.5,
                           num_classes=int(d["y"].max()))
