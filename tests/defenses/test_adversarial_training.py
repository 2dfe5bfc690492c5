"""Adversarial training: robustness gained on the digits, each method's central step, timing, bad input."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import mlsec_kit as mk
from mlsec_kit.attacks.evasion import pgd
from mlsec_kit.defenses.adversarial_training import adversarial_fit, adversarial_training_step, inner_max
from mlsec_kit.models import small_cnn
from mlsec_kit.train import accuracy, fit

EPS = 0.1


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _fresh(digits, seed: int = 0):
    mk.seed_everything(seed)
    return small_cnn(digits.input_shape, digits.num_classes, width=8)


def _pgd_accuracy(model, x, y, eps=EPS):
    x_adv = pgd(model, x, y, eps=eps, alpha=2.5 * eps / 10, steps=10, random_start=True, generator=_gen(0))
    return accuracy(model, x_adv, y)


def _batch(digits, n=64):
    return digits.X_train[:n], digits.y_train[:n]


# ---- the point of it all ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def standard_and_robust(digits):
    """The same small CNN trained for 8 epochs on clean digits and with PGD-AT at eps 0.1 (about 2 s)."""
    standard = _fresh(digits)
    fit(standard, digits.train_loader(batch_size=64, seed=0), epochs=8, lr=3e-3)
    robust = _fresh(digits)
    history = adversarial_fit(robust, digits.train_loader(batch_size=64, seed=0), method="pgd", eps=EPS, epochs=8,
                              steps=5, lr=3e-3, generator=_gen(0))
    return standard, robust, history


def test_pgd_training_makes_the_model_measurably_more_robust(standard_and_robust, digits):
    standard, robust, _ = standard_and_robust
    x, y = digits.X_test[:300], digits.y_test[:300]
    assert accuracy(robust, x, y) >= 0.85  # still a useful classifier
    robust_acc, standard_acc = _pgd_accuracy(robust, x, y), _pgd_accuracy(standard, x, y)
    assert robust_acc >= standard_acc + 0.2, (robust_acc, standard_acc)  # measured about 0.72 vs 0.36


def test_history_records_training_time_and_epochs(standard_and_robust, digits):
    _, _, history = standard_and_robust
    assert history.seconds > 0 and history.epochs == 8 and len(history.train_acc) == 8
    assert all(0 <= a <= 1 for a in history.train_acc)
    plain = fit(_fresh(digits), digits.train_loader(batch_size=64, seed=0), epochs=1)
    assert plain.seconds > 0
    assert "seconds" not in plain.as_dict()  # as_dict stays the per-epoch curves


def test_eval_loader_and_determinism(digits):
    runs = []
    for _ in range(2):
        model = _fresh(digits, seed=3)
        h = adversarial_fit(model, digits.train_loader(batch_size=128, seed=0), method="fast", eps=EPS, epochs=2,
                            eval_loader=digits.test_loader(batch_size=256), generator=_gen(3), eps_warmup_epochs=1)
        runs.append(h)
    assert runs[0].train_loss == runs[1].train_loss and len(runs[0].test_acc) == 2


# ---- each method's central step --------------------------------------------------------------------------
def _manual_update(model, x_in, y, lr=0.05):
    """The update a correct AT step makes: one SGD step on the cross-entropy at ``x_in``; returns that loss."""
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    opt.zero_grad()
    loss = F.cross_entropy(model(x_in), y)
    loss.backward()
    opt.step()
    return loss.item()


@pytest.mark.parametrize("method", ["pgd", "fast"])
def test_step_descends_on_the_adversarial_point_not_the_clean_one(cnn, digits, method):
    x, y = _batch(digits)
    model, reference = copy.deepcopy(cnn), copy.deepcopy(cnn)
    steps = 1 if method == "fast" else 5
    alpha = 1.25 * EPS if method == "fast" else 2.5 * EPS / steps
    x_adv = pgd(reference, x, y, eps=EPS, alpha=alpha, steps=steps, random_start=True, generator=_gen(7))
    with torch.no_grad():
        clean_loss = F.cross_entropy(reference(x), y).item()
    expected = _manual_update(reference, x_adv, y)
    loss = adversarial_training_step(model, torch.optim.SGD(model.parameters(), lr=0.05), x, y, method=method,
                                     eps=EPS, steps=5, generator=_gen(7))
    assert loss == pytest.approx(expected, rel=1e-5)
    assert loss > clean_loss + 0.1  # the adversarial loss, visibly above the clean one
    for p, q in zip(model.parameters(), reference.parameters()):  # and the update is the one on x_adv
        assert torch.allclose(p, q, atol=1e-6)


def test_fast_at_starts_uniformly_inside_the_ball(cnn, digits):
    x, y = _batch(digits)
    x_adv = inner_max(cnn, x, y, method="fast", eps=EPS, generator=_gen(1))
    delta = x_adv - x
    assert delta.abs().max() <= EPS + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    # one step of 1.25 eps from x alone would put every free coordinate on the ball's faces (|delta| = eps)
    # or keep it at 0 where the range clips; the random start leaves many strictly inside
    inside = ((delta.abs() > 1e-6) & (delta.abs() < EPS - 1e-6)).float().mean().item()
    assert inside > 0.1
    again = inner_max(cnn, x, y, method="fast", eps=EPS, generator=_gen(1))
    other = inner_max(cnn, x, y, method="fast", eps=EPS, generator=_gen(2))
    assert torch.equal(x_adv, again) and not torch.equal(x_adv, other)


def _kl(logits_clean, logits_adv):
    return F.kl_div(F.log_softmax(logits_adv, 1), F.softmax(logits_clean, 1), reduction="batchmean")


def test_trades_inner_maximisation_raises_the_kl_inside_the_ball(cnn, digits):
    x, y = _batch(digits)
    x_adv = inner_max(cnn, x, y, method="trades", eps=EPS, steps=10, generator=_gen(0))
    assert (x_adv - x).abs().max() <= EPS + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    with torch.no_grad():
        start = (x + 0.001 * torch.randn(x.shape, generator=_gen(0))).clamp(0, 1)
        kl_start, kl_adv = _kl(cnn(x), cnn(start)).item(), _kl(cnn(x), cnn(x_adv)).item()
    assert kl_adv > 100 * max(kl_start, 1e-6) and kl_adv > 0.1


def test_trades_loss_is_clean_ce_plus_beta_kl(cnn, digits):
    x, y = _batch(digits)
    x_adv = inner_max(cnn, x, y, method="trades", eps=EPS, steps=5, generator=_gen(4))
    with torch.no_grad():
        ce, kl = F.cross_entropy(cnn(x), y).item(), _kl(cnn(x), cnn(x_adv)).item()
    params = {}
    for beta in (0.0, 6.0):
        model = copy.deepcopy(cnn)
        loss = adversarial_training_step(model, torch.optim.SGD(model.parameters(), lr=0.05), x, y, method="trades",
                                         eps=EPS, steps=5, beta=beta, generator=_gen(4))
        assert loss == pytest.approx(ce + beta * kl, rel=1e-4)
        params[beta] = torch.cat([p.flatten() for p in model.parameters()])
    assert kl > 0.05  # so the KL term changes the loss by beta * kl > 0.3 ...
    assert not torch.allclose(params[0.0], params[6.0], atol=1e-5)  # ... and the update with it
    with_beta_0 = copy.deepcopy(cnn)
    _manual_update(with_beta_0, x, y)  # beta = 0 is plain training on the clean batch
    assert torch.allclose(params[0.0], torch.cat([p.flatten() for p in with_beta_0.parameters()]), atol=1e-6)


def test_step_runs_the_attack_in_eval_mode_and_updates_in_train_mode(digits):
    x, y = _batch(digits, 32)
    modes = []
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    model.register_forward_hook(lambda m, i, o: modes.append(m.training))
    adversarial_training_step(model, torch.optim.SGD(model.parameters(), lr=0.1), x, y, method="pgd", eps=EPS,
                              steps=3, generator=_gen(0))
    assert modes == [False, False, False, True]


# ---- bad input -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, name", [
    ({"eps": -0.1}, "eps"), ({"method": "free"}, "method"), ({"steps": 0}, "steps"), ({"beta": -1.0}, "beta"),
    ({"alpha": -0.1}, "alpha"),
])
def test_step_rejects_bad_hyper_parameters(kwargs, name, digits):
    x, y = _batch(digits, 8)
    model = _fresh(digits)
    args = {"eps": EPS, **kwargs}
    with pytest.raises(ValueError, match=name):
        adversarial_training_step(model, torch.optim.SGD(model.parameters(), lr=0.1), x, y, **args)


@pytest.mark.parametrize("kwargs, name", [
    ({"eps": -0.1}, "eps"), ({"method": "free"}, "method"), ({"steps": 0}, "steps"), ({"epochs": 0}, "epochs"),
    ({"lr": 0.0}, "lr"), ({"optimizer": "rmsprop"}, "optimizer"), ({"eps_warmup_epochs": -1}, "eps_warmup_epochs"),
])
def test_fit_rejects_bad_hyper_parameters(kwargs, name, digits):
    args = {"eps": EPS, "epochs": 1, **kwargs}
    with pytest.raises(ValueError, match=name):
        adversarial_fit(_fresh(digits), digits.train_loader(batch_size=64, seed=0), **args)


def test_eps_warmup_ramps_eps_linearly(digits):
    """With one warm-up epoch the first epoch trains at eps / 2, the second at eps."""
    def run(eps, epochs, warmup):
        loader = digits.train_loader(batch_size=256, seed=0)
        return adversarial_fit(_fresh(digits, seed=5), loader, method="fast", eps=eps, epochs=epochs,
                               generator=_gen(5), eps_warmup_epochs=warmup).train_loss

    ramped = run(0.2, 1, 1)
    assert ramped == run(0.1, 1, 0) and ramped != run(0.2, 1, 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("method", ["fast", "pgd", "trades"])
def test_training_runs_on_cuda_with_a_cpu_generator(digits, method):
    model = _fresh(digits).cuda()
    h = adversarial_fit(model, digits.train_loader(batch_size=256, seed=0), method=method, eps=EPS, epochs=1,
                        steps=2, generator=_gen(0))
    assert h.seconds > 0 and next(model.parameters()).is_cuda
