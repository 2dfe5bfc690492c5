"""Membership inference: loss threshold, difficulty calibration, batched shadow models, LiRA and Shokri's attack.

The shared setting: 1,000 digits form the pool; 17 MLPs (one hidden layer of 128) are trained for 100 epochs,
each on its own random half, in one batched run. Model 0 is the target, models 1-16 the attacker's shadows
(Carlini et al. 2022's leave-one-out evaluation): the target's members are its half of the pool.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from mlsec_kit.attacks.inference.membership import (ShadowModels, calibrated_loss_scores, global_threshold,
                                                    lira_offline, lira_online, loss_threshold_scores,
                                                    per_example_loss, scaled_confidence, shadow_attack,
                                                    train_shadow_models)
from mlsec_kit.attacks.inference.metrics import (auc, auc_chance_interval, balanced_accuracy, best_balanced_accuracy,
                                                 tpr_at_fpr)
from mlsec_kit.data import load_dataset
from mlsec_kit.data.core import make_loader
from mlsec_kit.models import mlp, small_cnn
from mlsec_kit.train import fit

POOL, MODELS, EPOCHS = 1000, 17, 100


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def make_mlp() -> nn.Module:
    return mlp((1, 8, 8), 10, hidden=(128,))


@pytest.fixture(scope="module")
def setting():
    d = load_dataset("digits", seed=0)
    X, Y = torch.cat([d.X_train, d.X_test]), torch.cat([d.y_train, d.y_test])
    perm = torch.randperm(len(X), generator=gen(0))
    x, y = X[perm[:POOL]], Y[perm[:POOL]]
    rest = (X[perm[POOL:]], Y[perm[POOL:]])
    shadows = train_shadow_models(make_mlp, x, y, num_models=MODELS, epochs=EPOCHS, lr=1e-3, batch_size=64,
                                  generator=gen(1))
    conf, losses = shadows.confidences(x, y), shadows.losses(x, y)
    return dict(x=x, y=y, rest=rest, shadows=shadows, conf=conf, losses=losses, members=shadows.members[0])


@pytest.fixture(scope="module")
def independent_target(setting):
    """A model of the same recipe trained on the 797 digits outside the pool: its "members" in the pool are a
    random half that has nothing to do with its training data."""
    xr, yr = setting["rest"]
    torch.manual_seed(5)
    model = make_mlp()
    fit(model, make_loader(xr, yr, batch_size=64, shuffle=True, seed=5), epochs=EPOCHS, lr=1e-3)
    labels = torch.zeros(POOL, dtype=torch.bool)
    labels[torch.randperm(POOL, generator=gen(6))[: POOL // 2]] = True
    return model.eval(), labels


# ---- the loss-threshold attack and its thresholds ----------------------------------------------------------

def test_loss_threshold_scores_are_minus_the_cross_entropy(setting):
    model = setting["shadows"].model(0)
    x, y = setting["x"][:50], setting["y"][:50]
    x0 = x.clone()
    s = loss_threshold_scores(model, x, y)
    # against an independent computation: minus the log of the softmax probability of the true class, in NumPy
    z = model(x).detach().double().numpy()
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(s.numpy(), np.log(p[np.arange(50), y.numpy()]), atol=1e-5)
    assert torch.equal(x, x0)
    assert torch.allclose(per_example_loss(model, x, y), -s)


def test_global_threshold_is_fitted_on_reference_data(setting):
    # the attacker fits the cut on shadow model 1 (whose membership it knows), then applies it to the target
    ref_scores, ref_labels = -setting["losses"][1], setting["shadows"].members[1]
    t = global_threshold(ref_scores, ref_labels, fpr=0.05)
    assert (ref_scores[~ref_labels] >= t).double().mean().item() <= 0.05
    t_best = global_threshold(ref_scores, ref_labels)
    assert balanced_accuracy(ref_scores, ref_labels, threshold=t_best) == pytest.approx(
        best_balanced_accuracy(ref_scores, ref_labels))
    # on the target the transferred cut does better than chance: the models overfit alike
    target_scores = -setting["losses"][0]
    assert balanced_accuracy(target_scores, setting["members"], threshold=t_best) > 0.5


def test_calibration_removes_example_difficulty():
    # each example has its own difficulty; membership adds +1 to the target's score. The raw score is
    # dominated by difficulty, the calibrated one is not
    g = gen(2)
    n, r = 2000, 8
    difficulty = 3 * torch.randn(n, generator=g)
    member = torch.rand(n, generator=g) < 0.5
    target = difficulty + member.double() + 0.3 * torch.randn(n, generator=g)
    reference = difficulty + 0.3 * torch.randn(r, n, generator=g)
    calibrated = calibrated_loss_scores(target, reference)
    assert auc(target, member) < 0.65 < 0.95 < auc(calibrated, member)
    # entries marked IN are left out of the mean, whatever their value
    reference_in = torch.rand(r, n, generator=g) < 0.3
    reference_in[0] = False
    polluted = torch.where(reference_in, torch.full_like(reference, 1e6), reference)
    expected = target - (reference * ~reference_in).sum(0) / (~reference_in).sum(0)
    assert torch.allclose(calibrated_loss_scores(target, polluted, reference_in), expected)


# ---- shadow models -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_batched_training_equals_the_loop(optimizer, arch):
    make = (lambda: mlp((1, 8, 8), 10, hidden=(32,))) if arch == "mlp" else (lambda: small_cnn((1, 8, 8), 10, width=4))
    g = gen(3)
    x, y = torch.rand(200, 1, 8, 8, generator=g), torch.randint(0, 10, (200,), generator=g)
    kw = dict(num_models=3, epochs=4, lr=1e-2, batch_size=32, optimizer=optimizer, weight_decay=1e-4)
    a = train_shadow_models(make, x, y, generator=gen(4), **kw)
    b = train_shadow_models(make, x, y, generator=gen(4), batched=False, **kw)
    assert torch.equal(a.members, b.members)
    for k in a.params:
        assert torch.allclose(a.params[k], b.params[k], atol=1e-5), k
    untrained = train_shadow_models(make, x, y, generator=gen(4), **{**kw, "lr": 1e-12})
    moved = max((a.params[k] - untrained.params[k]).abs().max().item() for k in a.params)
    assert moved > 1e-2   # the comparison is not between two untrained sets of weights


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_batched_training_supports_batch_norm(optimizer, arch):
    """Each model's running statistics are its own slice of the stacked buffers: the batched run updates them as
    the loop does, and evaluation uses them (review L3)."""
    if arch == "mlp":
        make = lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 16, bias=False), nn.BatchNorm1d(16),  # noqa: E731
                                     nn.ReLU(), nn.Linear(16, 4))
    else:
        make = lambda: nn.Sequential(nn.Conv2d(1, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(),  # noqa: E731
                                     nn.Flatten(), nn.Linear(4 * 6 * 6, 4))
    g = gen(18)
    x, y = torch.rand(120, 1, 8, 8, generator=g), torch.randint(0, 4, (120,), generator=g)
    kw = dict(num_models=3, epochs=3, lr=1e-2, batch_size=15, optimizer=optimizer)
    a = train_shadow_models(make, x, y, generator=gen(19), **kw)
    b = train_shadow_models(make, x, y, generator=gen(19), batched=False, **kw)
    mean_key = next(k for k in a.buffers if k.endswith("running_mean"))
    assert a.buffers[mean_key].abs().min() > 1e-3             # the running statistics were updated...
    assert not torch.allclose(a.buffers[mean_key][0], a.buffers[mean_key][1])   # ...per model
    for k in a.buffers:
        assert torch.allclose(a.buffers[k].double(), b.buffers[k].double(), atol=1e-5), k
    for k in a.params:
        assert torch.allclose(a.params[k], b.params[k], atol=1e-5), k
    z = a.logits(x)
    assert torch.allclose(z, b.logits(x), atol=1e-4)
    assert torch.allclose(a.model(2)(x), z[2], atol=1e-5)      # eval mode: the running statistics, not the batch's
    assert not torch.allclose(a.model(2).train()(x), z[2], atol=1e-3)


def test_each_model_trains_on_its_own_half(setting):
    sh = setting["shadows"]
    assert isinstance(sh, ShadowModels) and len(sh) == MODELS
    assert (sh.members.sum(1) == POOL // 2).all()
    assert len({tuple(row.nonzero().squeeze(1).tolist()) for row in sh.members}) == MODELS
    losses = setting["losses"]
    for i in range(MODELS):   # every model fits its own half better than the rest
        assert losses[i][sh.members[i]].mean() < 0.5 * losses[i][~sh.members[i]].mean()


def test_models_are_independent_and_the_model_view_agrees(setting):
    sh, x = setting["shadows"], setting["x"][:64]
    logits = sh.logits(x)
    assert logits.shape == (MODELS, 64, 10)
    assert torch.allclose(sh.model(3)(x), logits[3], atol=1e-5)
    assert not torch.allclose(logits[3], logits[4], atol=1e-2)


def test_shadow_training_is_seeded_and_leaves_global_rng_alone():
    g = gen(7)
    x, y = torch.rand(40, 4, generator=g), torch.randint(0, 3, (40,), generator=g)
    make = lambda: mlp((4,), 3, hidden=(8,))   # noqa: E731
    state = torch.get_rng_state()
    a = train_shadow_models(make, x, y, num_models=2, epochs=2, generator=gen(8))
    assert torch.equal(torch.get_rng_state(), state)
    b = train_shadow_models(make, x, y, num_models=2, epochs=2, generator=gen(8))
    c = train_shadow_models(make, x, y, num_models=2, epochs=2, generator=gen(9))
    assert all(torch.equal(a.params[k], b.params[k]) for k in a.params)
    assert not torch.equal(a.members, c.members)


# ---- LiRA -------------------------------------------------------------------------------------------------

def test_scaled_confidence_is_the_logit_of_the_true_class_probability():
    g = gen(10)
    logits, y = 2 * torch.randn(3, 50, 10, generator=g, dtype=torch.float64), torch.randint(0, 10, (50,), generator=g)
    p = logits.softmax(-1).gather(-1, y.expand(3, 50).unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(scaled_confidence(logits, y), torch.log(p / (1 - p)))
    extreme = torch.tensor([[60.0, 0.0, 0.0]])       # p_y rounds to 1 in float32: the naive formula gives inf
    phi = scaled_confidence(extreme, torch.tensor([0]))
    assert torch.isfinite(phi).all() and phi.item() == pytest.approx(60 - math.log(2), abs=1e-4)


def test_lira_online_is_the_gaussian_likelihood_ratio():
    g = gen(11)
    m, n = 12, 30
    mean = torch.randn(n, generator=g, dtype=torch.float64)
    shadow_in = torch.rand(m, n, generator=g) < 0.5
    shadow_in[0], shadow_in[1], shadow_in[2], shadow_in[3] = True, True, False, False
    conf = mean + 2.0 * shadow_in + torch.randn(m, n, generator=g, dtype=torch.float64) * (0.5 + mean.abs())
    target = mean + torch.randn(n, generator=g, dtype=torch.float64)
    got = lira_online(target, conf, shadow_in, fixed_variance=False)   # per example: each its own Gaussians
    expected = []
    for j in range(n):
        cin, cout = conf[shadow_in[:, j], j].numpy(), conf[~shadow_in[:, j], j].numpy()
        t = target[j].item()
        expected.append(stats.norm.logpdf(t, cin.mean(), cin.std()) - stats.norm.logpdf(t, cout.mean(), cout.std()))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6, atol=1e-9)


def test_fixed_variance_lira_recovers_the_true_likelihood_ratio():
    """With one spread per side shared by all examples (the case fixed variance assumes) and examples whose means
    differ widely, the pooled estimate must find that spread, not the spread between the examples' means: the
    scores approach the log ratio of the true Gaussians."""
    g = gen(16)
    m, n, sd_in, sd_out = 800, 300, 0.5, 1.5
    mean = 4 * torch.randn(n, generator=g, dtype=torch.float64)          # between-example spread 4 >> sd_out
    shadow_in = torch.rand(m, n, generator=g) < 0.5
    noise = torch.randn(m, n, generator=g, dtype=torch.float64)
    conf = torch.where(shadow_in, mean + 2 + sd_in * noise, mean + sd_out * noise)
    target = mean + 2 * torch.rand(n, generator=g, dtype=torch.float64)
    truth = stats.norm.logpdf(target, mean + 2, sd_in) - stats.norm.logpdf(target, mean, sd_out)
    got = lira_online(target, conf, shadow_in, fixed_variance=True).numpy()
    # one std over all entries (deviations from a global mean, which counts the spread between the examples'
    # means, 4, as noise) misses by about the whole range of the truth and correlates at about 0.98
    assert np.abs(got - truth).max() < 0.15 * np.abs(truth).max()
    assert np.corrcoef(got, truth)[0, 1] > 0.995
    out = stats.norm.cdf(target, mean, sd_out)       # offline: the one-sided tail, compared as a probability
    got_offline = lira_offline(target, conf, shadow_in, fixed_variance=True).exp().numpy()
    assert np.abs(got_offline - out).max() < 0.12    # the global std misses by about 0.24


def test_lira_variance_default_is_pooled_below_32_models_per_example():
    """fixed_variance=None pools when some example has fewer than 32 IN or OUT models (online) or fewer than 32
    OUT models (offline), and uses each example's own spread otherwise: 64 models, example 0 with k IN models."""
    g = gen(17)
    m, n = 64, 40
    for k0, online_fixed, offline_fixed in ((32, False, False), (31, True, False), (33, True, True)):
        shadow_in = torch.zeros(m, n, dtype=torch.bool)
        for j in range(n):
            shadow_in[torch.randperm(m, generator=g)[: k0 if j == 0 else 32], j] = True
        conf = torch.randn(m, n, generator=g, dtype=torch.float64) * (1 + torch.rand(n, generator=g)) + shadow_in
        target = torch.randn(n, generator=g, dtype=torch.float64)
        for attack, fixed in ((lira_online, online_fixed), (lira_offline, offline_fixed)):
            default = attack(target, conf, shadow_in)
            assert torch.equal(default, attack(target, conf, shadow_in, fixed_variance=fixed)), (attack, k0)
            assert not torch.allclose(default, attack(target, conf, shadow_in, fixed_variance=not fixed))
    with pytest.raises(TypeError, match="fixed_variance"):
        lira_online(target, conf, shadow_in, fixed_variance="yes")


def test_lira_offline_is_one_sided_on_the_out_gaussian():
    g = gen(12)
    m, n = 10, 20
    conf = torch.randn(m, n, generator=g, dtype=torch.float64) + torch.arange(n, dtype=torch.float64)
    shadow_in = torch.zeros(m, n, dtype=torch.bool)
    shadow_in[:3] = True
    target = torch.randn(n, generator=g, dtype=torch.float64) + torch.arange(n, dtype=torch.float64)
    got = lira_offline(target, conf, shadow_in, fixed_variance=False)
    out = conf[3:]
    expected = stats.norm.logcdf(target.numpy(), out.mean(0).numpy(), out.std(0, correction=0).numpy())
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)
    # one-sided: far below the OUT mean is a non-member, far above a member (a two-sided test scores both alike)
    mu, sd = out.mean(0), out.std(0, correction=0)
    low = lira_offline(mu - 5 * sd, conf, shadow_in, fixed_variance=False)
    high = lira_offline(mu + 5 * sd, conf, shadow_in, fixed_variance=False)
    assert (high > -1e-3).all() and (low < -10).all()


def test_lira_beats_the_global_threshold_at_one_percent_fpr(setting):
    """The issue's bar: on an overfit model, fixed seed, LiRA's TPR at 1% FPR beats the global loss threshold's,
    beyond the Clopper-Pearson interval of LiRA's own TPR."""
    conf, members, shadow_in = setting["conf"], setting["members"], setting["shadows"].members[1:]
    loss = tpr_at_fpr(-setting["losses"][0], members, fpr=0.01)
    # the global threshold proper: fitted at 1% FPR on shadow model 1, whose membership the attacker knows
    cut = global_threshold(-setting["losses"][1], setting["shadows"].members[1], fpr=0.01)
    global_tpr = (-setting["losses"][0][members] >= cut).double().mean().item()
    online = tpr_at_fpr(lira_online(conf[0], conf[1:], shadow_in), members, fpr=0.01)
    offline = tpr_at_fpr(lira_offline(conf[0], conf[1:], shadow_in), members, fpr=0.01)
    print(f"TPR at 1% FPR: loss {loss.tpr:.3f} (global cut {global_tpr:.3f}), LiRA online {online.tpr:.3f} "
          f"[{online.ci_low:.3f}, {online.ci_high:.3f}], offline {offline.tpr:.3f}")
    assert online.ci_low > max(loss.tpr, global_tpr) and offline.ci_low > max(loss.tpr, global_tpr)
    assert online.tpr > 3 * loss.tpr
    target_loss = setting["losses"][0]   # the target overfits: its members' mean loss is a fraction of the rest's
    assert target_loss[members].mean() < 0.5 * target_loss[~members].mean()


def test_lira_default_variance_is_as_good_as_fixed_with_16_shadows(setting):
    """Review M3: with 16 shadow models an example has about 8 IN models, too few for its own standard deviation;
    the default must do at least as well as the pooled one at 1% FPR (per-example variance gave 0.026 vs 0.070)."""
    conf, members, shadow_in = setting["conf"], setting["members"], setting["shadows"].members[1:]
    for attack in (lira_online, lira_offline):
        default = tpr_at_fpr(attack(conf[0], conf[1:], shadow_in), members, fpr=0.01).tpr
        fixed = tpr_at_fpr(attack(conf[0], conf[1:], shadow_in, fixed_variance=True), members, fpr=0.01).tpr
        own = tpr_at_fpr(attack(conf[0], conf[1:], shadow_in, fixed_variance=False), members, fpr=0.01).tpr
        print(f"{attack.__name__}: TPR at 1% FPR default {default:.3f}, fixed {fixed:.3f}, per-example {own:.3f}")
        assert default >= fixed - 0.01, attack.__name__


def test_shokri_attack_beats_chance(setting):
    sh, x, y = setting["shadows"], setting["x"], setting["y"]
    probs = sh.logits(x).softmax(-1)
    scores = shadow_attack(probs[1:], y, sh.members[1:], probs[0], y, steps=200, generator=gen(13))
    _, hi = auc_chance_interval(POOL // 2, POOL // 2)
    assert auc(scores, setting["members"]) > hi
    again = shadow_attack(probs[1:], y, sh.members[1:], probs[0], y, steps=200, generator=gen(13))
    assert torch.equal(scores, again)


def test_every_attack_is_at_chance_on_an_independent_target(setting, independent_target):
    model, labels = independent_target
    x, y, sh = setting["x"], setting["y"], setting["shadows"]
    conf_t = scaled_confidence(model(x).detach(), y)
    shadow_conf, shadow_in = setting["conf"][1:], sh.members[1:]
    probs = sh.logits(x).softmax(-1)
    scores = {
        "loss": loss_threshold_scores(model, x, y),
        "calibrated": calibrated_loss_scores(loss_threshold_scores(model, x, y), -setting["losses"][1:], shadow_in),
        "lira_online": lira_online(conf_t, shadow_conf, shadow_in),
        "lira_offline": lira_offline(conf_t, shadow_conf, shadow_in),
        "shokri": shadow_attack(probs[1:], y, shadow_in, model(x).softmax(-1).detach(), y, steps=200,
                                generator=gen(14)),
    }
    lo, hi = auc_chance_interval(POOL // 2, POOL // 2, confidence=0.999)   # about [0.440, 0.560]
    for name, s in scores.items():
        assert lo <= auc(s, labels) <= hi, name


def test_shokri_attack_casts_mixed_dtypes():
    """float32 shadow outputs with a float64 target (review L2): both are cast to float64."""
    g = gen(20)
    m, n, k = 4, 60, 3
    shadow_y, target_y = torch.randint(0, k, (n,), generator=g), torch.randint(0, k, (20,), generator=g)
    shadow_in = torch.rand(m, n, generator=g) < 0.5
    shadow_probs = (torch.randn(m, n, k, generator=g) + 2 * shadow_in[..., None]).softmax(-1)
    target_probs = torch.randn(20, k, generator=g, dtype=torch.float64).softmax(-1)
    mixed = shadow_attack(shadow_probs, shadow_y, shadow_in, target_probs, target_y, steps=20, generator=gen(21))
    both64 = shadow_attack(shadow_probs.double(), shadow_y, shadow_in, target_probs, target_y, steps=20,
                           generator=gen(21))
    assert mixed.dtype == torch.float64 and torch.equal(mixed, both64)


# ---- bad input ---------------------------------------------------------------------------------------------

class LabelModel(nn.Module):
    def forward(self, x):
        return torch.zeros(x.shape[0], dtype=torch.int64)


def test_bad_input_names_the_argument():
    g = gen(15)
    x, y = torch.rand(10, 4, generator=g), torch.randint(0, 3, (10,), generator=g)
    make = lambda: mlp((4,), 3, hidden=(8,))   # noqa: E731
    with pytest.raises(ValueError, match="num_models"):
        train_shadow_models(make, x, y, num_models=0, epochs=1)
    with pytest.raises(ValueError, match="epochs"):
        train_shadow_models(make, x, y, num_models=1, epochs=0)
    uneven = torch.zeros(2, 10, dtype=torch.bool)
    uneven[0, :3], uneven[1, :5] = True, True
    with pytest.raises(ValueError, match="members"):
        train_shadow_models(make, x, y, num_models=2, epochs=1, members=uneven)
    with pytest.raises(ValueError, match="y_pool"):
        train_shadow_models(make, x, y[:5], num_models=1, epochs=1)
    with pytest.raises(ValueError, match="logits"):
        loss_threshold_scores(LabelModel(), x, y)
    with pytest.raises(ValueError, match="y must hold labels"):
        scaled_confidence(torch.randn(10, 3), torch.full((10,), 3))
    conf, t = torch.randn(4, 10, dtype=torch.float64), torch.randn(10, dtype=torch.float64)
    with pytest.raises(ValueError, match="OUT"):
        lira_online(t, conf, torch.ones(4, 10, dtype=torch.bool))
    with pytest.raises(ValueError, match="IN"):
        lira_online(t, conf, torch.zeros(4, 10, dtype=torch.bool))
    with pytest.raises(ValueError, match="shadow_conf"):
        lira_offline(t[:5], conf)
    with pytest.raises(TypeError, match="shadow_in"):
        lira_offline(t, conf, torch.zeros(4, 10))
    meta = torch.zeros(4, 10, dtype=torch.bool, device="meta")
    with pytest.raises(ValueError, match="shadow_in must be on the same device as shadow_conf"):
        lira_online(t, conf, meta)
    with pytest.raises(ValueError, match="shadow_in must be on the same device"):
        lira_offline(t, conf, meta)
    with pytest.raises(ValueError, match="target_conf must be on the same device"):
        lira_offline(t.to("meta"), conf)
    with pytest.raises(ValueError, match="reference_in must be on the same device as reference_scores"):
        calibrated_loss_scores(t, conf, meta)
    with pytest.raises(ValueError, match="reference_scores must have shape"):
        calibrated_loss_scores(t[:5], conf)
    with pytest.raises(TypeError, match="reference_in"):
        calibrated_loss_scores(t, conf, torch.zeros(4, 10))
    probs = torch.rand(2, 10, 3)
    with pytest.raises(ValueError, match="probability"):
        shadow_attack(probs, y, torch.rand(2, 10) < 0.5, probs[0].softmax(-1), y)
    with pytest.raises(ValueError, match="target_y"):
        shadow_attack(probs.softmax(-1), y, torch.rand(2, 10) < 0.5, probs[0].softmax(-1), y[:4])


def test_shadow_models_views_reject_bad_input(setting):
    sh = setting["shadows"]
    with pytest.raises(ValueError, match=r"i must be in \[0, 17\)"):
        sh.model(MODELS)
    with pytest.raises(TypeError, match="x must be a floating-point"):
        sh.logits(torch.zeros(4, 1, 8, 8, dtype=torch.int64))
    with pytest.raises(ValueError, match="batch_size"):
        sh.logits(setting["x"], batch_size=0)
    with pytest.raises(TypeError, match="make_model"):
        train_shadow_models(None, setting["x"], setting["y"], num_models=1, epochs=1)
    with pytest.raises(TypeError, match="model must be a torch nn.Module"):
        train_shadow_models(lambda: "not a model", setting["x"], setting["y"], num_models=1, epochs=1)
