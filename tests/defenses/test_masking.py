"""Gradient masking: defences that look strong against FGSM/PGD and fall under BPDA, EOT and black-box attacks."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from mlsec_kit.attacks.evasion import Oracle, fgsm, input_gradient, pgd, square_attack
from mlsec_kit.defenses.masking import (QuantizedInput, RandomizedInput, SaturatedSoftmax, bpda, eot_pgd)
from mlsec_kit.train import accuracy

EPS = 0.2


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _attack(eps=EPS, steps=20):
    return {"eps": eps, "alpha": 2.5 * eps / steps, "steps": steps}


# ---- the lesson: strong against the kit's attacks, broken by the adaptive ones ------------------------------
def test_quantized_input_looks_robust_under_pgd_and_falls_under_bpda(cnn, test_batch):
    x, y = test_batch
    defended = QuantizedInput(cnn, levels=4)
    assert accuracy(cnn, pgd(cnn, x, y, **_attack()), y) <= 0.1  # the undefended model is not robust
    clean = accuracy(defended, x, y)
    assert clean >= 0.9
    assert accuracy(defended, fgsm(defended, x, y, eps=EPS), y) == clean  # FGSM does not move at all
    assert accuracy(defended, pgd(defended, x, y, **_attack()), y) >= 0.9  # "robust" under PGD (masked)
    assert accuracy(defended, pgd(bpda(defended), x, y, **_attack()), y) <= 0.1  # measured 0.0


def test_quantized_input_falls_under_the_black_box_square_attack(cnn, test_batch):
    x, y = test_batch[0][:100], test_batch[1][:100]
    defended = QuantizedInput(cnn, levels=4)
    x_adv = square_attack(Oracle(defended), x, y, eps=0.3, max_queries=300, generator=_gen(0))
    # black-box beating white-box PGD is a red flag of Carlini et al.'s checklist: the gradient is masked
    assert accuracy(defended, x_adv, y) <= 0.2 < accuracy(defended, pgd(defended, x, y, **_attack(0.3)), y)


def test_saturated_softmax_vanishes_the_gradient_and_falls_under_bpda(cnn, test_batch):
    x, y = test_batch
    defended = SaturatedSoftmax(cnn, scale=1000.0)
    with torch.no_grad():
        assert torch.equal(defended(x).argmax(1), cnn(x).argmax(1))  # the same decisions
    grad = input_gradient(defended, x, y)
    correct = defended(x).argmax(1) == y
    assert (grad[correct] == 0).float().mean() > 0.9  # exactly zero, not merely small
    assert accuracy(defended, pgd(defended, x, y, **_attack()), y) >= 0.9
    assert accuracy(defended, pgd(bpda(defended), x, y, **_attack()), y) <= 0.1


def test_randomised_quantisation_needs_bpda_and_falls_under_eot_bpda(cnn, test_batch):
    x, y = test_batch[0][:100], test_batch[1][:100]
    defended = RandomizedInput(QuantizedInput(cnn, levels=4), noise=0.2, generator=_gen(1))
    assert accuracy(defended, pgd(defended, x, y, **_attack(steps=10)), y) >= 0.85  # zero gradients: no move
    x_adv = eot_pgd(bpda(defended), x, y, **_attack(steps=10), samples=8)
    assert accuracy(defended, x_adv, y) <= 0.2  # measured about 0.05


# ---- the pieces -------------------------------------------------------------------------------------------
def test_quantized_input_rounds_to_levels_and_has_zero_gradient(cnn, test_batch):
    x, y = test_batch
    q = QuantizedInput(cnn, levels=4)
    out = q.preprocess(torch.rand(50, 1, 8, 8, generator=_gen(0)))
    values = torch.unique(out)
    assert len(values) == 4 and torch.allclose(values, torch.tensor([0.0, 1 / 3, 2 / 3, 1.0]))
    assert (out - q.preprocess(out)).abs().max() < 1e-6  # idempotent
    assert torch.count_nonzero(input_gradient(q, x, y)) == 0
    assert torch.count_nonzero(input_gradient(bpda(q), x, y)) > 0


def test_bpda_keeps_the_defended_forward_pass(cnn, test_batch):
    x, _ = test_batch
    for defended in (QuantizedInput(cnn, levels=3), QuantizedInput(QuantizedInput(cnn, levels=8), levels=3)):
        with torch.no_grad():
            assert torch.allclose(bpda(defended)(x), defended(x))
    r = RandomizedInput(cnn, noise=0.2, generator=_gen(5))
    with torch.no_grad():
        first = bpda(r)(x)
        r.generator.manual_seed(5)
        assert torch.allclose(first, r(x))  # shares the defence's randomness


def test_bpda_gradient_is_the_gradient_at_the_preprocessed_point(cnn, test_batch):
    x, y = test_batch
    q = QuantizedInput(cnn, levels=4)
    assert torch.allclose(input_gradient(bpda(q), x, y), input_gradient(cnn, q.preprocess(x), y), atol=1e-6)


def test_randomized_input_is_random_bounded_and_reproducible(cnn, test_batch):
    x, _ = test_batch
    r = RandomizedInput(cnn, noise=0.1, generator=_gen(3))
    a, b = r.preprocess(x), r.preprocess(x)
    assert not torch.equal(a, b)
    assert (a - x).abs().max() <= 0.1 + 1e-6 and a.min() >= 0 and a.max() <= 1
    r.generator.manual_seed(3)
    assert torch.equal(r.preprocess(x), a)


def test_eot_averages_the_randomness_away(cnn, test_batch):
    """One step of EOT-PGD moves along the sign of the mean gradient; more samples agree better with it."""
    x, y = test_batch[0][:40], test_batch[1][:40]
    r = RandomizedInput(cnn, noise=0.3, generator=_gen(0))
    reference = eot_pgd(r, x, y, eps=0.05, alpha=0.05, steps=1, samples=256).sub(x).sign()

    def agreement(samples):
        step = eot_pgd(r, x, y, eps=0.05, alpha=0.05, steps=1, samples=samples).sub(x).sign()
        return (step == reference).float().mean().item()

    one, many = agreement(1), agreement(64)
    assert many > one + 0.1 and many > 0.8, (one, many)  # measured about 0.67 and 0.94


def test_eot_pgd_on_a_deterministic_model_is_pgd(cnn, test_batch):
    x, y = test_batch[0][:40], test_batch[1][:40]
    for norm, eps in (("linf", 0.1), ("l2", 1.0)):
        kw = dict(eps=eps, alpha=eps / 4, steps=5, norm=norm, random_start=True)
        ours = eot_pgd(cnn, x, y, samples=3, generator=_gen(2), **kw)
        theirs = pgd(cnn, x, y, generator=_gen(2), **kw)
        assert torch.allclose(ours, theirs, atol=1e-5)
        size = (ours - x).flatten(1).abs().amax(1) if norm == "linf" else (ours - x).flatten(1).norm(dim=1)
        assert size.max() <= eps + 1e-5 and ours.min() >= 0 and ours.max() <= 1


def test_eot_pgd_restores_the_model_mode(cnn, test_batch):
    x, y = test_batch[0][:10], test_batch[1][:10]
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(64, 10)).train()
    eot_pgd(model, x, y, eps=0.1, alpha=0.05, steps=2, samples=2)
    assert model.training


# ---- bad input --------------------------------------------------------------------------------------------
def test_bad_input_names_the_argument(cnn, test_batch):
    x, y = test_batch[0][:5], test_batch[1][:5]
    with pytest.raises(ValueError, match="levels"):
        QuantizedInput(cnn, levels=1)
    with pytest.raises(ValueError, match="noise"):
        RandomizedInput(cnn, noise=0.0)
    with pytest.raises(ValueError, match="scale"):
        SaturatedSoftmax(cnn, scale=-1.0)
    with pytest.raises(ValueError, match="clip_min"):
        QuantizedInput(cnn, clip_min=1.0, clip_max=0.0)
    with pytest.raises(TypeError, match="model"):
        QuantizedInput("not a model")
    with pytest.raises(TypeError, match="defended"):
        bpda(cnn)
    for kwargs, name in (({"samples": 0}, "samples"), ({"eps": -0.1}, "eps"), ({"steps": 0}, "steps"),
                         ({"norm": "l1"}, "norm"), ({"alpha": -1.0}, "alpha")):
        args = {"eps": 0.1, "alpha": 0.01, "steps": 2, **kwargs}
        with pytest.raises(ValueError, match=name):
            eot_pgd(cnn, x, y, **args)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_defences_and_attacks_follow_the_inputs_on_cuda(cnn, test_batch):
    model = copy.deepcopy(cnn).cuda()
    x, y = test_batch[0][:20].cuda(), test_batch[1][:20].cuda()
    defended = RandomizedInput(QuantizedInput(model, levels=4), noise=0.2, generator=_gen(0))
    x_adv = eot_pgd(bpda(defended), x, y, eps=0.1, alpha=0.05, steps=2, samples=2, random_start=True,
                    generator=_gen(0))
    assert x_adv.device == x.device and defended(x_adv).is_cuda
