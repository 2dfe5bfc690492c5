"""Backdoor defences: inspect the training set, screen inputs at run time, reverse-engineer or prune the trigger.

Training-set inspection (the defender holds the poisoned data and the model trained on it):

- :func:`spectral_signatures` (Tran, Li & Madry 2018): poisons leave a strong direction in a class's
  representations; score each example by its squared projection on the top singular vector.
- :func:`activation_clustering` (Chen et al. 2018): per class, reduce the activations to a few dimensions and
  split them in two with 2-means; a small cluster is the poisons.

Run-time screening: :func:`strip` (Gao et al. 2019) superimposes clean images on an input; a trigger keeps the
prediction fixed, so a backdoored input has a *low* prediction entropy. :func:`strip_threshold` sets the cut
from clean entropies at a chosen false-rejection rate.

Model inspection and repair: :func:`neural_cleanse` (Wang et al. 2019) finds, for every label, the smallest
mask-and-pattern that sends clean inputs to it; the infected label needs a much smaller mask, which the MAD
anomaly index (:func:`mad_anomaly_index`) flags. :func:`fine_prune` (Liu, Dolan-Gavitt & Garg 2018) prunes the
channels clean inputs leave dormant, then fine-tunes on clean data.

:func:`features` reads a layer's output of an ``nn.Sequential`` (the penultimate layer by default); a detector's
flags are scored against the known poisons with :func:`mlsec_kit.defenses.scoring.flag_scores`.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Iterable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..train import fit, predict

__all__ = ["features", "spectral_signatures", "activation_clustering", "strip", "strip_threshold",
           "mad_anomaly_index", "NeuralCleanse", "neural_cleanse", "fine_prune"]

MAD_CONSISTENCY = 1.4826
"""Scales the median absolute deviation to the standard deviation of a normal distribution (Wang et al. 2019)."""


# ---- argument checks: each error names the argument and its accepted range ---------------------------------
def _check_float_tensor(name: str, t: torch.Tensor, *, min_dim: int = 2) -> None:
    if not isinstance(t, torch.Tensor) or not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch tensor, got {type(t).__name__}"
                        + (f" of dtype {t.dtype}" if isinstance(t, torch.Tensor) else ""))
    if t.dim() < min_dim or t.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty batch with at least {min_dim} dimensions, "
                         f"got shape {tuple(t.shape)}")


def _check_labels(name: str, y: torch.Tensor, n: int) -> None:
    if not isinstance(y, torch.Tensor) or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer torch tensor of labels")
    if y.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match the batch size, got {tuple(y.shape)}")


def _check_fraction(name: str, value: float, *, low_open: bool = True, high_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    lo_ok = value > 0 if low_open else value >= 0
    hi_ok = value < 1 if high_open else value <= 1
    if not (lo_ok and hi_ok and math.isfinite(value)):
        raise ValueError(f"{name} must lie in {'(' if low_open else '['}0, 1{')' if high_open else ']'}, "
                         f"got {value!r}")


def _check_int(name: str, value: int, *, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _check_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not ((value >= 0) if allow_zero else (value > 0)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def _model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


# ---- helpers -----------------------------------------------------------------------------------------------
@torch.no_grad()
def features(model: nn.Sequential, x: torch.Tensor, *, layer: int = -2, batch_size: int = 512) -> torch.Tensor:
    """The output of module ``layer`` of a sequential model, flattened per example.

    With the default ``layer=-2`` this is the input of the last (classifying) layer: for the kit's
    :func:`~mlsec_kit.models.small_cnn` and :func:`~mlsec_kit.models.mlp`, the penultimate ReLU activations,
    the representations that spectral signatures and activation clustering inspect.

    Args:
        model: an ``nn.Sequential``; run in eval mode, its mode restored afterwards.
        x: the inputs.
        layer: index of the module whose output is returned (negative counts from the end).
        batch_size: rows per forward pass, >= 1.

    Returns:
        The activations, on ``x``'s device.

    Shape:
        ``x`` ``(N, ...)`` → ``(N, D)`` with ``D`` the flattened size of the layer's output.
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"model must be an nn.Sequential to read a layer's output, got {type(model).__name__}")
    _check_float_tensor("x", x)
    if isinstance(layer, bool) or not isinstance(layer, int) or not -len(model) <= layer < len(model):
        raise ValueError(f"layer must be an int in [{-len(model)}, {len(model) - 1}], got {layer!r}")
    _check_int("batch_size", batch_size)
    head = model[: layer % len(model) + 1]
    was_training = model.training
    model.eval()
    try:
        out = torch.cat([head(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)
    return out.flatten(1)


# ---- training-set inspection -------------------------------------------------------------------------------
def _check_features(feats: torch.Tensor, y: torch.Tensor) -> None:
    _check_float_tensor("features", feats, min_dim=2)
    if feats.dim() != 2:
        raise ValueError(f"features must be 2-D (N, D) (flatten them first), got shape {tuple(feats.shape)}")
    _check_labels("y", y, feats.shape[0])


def spectral_signatures(features: torch.Tensor, y: torch.Tensor, *,
                        eps_fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Spectral signatures (Tran, Li & Madry, NeurIPS 2018): outlier scores from each class's top singular vector.

    For each label :math:`c`, centre the class's representations, :math:`M = [R_i - \hat R]_{i: y_i = c}`,
    take the top right singular vector :math:`v` of :math:`M` and score each example by its squared projection,
    :math:`\tau_i = ((R_i - \hat R)^\top v)^2`. Poisons that share a trigger move together along one
    direction, so they dominate the top singular vector and score high. Within each class the
    ``round(1.5 * eps_fraction * n_c)`` highest scores are flagged, where ``eps_fraction`` is the defender's
    upper bound on the poisoned fraction (the paper removes 1.5 times that bound), so on a clean set the
    false-positive rate is ``1.5 * eps_fraction`` by construction. The SVD step matters when the poisons' shift is
    small against the total spread of the representations (many dimensions of noise): squared distance from the
    class mean then drowns it, while the top singular vector still finds the shared direction. On the 8x8
    digits' small CNN the shift is large enough that distance from the mean ranks the poisons as well (or
    better, on the penultimate layer); the kit's tests show the SVD step on a planted-direction set.

    Args:
        features: per-example representations, e.g. :func:`features` of the model trained on the data.
        y: the training labels (as given, possibly poisoned).
        eps_fraction: assumed upper bound on the fraction of poisons in a class, in ``[0, 1]``; the flagged
            count is capped at the class size.

    Returns:
        ``(scores, flagged_indices)``: the outlier score of every row (float, ``>= 0``) and the flagged rows
        as a sorted LongTensor.

    Shape:
        ``features`` ``(N, D)``, ``y`` ``(N,)`` → scores ``(N,)``, flagged ``(F,)``.
    """
    _check_features(features, y)
    _check_fraction("eps_fraction", eps_fraction, low_open=False)
    feats = features.detach().double()
    scores = torch.zeros(len(feats), dtype=torch.float64, device=feats.device)
    flagged = []
    for c in torch.unique(y).tolist():
        idx = (y == c).nonzero().flatten()
        centred = feats[idx] - feats[idx].mean(0, keepdim=True)
        _, _, vh = torch.linalg.svd(centred, full_matrices=False)
        s = (centred @ vh[0]) ** 2
        scores[idx] = s
        k = min(len(idx), int(round(1.5 * eps_fraction * len(idx))))
        if k:
            flagged.append(idx[s.topk(k).indices])
    out = torch.cat(flagged).sort().values if flagged else torch.zeros(0, dtype=torch.long, device=feats.device)
    return scores.to(features.dtype), out


def activation_clustering(features: torch.Tensor, y: torch.Tensor, *, n_components: int = 10,
                          reduce: str = "ica", size_threshold: float = 0.35,
                          seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Activation clustering (Chen et al., AAAI SafeAI workshop 2019, arXiv 2018): 2-means per class.

    For each label, the activations of the examples carrying it are reduced to ``n_components`` dimensions
    (independent component analysis, the paper's choice, or PCA) and split into two clusters by k-means. A
    backdoored class holds two populations (the real examples and the triggered ones the model learned by a
    different route), so the poisons form a cluster of their own; the smaller cluster is flagged when its
    share of the class is strictly below ``size_threshold`` (the paper's relative-size analysis; 0.35 is
    its value, and ``<`` is the comparison ART's implementation uses). A clean class is assumed to split
    roughly evenly; nothing here checks that (the paper adds a silhouette-score check, not implemented), so a
    clean class that splits unevenly is flagged: measure the false-positive rate on a clean set.

    The paper clusters the last hidden layer after ICA. On the 8x8 digits' small CNN (BadNets, 5% poisons, seed 0)
    that setup works poorly: recall 0.61 with 17.7% of a clean training set flagged. ICA's components are
    unordered and of unit variance, so keeping 10 of them need not keep the poisons' direction; PCA keeps the
    directions of largest variance, the poisons' shift among them (PCA on the same 64 units: recall 0.88, clean
    FPR 6.9%). The kit's test uses PCA on the last conv block's output (``features(model, x, layer=5)``, 512
    values): recall 1.0, clean FPR 10.7% (ICA there: 0.67 and 14%).

    Args:
        features: per-example activations (the paper: the last hidden layer), e.g. :func:`features`.
        y: the training labels.
        n_components: dimensions kept before clustering, >= 1 (capped at the class size and feature count).
        reduce: ``"ica"`` (scikit-learn's FastICA) or ``"pca"``.
        size_threshold: a cluster whose relative size is strictly below this is flagged, in ``(0, 0.5]``.
        seed: seeds the reduction and k-means, so the result is deterministic.

    Returns:
        ``(relative_size, flagged_indices)``: for every row the relative size of the cluster it fell in
        (in ``(0, 1]``; small means suspicious), and the flagged rows as a sorted LongTensor.

    Shape:
        ``features`` ``(N, D)``, ``y`` ``(N,)`` → relative sizes ``(N,)``, flagged ``(F,)``.
    """
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA, FastICA

    _check_features(features, y)
    _check_int("n_components", n_components)
    if reduce not in ("ica", "pca"):
        raise ValueError(f"reduce must be one of ('ica', 'pca'), got {reduce!r}")
    _check_positive("size_threshold", size_threshold)
    if size_threshold > 0.5:
        raise ValueError(f"size_threshold must lie in (0, 0.5], got {size_threshold!r}")
    _check_int("seed", seed, minimum=0)
    feats = features.detach().cpu().double().numpy()
    labels = y.cpu().numpy()
    rel = np.ones(len(feats))
    flagged: list[np.ndarray] = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) < 2:
            continue
        z = feats[idx]
        # units that are constant on the class (dead ReLUs) carry nothing to cluster on, and scikit-learn's
        # FastICA returns NaN when the first one is (it fixes the whitening vectors' signs by their first
        # entry, then 0); keep no more components than the live units span
        live = z[:, np.ptp(z, axis=0) > 0]
        k = min(n_components, live.shape[1], len(idx) - 1,
                int(np.linalg.matrix_rank(live - live.mean(0))) if live.shape[1] else 0)
        if k >= 1:
            if reduce == "ica":
                z = FastICA(n_components=k, random_state=seed, max_iter=500, tol=1e-3,
                            whiten="unit-variance").fit_transform(live)
            else:
                z = PCA(n_components=k, random_state=seed).fit_transform(live)
        assign = KMeans(n_clusters=2, n_init=10, random_state=seed).fit_predict(z)
        sizes = np.bincount(assign, minlength=2) / len(idx)
        rel[idx] = sizes[assign]
        small = int(np.argmin(sizes))
        if sizes[small] < size_threshold:
            flagged.append(idx[assign == small])
    out = np.sort(np.concatenate(flagged)) if flagged else np.zeros(0, dtype=np.int64)
    return (torch.as_tensor(rel, dtype=features.dtype, device=features.device),
            torch.as_tensor(out, dtype=torch.long, device=features.device))


# ---- run-time screening ------------------------------------------------------------------------------------
@torch.no_grad()
def strip(model: nn.Module, x: torch.Tensor, clean_x: torch.Tensor, *, n: int = 100, alpha: float = 1.0,
          batch_size: int = 2048, clip_min: float = 0.0, clip_max: float = 1.0,
          generator: Optional[torch.Generator] = None) -> torch.Tensor:
    r"""STRIP (Gao et al., ACSAC 2019): the prediction entropy of an input superimposed on random clean images.

    Each input :math:`x` is superimposed on ``n`` clean images drawn at random from ``clean_x``,
    :math:`x^{(j)} = \mathrm{clip}(x + \alpha\, x_j^{\text{clean}})` (the authors' code adds the two images
    at full weight, ``alpha = 1``, and saturates), and its score is the mean Shannon entropy (in bits) of the
    model's softmax over those blends,
    :math:`H(x) = \frac1n \sum_j -\sum_k p_k(x^{(j)}) \log_2 p_k(x^{(j)})`. A clean input's prediction
    wavers with the image laid over it (high entropy); a triggered input keeps predicting the target,
    because the trigger survives the superimposition (low entropy). Flag inputs scoring *below*
    :func:`strip_threshold`. (A convex blend ``0.5 x + 0.5 x_clean`` halves the trigger too; on the 8x8
    digits it separates far worse.)

    Args:
        model: the (possibly backdoored) classifier returning logits; run in eval mode, mode restored.
        x: the inputs to screen.
        clean_x: a held-out pool of clean inputs, same per-example shape as ``x``.
        n: superimpositions per input, >= 1.
        alpha: weight of the clean image laid over the input, in ``(0, 1]``.
        batch_size: blended images per forward pass, >= 1; also the most blends held in memory at once
            (one input's ``n`` blends when ``n`` is larger).
        clip_min: smallest valid input value.
        clip_max: largest valid input value.
        generator: draws the clean images (a CPU ``torch.Generator``); ``None`` uses torch's global one.

    Returns:
        The entropy score of each input, in ``[0, log2(K)]``, on ``x``'s device.

    Shape:
        ``x`` ``(N, ...)``, ``clean_x`` ``(M, ...)`` → ``(N,)``.
    """
    _check_float_tensor("x", x)
    _check_float_tensor("clean_x", clean_x)
    if x.shape[1:] != clean_x.shape[1:]:
        raise ValueError(f"clean_x must have the per-example shape of x, {tuple(x.shape[1:])}, "
                         f"got {tuple(clean_x.shape[1:])}")
    _check_int("n", n)
    _check_fraction("alpha", alpha)
    _check_int("batch_size", batch_size)
    if not clip_min < clip_max:
        raise ValueError(f"clip_min must be < clip_max, got [{clip_min}, {clip_max}]")
    picks = torch.randint(len(clean_x), (len(x), n), generator=generator).to(clean_x.device)
    # the blends are built a chunk of inputs at a time, never more than ``batch_size`` of them (or one input's
    # ``n``) at once: all N * n blends together would take N * n images of memory (gigabytes for MNIST or CIFAR-10)
    per_chunk = max(1, batch_size // n)
    was_training = model.training
    scores = []
    try:
        for i in range(0, len(x), per_chunk):
            xs, ps = x[i:i + per_chunk], picks[i:i + per_chunk]
            blends = (xs.unsqueeze(1) + alpha * clean_x[ps]).clamp(clip_min, clip_max)   # (chunk, n, ...)
            logits = predict(model, blends.flatten(0, 1), batch_size=batch_size)
            logp = F.log_softmax(logits.double(), dim=1)
            entropy = -(logp.exp() * logp).sum(1) / math.log(2)
            scores.append(entropy.view(len(xs), n).mean(1))
    finally:
        model.train(was_training)
    return torch.cat(scores).to(x.dtype)


def strip_threshold(clean_scores: torch.Tensor, frr: float, *, method: str = "normal") -> float:
    r"""The STRIP cut that rejects a fraction ``frr`` of clean inputs, set from held-out clean entropies.

    Inputs scoring strictly below the threshold are flagged. Two ways to set it:

    - ``"normal"`` (Gao et al.'s choice, the default): fit a normal distribution to the clean entropies (their
      mean and standard deviation, the maximum-likelihood fit) and take its ``frr`` percentile,
      :math:`\mu + \sigma\,\Phi^{-1}(\mathrm{frr})`. The realised false-rejection rate is ``frr`` only as far
      as the entropies are normal; ``frr = 0`` gives ``-inf`` (nothing rejected).
    - ``"empirical"``: a distribution-free variant, the ``frr``-quantile of the clean scores themselves (the
      ``floor(frr * M)``-th smallest), so on those scores at most a fraction ``frr`` is flagged (ties aside).

    Args:
        clean_scores: :func:`strip` scores of held-out clean inputs.
        frr: the accepted false-rejection rate, in ``[0, 1)``.
        method: ``"normal"`` or ``"empirical"``.

    Returns:
        The threshold, a float.

    Shape:
        ``clean_scores`` ``(M,)`` with ``M >= 1`` (``M >= 2`` for ``"normal"``).
    """
    if not isinstance(clean_scores, torch.Tensor) or not clean_scores.is_floating_point():
        raise TypeError("clean_scores must be a floating-point torch tensor")
    if clean_scores.dim() != 1 or len(clean_scores) == 0:
        raise ValueError(f"clean_scores must be a non-empty 1-D tensor, got shape {tuple(clean_scores.shape)}")
    _check_fraction("frr", frr, low_open=False, high_open=True)
    if method not in ("normal", "empirical"):
        raise ValueError(f"method must be one of ('normal', 'empirical'), got {method!r}")
    s = clean_scores.detach().double()
    if method == "normal":
        if len(s) < 2:
            raise ValueError("clean_scores must hold at least 2 values to fit a normal distribution")
        if frr == 0:
            return -math.inf
        mu, sigma = s.mean().item(), s.std(unbiased=False).item()
        return float(NormalDist(mu, sigma).inv_cdf(frr)) if sigma > 0 else mu
    s = s.sort().values
    # the k-th smallest score with k = floor(frr * M): exactly k clean scores lie strictly below it (ties aside)
    return float(s[int(math.floor(frr * len(s)))])


def _median(v: torch.Tensor) -> torch.Tensor:
    """The median of a 1-D tensor, the mean of the two middle values for an even count (``torch.median`` takes
    the lower one)."""
    s = v.sort().values
    n = len(s)
    return s[n // 2] if n % 2 else s[n // 2 - 1: n // 2 + 1].mean()


# ---- model inspection: Neural Cleanse ------------------------------------------------------------------------
def mad_anomaly_index(norms: torch.Tensor) -> torch.Tensor:
    r"""The anomaly index of Wang et al. (2019): distance from the median in units of the scaled MAD.

    :math:`a_k = |n_k - \tilde n| / (1.4826\, \mathrm{median}_j |n_j - \tilde n|)`, with :math:`\tilde n` the
    median of the norms; 1.4826 makes the MAD estimate a normal distribution's standard deviation, so an index
    above 2 is an outlier with more than 95% probability. Only labels whose norm is *below* the median are
    suspects (a trigger is a small perturbation); :class:`NeuralCleanse` applies that rule.

    Args:
        norms: one non-negative value per label (e.g. the L1 norms of the reversed masks), at least 3.

    Returns:
        The anomaly index of each label, ``>= 0`` (``inf`` for a label off the median when all the others
        coincide, so the MAD is 0).

    Shape:
        ``(K,)`` → ``(K,)``.
    """
    if not isinstance(norms, torch.Tensor) or not norms.is_floating_point():
        raise TypeError("norms must be a floating-point torch tensor")
    if norms.dim() != 1 or len(norms) < 3:
        raise ValueError(f"norms must be a 1-D tensor of at least 3 values, got shape {tuple(norms.shape)}")
    v = norms.detach().double()
    med = _median(v)
    dev = (v - med).abs()
    mad = _median(dev)
    scale = MAD_CONSISTENCY * mad
    out = torch.where(dev > 0, dev / scale, torch.zeros_like(dev)) if scale > 0 else \
        torch.where(dev > 0, torch.full_like(dev, math.inf), torch.zeros_like(dev))
    return out.to(norms.dtype)


@dataclass(frozen=True)
class NeuralCleanse:
    """What :func:`neural_cleanse` found: the reversed trigger of every label and which labels look infected.

    ``masks`` ``(K, 1, H, W)`` in ``[0, 1]``, ``patterns`` ``(K, C, H, W)`` in the input range, ``norms`` ``(K,)``
    the masks' L1 norms, ``attack_success`` ``(K,)`` the fraction of clean inputs each reversed trigger sends to
    its label, ``anomaly_index`` ``(K,)`` from :func:`mad_anomaly_index`, ``flagged`` the labels whose norm is
    below the median and whose index exceeds ``threshold`` (sorted LongTensor).
    """

    masks: torch.Tensor
    patterns: torch.Tensor
    norms: torch.Tensor
    attack_success: torch.Tensor
    anomaly_index: torch.Tensor
    flagged: torch.Tensor
    threshold: float


def neural_cleanse(model: nn.Module, x_clean: torch.Tensor, *, num_classes: int, steps: int = 300,
                   lr: float = 0.1, lam: float = 1e-2, batch_size: int = 128, threshold: float = 2.0,
                   clip_min: float = 0.0, clip_max: float = 1.0,
                   generator: Optional[torch.Generator] = None) -> NeuralCleanse:
    r"""Neural Cleanse (Wang et al., IEEE S&P 2019): reverse-engineer a trigger per label, flag the small outlier.

    For every label :math:`t` it optimises a mask :math:`m \in [0,1]^{H \times W}` (shared by the channels) and a
    pattern :math:`p` in the input range so that the stamped inputs :math:`x' = (1 - m) \odot x + m \odot p`
    are classified as :math:`t`, with the smallest mask:
    :math:`\min_{m, p}\ \mathbb{E}_x\, \ell(f(x'), t) + \lambda \lVert m \rVert_1`. Both are parametrised through
    a tanh so they stay in range (as in the authors' code) and optimised with Adam on minibatches of clean
    inputs; all labels are optimised together, in one batched forward pass. A backdoor is a shortcut to its
    target label, so that label's mask is far smaller than the others; the MAD anomaly index of the mask norms
    flags it. The authors tune ``lam`` during the search to keep the reversed trigger's success high; here
    it is fixed (report ``attack_success`` beside the norms).

    Args:
        model: the classifier to inspect, returning logits ``(N, num_classes)``; its parameters are not changed.
        x_clean: clean inputs the defender holds (any labels), ``(N, C, H, W)`` in ``[clip_min, clip_max]``.
        num_classes: number of labels, >= 3 (the MAD needs a population).
        steps: optimisation steps per label, >= 1.
        lr: Adam step size, > 0.
        lam: weight of the mask's L1 norm, >= 0.
        batch_size: clean inputs per step, >= 1 (and per chunk when the reversed triggers' success is measured:
            ``num_classes * batch_size`` stamped images at once).
        threshold: anomaly index above which a label is flagged, > 0 (the paper uses 2).
        clip_min: smallest valid input value.
        clip_max: largest valid input value.
        generator: draws the minibatches and the initial masks (a CPU ``torch.Generator``).

    Returns:
        A :class:`NeuralCleanse`.

    Shape:
        ``x_clean`` ``(N, C, H, W)`` → masks ``(K, 1, H, W)``, patterns ``(K, C, H, W)``, norms ``(K,)``.
    """
    _check_float_tensor("x_clean", x_clean)
    if x_clean.dim() != 4:
        raise ValueError(f"x_clean must be images (N, C, H, W), got shape {tuple(x_clean.shape)}")
    _check_int("num_classes", num_classes, minimum=3)
    _check_int("steps", steps)
    _check_positive("lr", lr)
    _check_positive("lam", lam, allow_zero=True)
    _check_int("batch_size", batch_size)
    _check_positive("threshold", threshold)
    if not clip_min < clip_max:
        raise ValueError(f"clip_min must be < clip_max, got [{clip_min}, {clip_max}]")
    lo, hi = x_clean.min().item(), x_clean.max().item()
    if lo < clip_min - 1e-6 or hi > clip_max + 1e-6:
        raise ValueError(f"x_clean must lie in [{clip_min}, {clip_max}], got values in [{lo:.4g}, {hi:.4g}]")
    k = num_classes
    _, c, h, w = x_clean.shape
    dev = x_clean.device
    # tanh parametrisation keeps mask and pattern in range; a small random start puts both near mid-range
    mask_raw = (torch.randn(k, 1, h, w, generator=generator) * 0.1).to(dev).requires_grad_(True)
    pattern_raw = (torch.randn(k, c, h, w, generator=generator) * 0.1).to(dev).requires_grad_(True)
    opt = torch.optim.Adam([mask_raw, pattern_raw], lr=lr, betas=(0.5, 0.9))
    targets = torch.arange(k, device=dev)
    bs = min(batch_size, len(x_clean))

    def stamp(xb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mask = (torch.tanh(mask_raw) + 1) / 2
        pattern = clip_min + (clip_max - clip_min) * (torch.tanh(pattern_raw) + 1) / 2
        stamped = (1 - mask.unsqueeze(1)) * xb.unsqueeze(0) + (mask * pattern).unsqueeze(1)  # (K, B, C, H, W)
        return stamped, mask, pattern

    was_training = model.training
    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        with torch.enable_grad():
            for _ in range(steps):
                xb = x_clean[torch.randint(len(x_clean), (bs,), generator=generator).to(dev)]
                stamped, mask, _ = stamp(xb)
                logits = model(stamped.flatten(0, 1))
                ce = F.cross_entropy(logits, targets.repeat_interleave(bs), reduction="none").view(k, bs).mean(1)
                loss = (ce + lam * mask.flatten(1).sum(1)).sum()   # the labels' problems are independent
                opt.zero_grad()
                loss.backward()
                opt.step()
        with torch.no_grad():
            # every label's reversed trigger on every clean input, a chunk of inputs at a time (K * N stamped
            # images at once would not fit in memory for a large x_clean)
            hits = torch.zeros(k, dtype=torch.float64, device=dev)
            for i in range(0, len(x_clean), bs):
                stamped, mask, pattern = stamp(x_clean[i:i + bs])
                pred = predict(model, stamped.flatten(0, 1)).argmax(1).view(k, -1)
                hits += (pred == targets[:, None]).double().sum(1)
            success = hits / len(x_clean)
    finally:
        for p in params:
            p.requires_grad_(True)
        model.train(was_training)
    norms = mask.detach().flatten(1).sum(1)
    index, flagged = _flag_labels(norms, threshold)
    return NeuralCleanse(masks=mask.detach(), patterns=pattern.detach(), norms=norms,
                         attack_success=success.to(x_clean.dtype), anomaly_index=index, flagged=flagged,
                         threshold=float(threshold))


def _flag_labels(norms: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The anomaly index of each label and the labels flagged: norm below the median (the same median,
    two middle values averaged, as :func:`mad_anomaly_index`) and index above ``threshold``."""
    index = mad_anomaly_index(norms)
    below = norms.double() < _median(norms.double())
    return index, ((index > threshold) & below).nonzero().flatten()


# ---- repair: fine-pruning ------------------------------------------------------------------------------------
@torch.no_grad()
def _mean_activation(model: nn.Sequential, layer: int, x: torch.Tensor) -> torch.Tensor:
    """Mean ReLU activation of each output channel (unit) of ``model[layer]`` over ``x`` (and positions)."""
    out = F.relu(model[: layer + 1](x))
    return out.transpose(0, 1).flatten(1).mean(1)


def fine_prune(model: nn.Sequential, x_clean: torch.Tensor, y_clean: torch.Tensor, *, layer: int,
               prune_fraction: float, epochs: int = 5, lr: float = 1e-3, batch_size: int = 64,
               generator: Optional[torch.Generator] = None) -> tuple[nn.Sequential, torch.Tensor]:
    """Fine-pruning (Liu, Dolan-Gavitt & Garg, RAID 2018): prune the channels clean data leaves dormant, fine-tune.

    The paper's premise is that a backdoor lives in units that clean inputs rarely excite. The channels (or
    units) of ``model[layer]`` are ranked by their mean activation (after a ReLU) on the defender's clean data,
    and the ``round(prune_fraction * channels)`` least active are removed (their weights and bias held at zero
    by a mask that survives training). The pruned model is then fine-tuned on the clean data for ``epochs``,
    which repairs the clean accuracy and weakens what is left of the backdoor. ``epochs=0`` gives pruning alone.

    Whether the premise holds depends on the model. In the kit's test (small CNN on the 8x8 digits, BadNets
    patch) pruning alone leaves the backdoor intact (even 90% of the second conv layer's channels), so the
    trigger is *not* confined to dormant channels there; fine-tuning does most of the work, and how much it
    removes depends strongly on its learning rate. Measured there (attack success 0.98 before): pruning half the
    channels alone 0.99; at the training rate (Adam 3e-3, 20 epochs) fine-tuning alone 0.86 and both 0.59; at
    three times the training rate (1e-2, 10 epochs) fine-tuning alone 0.24 and both 0.05. Pruning first helped
    at both rates there, but not on every model (chapter 7's 1% backdoor: not at the training rate). Report pruning alone, fine-tuning alone and both, with the fine-tuning rate beside them.

    Args:
        model: the (possibly backdoored) ``nn.Sequential``; not modified: a pruned copy is returned.
        x_clean: clean inputs the defender holds.
        y_clean: their labels.
        layer: index of a ``nn.Conv2d`` or ``nn.Linear`` in ``model`` (the paper prunes the last conv layer).
        prune_fraction: fraction of its output channels to prune, in ``[0, 1)``.
        epochs: fine-tuning passes over the clean data, >= 0.
        lr: fine-tuning learning rate (Adam), > 0.
        batch_size: fine-tuning batch size, >= 1.
        generator: shuffles the fine-tuning batches (a CPU ``torch.Generator``).

    Returns:
        ``(pruned_model, pruned_channels)``: the repaired copy (in eval mode) and the pruned channel indices
        (sorted LongTensor).

    Shape:
        ``x_clean`` ``(N, ...)``, ``y_clean`` ``(N,)``.
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"model must be an nn.Sequential, got {type(model).__name__}")
    if isinstance(layer, bool) or not isinstance(layer, int) or not -len(model) <= layer < len(model):
        raise ValueError(f"layer must be an int in [{-len(model)}, {len(model) - 1}], got {layer!r}")
    layer %= len(model)
    if not isinstance(model[layer], (nn.Conv2d, nn.Linear)):
        raise ValueError(f"layer must index an nn.Conv2d or nn.Linear, got {type(model[layer]).__name__} "
                         f"at index {layer}")
    _check_float_tensor("x_clean", x_clean)
    _check_labels("y_clean", y_clean, x_clean.shape[0])
    _check_fraction("prune_fraction", prune_fraction, low_open=False, high_open=True)
    _check_int("epochs", epochs, minimum=0)
    _check_positive("lr", lr)
    _check_int("batch_size", batch_size)
    pruned = copy.deepcopy(model).eval()
    module = pruned[layer]
    channels = module.weight.shape[0]
    n_prune = int(round(prune_fraction * channels))
    order = _mean_activation(pruned, layer, x_clean).argsort()   # least active first
    drop = order[:n_prune].sort().values
    keep = torch.ones(channels, dtype=torch.bool, device=module.weight.device)
    keep[drop] = False
    shape = (channels,) + (1,) * (module.weight.dim() - 1)
    weight_mask = keep.view(shape).to(module.weight.dtype)
    with torch.no_grad():
        module.weight.mul_(weight_mask)
        if module.bias is not None:
            module.bias.mul_(keep.to(module.bias.dtype))
    if epochs:
        hooks = [module.weight.register_hook(lambda g: g * weight_mask)]
        if module.bias is not None:
            bias_mask = keep.to(module.bias.dtype)
            hooks.append(module.bias.register_hook(lambda g: g * bias_mask))
        loader = _loader(x_clean, y_clean, batch_size=batch_size, generator=generator)
        try:
            # plain Adam with no weight decay: a zero weight with a zero gradient stays exactly zero
            fit(pruned, loader, epochs=epochs, lr=lr, progress=False)
        finally:
            for hk in hooks:
                hk.remove()
    return pruned.eval(), drop.cpu()


def _loader(x: torch.Tensor, y: torch.Tensor, *, batch_size: int,
            generator: Optional[torch.Generator]) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    """A re-iterable of shuffled ``(X, y)`` batches: a fresh permutation from ``generator`` every epoch."""

    class _Batches:
        def __iter__(self):
            perm = torch.randperm(len(x), generator=generator).to(x.device)
            for i in range(0, len(x), batch_size):
                sel = perm[i:i + batch_size]
                yield x[sel], y[sel]

    return _Batches()
