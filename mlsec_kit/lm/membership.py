"""Membership inference on sequences: was this text in the language model's training set?

Chapter 8's attacks carried to a language model, where an example's loss is its log-perplexity. Scores are
*higher = more likely a member*, as everywhere in :mod:`mlsec_kit.attacks.inference`, and are evaluated by
:func:`mlsec_kit.attacks.inference.metrics.tpr_at_fpr` (Carlini et al. 2022: report the TPR at a low FPR).

* :func:`loss_scores` (Yeom et al. 2018, "Privacy risk in machine learning"): minus the target's loss, in bits
  per token. It confuses *easy* text (short, common words) with *memorised* text.
* :func:`reference_scores`: difficulty calibration by reference models trained on data from the same
  distribution but not on the target's training set (Watson et al. 2022; Mireshghallah et al. 2022, "Quantifying
  privacy risks of masked language models using membership inference attacks", for language models). Carlini et
  al. 2021 rank extraction samples by a similar ratio, but their reference models (smaller GPT-2s) were trained on
  the same data as the target: a different assumption from the disjoint-data references here. With one reference
  model the score is ``reference loss - target loss``: how much *more* likely the target finds the text than a
  model that never saw it. With two or more it is
  the offline variant of LiRA (Carlini et al. 2022, "Membership inference attacks from first principles"): a
  Gaussian is fitted to the reference (OUT) losses of each text, and the score is how many standard deviations
  the target's loss falls below their mean, ``(μ_out - ℓ) / σ_out``, a monotone function of the one-sided
  likelihood test of the paper's offline attack. The mean is per text; the standard deviation is per text only
  with many references: the paper estimates one *global* variance when shadow models are few (fewer than 64), since
  a standard deviation from 2-10 losses is itself mostly noise and then dominates the ranking.
  ``variance="auto"`` (the default) does the same; a global σ does not change the ranking of the mean difference
  ``μ_out - ℓ``, only its scale.

The reference models must be trained on text disjoint from *both* the members and the non-members that are
evaluated: a non-member in a reference's training set is IN for it, which lowers μ_out on exactly those texts and
makes the attack look better than it is.

:func:`membership_report` scores a set of training (member) and held-out (non-member) texts with both and reports
AUC and TPR at the FPRs asked for.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import torch
from torch import nn

from ..attacks.inference.metrics import auc, tpr_at_fpr
from .extraction import _check_fit, _check_model, _check_texts, _lm, _num_tokens

__all__ = ["bits_per_token", "loss_scores", "reference_scores", "membership_report", "MembershipReport",
           "VARIANCES"]


def bits_per_token(model: nn.Module, texts: Sequence[str]) -> torch.Tensor:
    """The model's loss on each text, in bits per token: :func:`mlsec_kit.lm.log_perplexity` divided by the
    text's token count (so texts of different lengths compare).

    Shape:
        ``N`` texts → float64 ``(N,)``, >= 0.
    """
    _check_model("model", model)
    texts = _check_texts(texts, nonempty_strings=True)
    _check_fit(model, texts, "texts")
    bits = _lm().log_perplexity(model, texts).detach().to(torch.float64).cpu()
    return bits / _num_tokens(texts)


def loss_scores(model: nn.Module, texts: Sequence[str]) -> torch.Tensor:
    """The loss attack's score: ``-bits_per_token(model, texts)`` (higher = more likely a member).

    Shape:
        ``N`` texts → float64 ``(N,)``, <= 0.
    """
    return -bits_per_token(model, texts)


def _references(reference: object) -> list[nn.Module]:
    refs = [reference] if isinstance(reference, nn.Module) else reference
    if isinstance(refs, (list, tuple)) and refs:
        for i, r in enumerate(refs):
            _check_model(f"reference[{i}]", r)
        return list(refs)
    raise TypeError("reference must be a language model (nn.Module) or a non-empty list of them, "
                    f"got {type(reference).__name__}")


#: how :func:`reference_scores` estimates σ_out: one for all texts, one per text, or by the number of references
VARIANCES = ("auto", "global", "per_text")
#: with at least this many references ``variance="auto"`` is per text (Carlini et al. 2022 use 64 shadow models)
PER_TEXT_FROM = 64


def reference_scores(model: nn.Module, reference: Union[nn.Module, Sequence[nn.Module]], texts: Sequence[str], *,
                     min_std: float = 1e-3, variance: str = "auto") -> torch.Tensor:
    """The reference-model (LiRA-offline-style) score of each text.

    Args:
        model: the target language model.
        reference: one reference model, or a list of them, trained on text of the same kind that contains none of
            ``texts`` — neither the members nor the non-members evaluated.
        texts: the candidate texts; not modified.
        min_std: the smallest ``σ_out`` used (bits per token, > 0), so references that agree exactly do not divide
            by zero. Only used with two or more references.
        variance: how σ_out is estimated with two or more references: ``"global"``, the pooled within-text
            standard deviation ``sqrt(mean_i var_r ℓ_r(i))`` (one σ for all texts: the same ranking as
            ``mean_r ℓ_r - ℓ_target``); ``"per_text"``, each text's own ``std_r ℓ_r(i)``; ``"auto"`` (default),
            per text from :data:`PER_TEXT_FROM` = 64 references on and global below, as Carlini et al. (2022) do.

    Returns:
        One reference model: ``ℓ_ref - ℓ_target``; several: ``(mean_r ℓ_r - ℓ_target) / max(σ_out, min_std)``
        (variances with Bessel's correction), losses in bits per token (:func:`bits_per_token`). Higher = more
        likely a member.

    Shape:
        ``N`` texts → float64 ``(N,)``.
    """
    _check_model("model", model)
    refs = _references(reference)
    texts = _check_texts(texts, nonempty_strings=True)
    for i, r in enumerate(refs):
        _check_fit(r, texts, "texts")
    if isinstance(min_std, bool) or not isinstance(min_std, (int, float)) or not min_std > 0:
        raise ValueError(f"min_std must be a number > 0, got {min_std!r}")
    if variance not in VARIANCES:
        raise ValueError(f"variance must be one of {VARIANCES}, got {variance!r}")
    target = bits_per_token(model, texts)
    out = torch.stack([bits_per_token(r, texts) for r in refs])          # (R, N)
    if len(refs) == 1:
        return out[0] - target
    if variance == "auto":
        variance = "per_text" if len(refs) >= PER_TEXT_FROM else "global"
    std = out.std(dim=0) if variance == "per_text" else out.var(dim=0).mean().sqrt().expand(out.shape[1])
    return (out.mean(dim=0) - target) / std.clamp_min(float(min_std))


@dataclass
class MembershipReport:
    """Membership inference on members (training texts) versus non-members (held-out texts).

    Attributes:
        scores: per attack (``"loss"``, and ``"reference"`` when reference models were given), the scores of the
            members followed by the non-members.
        labels: 1 for the members, 0 for the non-members, in the same order.
        auc: per attack, the area under the ROC curve (0.5 = chance).
        tpr: per attack, the TPR at each FPR asked for (``{fpr: tpr}``).
        fprs: the FPRs asked for.
    """

    scores: dict[str, torch.Tensor]
    labels: torch.Tensor
    auc: dict[str, float]
    tpr: dict[str, dict[float, float]]
    fprs: tuple[float, ...]


def membership_report(model: nn.Module, members: Sequence[str], non_members: Sequence[str], *,
                      reference: Union[nn.Module, Sequence[nn.Module], None] = None,
                      fprs: Sequence[float] = (0.01, 0.1), variance: str = "auto") -> MembershipReport:
    """Run the loss attack (and the reference attack when ``reference`` is given) and measure them.

    Args:
        model: the target language model.
        members: texts the target trained on, non-empty.
        non_members: texts from the same distribution it did not train on, non-empty, none of them in
            ``members`` (checked: templated records drawn twice can coincide, e.g. ``[t for t in
            lm.make_records(m) if t not in set(corpus.texts)]``).
        reference: reference model(s) for :func:`reference_scores`, or ``None``; trained on text that contains
            neither the members nor the non-members.
        fprs: the false-positive rates at which to read the TPR, each in [0, 1]. A rate below
            ``1 / len(non_members)`` cannot be met with any false positive; ``tpr_at_fpr`` warns and the TPR is
            the one at zero false positives.
        variance: σ_out of :func:`reference_scores` with several references (``"auto"``, ``"global"``,
            ``"per_text"``).

    Returns:
        A :class:`MembershipReport`.
    """
    _check_model("model", model)
    members = _check_texts(members, "members", nonempty_strings=True)
    non_members = _check_texts(non_members, "non_members", nonempty_strings=True)
    _check_fit(model, members, "members")
    _check_fit(model, non_members, "non_members")
    both = set(members).intersection(non_members)
    if both:
        # a "non-member" the target trained on is a member: it would count as a false positive of a right guess
        raise ValueError(f"non_members must not contain members: {len(both)} text(s) are in both, e.g. "
                         f"{next(iter(sorted(both)))!r}; draw the held-out texts excluding the training texts")
    if isinstance(fprs, (int, float)) and not isinstance(fprs, bool):
        fprs = (fprs,)
    if variance not in VARIANCES:
        raise ValueError(f"variance must be one of {VARIANCES}, got {variance!r}")
    fprs = tuple(fprs)
    if not fprs or any(isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 <= f <= 1 for f in fprs):
        raise ValueError(f"fprs must be a non-empty list of numbers in [0, 1], got {fprs!r}")
    texts = members + non_members
    labels = torch.cat([torch.ones(len(members)), torch.zeros(len(non_members))]).long()
    scores = {"loss": loss_scores(model, texts)}
    if reference is not None:
        scores["reference"] = reference_scores(model, reference, texts, variance=variance)
    aucs = {name: float(auc(s, labels)) for name, s in scores.items()}
    tprs = {name: {float(f): float(tpr_at_fpr(s, labels, fpr=float(f)).tpr) for f in fprs}
            for name, s in scores.items()}
    return MembershipReport(scores=scores, labels=labels, auc=aucs, tpr=tprs, fprs=tuple(float(f) for f in fprs))
