"""How well do attack scores separate members from non-members? ROC curves, AUC, balanced accuracy and the
true-positive rate at a low false-positive rate, the figure of merit of Carlini et al. 2022 ("Membership
inference attacks from first principles"): an attack that finds a few members with certainty matters more than
one that is slightly better than chance on average.

Conventions: ``scores`` are higher for "more likely a member", ``labels`` are 1 (or ``True``, or ``1.0``) for
members and 0 for non-members; an example is predicted a member when its score is ``>= threshold``. Every function takes
1-D torch tensors (or NumPy arrays) of equal length with both classes present and leaves them unchanged.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from scipy import stats

__all__ = ["roc", "auc", "balanced_accuracy", "best_balanced_accuracy", "tpr_at_fpr", "TPRAtFPR", "clopper_pearson",
           "auc_chance_interval", "plot_roc"]


def _as_arrays(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``scores`` and ``labels`` and return them as float64 / bool NumPy arrays (copies)."""
    out = []
    for name, value in (("scores", scores), ("labels", labels)):
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        elif not isinstance(value, np.ndarray):
            raise TypeError(f"{name} must be a 1-D torch tensor or NumPy array, got {type(value).__name__}")
        if value.ndim != 1 or value.shape[0] == 0:
            raise ValueError(f"{name} must be a non-empty 1-D array, got shape {tuple(value.shape)}")
        out.append(value)
    s, lab = out
    if s.shape != lab.shape:
        raise ValueError(f"scores and labels must have the same length, got {s.shape[0]} and {lab.shape[0]}")
    if s.dtype.kind not in "fiu" or not np.isfinite(s).all():
        raise ValueError("scores must be finite real numbers")
    if lab.dtype.kind not in "biuf":
        raise ValueError(f"labels must be 0/1 (bool, integer or float; 1 = member), got dtype {lab.dtype}")
    if not np.isin(lab, (0, 1)).all():
        bad = lab[~np.isin(lab, (0, 1))][0]
        raise ValueError(f"labels must be 0/1 (bool, integer or float; 1 = member), got a {lab.dtype} value "
                         f"{bad.item()!r}")
    lab = lab.astype(bool)
    if lab.all() or not lab.any():
        raise ValueError("labels must contain both members (1) and non-members (0)")
    return s.astype(np.float64), lab


def _roc_arrays(s: np.ndarray, lab: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.argsort(-s, kind="mergesort")
    s, lab = s[order], lab[order]
    # the last position of each run of tied scores: a threshold can only split between distinct scores
    last = np.r_[np.nonzero(np.diff(s))[0], s.shape[0] - 1]
    tp = np.cumsum(lab)[last]
    fp = np.cumsum(~lab)[last]
    tpr = np.r_[0.0, tp / lab.sum()]
    fpr = np.r_[0.0, fp / (~lab).sum()]
    thresholds = np.r_[np.inf, s[last]]
    return fpr, tpr, thresholds


def roc(scores, labels) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ROC curve: one point per distinct score used as a threshold (predict member iff score >= it).

    Args:
        scores: attack scores, higher = more likely a member.
        labels: 1 for members, 0 for non-members; both must occur.

    Returns:
        ``(fpr, tpr, thresholds)``, float64 tensors of equal length, ordered by decreasing threshold; the first
        point is ``(0, 0)`` at threshold ``+inf`` and the last is ``(1, 1)``. The same points as
        ``sklearn.metrics.roc_curve(labels, scores, drop_intermediate=False)``.

    Shape:
        ``scores``, ``labels``: ``(N,)`` → three tensors ``(T + 1,)``, ``T`` the number of distinct scores;
        rates in ``[0, 1]``, non-decreasing.
    """
    fpr, tpr, thr = _roc_arrays(*_as_arrays(scores, labels))
    return torch.from_numpy(fpr), torch.from_numpy(tpr), torch.from_numpy(thr)


def auc(scores, labels) -> float:
    """Area under the ROC curve, in ``[0, 1]``: the probability that a random member scores above a random
    non-member (ties count one half); 0.5 is chance.

    Shape:
        ``scores``, ``labels``: ``(N,)``.
    """
    fpr, tpr, _ = _roc_arrays(*_as_arrays(scores, labels))
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def balanced_accuracy(scores, labels, *, threshold: float) -> float:
    """The mean of the true-positive and true-negative rates, ``(TPR + 1 - FPR) / 2``, in ``[0, 1]``, of the
    prediction "member iff ``score >= threshold``".

    Unlike plain accuracy it is 0.5 for a guess that ignores the model, however unbalanced the two groups.

    Args:
        scores: attack scores, higher = more likely a member.
        labels: 1 for members, 0 for non-members.
        threshold: the score cut, required. Fit it on data the attack is not evaluated on (e.g.
            :func:`~mlsec_kit.attacks.inference.membership.global_threshold` on a shadow model's scores); the best
            cut on these very examples is :func:`best_balanced_accuracy`, an optimistic upper bound.

    Raises:
        TypeError: ``threshold`` missing or ``None``.
        ValueError: ``threshold`` not a real number (NaN included).

    Shape:
        ``scores``, ``labels``: ``(N,)``.
    """
    if threshold is None:
        raise TypeError("balanced_accuracy needs a threshold fitted on other data; the best threshold on the "
                        "evaluation data itself is best_balanced_accuracy(scores, labels), an optimistic bound")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)) \
            or math.isnan(threshold):
        raise ValueError(f"threshold must be a real number, got {threshold!r}")
    s, lab = _as_arrays(scores, labels)
    pred = s >= float(threshold)
    return float((pred[lab].mean() + (~pred[~lab]).mean()) / 2)


def best_balanced_accuracy(scores, labels) -> float:
    """The highest :func:`balanced_accuracy` of any threshold, the threshold chosen on these very examples.

    This is an optimistic upper bound, not an attack's result: a real attacker does not know the evaluation
    examples' membership and so cannot pick this cut. It is the "attack accuracy" many papers report; use it
    to show how much an oracle threshold flatters an attack, and report :func:`balanced_accuracy` with a
    threshold fitted elsewhere (or :func:`tpr_at_fpr`) as the attack's figure.

    Shape:
        ``scores``, ``labels``: ``(N,)``.
    """
    fpr, tpr, _ = _roc_arrays(*_as_arrays(scores, labels))
    return float(np.max((tpr + 1 - fpr) / 2))


@dataclass(frozen=True)
class TPRAtFPR:
    """The true-positive rate at a false-positive rate of at most ``target_fpr``.

    Attributes:
        tpr: the fraction of members whose score is ``>= threshold``.
        fpr: the false-positive rate actually reached, ``<= target_fpr``.
        threshold: the score cut (``+inf`` when no threshold keeps the FPR low enough, then ``tpr == 0``).
        ci_low, ci_high: the interval of ``tpr`` at the given confidence: Clopper-Pearson (the threshold
            treated as fixed, only the members' sampling counts) or bootstrap (both groups resampled and the
            threshold re-picked on each resample, so the threshold's own sampling error counts too).
        target_fpr: the FPR asked for.
        num_members, num_non_members: the group sizes.
        achievable: ``target_fpr * num_non_members >= 1``; when False the budget does not allow even one false
            positive, and ``tpr`` is the TPR at zero false positives, not at ``target_fpr``.
    """

    tpr: float
    fpr: float
    threshold: float
    ci_low: float
    ci_high: float
    target_fpr: float
    num_members: int
    num_non_members: int
    achievable: bool


def clopper_pearson(successes: int, trials: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) binomial confidence interval for ``successes / trials``."""
    alpha = 1 - confidence
    lo = 0.0 if successes == 0 else float(stats.beta.ppf(alpha / 2, successes, trials - successes + 1))
    hi = 1.0 if successes == trials else float(stats.beta.ppf(1 - alpha / 2, successes + 1, trials - successes))
    return lo, hi


def _fp_allowed(fpr: float, num_non_members: int) -> int:
    """How many false positives a budget of ``fpr`` allows among ``num_non_members``: the largest ``k`` with
    ``k / num_non_members <= fpr`` (up to rounding of the product)."""
    return min(int(math.floor(fpr * num_non_members + 1e-9)), num_non_members)


def _bootstrap_tpr(s: np.ndarray, lab: np.ndarray, fpr: float, num_bootstrap: int,
                   generator: torch.Generator, chunk: int = 64) -> np.ndarray:
    """The TPR at ``fpr`` on ``num_bootstrap`` resamples, each drawing the members and the non-members with
    replacement (each group keeps its size) and picking its own threshold on its own non-members."""
    pos = torch.from_numpy(s[lab])
    neg = torch.from_numpy(s[~lab])
    n_pos, n_neg = pos.shape[0], neg.shape[0]
    k = _fp_allowed(fpr, n_neg)
    out = []
    for start in range(0, num_bootstrap, chunk):
        b = min(chunk, num_bootstrap - start)
        neg_b = neg[torch.randint(n_neg, (b, n_neg), generator=generator)]
        pos_b = pos[torch.randint(n_pos, (b, n_pos), generator=generator)]
        if k >= n_neg:                      # every non-member may pass: every member passes too
            out.append(torch.ones(b, dtype=torch.float64))
            continue
        # the (k + 1)-th highest non-member score: members strictly above it are the true positives of the
        # lowest cut that lets at most k non-members through (what tpr_at_fpr picks on the full data)
        cut = torch.kthvalue(neg_b, n_neg - k, dim=1).values
        out.append((pos_b > cut[:, None]).double().mean(1))
    return torch.cat(out).numpy()


def tpr_at_fpr(scores, labels, *, fpr: float, confidence: float = 0.95, ci: str = "clopper-pearson",
               num_bootstrap: int = 1000, generator: Optional[torch.Generator] = None) -> TPRAtFPR:
    """The highest true-positive rate of any threshold whose false-positive rate is at most ``fpr``.

    The threshold is fixed by the non-members alone: it is the lowest score cut that lets at most
    ``floor(fpr * num_non_members)`` of them through (never the first cut with FPR ``>= fpr``, which would
    overshoot the budget). Report it at low FPR, e.g. 0.1% and 1% (Carlini et al. 2022). A budget below one
    non-member (``fpr * num_non_members < 1``) can only be met with no false positive at all: the result is then
    the TPR at FPR 0, ``achievable`` is False and a ``UserWarning`` says how many non-members ``fpr`` needs.

    Args:
        scores: attack scores, higher = more likely a member.
        labels: 1 for members, 0 for non-members.
        fpr: the false-positive budget, in ``[0, 1]``.
        confidence: level of the interval on the TPR, in ``(0, 1)``.
        ci: ``"clopper-pearson"`` (default): the exact binomial interval over the members with the threshold
            held fixed; too narrow at low FPR, where the threshold rests on the few highest-scoring
            non-members. ``"bootstrap"``: the percentile interval over ``num_bootstrap`` resamples that draw the
            members and the non-members separately with replacement and re-pick the threshold on each, so the
            threshold's sampling error is included.
        num_bootstrap: number of bootstrap resamples, an int >= 1 (only used by ``ci="bootstrap"``).
        generator: a CPU ``torch.Generator`` for the resamples; ``None``: one seeded with 0, so the interval
            is the same on every run.

    Returns:
        A :class:`TPRAtFPR`.

    Warns:
        UserWarning: ``fpr * num_non_members < 1`` (the budget is below one non-member).

    Shape:
        ``scores``, ``labels``: ``(N,)``.
    """
    if isinstance(fpr, bool) or not isinstance(fpr, (int, float)) or not 0.0 <= fpr <= 1.0:
        raise ValueError(f"fpr must be a number in [0, 1], got {fpr!r}")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be a number in (0, 1), got {confidence!r}")
    if ci not in ("clopper-pearson", "bootstrap"):
        raise ValueError(f"ci must be 'clopper-pearson' or 'bootstrap', got {ci!r}")
    if isinstance(num_bootstrap, bool) or not isinstance(num_bootstrap, int) or num_bootstrap < 1:
        raise ValueError(f"num_bootstrap must be an int >= 1, got {num_bootstrap!r}")
    if generator is not None and (not isinstance(generator, torch.Generator) or generator.device.type != "cpu"):
        raise TypeError(f"generator must be a CPU torch.Generator or None, got {generator!r}")
    s, lab = _as_arrays(scores, labels)
    f, t, thr = _roc_arrays(s, lab)
    i = int(np.nonzero(f <= fpr + 1e-12)[0][-1])   # rates never decrease: the last point inside the budget
    n_pos, n_neg = int(lab.sum()), int((~lab).sum())
    achievable = fpr * n_neg >= 1 - 1e-9
    if not achievable:
        if fpr == 0:
            msg = f"fpr=0 allows no false positive among the {n_neg} non-members, however many there are"
        else:
            msg = (f"only {n_neg} non-members, so a false-positive rate of {fpr:g} allows no false positive at all; "
                   f"fpr={fpr:g} needs at least {math.ceil(1 / fpr - 1e-9)} non-members")
        warnings.warn(f"tpr_at_fpr: {msg}. The result is the TPR at zero false positives (achievable=False).",
                      UserWarning, stacklevel=2)
    if ci == "clopper-pearson":
        hits = int(round(t[i] * n_pos))
        lo, hi = clopper_pearson(hits, n_pos, confidence=confidence)
    else:
        g = torch.Generator().manual_seed(0) if generator is None else generator
        boot = _bootstrap_tpr(s, lab, float(fpr), num_bootstrap, g)
        alpha = 1 - confidence
        lo, hi = (float(v) for v in np.quantile(boot, [alpha / 2, 1 - alpha / 2]))
    return TPRAtFPR(tpr=float(t[i]), fpr=float(f[i]), threshold=float(thr[i]), ci_low=lo, ci_high=hi,
                    target_fpr=float(fpr), num_members=n_pos, num_non_members=n_neg, achievable=bool(achievable))


def auc_chance_interval(num_members: int, num_non_members: int, *, confidence: float = 0.999) -> tuple[float, float]:
    """Where the AUC of an attack that knows nothing falls, with probability about ``confidence``.

    Under the null hypothesis (scores independent of membership) the AUC is the Mann-Whitney statistic over
    ``num_members * num_non_members``, with mean 1/2 and variance ``(n1 + n2 + 1) / (12 n1 n2)``; the interval
    is the normal approximation's central ``confidence`` range.
    """
    for name, n in (("num_members", num_members), ("num_non_members", num_non_members)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"{name} must be an int >= 1, got {n!r}")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be a number in (0, 1), got {confidence!r}")
    sd = math.sqrt((num_members + num_non_members + 1) / (12 * num_members * num_non_members))
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    return 0.5 - z * sd, 0.5 + z * sd


def plot_roc(ax, scores, labels, *, label: Optional[str] = None, loglog: bool = True, chance: bool = True):
    """Draw the ROC curve of ``scores`` on the matplotlib axes ``ax``; log-log axes by default, so the
    low-FPR region that matters for privacy is visible (Carlini et al. 2022).

    Returns the ``Line2D`` drawn. The legend label gets the AUC appended.
    """
    fpr, tpr, _ = roc(scores, labels)
    area = auc(scores, labels)
    fpr, tpr = fpr.numpy(), tpr.numpy()
    text = f"AUC {area:.3f}" if label is None else f"{label} (AUC {area:.3f})"
    (line,) = ax.plot(fpr, tpr, label=text)
    if loglog:
        n_neg = int(np.sum(np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels) == 0))
        low = 0.5 / max(n_neg, 1)   # below one non-member the FPR axis carries no information
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(low, 1.0)
        ax.set_ylim(low, 1.0)
    if chance:
        grid = np.logspace(-6, 0, 100) if loglog else np.array([0.0, 1.0])
        ax.plot(grid, grid, ls="--", color="grey", lw=0.8)
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    return line
