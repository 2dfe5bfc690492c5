"""Randomized smoothing: a classifier that is certifiably robust in L2, and the Monte-Carlo certificate.

The smoothed classifier of a base classifier ``f`` is :math:`g(x) = \\arg\\max_c P(f(x + \\delta) = c)` with
:math:`\\delta \\sim \\mathcal{N}(0, \\sigma^2 I)`. If the top class has probability :math:`p_A \\ge
\\underline{p_A} > 1/2`, then :math:`g` returns it everywhere within the L2 radius
:math:`R = \\sigma\\,\\Phi^{-1}(\\underline{p_A})` (Cohen, Rosenfeld & Kolter, ICML 2019, Theorem 1 with the
runner-up bounded by :math:`1 - \\underline{p_A}`). The probabilities are unknown, so they are estimated from
noise samples; the certificate then holds with probability at least ``1 - alpha`` over those samples.

Every noise sample is one forward pass of the base classifier; the samples of all inputs are streamed
through the model in batches of ``batch_size`` rows, so certification time is the forward passes.
"""
from __future__ import annotations

import math
import time
from typing import Iterable, Optional

import numpy as np
import torch
from scipy.stats import beta as beta_dist
from scipy.stats import binomtest
from scipy.stats import norm as normal_dist
from torch import nn

from ..train import History, fit

__all__ = ["noise_augmented_fit", "clopper_pearson_lower", "sample_counts", "smoothed_predict", "certify",
           "certified_accuracy", "ABSTAIN"]

ABSTAIN = -1
"""The class returned where the smoothed classifier abstains (its radius is then 0)."""

_BLOCK = 16  # torch's CPU normal sampler fills blocks of 16 values; padding rows to it keeps draws batch-invariant


# ---- argument checks: each error names the argument and its accepted range ---------------------------------
def _check_sigma(sigma: float) -> None:
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)):
        raise TypeError(f"sigma must be a number, got {type(sigma).__name__}")
    if not (sigma > 0 and math.isfinite(sigma)):
        raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}")


def _check_alpha(alpha: float) -> None:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise TypeError(f"alpha must be a number, got {type(alpha).__name__}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in the open interval (0, 1), got {alpha!r}")


def _check_int(name: str, value: int, *, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _check_x(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point torch tensor, got {type(x).__name__}"
                        + (f" of dtype {x.dtype}" if isinstance(x, torch.Tensor) else ""))
    if x.dim() < 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty batch (N, ...), got shape {tuple(x.shape)}")


class _GaussianAugment(nn.Module):
    """Adds N(0, sigma^2 I) noise to the input in training mode only; eval mode sees the clean input."""

    def __init__(self, model: nn.Module, sigma: float, generator: Optional[torch.Generator]) -> None:
        super().__init__()
        self.model, self.sigma, self.generator = model, sigma, generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            x = x + _gaussian(x.shape, self.sigma, self.generator).to(device=x.device, dtype=x.dtype)
        return self.model(x)


def _gaussian(shape: torch.Size, sigma: float, generator: Optional[torch.Generator]) -> torch.Tensor:
    """``sigma`` times standard normal noise of ``shape``, drawn on the CPU, one row per example.

    Each row is drawn padded to a multiple of 16 values and cut back: torch's CPU sampler works in blocks of
    16, so the sequence of rows a generator yields is then the same however the rows are split into calls
    (batched and one-at-a-time sampling see the same noise).
    """
    d = math.prod(shape[1:])
    padded = -(-d // _BLOCK) * _BLOCK
    return torch.randn((shape[0], padded), generator=generator)[:, :d].reshape(shape) * sigma


def noise_augmented_fit(model: nn.Module, train_loader: Iterable, *, sigma: float, epochs: int, lr: float = 1e-3,
                        optimizer: str = "adam", eval_loader: Optional[Iterable] = None,
                        progress: Optional[bool] = None,
                        generator: Optional[torch.Generator] = None) -> History:
    """Train ``model`` on Gaussian-noise-augmented inputs, the base classifier of randomized smoothing.

    Every training batch is replaced by ``X + N(0, sigma^2 I)`` (fresh noise per batch) and the model is
    trained with cross-entropy by :func:`mlsec_kit.train.fit`, so the base classifier learns to classify
    noisy inputs: the training of Cohen, Rosenfeld & Kolter (ICML 2019, Section 4), which makes the smoothed
    classifier accurate at the same ``sigma``.

    Args:
        model: a classifier returning logits ``(N, K)``; trained in place on its own device, left in eval mode.
        train_loader: yields ``(X, y)`` batches, e.g. ``DataSplit.train_loader()``.
        sigma: standard deviation of the noise, > 0, in the units of ``X`` (use the sigma you will certify with).
        epochs: passes over the training data, at least 1.
        lr: learning rate, > 0.
        optimizer: ``"adam"`` or ``"sgd"`` (momentum 0.9).
        eval_loader: when given, the *clean* test loss and accuracy of the base classifier after every epoch.
        progress: show a progress bar; ``None`` shows it in Colab and terminals only.
        generator: the source of the noise (a CPU ``torch.Generator``); ``None`` uses torch's global generator.

    Returns:
        A :class:`mlsec_kit.train.History`; ``train_loss``/``train_acc`` are measured on the noisy batches.
        ``history.seconds`` is the wall-clock training time.

    Shape:
        batches ``X`` ``(B, ...)`` float, ``y`` ``(B,)`` int in ``[0, K)``.
    """
    _check_sigma(sigma)
    start = time.perf_counter()
    history = fit(_GaussianAugment(model, float(sigma), generator), train_loader, epochs=epochs, lr=lr,
                  optimizer=optimizer, eval_loader=eval_loader, progress=progress)
    history.seconds = time.perf_counter() - start
    model.eval()
    return history


def clopper_pearson_lower(k: int, n: int, *, alpha: float) -> float:
    """One-sided ``1 - alpha`` Clopper–Pearson lower confidence bound on a binomial proportion.

    The exact bound (Clopper & Pearson 1934): the smallest ``p`` with ``P(Binomial(n, p) >= k) >= alpha``,
    which is the ``alpha`` quantile of ``Beta(k, n - k + 1)``; ``0`` when ``k = 0``. Whatever the true ``p``,
    ``P(bound <= p) >= 1 - alpha``. Used by Cohen, Rosenfeld & Kolter (ICML 2019) to bound ``p_A`` from below
    (their code asks for the two-sided interval at level ``2 alpha``, which has the same lower end).

    Args:
        k: successes, an int in ``[0, n]``.
        n: trials, an int >= 1.
        alpha: the failure probability, in ``(0, 1)``.

    Returns:
        The lower bound, a float in ``[0, k / n]`` (strictly below ``k / n`` when ``k >= 1``).
    """
    _check_int("n", n, minimum=1)
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= n:
        raise ValueError(f"k must be an int in [0, n] = [0, {n}], got {k!r}")
    _check_alpha(alpha)
    return float(_lower_bounds(np.array([k]), n, alpha)[0])


def _lower_bounds(k: np.ndarray, n: int, alpha: float) -> np.ndarray:
    """:func:`clopper_pearson_lower` for an array of success counts (unchecked)."""
    return np.where(k > 0, beta_dist.ppf(alpha, np.maximum(k, 1), n - k + 1), 0.0)


@torch.no_grad()
def sample_counts(model: nn.Module, x: torch.Tensor, *, sigma: float, n: int, batch_size: int = 1000,
                  generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """How often the base classifier picks each class under Gaussian noise: ``n`` samples per input.

    For every input ``x_i`` it draws ``n`` noisy copies ``x_i + N(0, sigma^2 I)`` and counts the base
    classifier's top-1 predictions (Cohen, Rosenfeld & Kolter, ICML 2019, ``SampleUnderNoise``). The
    ``N * n`` noisy rows form one stream (input 0's samples, then input 1's, ...) that is cut into forward
    passes of ``batch_size`` rows, so small ``n`` still fills a batch; the noise does not depend on
    ``batch_size``.

    Args:
        model: the base classifier, returning logits ``(B, K)``; run in eval mode, its mode restored.
        x: the inputs (no range is assumed: the noisy copies are not clipped).
        sigma: the noise's standard deviation, > 0.
        n: noise samples per input, >= 1.
        batch_size: noisy rows per forward pass, >= 1.
        generator: the source of the noise (a CPU ``torch.Generator``; the noise is drawn on the CPU and
            moved to ``x``'s device); ``None`` uses torch's global generator.

    Returns:
        The counts, an int64 tensor on ``x``'s device whose rows sum to ``n``.

    Shape:
        ``x`` ``(N, ...)`` float → ``(N, K)`` int64.
    """
    _check_x(x)
    _check_sigma(sigma)
    _check_int("n", n)
    _check_int("batch_size", batch_size)
    was_training = model.training
    model.eval()
    try:
        counts = None
        total = x.shape[0] * n
        for start in range(0, total, batch_size):
            rows = torch.arange(start, min(start + batch_size, total), device=x.device) // n
            noise = _gaussian((len(rows), *x.shape[1:]), float(sigma), generator).to(device=x.device, dtype=x.dtype)
            logits = model(x[rows] + noise)
            if counts is None:
                counts = torch.zeros(x.shape[0], logits.shape[1], dtype=torch.long, device=x.device)
            pred = logits.argmax(1)
            counts.index_put_((rows, pred), torch.ones_like(pred), accumulate=True)
    finally:
        model.train(was_training)
    return counts


def smoothed_predict(model: nn.Module, x: torch.Tensor, *, sigma: float, n: int, alpha: float,
                     batch_size: int = 1000, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """The smoothed classifier's prediction, or an abstention: Cohen et al.'s ``PREDICT``.

    Counts the classes of ``n`` noisy copies of each input, and returns the top class only if a two-sided
    binomial test rejects, at level ``alpha``, that the top two counts ``n_A, n_B`` come from equally likely
    classes (p-value of ``n_A`` successes in ``n_A + n_B`` trials at ``p = 1/2`` at most ``alpha``); otherwise
    it abstains. The returned class differs from ``g(x)`` with probability at most ``alpha``
    (Cohen, Rosenfeld & Kolter, ICML 2019, Proposition 1; the test of Hung & Fithian 2019).

    Args:
        model: the base classifier, returning logits ``(B, K)``; run in eval mode, its mode restored.
        x: the inputs.
        sigma: the noise's standard deviation, > 0.
        n: noise samples per input, >= 1.
        alpha: the probability of returning a wrong (non-abstained) class, in ``(0, 1)``.
        batch_size: noisy rows per forward pass, >= 1.
        generator: the source of the noise (a CPU ``torch.Generator``); ``None`` uses the global one.

    Returns:
        The predicted classes, ``ABSTAIN`` (-1) where the test does not reject; int64 on ``x``'s device.

    Shape:
        ``x`` ``(N, ...)`` float → ``(N,)`` int64 in ``{-1} ∪ [0, K)``.
    """
    _check_alpha(alpha)
    counts = sample_counts(model, x, sigma=sigma, n=n, batch_size=batch_size, generator=generator)
    top = counts.topk(min(2, counts.shape[1]), dim=1)
    abstain = [binomtest(row[0], row[0] + (row[1] if len(row) > 1 else 0), p=0.5).pvalue > alpha
               for row in top.values.tolist()]
    abstain = torch.tensor(abstain, device=x.device)
    return torch.where(abstain, torch.full_like(top.indices[:, 0], ABSTAIN), top.indices[:, 0])


def certify(model: nn.Module, x: torch.Tensor, *, sigma: float, n0: int, n: int, alpha: float,
            batch_size: int = 1000, generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Certify the smoothed classifier's prediction within an L2 radius: Cohen et al.'s ``CERTIFY``.

    Per input: ``n0`` noisy samples *select* a guess ``c_A`` (their most frequent class); ``n`` fresh samples
    *estimate* it: with ``n_A`` of them in ``c_A``, ``p_A_lower`` is the one-sided ``1 - alpha``
    Clopper–Pearson lower bound on ``n_A / n``. If ``p_A_lower > 1/2`` it returns ``c_A`` with the radius
    ``sigma * Phi^{-1}(p_A_lower)``, else it abstains (class -1, radius 0). With probability at least
    ``1 - alpha`` over the noise, a returned class is ``g(x)`` and ``g(x + delta) = g(x)`` for every
    ``||delta||_2 < radius`` (Cohen, Rosenfeld & Kolter, ICML 2019, Theorem 1 and Proposition 2). Separate
    selection samples keep the estimate unbiased: choosing ``c_A`` from the same samples would inflate it.

    Args:
        model: the base classifier, returning logits ``(B, K)``; run in eval mode, its mode restored.
        x: the inputs.
        sigma: the noise's standard deviation, > 0.
        n0: selection samples per input, an int in ``[1, n]`` (the paper uses 100).
        n: estimation samples per input, >= 1 (the paper uses 100,000).
        alpha: the failure probability, in ``(0, 1)`` (the paper uses 0.001).
        batch_size: noisy rows per forward pass, >= 1.
        generator: the source of the noise (a CPU ``torch.Generator``), used for the selection samples of
            all inputs and then for the estimation samples; ``None`` uses the global one.

    Returns:
        ``(classes, radii)``: int64 classes with ``ABSTAIN`` (-1) where the bound is at most 1/2, and L2
        radii (0 where abstained), both on ``x``'s device; radii in ``x``'s dtype.

    Shape:
        ``x`` ``(N, ...)`` float → ``classes`` ``(N,)`` int64 in ``{-1} ∪ [0, K)``, ``radii`` ``(N,)`` >= 0.
    """
    _check_x(x)
    _check_sigma(sigma)
    _check_alpha(alpha)
    _check_int("n0", n0)
    _check_int("n", n)
    if n0 > n:
        raise ValueError(f"n0 must be <= n (selection uses fewer samples than estimation), got n0={n0}, n={n}")
    _check_int("batch_size", batch_size)
    guess = sample_counts(model, x, sigma=sigma, n=n0, batch_size=batch_size, generator=generator).argmax(1)
    counts = sample_counts(model, x, sigma=sigma, n=n, batch_size=batch_size, generator=generator)
    n_a = counts.gather(1, guess[:, None])[:, 0].cpu().numpy()
    p_lower = _lower_bounds(n_a, n, alpha)
    certified = p_lower > 0.5
    radii = np.where(certified, sigma * normal_dist.ppf(np.where(certified, p_lower, 0.75)), 0.0)
    certified = torch.from_numpy(certified).to(x.device)
    classes = torch.where(certified, guess, torch.full_like(guess, ABSTAIN))
    return classes, torch.from_numpy(radii).to(device=x.device, dtype=x.dtype)


def certified_accuracy(classes: torch.Tensor, radii: torch.Tensor, y: torch.Tensor, radius: float) -> float:
    """Fraction of inputs certified correct at ``radius``: class equal to the label and radius >= ``radius``.

    The curve of this against ``radius`` is the certified-accuracy plot of Cohen, Rosenfeld & Kolter
    (ICML 2019); abstentions never count (their class is -1).

    Args:
        classes: :func:`certify`'s classes.
        radii: :func:`certify`'s radii.
        y: the true labels.
        radius: the L2 radius, >= 0.

    Returns:
        A fraction in ``[0, 1]``.

    Shape:
        ``classes``, ``radii``, ``y``: ``(N,)`` each, ``N >= 1``.
    """
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not radius >= 0:
        raise ValueError(f"radius must be a number >= 0, got {radius!r}")
    if not (classes.dim() == 1 and classes.shape == radii.shape == y.shape and len(y) > 0):
        raise ValueError(f"classes, radii and y must have the same shape (N,) with N >= 1, got "
                         f"{tuple(classes.shape)}, {tuple(radii.shape)}, {tuple(y.shape)}")
    ok = (classes == y.to(classes.device)) & (radii >= radius)
    return ok.float().mean().item()
