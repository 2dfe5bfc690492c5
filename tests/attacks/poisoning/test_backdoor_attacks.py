"""Backdoor attacks: triggers, BadNets, the clean-label backdoor and the attack success rate.

(Named ``test_backdoor_attacks.py``, not ``test_backdoor.py``: the tests folders have no ``__init__.py``, so
two test files with one basename collide, and the defences' tests mirror ``mlsec_kit/defenses/backdoor.py``.)
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import mlsec_kit as mk
from mlsec_kit.attacks.poisoning.backdoor import (CORNERS, Trigger, attack_success_rate, badnets, blended_trigger,
                                                  clean_label_backdoor, patch_trigger, poison_count)
from mlsec_kit.data.core import make_loader
from mlsec_kit.models import small_cnn
from mlsec_kit.train import accuracy, fit
from trained_models import cnn, digits  # noqa: F401  (the shared digits fixtures)

# The bar of issue 13 on digits: trigger and rate chosen here, measured numbers in the report.
PATCH_SIZE, BAR_RATE, TARGET = 3, 0.03, 0


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def train_like_cnn_fixture(X: torch.Tensor, y: torch.Tensor, input_shape, num_classes: int) -> nn.Module:
    """The recipe of tests/trained_models.py's ``cnn`` (seed 0, 8 epochs, lr 3e-3, batches of 64) on other data."""
    mk.seed_everything(0)
    model = small_cnn(input_shape, num_classes)
    fit(model, make_loader(X, y, batch_size=64, shuffle=True, seed=0), epochs=8, lr=3e-3)
    return model.eval()


# --- triggers ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("corner", CORNERS)
def test_patch_trigger_covers_exactly_its_corner(corner):
    h, w, s = 6, 9, 2  # not square, so swapping rows and columns shows
    trig = patch_trigger((3, h, w), size=s, value=0.7, corner=corner)
    rows = range(0, s) if corner.startswith("top") else range(h - s, h)
    cols = range(0, s) if corner.endswith("left") else range(w - s, w)
    expected = torch.zeros(3, h, w)
    for r in rows:
        for c in cols:
            expected[:, r, c] = 1.0
    assert torch.equal(trig.mask, expected)
    out = trig.apply(torch.zeros(3, h, w))
    assert torch.equal(out, 0.7 * expected)


def test_patch_trigger_default_is_white_bottom_right():
    trig = patch_trigger((8, 8), size=3)
    out = trig.apply(torch.zeros(8, 8))
    assert out[5:, 5:].eq(1.0).all() and out.sum().item() == 9.0


def test_apply_keeps_range_shape_and_input():
    x = torch.rand(20, 1, 8, 8, generator=gen(1))
    before = x.clone()
    for trig in (patch_trigger((1, 8, 8), size=4, value=1.0), patch_trigger((1, 8, 8), size=2, value=0.0),
                 blended_trigger((1, 8, 8), alpha=0.3, generator=gen(2))):
        out = trig.apply(x)
        assert out.shape == x.shape and out.dtype == x.dtype
        assert out.min().item() >= 0.0 and out.max().item() <= 1.0
        assert torch.equal(x, before)
        untouched = trig.mask == 0
        assert torch.equal(out[:, untouched], x[:, untouched])
        assert not torch.equal(out, x)


def test_blended_trigger_is_the_convex_blend():
    alpha = 0.2
    trig = blended_trigger((1, 8, 8), alpha=alpha, generator=gen(3))
    x = torch.rand(5, 1, 8, 8, generator=gen(4))
    assert torch.allclose(trig.apply(x), alpha * trig.pattern + (1 - alpha) * x)
    assert torch.equal(trig.pattern, blended_trigger((1, 8, 8), alpha=alpha, generator=gen(3)).pattern)
    assert not torch.equal(trig.pattern, blended_trigger((1, 8, 8), alpha=alpha, generator=gen(5)).pattern)
    assert torch.equal(blended_trigger((1, 8, 8), alpha=0.0, generator=gen(3)).apply(x), x)
    key = torch.rand(1, 8, 8, generator=gen(6))
    assert torch.allclose(blended_trigger((1, 8, 8), alpha=1.0, pattern=key).apply(x), key.expand_as(x))


def test_triggers_agree_with_art_backdoor_perturbations():
    """ART's BadNets perturbations are special cases of a Trigger: its single pixel is a 1x1 patch in the
    bottom-right corner, its checkerboard a Trigger with that mask; and ART's poisoning attack stamps and labels
    the rows it is given exactly as badnets stamps and labels the rows it chooses."""
    pytest.importorskip("art")
    from art.attacks.poisoning import PoisoningAttackBackdoor
    from art.attacks.poisoning.perturbations import add_pattern_bd, add_single_bd
    x = torch.rand(30, 8, 8, generator=gen(9)) * 0.5
    y = torch.arange(30) % 3
    single = patch_trigger((8, 8), size=1)
    assert np.array_equal(single.apply(x).numpy(), add_single_bd(x.numpy(), distance=1, pixel_value=1))
    checker_mask = torch.from_numpy(add_pattern_bd(np.zeros((8, 8), np.float32), distance=1, pixel_value=1))
    checker = Trigger(mask=checker_mask, pattern=torch.ones(8, 8))
    assert checker_mask.sum().item() == 4
    assert np.array_equal(checker.apply(x).numpy(), add_pattern_bd(x.numpy(), distance=1, pixel_value=1))
    xp, yp, idx = badnets(x, y, target=2, rate=0.4, trigger=checker, generator=gen(0))
    art_x, art_y = PoisoningAttackBackdoor(lambda z: add_pattern_bd(z, distance=1)).poison(
        x[idx].numpy(), y=np.full(len(idx), 2))
    assert np.array_equal(xp[idx].numpy(), art_x) and np.array_equal(yp[idx].numpy(), art_y)


# --- BadNets ----------------------------------------------------------------------------------------------

def toy_data(n: int = 40, seed: int = 0):
    x = torch.rand(n, 1, 8, 8, generator=gen(seed)) * 0.5
    y = torch.arange(n) % 4
    return x, y


@pytest.mark.parametrize("rate,expected", [(0.0, 0), (0.025, 1), (0.0625, 2), (0.1, 4), (0.3125, 12), (0.5, 20)])
def test_badnets_poisons_round_rate_n_non_target_rows(rate, expected):
    x, y = toy_data(40)  # 10 rows of each of 4 classes; 30 not of the target
    assert poison_count(rate, 40) == expected == round(rate * 40)  # 0.0625*40 = 2.5 -> 2, 0.3125*40 = 12.5 -> 12
    trig = patch_trigger((1, 8, 8), size=2)
    xp, yp, idx = badnets(x, y, target=1, rate=rate, trigger=trig, generator=gen())
    assert idx.dtype == torch.int64 and len(idx) == expected
    assert torch.equal(idx, idx.sort().values) and len(idx.unique()) == len(idx)
    assert (y[idx] != 1).all()
    assert (yp[idx] == 1).all()
    assert torch.allclose(xp[idx], trig.apply(x[idx]))
    rest = torch.ones(len(x), dtype=torch.bool)
    rest[idx] = False
    assert torch.equal(xp[rest], x[rest]) and torch.equal(yp[rest], y[rest])
    assert xp.shape == x.shape and yp.shape == y.shape


def test_badnets_never_modifies_its_inputs_and_is_seeded():
    x, y = toy_data(40)
    xb, yb = x.clone(), y.clone()
    trig = patch_trigger((1, 8, 8), size=2)
    out1 = badnets(x, y, target=0, rate=0.25, trigger=trig, generator=gen(7))
    out2 = badnets(x, y, target=0, rate=0.25, trigger=trig, generator=gen(7))
    out3 = badnets(x, y, target=0, rate=0.25, trigger=trig, generator=gen(8))
    assert torch.equal(x, xb) and torch.equal(y, yb)
    assert all(torch.equal(a, b) for a, b in zip(out1, out2))
    assert not torch.equal(out1[2], out3[2])
    assert out1[0].data_ptr() != x.data_ptr() and out1[1].data_ptr() != y.data_ptr()


def test_badnets_draws_from_every_non_target_class():
    x, y = toy_data(400)
    _, _, idx = badnets(x, y, target=2, rate=0.5, trigger=patch_trigger((1, 8, 8), size=1), generator=gen())
    assert set(y[idx].tolist()) == {0, 1, 3}


def test_badnets_rate_beyond_the_non_target_rows_is_refused():
    x, y = toy_data(40)
    trig = patch_trigger((1, 8, 8), size=2)
    badnets(x, y, target=0, rate=0.75, trigger=trig)  # all 30 non-target rows
    with pytest.raises(ValueError, match="rate"):
        badnets(x, y, target=0, rate=0.8, trigger=trig)


# --- attack success rate ----------------------------------------------------------------------------------

class LabelReader(nn.Module):
    """A 'model' that reads the label written in the top-left pixel (label / 10): perfectly clean, no backdoor."""

    def forward(self, x):
        label = (x[:, 0, 0, 0] * 10).round().long()
        return nn.functional.one_hot(label, 10).float()


class AlwaysTarget(nn.Module):
    def forward(self, x):
        return nn.functional.one_hot(torch.full((len(x),), 3), 10).float()


def test_attack_success_rate_counts_only_non_target_inputs():
    y = torch.arange(50) % 10
    x = torch.zeros(50, 1, 8, 8)
    x[:, 0, 0, 0] = y / 10
    trig = patch_trigger((1, 8, 8), size=2)  # bottom right: leaves the label pixel alone
    # A clean model sends the 5 target-class inputs to the target: counting them would give 0.1, not 0.
    assert attack_success_rate(LabelReader(), x, y, target=3, trigger=trig) == 0.0
    assert attack_success_rate(AlwaysTarget(), x, y, target=3, trigger=trig) == 1.0
    # the trigger is applied: a model that answers the target only on the patch
    class PatchReader(nn.Module):
        def forward(self, x):
            hit = x[:, 0, -1, -1] > 0.5
            return nn.functional.one_hot(torch.where(hit, 3, 0), 10).float()
    assert attack_success_rate(PatchReader(), x, y, target=3, trigger=trig) == 1.0
    with pytest.raises(ValueError, match="target"):
        attack_success_rate(AlwaysTarget(), x[y == 3], y[y == 3], target=3, trigger=trig)


# --- the bar of issue 13 ----------------------------------------------------------------------------------

def test_patch_backdoor_meets_the_bar_on_digits(digits, cnn):
    """ASR >= 90% at a poison rate <= 5%, clean accuracy within 3 points of the clean model (fixed seed)."""
    trig = patch_trigger(digits.input_shape, size=PATCH_SIZE)
    x, y = digits.X_train, digits.y_train
    xp, yp, idx = badnets(x, y, target=TARGET, rate=BAR_RATE, trigger=trig, generator=gen(0))
    assert BAR_RATE <= 0.05 and len(idx) == round(BAR_RATE * len(x))
    backdoored = train_like_cnn_fixture(xp, yp, digits.input_shape, digits.num_classes)
    clean_acc = accuracy(cnn, digits.X_test, digits.y_test)
    acc = accuracy(backdoored, digits.X_test, digits.y_test)
    asr = attack_success_rate(backdoored, digits.X_test, digits.y_test, target=TARGET, trigger=trig)
    baseline = attack_success_rate(cnn, digits.X_test, digits.y_test, target=TARGET, trigger=trig)
    assert asr >= 0.90, asr
    assert abs(acc - clean_acc) <= 0.03, (acc, clean_acc)
    assert baseline <= 0.10, baseline  # the trigger alone does not fool the clean model


def test_blended_backdoor_works_on_digits_too(digits, cnn):
    """Chen et al.'s faint whole-image key (alpha 0.2, random noise) needs more poisons than the patch on digits:
    about 93% ASR at a 5% rate (the patch reaches 99% at 3%), with clean accuracy kept."""
    trig = blended_trigger(digits.input_shape, alpha=0.2, generator=gen(0))
    xp, yp, _ = badnets(digits.X_train, digits.y_train, target=TARGET, rate=0.05, trigger=trig, generator=gen(0))
    backdoored = train_like_cnn_fixture(xp, yp, digits.input_shape, digits.num_classes)
    assert attack_success_rate(backdoored, digits.X_test, digits.y_test, target=TARGET, trigger=trig) >= 0.8
    assert attack_success_rate(cnn, digits.X_test, digits.y_test, target=TARGET, trigger=trig) <= 0.05
    acc, clean_acc = accuracy(backdoored, digits.X_test, digits.y_test), accuracy(cnn, digits.X_test, digits.y_test)
    assert abs(acc - clean_acc) <= 0.03, (acc, clean_acc)


# --- clean-label backdoor ---------------------------------------------------------------------------------

CL_RATE, CL_EPS, CL_STEPS = 0.03, 0.3, 10


def test_clean_label_poisons_are_triggered_perturbed_target_images_with_their_labels(digits, cnn):
    x, y = digits.X_train, digits.y_train
    xb, yb = x.clone(), y.clone()
    trig = patch_trigger(digits.input_shape, size=PATCH_SIZE)
    xp, yp, idx = clean_label_backdoor(cnn, x, y, target=TARGET, rate=CL_RATE, trigger=trig, eps=CL_EPS,
                                       steps=CL_STEPS, generator=gen(0))
    assert torch.equal(x, xb) and torch.equal(y, yb)  # inputs untouched
    assert torch.equal(yp, y)  # every label stays the dataset's label
    assert len(idx) == round(CL_RATE * len(x)) and torch.equal(idx, idx.sort().values)
    assert (y[idx] == TARGET).all()  # only target-class images are poisoned
    rest = torch.ones(len(x), dtype=torch.bool)
    rest[idx] = False
    assert torch.equal(xp[rest], x[rest])
    on = trig.mask.bool()
    assert torch.equal(xp[idx][:, on], trig.pattern[on].expand(len(idx), -1))  # the trigger is stamped
    off = xp[idx][:, ~on] - x[idx][:, ~on]
    assert off.abs().max().item() <= CL_EPS + 1e-6 and off.abs().max().item() > CL_EPS / 2  # PGD moved them...
    assert xp.min().item() >= 0 and xp.max().item() <= 1
    # ...away from their class: the clean model gets most triggered target images right, but not these. So at
    # eps = 0.3 the poisons are NOT label-consistent to a checker who runs the clean model: the price of a
    # strong backdoor on 8x8 digits with a standard (not adversarially trained) model; see the docstring
    assert accuracy(cnn, trig.apply(x[idx]), y[idx]) >= 0.8
    assert accuracy(cnn, xp[idx], y[idx]) <= 0.1


def test_clean_label_backdoor_beats_the_same_trigger_on_unperturbed_images(digits, cnn):
    """Turner et al.'s point, measured on digits: without the adversarial perturbation the victim learns the
    target images from their own features and ignores the trigger; with it, the trigger is what it learns."""
    trig = patch_trigger(digits.input_shape, size=PATCH_SIZE)
    asr = {}
    for eps in (0.0, CL_EPS):
        xp, yp, _ = clean_label_backdoor(cnn, digits.X_train, digits.y_train, target=TARGET, rate=CL_RATE,
                                         trigger=trig, eps=eps, steps=CL_STEPS, generator=gen(0))
        victim = train_like_cnn_fixture(xp, yp, digits.input_shape, digits.num_classes)
        asr[eps] = attack_success_rate(victim, digits.X_test, digits.y_test, target=TARGET, trigger=trig)
        assert accuracy(victim, digits.X_test, digits.y_test) >= accuracy(cnn, digits.X_test, digits.y_test) - 0.03
    assert asr[0.0] <= 0.2, asr
    assert asr[CL_EPS] >= asr[0.0] + 0.4, asr


def test_clean_label_bad_input(cnn):
    x, y = toy_data(40)
    trig = patch_trigger((1, 8, 8), size=2)
    with pytest.raises(ValueError, match="rate"):
        clean_label_backdoor(cnn, x, y, target=0, rate=0.3, trigger=trig, eps=0.1, steps=2)  # 12 > 10 rows of class 0
    with pytest.raises(ValueError, match="eps"):
        clean_label_backdoor(cnn, x, y, target=0, rate=0.1, trigger=trig, eps=-0.1, steps=2)
    with pytest.raises(ValueError, match="steps"):
        clean_label_backdoor(cnn, x, y, target=0, rate=0.1, trigger=trig, eps=0.1, steps=0)
    with pytest.raises(ValueError, match="target"):
        clean_label_backdoor(cnn, x, y, target=9, rate=0.1, trigger=trig, eps=0.1, steps=2)


# --- bad input --------------------------------------------------------------------------------------------

def test_bad_trigger_arguments_are_refused():
    with pytest.raises(ValueError, match="size"):
        patch_trigger((1, 8, 8), size=9)
    with pytest.raises(ValueError, match="size"):
        patch_trigger((1, 4, 8), size=5)
    with pytest.raises(ValueError, match="size"):
        patch_trigger((1, 8, 8), size=0)
    with pytest.raises(ValueError, match="corner"):
        patch_trigger((1, 8, 8), size=2, corner="center")
    with pytest.raises(ValueError, match="value"):
        patch_trigger((1, 8, 8), size=2, value=1.5)
    with pytest.raises(ValueError, match="image_shape"):
        patch_trigger((64,), size=2)
    for alpha in (-0.1, 1.1):
        with pytest.raises(ValueError, match="alpha"):
            blended_trigger((1, 8, 8), alpha=alpha)
    with pytest.raises(ValueError, match="pattern"):
        blended_trigger((1, 8, 8), alpha=0.5, pattern=torch.rand(1, 7, 7))
    with pytest.raises(ValueError, match="pattern"):
        blended_trigger((1, 8, 8), alpha=0.5, pattern=torch.full((1, 8, 8), 2.0))
    with pytest.raises(ValueError, match="mask and pattern"):
        Trigger(mask=torch.zeros(1, 8, 8), pattern=torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match="shape"):
        patch_trigger((1, 8, 8), size=2).apply(torch.rand(2, 1, 7, 7))


def test_bad_poisoning_arguments_are_refused():
    x, y = toy_data(40)
    trig = patch_trigger((1, 8, 8), size=2)
    for rate in (-0.1, 1.5):
        with pytest.raises(ValueError, match="rate"):
            badnets(x, y, target=0, rate=rate, trigger=trig)
    for target in (-1, 4):
        with pytest.raises(ValueError, match="target"):
            badnets(x, y, target=target, rate=0.1, trigger=trig)
    with pytest.raises(ValueError, match="target"):
        badnets(x, y, target=7, rate=0.1, trigger=trig, num_classes=5)
    with pytest.raises(ValueError, match="trigger"):
        badnets(x, y, target=0, rate=0.1, trigger=patch_trigger((1, 6, 6), size=2))
    with pytest.raises(ValueError, match="y must have shape"):
        badnets(x, y[:-1], target=0, rate=0.1, trigger=trig)
    with pytest.raises(ValueError, match="range"):
        badnets(x * 3, y, target=0, rate=0.1, trigger=trig)
    with pytest.raises(TypeError, match="trigger"):
        badnets(x, y, target=0, rate=0.1, trigger=torch.zeros(1, 8, 8))
