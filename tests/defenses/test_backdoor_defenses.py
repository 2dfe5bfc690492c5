"""Backdoor defences: each algorithm's central step on inputs whose answer is known, then every defence against a
BadNets backdoor planted in the digits (3x3 white patch, bottom-right corner, target 0, 5% of the training set,
fixed seed; built with the backdoor-attacks API)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import mlsec_kit as mk
from mlsec_kit.attacks.poisoning.backdoor import attack_success_rate, badnets, patch_trigger
from mlsec_kit.defenses.backdoor import (MAD_CONSISTENCY, activation_clustering, features, fine_prune,
                                         mad_anomaly_index, neural_cleanse, spectral_signatures, strip,
                                         strip_threshold)
from mlsec_kit.defenses.scoring import flag_scores
from mlsec_kit.models import small_cnn
from mlsec_kit.train import accuracy, fit

NONE = torch.zeros(0, dtype=torch.long)


# ---- synthetic representations: clean classes are Gaussian blobs; poisons share a planted offset ------------
def _blobs(n_per_class=200, dim=20, classes=3, poison_share=0.1, shift=6.0, offset=0.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    feats, labels = [], []
    for c in range(classes):
        centre = torch.randn(dim, generator=g) * 3 + offset
        feats.append(centre + torch.randn(n_per_class, dim, generator=g))
        labels.append(torch.full((n_per_class,), c))
    feats, labels = torch.cat(feats), torch.cat(labels)
    k = round(poison_share * n_per_class)
    poisons = torch.arange(k)                           # the first k rows of class 0
    direction = F.normalize(torch.randn(dim, generator=g), dim=0)
    feats[poisons] += shift * direction
    return feats, labels, poisons


def test_features_is_the_penultimate_layer_by_default(cnn, test_batch):
    x, _ = test_batch
    f = features(cnn, x)
    assert f.shape == (len(x), cnn[-1].in_features)
    assert torch.allclose(f, cnn[:-1](x))
    assert torch.allclose(cnn[-1](f), cnn(x), atol=1e-5)
    assert features(cnn, x, layer=5).shape == (len(x), cnn[6].in_features)


# ---- spectral signatures ----------------------------------------------------------------------------------
def test_spectral_scores_are_squared_projections_on_the_top_singular_vector():
    feats, y, _ = _blobs()
    scores, _ = spectral_signatures(feats, y, eps_fraction=0.1)
    for c in range(3):
        r = feats[y == c].double()
        centred = r - r.mean(0)
        v = torch.linalg.svd(centred, full_matrices=False).Vh[0]
        assert torch.allclose(scores[y == c].double(), (centred @ v) ** 2, rtol=1e-4, atol=1e-6)


def test_spectral_signatures_find_planted_direction_and_flag_1_5_eps_per_class():
    feats, y, poisons = _blobs(poison_share=0.1)
    _, flagged = spectral_signatures(feats, y, eps_fraction=0.1)
    assert flag_scores(flagged, poisons, len(y))["recall"] == 1.0
    assert torch.equal(flagged, flagged.sort().values)
    for c in range(3):    # round(1.5 * 0.1 * 200) = 30 rows of each class
        assert int((y[flagged] == c).sum()) == 30


def test_spectral_signatures_centre_the_representations():
    # a large common offset dominates the uncentred top singular vector; centring removes it entirely
    feats, y, poisons = _blobs()
    s_near, f_near = spectral_signatures(feats, y, eps_fraction=0.1)
    s_far, f_far = spectral_signatures(feats + 50.0, y, eps_fraction=0.1)
    assert torch.allclose(s_near, s_far, rtol=1e-3, atol=1e-3) and torch.equal(f_near, f_far)
    # what an uncentred score would flag in class 0 misses most poisons
    r = (feats + 50.0)[y == 0].double()
    v = torch.linalg.svd(r, full_matrices=False).Vh[0]
    uncentred = ((r @ v) ** 2).topk(30).indices
    assert torch.isin(poisons, uncentred).float().mean() < 0.8 <= flag_scores(f_far, poisons, len(y))["recall"]


def test_spectral_scores_agree_with_art_on_centred_representations():
    # ART projects the *uncentred* representations on the top singular vector of the centred ones and takes the
    # absolute value; the paper (Algorithm 1) squares the projection of the centred ones. Fed centred
    # representations, ART's score squared is the paper's score; fed raw ones, it ranks differently.
    art_poison = pytest.importorskip("art.defences.detector.poison.spectral_signature_defense")
    art_scores = art_poison.SpectralSignatureDefense.spectral_signature_scores
    feats, y, poisons = _blobs(offset=20.0)
    ours, _ = spectral_signatures(feats, y, eps_fraction=0.1)
    r = feats[y == 0].double().numpy()
    theirs = art_scores(r - r.mean(0)).ravel() ** 2
    assert torch.allclose(ours[y == 0].double(), torch.from_numpy(theirs), rtol=1e-4, atol=1e-6)
    raw = torch.from_numpy(art_scores(r).ravel())
    assert not torch.equal(raw.topk(30).indices.sort().values, ours[y == 0].topk(30).indices.sort().values)


def test_the_svd_step_beats_distance_from_the_class_mean_on_a_planted_direction():
    # 400 rows of isotropic noise in 200 dimensions, 8% of them shifted by 6 along one random direction: the
    # shift is small against the total spread (squared norms ~ 200 +- 20), so squared distance from the class
    # mean ranks the poisons poorly, while the shared direction is the top singular vector (spike variance
    # 1 + 0.08 * 0.92 * 36 = 3.6 above the noise edge 1 + sqrt(200 / 400) = 1.7). The paper's central step.
    from sklearn.metrics import roc_auc_score
    for seed in range(5):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(400, 200, generator=g)
        poisons = torch.arange(32)
        x[poisons] += 6.0 * F.normalize(torch.randn(200, generator=g), dim=0)
        y = torch.zeros(400, dtype=torch.long)
        scores, flagged = spectral_signatures(x, y, eps_fraction=0.1)          # flags 60 rows
        distance = (x - x.mean(0)).pow(2).sum(1)
        is_poison = torch.isin(torch.arange(400), poisons).numpy()
        assert flag_scores(flagged, poisons, 400)["recall"] >= 0.95
        assert torch.isin(poisons, distance.topk(60).indices).float().mean() <= 0.8
        assert roc_auc_score(is_poison, scores.numpy()) >= roc_auc_score(is_poison, distance.numpy()) + 0.05


# ---- activation clustering ----------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_activation_clustering_flags_the_small_cluster_and_leaves_clean_classes():
    feats, y, poisons = _blobs(poison_share=0.2, shift=12.0)
    for reduce in ("ica", "pca"):
        rel, flagged = activation_clustering(feats, y, n_components=5, reduce=reduce)
        assert torch.equal(flagged, poisons)                 # only class 0 is split, into 160 and 40
        assert torch.allclose(rel[poisons], torch.tensor(0.2, dtype=rel.dtype))
        assert (rel[y != 0] > 0.35).all()
    # flagged when strictly below the threshold (as ART): a 20% cluster is not flagged at size_threshold=0.2
    assert len(activation_clustering(feats, y, n_components=5, reduce="pca", size_threshold=0.2)[1]) == 0
    assert torch.equal(activation_clustering(feats, y, n_components=5, reduce="pca", size_threshold=0.21)[1],
                       poisons)
    # the relative-size rule: with a threshold below the poisons' 20% share nothing is flagged
    _, flagged = activation_clustering(feats, y, n_components=5, reduce="pca", size_threshold=0.15)
    assert len(flagged) == 0
    # a clean set of Gaussian blobs splits roughly in halves: nothing flagged
    clean, yc, _ = _blobs(poison_share=0.0)
    assert len(activation_clustering(clean, yc, n_components=5)[1]) == 0


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_activation_clustering_reduces_to_the_rank_of_a_class():
    # a class whose activations span only 2 dimensions (few examples, many dead units: what a tiny training set
    # gives): asking for 10 components must not whiten by zero singular values, which turned ICA's output to NaN
    g = torch.Generator().manual_seed(0)
    basis = torch.randn(2, 30, generator=g, dtype=torch.float64)
    coords = torch.randn(6, 2, generator=g, dtype=torch.float64)
    coords[:2] += 8.0                                          # two outliers of the six
    feats = torch.cat([coords @ basis, torch.randn(40, 30, generator=g, dtype=torch.float64)])
    y = torch.cat([torch.zeros(6, dtype=torch.long), torch.ones(40, dtype=torch.long)])
    for reduce in ("ica", "pca"):
        rel, flagged = activation_clustering(feats, y, n_components=10, reduce=reduce, size_threshold=0.35)
        assert torch.isfinite(rel).all()
        assert flagged.tolist()[:2] == [0, 1] and rel[0] == pytest.approx(2 / 6)
    # a dead unit (a column that is zero on a class) first: scikit-learn's FastICA fixes the signs of the
    # whitening vectors by their first entry, which is then 0, zeroes them and returned NaN
    dead = torch.cat([torch.zeros(len(feats), 1, dtype=torch.float64), feats], 1)
    for reduce in ("ica", "pca"):
        rel, flagged = activation_clustering(dead, y, n_components=10, reduce=reduce)
        assert torch.isfinite(rel).all() and flagged.tolist()[:2] == [0, 1]
    # a class whose rows are all equal has rank 0: nothing to reduce, nothing flagged from it
    same = torch.cat([torch.ones(5, 30, dtype=torch.float64), torch.randn(40, 30, generator=g, dtype=torch.float64)])
    rel, _ = activation_clustering(same, torch.cat([torch.zeros(5), torch.ones(40)]).long(), reduce="ica")
    assert torch.isfinite(rel).all()


# ---- STRIP -------------------------------------------------------------------------------------------------
class ToyBackdoor(nn.Module):
    """Class 0 when the bottom-right pixel is bright (a hard-wired trigger); otherwise a fixed linear model."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(64, 10)
        with torch.no_grad():
            self.lin.weight.copy_(torch.randn(10, 64, generator=torch.Generator().manual_seed(0)) * 3)
            self.lin.bias.zero_()

    def forward(self, x):
        logits = self.lin(x.flatten(1))
        trig = (x[:, 0, -1, -1] > 0.9).float()[:, None]
        return logits * (1 - trig) + trig * 50 * F.one_hot(torch.zeros(len(x), dtype=torch.long), 10)


def test_strip_entropy_matches_a_direct_computation(digits):
    model, x, pool = ToyBackdoor(), digits.X_test[:20], digits.X_test[100:200]
    got = strip(model, x, pool, n=8, alpha=0.7, generator=torch.Generator().manual_seed(3))
    picks = torch.randint(len(pool), (len(x), 8), generator=torch.Generator().manual_seed(3))
    blends = (x[:, None] + 0.7 * pool[picks]).clamp(0, 1).flatten(0, 1)
    p = F.softmax(model(blends).double(), 1)
    want = (-(p * p.clamp_min(1e-300).log2()).sum(1)).view(20, 8).mean(1)
    assert torch.allclose(got.double(), want, atol=1e-5)
    # a model that ignores its input has the entropy of its constant output: log2(4) = 2 bits for uniform logits
    const = nn.Sequential(nn.Flatten(), nn.Linear(64, 4))
    nn.init.zeros_(const[1].weight), nn.init.zeros_(const[1].bias)
    assert torch.allclose(strip(const, x, pool, n=4), torch.full((20,), 2.0), atol=1e-6)


def test_strip_separates_a_hard_wired_trigger(digits):
    model, pool = ToyBackdoor(), digits.X_test[:100]
    clean = digits.X_test[100:200]
    trig = clean.clone()
    trig[:, 0, -1, -1] = 1.0
    g = torch.Generator().manual_seed(0)
    cs, ts = strip(model, clean, pool, n=16, generator=g), strip(model, trig, pool, n=16, generator=g)
    assert ts.max() < 1e-3 < cs.median()      # the trigger survives every superimposition
    assert (ts < strip_threshold(cs, 0.01, method="empirical")).all()
    # these clean entropies are skewed against 0, far from normal: the paper's normal fit puts its 1% cut below
    # zero, where no entropy can fall, and rejects nothing (the reason the distribution-free variant exists)
    assert strip_threshold(cs, 0.01) < 0


class _Recorder(nn.Module):
    """Wraps a model and records the largest batch it is handed, and (through ``seen``) how many rows."""

    def __init__(self, model):
        super().__init__()
        self.model, self.largest, self.seen = model, 0, 0

    def forward(self, x):
        self.largest, self.seen = max(self.largest, len(x)), self.seen + len(x)
        return self.model(x)


def test_strip_builds_its_blends_a_chunk_at_a_time(digits, monkeypatch):
    # all N * n blends at once would take N * n images of memory (6 GB for 5,000 CIFAR-10 inputs at n = 100):
    # strip must hand the predictor no more than batch_size blends (or one input's n) per call
    import mlsec_kit.defenses.backdoor as bd_mod

    largest = []
    real_predict = bd_mod.predict
    monkeypatch.setattr(bd_mod, "predict", lambda m, x, **kw: (largest.append(len(x)), real_predict(m, x, **kw))[1])
    model, x, pool = ToyBackdoor(), digits.X_test[:50], digits.X_test[100:200]
    chunked = strip(model, x, pool, n=8, batch_size=20, generator=torch.Generator().manual_seed(3))
    assert largest and max(largest) <= 20 and sum(largest) == 50 * 8
    largest.clear()
    strip(model, x[:3], pool, n=30, batch_size=20, generator=torch.Generator().manual_seed(3))
    assert max(largest) == 30                                   # one input's n blends when n > batch_size
    # chunking changes nothing: the same scores as one big batch
    whole = strip(model, x, pool, n=8, batch_size=4096, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(chunked, whole, atol=1e-6)


def test_neural_cleanse_measures_success_a_chunk_at_a_time(digits):
    rec = _Recorder(SmoothToyBackdoor())
    nc = neural_cleanse(rec, digits.X_test[:100], num_classes=10, steps=2, batch_size=16,
                        generator=torch.Generator().manual_seed(0))
    assert rec.largest <= 10 * 16                               # never K * N stamped images at once
    assert nc.attack_success.shape == (10,) and ((nc.attack_success >= 0) & (nc.attack_success <= 1)).all()


def test_strip_threshold_empirical_rejects_at_most_frr_of_clean_scores():
    scores = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    for frr in (0.0, 0.01, 0.05, 0.3):
        th = strip_threshold(scores, frr, method="empirical")
        assert (scores < th).float().mean().item() == pytest.approx(frr, abs=1e-6)
    assert strip_threshold(torch.arange(100.0), 0.05, method="empirical") == 5.0


def test_strip_threshold_normal_is_the_percentile_of_the_fitted_normal():
    from statistics import NormalDist
    scores = 2.0 + 0.5 * torch.randn(4000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mu, sd = scores.mean().item(), scores.std(unbiased=False).item()
    for frr in (0.01, 0.05, 0.3):
        th = strip_threshold(scores, frr)                                   # the default, as Gao et al.
        assert th == pytest.approx(mu + sd * NormalDist().inv_cdf(frr), rel=1e-9)
        assert th == pytest.approx(2.0 + 0.5 * NormalDist().inv_cdf(frr), abs=0.05)
        assert (scores < th).double().mean().item() == pytest.approx(frr, abs=0.01)
    assert strip_threshold(scores, 0.0) == -float("inf")
    # the two methods differ where the scores are not normal: a skewed (exponential) sample
    skewed = -torch.empty(1000, dtype=torch.float64).exponential_(generator=torch.Generator().manual_seed(1)).log()
    emp, nor = strip_threshold(skewed, 0.01, method="empirical"), strip_threshold(skewed, 0.01)
    assert (skewed < emp).double().mean().item() <= 0.01 and abs(emp - nor) > 0.1
    with pytest.raises(ValueError, match="method"):
        strip_threshold(scores, 0.01, method="gaussian")


# ---- MAD anomaly index ------------------------------------------------------------------------------------
def test_mad_anomaly_index_on_given_norms():
    norms = torch.tensor([10.0, 11.0, 9.0, 12.0, 8.0, 2.0, 10.0])
    idx = mad_anomaly_index(norms)
    med, mad = 10.0, 1.0                               # |n - 10| = 0,1,1,2,2,8,0 → median 1
    assert torch.allclose(idx, (norms - med).abs() / (MAD_CONSISTENCY * mad))
    assert idx[5] > 2 and (idx[:5] < 2).all()
    assert torch.allclose(mad_anomaly_index(norms * 7 + 3), idx)      # invariant to the norms' units
    even = mad_anomaly_index(torch.tensor([1.0, 2.0, 3.0, 10.0]))      # median 2.5, MAD median(1.5,.5,.5,7.5)=1
    assert torch.allclose(even, torch.tensor([1.5, 0.5, 0.5, 7.5]) / MAD_CONSISTENCY)


def test_neural_cleanse_flags_below_the_same_median_as_the_anomaly_index():
    from mlsec_kit.defenses.backdoor import _flag_labels, _median
    assert _median(torch.tensor([4.0, 1.0, 3.0, 2.0])) == 2.5 and _median(torch.tensor([3.0, 1.0, 2.0])) == 2.0
    # an even count of labels: the lower middle norm (3) lies below the averaged median (4.5) and is flagged at a
    # low threshold; with torch.median (which returns 3) it would count as "not below the median"
    norms = torch.tensor([1.0, 2.0, 3.0, 6.0, 7.0, 8.0])
    index, flagged = _flag_labels(norms, 0.1)
    assert torch.allclose(index, mad_anomaly_index(norms))
    assert flagged.tolist() == [0, 1, 2]
    assert _flag_labels(norms, 2.0)[1].tolist() == []


class SmoothToyBackdoor(ToyBackdoor):
    """The same hard-wired trigger made smooth (so Neural Cleanse has a gradient to follow), with a weaker
    linear part (so the other labels need large masks)."""

    def __init__(self):
        super().__init__()
        with torch.no_grad():
            self.lin.weight.mul_(1 / 6)

    def forward(self, x):
        trig = torch.sigmoid(10 * (x[:, 0, -1, -1] - 0.5))[:, None]
        return self.lin(x.flatten(1)) * (1 - trig) + trig * 50 * F.one_hot(torch.zeros(len(x), dtype=torch.long), 10)


def test_neural_cleanse_reverses_a_hard_wired_trigger(digits):
    x = digits.X_test[:100]
    kw = dict(num_classes=10, steps=150, batch_size=32, lr=0.1)
    nc = neural_cleanse(SmoothToyBackdoor(), x, lam=1e-2, generator=torch.Generator().manual_seed(0), **kw)
    assert nc.flagged.tolist() == [0] and nc.anomaly_index[0] > 2
    assert nc.masks[0].flatten().argmax() == 63                 # the reversed mask sits on the trigger pixel
    assert nc.norms[0] < 2 and nc.attack_success[0] == 1.0
    assert ((nc.masks >= 0) & (nc.masks <= 1)).all() and ((nc.patterns >= 0) & (nc.patterns <= 1)).all()
    # the L1 penalty is what makes the mask small: without it the label-0 mask stays large
    free = neural_cleanse(SmoothToyBackdoor(), x, lam=0.0, generator=torch.Generator().manual_seed(0), **kw)
    assert free.norms[0] > 5 * nc.norms[0]


# ---- fine-pruning mechanics --------------------------------------------------------------------------------
def test_fine_prune_removes_the_least_active_units_and_keeps_them_pruned():
    torch.manual_seed(0)
    # tanh, not ReLU, after the pruned layer: a zeroed unit still gets a gradient (tanh'(0) = 1), so only the
    # pruning mask keeps it at zero through fine-tuning
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    with torch.no_grad():
        model[0].bias.copy_(torch.tensor([5.0, -50, 4, -50, 3, 2, -50, 1]))   # units 1, 3, 6 never fire
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(64, 4)
    y = torch.randint(3, (64,))
    pruned, channels = fine_prune(model, x, y, layer=0, prune_fraction=0.375, epochs=3, lr=1e-2,
                                  generator=torch.Generator().manual_seed(0))
    assert channels.tolist() == [1, 3, 6]
    assert (pruned[0].weight[channels] == 0).all() and (pruned[0].bias[channels] == 0).all()
    assert not torch.equal(pruned[2].weight, model[2].weight)                 # fine-tuning did run
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())   # input model untouched


# ---- bad input ---------------------------------------------------------------------------------------------
def test_bad_input(cnn, test_batch):
    x, y = test_batch
    f = features(cnn, x)
    with pytest.raises(ValueError, match="eps_fraction"):
        spectral_signatures(f, y, eps_fraction=1.5)
    with pytest.raises(ValueError, match="y must have shape"):
        spectral_signatures(f, y[:-1], eps_fraction=0.1)
    with pytest.raises(ValueError, match="features must be 2-D"):
        spectral_signatures(x, y, eps_fraction=0.1)
    with pytest.raises(ValueError, match="size_threshold"):
        activation_clustering(f, y, size_threshold=0.7)
    with pytest.raises(ValueError, match="reduce"):
        activation_clustering(f, y, reduce="tsne")
    with pytest.raises(ValueError, match="layer"):
        features(cnn, x, layer=9)
    with pytest.raises(TypeError, match="nn.Sequential"):
        features(ToyBackdoor(), x)
    with pytest.raises(ValueError, match="alpha"):
        strip(cnn, x, x, alpha=0.0)
    with pytest.raises(ValueError, match="clean_x"):
        strip(cnn, x, x.flatten(1))
    with pytest.raises(ValueError, match="frr"):
        strip_threshold(torch.rand(10), 1.0)
    with pytest.raises(ValueError, match="norms"):
        mad_anomaly_index(torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="num_classes"):
        neural_cleanse(cnn, x, num_classes=2, steps=1)
    with pytest.raises(ValueError, match="x_clean must lie"):
        neural_cleanse(cnn, x * 3, num_classes=10, steps=1)
    with pytest.raises(ValueError, match="layer must index an nn.Conv2d or nn.Linear"):
        fine_prune(cnn, x, y, layer=1, prune_fraction=0.5)
    with pytest.raises(ValueError, match="prune_fraction"):
        fine_prune(cnn, x, y, layer=2, prune_fraction=1.0)
    with pytest.raises(ValueError, match="y_clean"):
        fine_prune(cnn, x, y[:5], layer=2, prune_fraction=0.5)


# ---- a BadNets backdoor planted in the digits -----------------------------------------------------------------
TARGET, RATE = 0, 0.05


def _train(x, y, seed=0):
    mk.seed_everything(seed)
    model = small_cnn((1, 8, 8), 10)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=64, shuffle=True,
                                         generator=torch.Generator().manual_seed(seed))
    fit(model, loader, epochs=8, lr=3e-3, progress=False)
    return model.eval()


@pytest.fixture(scope="module")
def planted(digits):
    """Poisoned training set, its poison indices, the backdoored and the clean model, and the trigger."""
    trigger = patch_trigger((1, 8, 8), size=3)
    xp, yp, poisons = badnets(digits.X_train, digits.y_train, target=TARGET, rate=RATE, trigger=trigger,
                              generator=torch.Generator().manual_seed(0))
    return dict(x=xp, y=yp, poisons=poisons, trigger=trigger, backdoored=_train(xp, yp),
                clean=_train(digits.X_train, digits.y_train))


def test_the_planted_backdoor_works(planted, digits):
    bd, cl, trig = planted["backdoored"], planted["clean"], planted["trigger"]
    assert len(planted["poisons"]) == round(RATE * len(digits.X_train)) == 67
    assert attack_success_rate(bd, digits.X_test, digits.y_test, target=TARGET, trigger=trig) > 0.9
    assert attack_success_rate(cl, digits.X_test, digits.y_test, target=TARGET, trigger=trig) < 0.1
    assert accuracy(bd, digits.X_test, digits.y_test) > accuracy(cl, digits.X_test, digits.y_test) - 0.03


@pytest.fixture(scope="module")
def sparse_plant(digits):
    """As Tran et al.: few poisons, 1% of the training set (13 rows, 9% of the target class)."""
    trigger = patch_trigger((1, 8, 8), size=3)
    xp, yp, poisons = badnets(digits.X_train, digits.y_train, target=TARGET, rate=0.01, trigger=trigger,
                              generator=torch.Generator().manual_seed(0))
    return dict(x=xp, y=yp, poisons=poisons, trigger=trigger, backdoored=_train(xp, yp))


def test_spectral_signatures_flag_few_planted_poisons(sparse_plant, digits):
    from sklearn.metrics import roc_auc_score
    x, y, poisons, bd = sparse_plant["x"], sparse_plant["y"], sparse_plant["poisons"], sparse_plant["backdoored"]
    in_target = (y == TARGET).nonzero().flatten()
    assert len(poisons) == 13 and len(in_target) == 146
    assert attack_success_rate(bd, digits.X_test, digits.y_test, target=TARGET, trigger=sparse_plant["trigger"]) > 0.5
    # the last conv block's output (layer 5, 512 values); the defender's bound eps = 0.1 (true share 9%)
    f = features(bd, x, layer=5)
    scores, flagged = spectral_signatures(f, y, eps_fraction=0.1)
    r = flag_scores(flagged, poisons, len(y))
    assert r["recall"] == 1.0
    flagged_target = flagged[y[flagged] == TARGET]                      # round(1.5 * 0.1 * 146) = 22 rows
    assert len(flagged_target) == 22
    assert torch.isin(flagged_target, poisons).float().mean() >= 0.55    # precision in the target class: 13/22
    is_poison = torch.isin(in_target, poisons).numpy()
    assert roc_auc_score(is_poison, scores[in_target].numpy()) >= 0.99
    # stated false-positive rate: 1.5 * eps of every class is flagged, so 15% of a clean set, by construction
    assert r["false_positive_rate"] == pytest.approx(0.15, abs=0.01)
    # honest ablation: on these digits the poisons' shift is large, and plain squared distance from the class mean
    # ranks them as well (AUROC 1.0 here too; better than the SVD on the 64 penultimate units), so this set does
    # not test the SVD step; test_the_svd_step_beats_distance_from_the_class_mean_on_a_planted_direction does
    centred = f[in_target] - f[in_target].mean(0)
    assert roc_auc_score(is_poison, centred.pow(2).sum(1).numpy()) >= 0.99


def test_activation_clustering_flags_the_poisons_and_few_clean_rows(planted, digits):
    # The paper's setup (FastICA on the last hidden layer, the 64 penultimate units) fails on these digits: recall
    # about 0.6 with a clean-set FPR near 18% on this seed (see activation_clustering's docstring). The test
    # deviates: PCA on the last conv block's output (layer 5, 512 values). Stated false-positive rate on a clean
    # training set: at most 15% of the rows (measured 10.7% on this seed): clean classes that split unevenly
    # are flagged, since the paper's silhouette check is not implemented.
    x, y, poisons = planted["x"], planted["y"], planted["poisons"]
    _, flagged = activation_clustering(features(planted["backdoored"], x, layer=5), y, reduce="pca")
    assert flag_scores(flagged, poisons, len(y))["recall"] >= 0.8
    _, clean_flags = activation_clustering(features(planted["clean"], digits.X_train, layer=5), digits.y_train,
                                           reduce="pca")
    assert flag_scores(clean_flags, NONE, len(digits.y_train))["false_positive_rate"] <= 0.15


def test_strip_rejects_triggered_inputs_at_one_percent_frr(planted, digits):
    bd, trig = planted["backdoored"], planted["trigger"]
    pool, held = digits.X_test[:150], digits.X_test[150:300]
    rest_x, rest_y = digits.X_test[300:], digits.y_test[300:]
    triggered = trig.apply(rest_x[rest_y != TARGET])
    g = torch.Generator().manual_seed(1)
    held_scores = strip(bd, held, pool, n=32, generator=g)
    clean_scores = strip(bd, rest_x, pool, n=32, generator=g)
    trig_scores = strip(bd, triggered, pool, n=32, generator=g)
    for method in ("normal", "empirical"):
        th = strip_threshold(held_scores, 0.01, method=method)
        far = (trig_scores >= th).float().mean().item()
        frr = (clean_scores < th).float().mean().item()
        assert far <= 0.05 and frr <= 0.05       # stated: FAR <= 5% at a 1% FRR set on held-out clean inputs


def test_neural_cleanse_flags_the_infected_label(planted, digits):
    x = digits.X_test[:200]
    nc = neural_cleanse(planted["backdoored"], x, num_classes=10, steps=100, batch_size=32, lr=0.1, lam=1e-2,
                        generator=torch.Generator().manual_seed(0))
    assert nc.norms.argmin() == TARGET and nc.anomaly_index[TARGET] > 2
    assert TARGET in nc.flagged.tolist()
    assert (nc.attack_success > 0.9).all()


def test_neural_cleanse_on_the_clean_model_does_not_flag_label_0(planted, digits):
    # label 0 is no outlier without the backdoor; but the clean model's digit 3 has an index above 2 on this
    # seed (a natural shortcut: the false alarm the MAD rule raises on small models), so no "nothing flagged"
    nc = neural_cleanse(planted["clean"], digits.X_test[:200], num_classes=10, steps=100, batch_size=32, lr=0.1,
                        lam=1e-2, generator=torch.Generator().manual_seed(0))
    assert nc.anomaly_index[TARGET] < 2 and TARGET not in nc.flagged.tolist()


def test_fine_pruning_components_pruning_alone_fine_tuning_alone_and_both(planted, digits):
    bd, trig = planted["backdoored"], planted["trigger"]
    x_def, y_def = digits.X_test[:250], digits.y_test[:250]        # the defender's clean data
    x_ev, y_ev = digits.X_test[250:], digits.y_test[250:]

    def repaired(fraction, epochs, lr):
        model, _ = fine_prune(bd, x_def, y_def, layer=2, prune_fraction=fraction, epochs=epochs, lr=lr,
                              generator=torch.Generator().manual_seed(0))
        return attack_success_rate(model, x_ev, y_ev, target=TARGET, trigger=trig), accuracy(model, x_ev, y_ev)

    asr_before, acc_before = (attack_success_rate(bd, x_ev, y_ev, target=TARGET, trigger=trig),
                              accuracy(bd, x_ev, y_ev))
    assert asr_before > 0.9
    # pruning alone: half of the second conv layer's channels, and even 90% of them, leave the backdoor in place,
    # so on this model it does not live in the channels clean inputs leave dormant (measured 0.99 and 0.97)
    assert repaired(0.5, 0, 1e-3)[0] > 0.9 and repaired(0.9, 0, 1e-3)[0] > 0.9
    # at the training learning rate (3e-3, 20 epochs): fine-tuning alone barely moves it (measured 0.86), pruning
    # then fine-tuning removes part of it (0.59): the pruning step helps, but the backdoor survives
    tuned, _ = repaired(0.0, 20, 3e-3)
    both, acc_both = repaired(0.5, 20, 3e-3)
    assert both < tuned - 0.15 and tuned > 0.7 and both > 0.3
    assert acc_both >= acc_before - 0.03
    # at 3x the training rate (1e-2, 10 epochs) fine-tuning alone already removes most of it (0.24) and both
    # steps together nearly all (0.05), keeping the accuracy within the stated 3 points
    tuned_hi, _ = repaired(0.0, 10, 1e-2)
    both_hi, acc_hi = repaired(0.5, 10, 1e-2)
    assert both_hi < 0.15 and both_hi < tuned_hi - 0.1 and tuned_hi < 0.5
    assert acc_hi >= acc_before - 0.03
