"""Checks of the chapter-8 exercise set: loss-threshold membership scores, the true-positive rate at a fixed
false-positive rate, an attack whose threshold is fitted on the attacker's own reference data, and a conceptual
question on how membership inference is measured.

Student functions take and return torch tensors and numbers: ``loss_scores(logits, labels) -> scores``,
``tpr_at_fpr(member_scores, non_member_scores, target_fpr) -> tpr``, ``reference_attack(reference_scores,
target_fpr, member_scores, non_member_scores) -> (tpr, fpr)`` and ``membership_statements() -> letters``.

Conventions the questions state: an example is flagged a member when its score is strictly above the
threshold ``tau``; with ``k = floor(target_fpr * n)`` false positives allowed among ``n`` non-members, whose
scores sorted in decreasing order are ``v_1 >= v_2 >= ...``, the lowest threshold within the budget is
``tau = v_{k+1}`` (every threshold below it flags ``k + 1`` or more of them), so the TPR at that FPR is the share
of members scoring above ``v_{k+1}``.

How the instances make each typical mistake fail on every seed:

- ``loss_scores``: row 0's label is its least likely class, so a score read off the predicted class is caught;
  every large-logit instance (an overconfident model) has a row whose true-class logit lies 800-1500 below the
  row's maximum and a row whose true-class logit is 800-1500, so ``log(softmax(.))`` gives ``-inf`` even in
  float64 (``exp`` underflows below about -745), a hand-written ``exp(z) / exp(z).sum()`` overflows to ``nan``,
  and a clamped ``log(p + 1e-12)`` is off by hundreds; minus and plus the loss differ wherever the loss is not 0;
- ``tpr_at_fpr``: scores lie on a grid (rounded scores, as an API that rounds its confidences gives), and each
  instance is built around the cut: the ``(k+1)``-th highest non-member score ``c`` is the only non-member at
  ``c`` except where a tie is planted, a member sits exactly at ``c``, and non-members below ``c`` sit at least
  one grid step lower. So the ``>=``-side answer (the first threshold whose FPR reaches the target, which counts
  the member at ``c``) is wrong on every instance whose budget is not a whole number, and target 0 as well
  (both properties on values use such instances). Budgets ``target_fpr * n`` have a fractional part in
  ``(0.3, 0.9)`` (one instance per property above 0.55), so ``ceil`` and ``round`` allow one false positive too
  many, and since the fractional part exceeds ``target_fpr``, ``torch.quantile(v, 1 - target_fpr)`` falls
  strictly below ``c`` and counts the member at ``c``. One instance plants a tie ``v_k = v_{k+1} = c``, so
  "the ``k``-th highest score as threshold, flag ``>=``" overshoots the budget; the other (``gap``) puts a member
  one step above ``c`` and ``v_k`` three steps or more above, so the same answer misses that member, and so
  does a threshold halfway between ``v_{k+1}`` and ``v_k`` (at least 1.5 steps above ``c``, so floating-point
  rounding of the midpoint cannot decide the grade). Budgets that are whole numbers of non-members
  (``target_fpr * n == k``, pairs chosen so that the ratio is exact in float64 and does not round up in float32)
  put ``v_k`` exactly one step above ``c`` with one member at ``c`` and one at ``c + 1`` and no other member at
  either: an answer that keeps the FPR strictly below the target misses the member at ``v_k``, and the ROC steps
  into and out of the operating point are equal (one member and one non-member each), so scikit-learn's
  ``roc_curve`` with its default ``drop_intermediate=True`` drops that point and its largest TPR within the
  budget is too low. Target 1 (every non-member allowed) puts a member at the lowest non-member score, so
  thresholds taken only from the observed scores (or ``np.quantile(..., method="inverted_cdf")``) with ``>``
  miss it;
- ``reference_attack``: where the cut sits between the ``(k+1)``-th and the ``k``-th highest reference score is a
  convention the attacker has no information to decide, so both "lowest cut" conventions pass: flag scores
  strictly above ``r_{k+1}`` (the kit's ``tpr_at_fpr`` and question (b)), or flag scores at or above ``s*``, the
  lowest reference score that at most ``k`` reference scores reach (the kit's ``global_threshold``); without a
  tie at the cut ``s* = r_k``. Budgets ``k_r = floor(target_fpr * n_ref)`` and ``k_e = floor(target_fpr *
  n_eval)`` differ, and ``target_fpr * n_ref`` has a fractional part in ``(target_fpr, 0.95)``. The reference
  non-members are shifted against the evaluation's, so the threshold the reference gives flags at least
  ``k_e + 2`` evaluation non-members or at most ``k_e - 1`` of them, where the evaluation's own ``k_e``-th and
  ``(k_e+1)``-th scores are distinct: any threshold fitted on the evaluation non-members (floor or ceil, ``<=``
  or ``>=``) reports another FPR; shifting the evaluation's non-members far above or below every score changes
  such an answer's TPR to 0 or 1, while the right TPR stays between. Members sit at the reference cut ``c_r``,
  one step above it, and at ``t - 1`` and ``t``, where ``t`` (three steps or more above ``c_r``) is the lowest
  reference score above ``c_r``: the ``>=`` side counts the member at ``c_r``; a threshold halfway between
  ``c_r`` and ``t`` misses the member at ``c_r + 1`` (so it is not the strict cut) and counts the one at
  ``t - 1`` (so it is not ``s*``); "the ``k``-th highest, flag ``>``" misses the member at ``t``; ``k`` taken from
  the evaluation's count (``k_e != k_r``) lands on another reference score or below ``c_r``; ``torch.quantile``
  falls strictly below ``c_r``. The ``"up"`` instance plants a tie ``r_k = r_{k+1} = c_r``, so "the ``k``-th
  highest reference score, flag ``>=``", which lets ``k + 1`` reference scores through, counts the member at
  ``c_r`` and fails;
- an answer to the statements that names none or all of them fails every property (it is not an answer);
- the kit's ``tpr_at_fpr``, ``roc``, ``global_threshold``, ``loss_threshold_scores`` and ``per_example_loss``,
  and this module's reference helpers, are forbidden, since a submission can import them.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..core import ExerciseSet
from ..expect import call, describe, expect_pair, expect_tensor, expect_value_error, fail, fmt, to_float, statement_checks
from ..instances import randint

SET = ExerciseSet("08_membership_inference", "Exercises: membership inference", chapter=8)

_INFERENCE = "mlsec_kit.attacks.inference"
_CHECKER = "mlsec_kit.grading.sets.ch08"  # this module's reference helpers answer questions too
_METRICS = (f"{_INFERENCE}.tpr_at_fpr", f"{_INFERENCE}.metrics.tpr_at_fpr", f"{_INFERENCE}.roc",
            f"{_INFERENCE}.metrics.roc", f"{_INFERENCE}.metrics._roc_arrays", f"{_INFERENCE}.global_threshold",
            f"{_INFERENCE}.membership.global_threshold")


def _uniform(rng: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=rng, dtype=torch.float64))


def _ordinal(i: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, ..., 21st."""
    return f"{i}{'th' if 10 <= i % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(i % 10, 'th')}"


def _number(value, what: str) -> float:
    """``to_float`` that also takes a 0-d NumPy array (``np.mean`` of a comparison, ``np.array(x)``)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    return to_float(value, what)


# ---- (a) loss_scores -------------------------------------------------------------------------------------
loss_scores = SET.question(
    "loss_scores", "loss_scores(logits, labels) -> scores",
    forbid=(f"{_INFERENCE}.loss_threshold_scores", f"{_INFERENCE}.membership.loss_threshold_scores",
            f"{_INFERENCE}.per_example_loss", f"{_INFERENCE}.membership.per_example_loss",
            f"{_CHECKER}._reference_loss_scores"))


def _reference_loss_scores(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log p(y | x) = minus the cross-entropy, in float64."""
    return torch.log_softmax(logits.double(), 1).gather(1, labels.long()[:, None]).squeeze(1)


def _logits(rng: torch.Generator, *, large: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``(N, K)`` float32 and labels ``(N,)`` int64; row 0's label is its least likely class. ``large``:
    a third of the rows scaled by 200-1500, row 1's true-class logit 800-1500 below its maximum, row 2's
    true-class logit 800-1500 (an overconfident model)."""
    n, k = randint(rng, 8, 40), randint(rng, 3, 10)
    logits = torch.randn(n, k, generator=rng, dtype=torch.float64) * _uniform(rng, 1.5, 4.0)
    labels = torch.randint(0, k, (n,), generator=rng)
    labels[0] = logits[0].argmin()
    if large:
        rows = 3 + torch.randperm(n - 3, generator=rng)[: max(1, n // 3)]
        logits[rows] *= torch.empty(len(rows), 1, dtype=torch.float64).uniform_(200, 1500, generator=rng)
        others = logits[1].clone()
        others[labels[1]] = -math.inf
        logits[1, labels[1]] = others.max() - _uniform(rng, 800, 1500)
        logits[2, labels[2]] = _uniform(rng, 800, 1500)
    return logits.float(), labels


def _loss_scores(fn, logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, str]:
    what = f"loss_scores(logits {describe(logits)}, labels {describe(labels)})"
    out = expect_tensor(call(fn, logits.clone(), labels.clone(), name="loss_scores"), what, shape=(len(labels),))
    if not out.is_floating_point():
        fail(f"{what} returned dtype {out.dtype}; expected floating-point scores")
    return out.double(), what


def _compare_scores(got: torch.Tensor, expected: torch.Tensor, labels: torch.Tensor, what: str) -> None:
    bad = ~torch.isfinite(got)
    if bool(bad.any()):
        i = int(bad.nonzero()[0])
        fail(f"{what}: row {i} scored {fmt(got[i])}, expected {fmt(expected[i])}; log(softmax(z)) underflows to "
             "log(0) = -inf once logits lie hundreds apart, and exp(z) overflows once they are in the hundreds: use "
             "torch.log_softmax or F.cross_entropy, which compute z_y - max - log sum exp(z - max), and never take "
             "the log of a probability that has underflowed")
    rel = (got - expected).abs() / expected.abs().clamp_min(1.0)
    if float(rel.max()) <= 1e-4:
        return
    i = int(rel.argmax())
    if float(((got + expected).abs() / expected.abs().clamp_min(1.0)).max()) <= 1e-4:
        hint = "; that is the loss itself: the score is MINUS the loss, so higher means more likely a member"
    elif float((got - expected.exp()).abs().max()) <= 1e-4:
        hint = "; that is the probability of the true class; the score is its logarithm, log p(y|x)"
    elif -60 < float(got[i]) < -10 and float(expected[i]) < float(got[i]) - 1:
        hint = "; the log of a clamped probability, log(p + eps), cannot go below log(eps): use torch.log_softmax"
    else:
        hint = ""
    fail(f"{what}: row {i} (label {int(labels[i])}) scored {fmt(got[i])}, expected {fmt(expected[i])} = "
         f"log p(y_i | x_i){hint}")


@loss_scores.prop("returns one float score per example, a tensor of shape (N,), and leaves logits and labels "
                  "unchanged")
def _ls_form(fn, rng):
    logits, labels = _logits(rng, large=False)
    kept = (logits.clone(), labels.clone())
    what = f"loss_scores(logits {describe(logits)}, labels {describe(labels)})"
    out = expect_tensor(call(fn, logits, labels, name="loss_scores"), what, shape=(len(labels),))
    if not (torch.equal(logits, kept[0]) and torch.equal(labels, kept[1])):
        fail(f"{what} changed its inputs in place; compute the scores on the side")
    if not out.is_floating_point():
        fail(f"{what} returned dtype {out.dtype}; expected floating-point scores")


@loss_scores.prop("is minus the cross-entropy, log p(y_i | x_i): at most 0, and higher for a better-fitted example")
def _ls_value(fn, rng):
    for _ in range(2):
        logits, labels = _logits(rng, large=False)
        got, what = _loss_scores(fn, logits, labels)
        _compare_scores(got, _reference_loss_scores(logits, labels), labels, what)


@loss_scores.prop("stays exact and finite on the large logits of an overconfident model")
def _ls_stable(fn, rng):
    logits, labels = _logits(rng, large=True)
    got, what = _loss_scores(fn, logits, labels)
    _compare_scores(got, _reference_loss_scores(logits, labels), labels,
                    what + f" with logits up to {fmt(logits.abs().max())}")


# ---- (b) tpr_at_fpr --------------------------------------------------------------------------------------
tpr_at_fpr = SET.question(
    "tpr_at_fpr", "tpr_at_fpr(member_scores, non_member_scores, target_fpr) -> float",
    forbid=(*_METRICS, f"{_CHECKER}._reference_tpr", f"{_CHECKER}._cut", f"{_CHECKER}._tpr_variants"))


def _whole_budgets() -> list[tuple[float, int]]:
    """``(target_fpr, n)`` with ``target_fpr * n`` a whole number ``k >= 2`` that every usual computation of
    "FPR <= target" gets right: ``k / n == target_fpr`` and ``target_fpr * n == k`` in float64, and neither
    ``k / n`` nor ``target_fpr`` rounds up in float32 (so ``(v > t).float().mean() <= target_fpr`` holds)."""
    f32 = np.float32
    pairs = []
    for a in (0.01, 0.02, 0.03, 0.04, 0.05, 0.1, 0.2, 0.25):
        for n in range(100, 501, 50):
            k = round(a * n)
            if k >= 2 and a * n == k and k / n == a and (k / n) * n == k and float(f32(k / n)) <= a \
                    and float(f32(k) / f32(n)) <= float(f32(a)) and float(f32(a) * f32(n)) >= k:
                pairs.append((a, n))
    return pairs


WHOLE_BUDGETS = _whole_budgets()


def _cut(non_member_scores: torch.Tensor, target_fpr: float) -> float:
    """The lowest threshold (flag ``score > tau``) whose FPR on ``non_member_scores`` is at most ``target_fpr``:
    the ``(k+1)``-th highest score, ``k = floor(target_fpr * n)`` (``-inf`` when ``k >= n``)."""
    n = len(non_member_scores)
    k = math.floor(target_fpr * n + 1e-9)
    return -math.inf if k >= n else float(non_member_scores.double().sort(descending=True).values[k])


def _reference_tpr(member_scores: torch.Tensor, non_member_scores: torch.Tensor, target_fpr: float) -> float:
    return float((member_scores.double() > _cut(non_member_scores, target_fpr)).double().mean())


def _grid(rng: torch.Generator, n: int, sd: float, mean: float = 0.0) -> torch.Tensor:
    """``n`` scores in whole grid units (float64)."""
    return torch.round(mean + sd * torch.randn(n, generator=rng, dtype=torch.float64))


def _structured(rng: torch.Generator, n: int, k: int, sd: float, *, gap: int, tie: bool
                ) -> tuple[torch.Tensor, float]:
    """``n`` non-member scores in grid units, sorted in decreasing order, around the cut ``c = v[k]`` (the
    ``(k+1)``-th highest): ``v[:k] >= c + gap``, ``v[k+1:] <= c - 1``; ``tie`` also sets ``v[k-1] = c``."""
    v = _grid(rng, n, sd).sort(descending=True).values
    c = float(v[k])
    v[:k] = torch.clamp(v[:k], min=c + gap)
    v[k + 1:] = torch.clamp(v[k + 1:], max=c - 1)
    if tie and k >= 1:
        v[k - 1] = c
    return v, c


def _scores_instance(rng: torch.Generator, kind: str) -> tuple[torch.Tensor, torch.Tensor, float, dict]:
    """``(member_scores, non_member_scores, target_fpr, cut)``, float64 scores on a grid of step 0.05, 0.1 or
    0.25, shuffled. ``kind``: ``"tie"`` (budget ``k + f``, ``f`` in (0.3, 0.9), ``v_k = v_{k+1} = c``, a member at
    ``c``), ``"gap"`` (``f`` in (0.55, 0.9), ``v_k >= c + 3``, members at ``c`` and ``c + 1``), ``"whole"``
    (``target_fpr * n = k`` exactly, ``v_k = c + 1``, exactly one member at ``c`` and one at ``c + 1``) or
    ``"zero"`` (target 0, members at the top non-member score and one step above, and one at the lowest
    non-member score). ``cut`` holds ``c`` and ``v_k`` in score units, ``k`` and the grid's ``step``."""
    step = (0.05, 0.1, 0.25)[randint(rng, 0, 2)]
    sd = float(randint(rng, 4, 12))
    if kind == "whole":
        target, n = WHOLE_BUDGETS[randint(rng, 0, len(WHOLE_BUDGETS) - 1)]
        k = round(target * n)
    else:
        n = randint(rng, 80, 400)
        k = 0 if kind == "zero" else randint(rng, 1, n // 10)
        frac = _uniform(rng, 0.3, 0.9) if kind == "tie" else _uniform(rng, 0.55, 0.9)
        target = 0.0 if kind == "zero" else (k + frac) / n
    v, c = _structured(rng, n, k, sd, gap={"gap": 3, "zero": 3, "whole": 2}.get(kind, 1), tie=kind == "tie")
    if kind == "whole":
        v[k - 1] = c + 1  # one non-member at c + 1, one at c: equal ROC steps into and out of the budget's point
    m = randint(rng, 40, 300)
    members = _grid(rng, m, sd, mean=_uniform(rng, 0.5, 1.5) * sd)
    if kind == "whole":
        members[(members == c) | (members == c + 1)] = c - 1  # exactly one member at each, planted next
    members[0] = c
    if kind in ("gap", "zero", "whole"):
        members[1] = c + 1
    if kind == "zero":
        members[2] = float(v[-1])  # a member at the lowest non-member score: target 1 must flag it too
    offset = _uniform(rng, -3.0, 3.0)
    members = members[torch.randperm(m, generator=rng)] * step + offset
    non_members = v[torch.randperm(n, generator=rng)] * step + offset
    top = float(v[k - 1]) if k >= 1 else math.inf
    return members, non_members, target, {"c": c * step + offset, "v_k": top * step + offset, "k": k, "step": step}


def _roc_default(members: torch.Tensor, non_members: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's ``roc_curve`` with its default ``drop_intermediate=True`` (points on straight segments of
    the ROC dropped), as ``(fpr, tpr)``; ``None`` without scikit-learn."""
    try:
        from sklearn.metrics import roc_curve
    except ImportError:  # pragma: no cover - scikit-learn is a dependency of the kit
        return None
    y = np.r_[np.ones(len(members)), np.zeros(len(non_members))]
    fpr, tpr, _ = roc_curve(y, torch.cat([members, non_members]).double().numpy())
    return fpr, tpr


def _tpr_variants(members: torch.Tensor, non_members: torch.Tensor, target: float) -> dict[str, float]:
    """TPRs that typical mistakes give, to name the mistake in a failure message (the value alone is matched,
    so a hint says what an answer equals, not what it is)."""
    v = non_members.double().sort(descending=True).values
    n = len(v)
    k = math.floor(target * n + 1e-9)
    share = lambda mask: float(mask.double().mean())  # noqa: E731
    out = {}
    if k < n:
        out["the >= side (the first threshold whose FPR reaches target_fpr, flagging the (k+1)-th highest "
            "non-member as well: one false positive too many; keep the FPR <= target_fpr)"] = share(members >= v[k])
    if 1 <= k <= n:
        out[f"the {_ordinal(k)} highest non-member score as threshold, flagging scores >= it (it misses members "
            f"between the {_ordinal(k + 1)} and the {_ordinal(k)} highest, and flags more than k non-members when "
            "those two tie)"] = share(members >= v[k - 1])
    if 1 <= k < n:
        out[f"a threshold halfway between the {_ordinal(k + 1)} and the {_ordinal(k)} highest non-member score "
            "(within the budget, but not the lowest such threshold: members between the two are missed)"] = \
            share(members > (v[k] + v[k - 1]) / 2)
    if k + 1 < n:
        out["ceil or round of target_fpr * n (one false positive too many; floor it)"] = share(members > v[k + 1])
    if k >= 1:
        out["the FPR kept strictly below target_fpr (FPR = target_fpr is allowed)"] = share(members > v[k - 1])
    q = float(torch.quantile(non_members.double(), 1 - target))
    out[f"the threshold torch.quantile(non_members, 1 - target_fpr) = {fmt(q)} with >= (it interpolates between "
        "scores and lets one more non-member through)"] = share(members >= q)
    roc = _roc_default(members, non_members)
    if roc is not None:
        fpr, tpr = roc
        out["scikit-learn's roc_curve with its default drop_intermediate=True (it drops ROC points on straight "
            "segments, the one at the budget among them; pass drop_intermediate=False)"] = \
            float(tpr[fpr <= target + 1e-12].max())
        out["np.interp(target_fpr, fpr, tpr) on the ROC (interpolating between two ROC points describes a "
            "randomised choice between two thresholds; the TPR of a single threshold is asked for)"] = \
            float(np.interp(target, fpr, tpr))
    return out


def _matching_hint(got, variants: dict) -> str:
    """"; your answer equals what ... gives" naming the variant whose value (a number or a tuple) is ``got``, with
    its explanation, or only the names when several give that value (different mistakes can coincide on grid
    scores), or ""."""
    def same(a, b) -> bool:
        a, b = (a, b) if isinstance(a, tuple) else ((a,), (b,))
        return all(abs(x - y) <= 1e-6 for x, y in zip(a, b))

    names = [h for h, val in variants.items() if same(got, val)]
    if len(names) == 1:
        return f"; your answer equals what {names[0]} gives"
    if names:  # each name reads "what (why)": keep only the whats
        whats = "; ".join(h.split(" (")[0].rstrip(",") for h in names)
        return f"; your answer equals what each of these gives: {whats}"
    return ""


def _tpr(fn, members: torch.Tensor, non_members: torch.Tensor, target: float) -> tuple[float, str]:
    what = (f"tpr_at_fpr(member_scores {describe(members)}, non_member_scores {describe(non_members)}, "
            f"target_fpr={target:.6g})")
    got = _number(call(fn, members.clone(), non_members.clone(), target, name="tpr_at_fpr"), what)
    if not 0.0 <= got <= 1.0:
        fail(f"{what} = {fmt(got)}; a rate is in [0, 1] (return a share, not a percentage or a count)")
    return got, what


def _check_tpr(fn, members, non_members, target, cut) -> None:
    got, what = _tpr(fn, members, non_members, target)
    expected = _reference_tpr(members, non_members, target)
    if abs(got - expected) <= 1e-6:
        return
    n, k = len(non_members), cut["k"]
    hint = _matching_hint(got, _tpr_variants(members, non_members, target))
    fail(f"{what} = {fmt(got)}, expected {fmt(expected)}: target_fpr * {n} = {target * n:.4g} allows k = {k} false "
         f"positive(s), so the threshold is the k+1 = {_ordinal(k + 1)} highest non-member score, {fmt(cut['c'])}, "
         f"and a member is flagged when it scores strictly above it{hint}")


@tpr_at_fpr.prop("returns a Python float in [0, 1] and leaves the scores unchanged")
def _tf_form(fn, rng):
    members, non_members, target, _ = _scores_instance(rng, "tie")
    kept = (members.clone(), non_members.clone())
    what = (f"tpr_at_fpr(member_scores {describe(members)}, non_member_scores {describe(non_members)}, "
            f"target_fpr={target:.6g})")
    out = call(fn, members, non_members, target, name="tpr_at_fpr")
    if not (torch.equal(members, kept[0]) and torch.equal(non_members, kept[1])):
        fail(f"{what} changed the scores in place (a sort_ or a shift?); sort a copy")
    if isinstance(out, torch.Tensor):
        fail(f"{what} returned {describe(out)}; expected a Python float (call .item())")
    value = _number(out, what)
    if not 0.0 <= value <= 1.0:
        fail(f"{what} = {fmt(value)}; a rate is in [0, 1] (return a share, not a percentage or a count)")


@tpr_at_fpr.prop("is the largest TPR of a threshold whose FPR on the non-members is <= target_fpr (ties in the "
                 "scores, budgets that are not a whole number of non-members)")
def _tf_value(fn, rng):
    for kind in ("tie", "gap"):
        _check_tpr(fn, *_scores_instance(rng, kind))


@tpr_at_fpr.prop("allows exactly k false positives when target_fpr * n is a whole number k (FPR = target_fpr "
                 "is within the budget)")
def _tf_whole(fn, rng):
    _check_tpr(fn, *_scores_instance(rng, "whole"))


@tpr_at_fpr.prop("handles the extreme budgets: target_fpr = 0 flags only members above every non-member, "
                 "target_fpr = 1 flags every member")
def _tf_extremes(fn, rng):
    members, non_members, target, cut = _scores_instance(rng, "zero")
    _check_tpr(fn, members, non_members, target, cut)
    got, what = _tpr(fn, members, non_members, 1.0)
    if abs(got - 1.0) > 1e-9:
        fail(f"{what} = {fmt(got)}; with every non-member allowed through, the threshold lies below every score "
             "(-inf) and every member is flagged: TPR 1 (a threshold taken from the observed scores, flagging "
             "those strictly above it, misses the lowest ones)")


@tpr_at_fpr.prop("raises a ValueError naming target_fpr when it is outside [0, 1]")
def _tf_bad(fn, rng):
    members, non_members, _, _ = _scores_instance(rng, "tie")
    for target in (-_uniform(rng, 0.01, 0.5), 1 + _uniform(rng, 0.01, 0.5), 100 * _uniform(rng, 0.01, 0.05)):
        expect_value_error(fn, (members.clone(), non_members.clone(), target),
                            f"tpr_at_fpr(member_scores, non_member_scores, target_fpr={target:.4g})",
                            "target_fpr must be in [0, 1] (a rate, not a percentage)", "target_fpr")


# ---- (c) reference_attack --------------------------------------------------------------------------------
reference_attack = SET.question(
    "reference_attack", "reference_attack(reference_scores, target_fpr, member_scores, non_member_scores) -> "
                        "(tpr, fpr)",
    forbid=(*_METRICS, f"{_CHECKER}._reference_attack", f"{_CHECKER}._reference_attack_at_or_above",
            f"{_CHECKER}._reference_tpr", f"{_CHECKER}._cut"))


def _reference_attack(reference: torch.Tensor, target: float, members: torch.Tensor,
                      non_members: torch.Tensor) -> tuple[float, float]:
    tau = _cut(reference, target)
    return (float((members.double() > tau).double().mean()), float((non_members.double() > tau).double().mean()))


def _reference_attack_at_or_above(reference: torch.Tensor, target: float, members: torch.Tensor,
                                  non_members: torch.Tensor) -> tuple[float, float]:
    """The other "lowest cut" convention (the kit's ``global_threshold``): flag scores at or above ``s*``, the
    lowest reference score that at most ``k`` reference scores reach (everything when ``k >= n``, nothing when
    no reference score qualifies)."""
    r = reference.double()
    k = math.floor(target * len(r) + 1e-9)
    if k >= len(r):
        return 1.0, 1.0
    ok = [float(s) for s in r.unique() if int((r >= s).sum()) <= k]
    s_star = min(ok) if ok else math.inf
    return (float((members.double() >= s_star).double().mean()),
            float((non_members.double() >= s_star).double().mean()))


def _attack_instance(rng: torch.Generator, direction: str):
    """``(reference, target_fpr, members, non_members, info)`` in score units, on a grid. The budgets
    ``k_r = floor(target_fpr * n_ref)`` and ``k_e = floor(target_fpr * n_eval)`` differ. The evaluation's
    non-members ``w`` (sorted down) have distinct ``k_e``-th and ``(k_e+1)``-th scores; the reference's cut ``c_r``
    is placed one to three steps below ``w[k_e + 1]`` (``"down"``: the attack flags at least ``k_e + 2``
    evaluation non-members) or at or above ``w[k_e - 1]`` (``"up"``: at most ``k_e - 1``); the reference scores
    above ``c_r`` sit three steps or more above it, and ``"up"`` also plants a tie ``r_k = r_{k+1} = c_r``.
    Members sit at ``c_r``, ``c_r + 1``, ``t - 1`` and ``t``, ``t`` the lowest reference score above ``c_r``."""
    step = (0.05, 0.1, 0.25)[randint(rng, 0, 2)]
    sd = float(randint(rng, 4, 12))
    while True:  # budgets of at least 1 on both sets, different, and away from whole numbers
        n_ref, n_eval = randint(rng, 100, 400), randint(rng, 80, 300)
        target = _uniform(rng, 0.02, 0.1)
        k_r, k_e = math.floor(target * n_ref), math.floor(target * n_eval)
        if k_e >= 1 and k_r != k_e and target < target * n_ref - k_r < 0.95 \
                and 0.05 < target * n_eval - k_e < 0.95:
            break
    tie = direction == "up"
    w, _ = _structured(rng, n_eval, k_e, sd, gap=1, tie=False)
    r, c_r = _structured(rng, n_ref, k_r, sd, gap=3, tie=tie)
    goal = float(w[k_e + 1]) - randint(rng, 1, 3) if direction == "down" else float(w[k_e - 1]) + randint(rng, 0, 2)
    r = r + (goal - c_r)
    c_r = goal
    above = float(r[k_r - 2] if tie else r[k_r - 1])  # the lowest reference score above c_r (r is sorted down)
    m = randint(rng, 40, 200)
    members = _grid(rng, m, sd, mean=_uniform(rng, 0.5, 1.5) * sd)
    members[0], members[1], members[2], members[3] = c_r, c_r + 1, above - 1, above
    offset = _uniform(rng, -3.0, 3.0)
    members = members[torch.randperm(m, generator=rng)] * step + offset
    w = w[torch.randperm(n_eval, generator=rng)] * step + offset
    r = r[torch.randperm(n_ref, generator=rng)] * step + offset
    return r, target, members, w, {"c_r": c_r * step + offset, "above": above * step + offset, "k_r": k_r,
                                   "step": step, "tie": tie}


def _attack(fn, reference, target, members, non_members) -> tuple[float, float, str]:
    what = (f"reference_attack(reference_scores {describe(reference)}, target_fpr={target:.4g}, member_scores "
            f"{describe(members)}, non_member_scores {describe(non_members)})")
    out = call(fn, reference.clone(), target, members.clone(), non_members.clone(), name="reference_attack")
    tpr, fpr = expect_pair(out, what)
    tpr, fpr = _number(tpr, what + "[0] (the TPR)"), _number(fpr, what + "[1] (the FPR)")
    for name, value in (("TPR", tpr), ("FPR", fpr)):
        if not 0.0 <= value <= 1.0:
            fail(f"{what} returned the {name} {fmt(value)}; a rate is in [0, 1]")
    return tpr, fpr, what


def _attack_variants(reference, target, members, non_members) -> dict[str, tuple[float, float]]:
    """``(tpr, fpr)`` pairs that typical mistakes give, to name the mistake in a failure message (the values
    alone are matched, so a hint says what an answer equals)."""
    def rates(mask_m, mask_n):
        return float(mask_m.double().mean()), float(mask_n.double().mean())

    r = reference.double().sort(descending=True).values
    k = math.floor(target * len(r) + 1e-9)
    tau_eval = _cut(non_members, target)
    out = {
        "a threshold fitted on the evaluation's own non-members (the attacker does not know which examples are "
        "non-members; fit it on reference_scores)": rates(members > tau_eval, non_members > tau_eval),
        "the FPR on the reference non-members (the FPR to report is measured on the evaluation's non-members)":
            (_reference_attack(reference, target, members, non_members)[0],
             float((reference.double() > _cut(reference, target)).double().mean())),
        "TPR and FPR swapped": tuple(reversed(_reference_attack(reference, target, members, non_members))),
    }
    if k < len(r):
        tied = f", which ties with the {_ordinal(k)}," if k >= 1 and r[k - 1] == r[k] else ", the >= side,"
        out[f"flagging scores >= the {_ordinal(k + 1)} highest reference score{tied} (more than k reference scores "
            "get through)"] = rates(members >= r[k], non_members >= r[k])
    if 1 <= k < len(r):
        mid = (r[k] + r[k - 1]) / 2
        out[f"a threshold halfway between the {_ordinal(k + 1)} and the {_ordinal(k)} highest reference score "
            "(within the reference budget, but neither lowest cut: evaluation examples between the two are "
            "missed or counted)"] = rates(members >= mid, non_members >= mid)
        out[f"the {_ordinal(k)} highest reference score as threshold, flagging scores strictly above it (within "
            "the budget, but not the lowest threshold)"] = rates(members > r[k - 1], non_members > r[k - 1])
    k_eval = math.floor(target * len(non_members) + 1e-9)
    if k_eval != k:
        tau = float(r[k_eval]) if k_eval < len(r) else -math.inf
        out["k counted from len(non_member_scores) (the budget on the reference is target_fpr * "
            "len(reference_scores))"] = rates(members > tau, non_members > tau)
    return out


def _check_attack(fn, reference, target, members, non_members, info) -> None:
    tpr, fpr, what = _attack(fn, reference, target, members, non_members)
    exp_tpr, exp_fpr = _reference_attack(reference, target, members, non_members)
    alt_tpr, alt_fpr = _reference_attack_at_or_above(reference, target, members, non_members)
    for t, f in ((exp_tpr, exp_fpr), (alt_tpr, alt_fpr)):
        if abs(tpr - t) <= 1e-6 and abs(fpr - f) <= 1e-6:
            return
    hint = _matching_hint((tpr, fpr), _attack_variants(reference, target, members, non_members))
    k = info["k_r"]
    fail(f"{what} returned (TPR {fmt(tpr)}, FPR {fmt(fpr)}), expected ({fmt(exp_tpr)}, {fmt(exp_fpr)}): "
         f"target_fpr * {len(reference)} reference scores allows {k} above the threshold, so the threshold is "
         f"their k+1 = {_ordinal(k + 1)} highest, {fmt(info['c_r'])}, and TPR and FPR are the shares of the "
         f"evaluation's members and non-members strictly above it (flagging scores at or above the lowest "
         f"reference score that at most {k} reference scores reach, which gives ({fmt(alt_tpr)}, {fmt(alt_fpr)}) "
         f"here, is accepted too){hint}")


@reference_attack.prop("returns (tpr, fpr), two Python floats in [0, 1], and leaves the scores unchanged")
def _ra_form(fn, rng):
    reference, target, members, non_members, _ = _attack_instance(rng, "down")
    kept = [t.clone() for t in (reference, members, non_members)]
    what = "reference_attack(reference_scores, target_fpr, member_scores, non_member_scores)"
    out = call(fn, reference, target, members, non_members, name="reference_attack")
    if not all(torch.equal(a, b) for a, b in zip((reference, members, non_members), kept)):
        fail(f"{what} changed the scores in place (a sort_?); sort a copy")
    tpr, fpr = expect_pair(out, what)
    for name, value in (("tpr", tpr), ("fpr", fpr)):
        if isinstance(value, torch.Tensor):
            fail(f"{what} returned the {name} as {describe(value)}; expected a Python float (call .item())")
        value = _number(value, what)
        if not 0.0 <= value <= 1.0:
            fail(f"{what} returned {name} = {fmt(value)}; a rate is in [0, 1]")


@reference_attack.prop("fits the threshold on the reference non-members (the lowest one that lets at most "
                       "target_fpr of them through, flagging > or >=) and reports the TPR and FPR it reaches on "
                       "the evaluation")
def _ra_value(fn, rng):
    for direction in ("down", "up"):
        _check_attack(fn, *_attack_instance(rng, direction))


@reference_attack.prop("ignores the evaluation's non-members when fitting: moving them changes the FPR, never "
                       "the TPR")
def _ra_independent(fn, rng):
    reference, target, members, non_members, info = _attack_instance(rng, "down")
    base_tpr, _, what = _attack(fn, reference, target, members, non_members)
    span = float(torch.cat([reference, members, non_members]).max() - torch.cat([reference, members,
                                                                                 non_members]).min())
    for sign in (1, -1):
        moved = non_members + sign * (span + 1.0)
        tpr, fpr, _ = _attack(fn, reference, target, members, moved)
        if abs(tpr - base_tpr) > 1e-9:
            fail(f"{what}: moving every evaluation non-member {'up' if sign > 0 else 'down'} by {fmt(span + 1)} "
                 f"changed the TPR from {fmt(base_tpr)} to {fmt(tpr)}; the attacker does not know which examples "
                 "are non-members, so the threshold comes from reference_scores alone")
        if abs(fpr - (1.0 if sign > 0 else 0.0)) > 1e-9:
            fail(f"{what}: with every evaluation non-member moved {'above' if sign > 0 else 'below'} every other "
                 f"score, the FPR should be {1.0 if sign > 0 else 0.0}, got {fmt(fpr)}; measure it on "
                 "non_member_scores with the reference's threshold")


@reference_attack.prop("raises a ValueError naming target_fpr when it is outside [0, 1]")
def _ra_bad(fn, rng):
    reference, _, members, non_members, _ = _attack_instance(rng, "up")
    for target in (-_uniform(rng, 0.01, 0.5), 1 + _uniform(rng, 0.01, 0.5)):
        expect_value_error(fn, (reference.clone(), target, members.clone(), non_members.clone()),
                            f"reference_attack(reference_scores, target_fpr={target:.4g}, ...)",
                            "target_fpr must be in [0, 1]", "target_fpr")


# ---- (d) membership_statements (conceptual) --------------------------------------------------------------
membership_statements = SET.question("membership_statements",
                                     "membership_statements() -> str of letters, e.g. 'ac'")
STATEMENTS = {
    "a": "Two attacks with the same AUC can differ widely in their TPR at 0.1% FPR: the AUC averages the TPR over "
         "every FPR, most of them far too high for an attacker to act on.",
    "b": "An attack with a balanced accuracy of 50.5% is harmless: it is barely better than a coin flip.",
    "c": "Measured on 500 non-members, a TPR at 0.1% FPR (as tpr_at_fpr defines it) is the TPR of a threshold "
         "that flags none of them: 0.1% of 500 is half a false positive, so only an FPR of 0 is within the "
         "budget, and resolving 0.1% itself needs at least 1000 non-members.",
    "d": "The TPR at 1% FPR read off the ROC curve of the evaluation set is the TPR a deployed attacker reaches "
         "at 1% FPR, since the attacker can pick the same threshold.",
    "e": "A guess that ignores the model and flags each example with probability 1% has a TPR of about 1% at 1% "
         "FPR, so a TPR at 1% FPR is to be compared with 1%, not with 0.",
    "f": "At a fixed threshold, an attack's TPR and FPR change in expectation, as its accuracy does, when the "
         "evaluation holds ten non-members per member instead of one.",
    "g": "The loss-threshold attack needs the target model's weights.",
    "h": "Subtracting from each example's score its mean score under reference models that did not train on it "
         "(a per-example calibration, the idea behind LiRA's shadow models) usually raises the TPR at a low FPR, "
         "because examples that every model fits well no longer pass for members.",
    "i": "A model whose train and test accuracies are equal exposes none of its members: without a "
         "generalisation gap, no membership attack beats chance.",
}
TRUE_STATEMENTS = frozenset("aceh")
_WHY_NOT = {
    "b": "an attack that flags 1% of the members with no false positive at all and calls every other example a "
         "non-member has a balanced accuracy of (0.01 + 1) / 2 = 50.5%, and it exposes those members with "
         "certainty",
    "d": "the ROC picks its thresholds with the evaluation's membership labels, which the attacker does not "
         "have: it measures how well the scores separate members from non-members, with an oracle threshold. A "
         "deployed attack must fit its threshold on its own reference data, and then reaches another FPR and "
         "TPR (as reference_attack shows)",
    "f": "at a fixed threshold the TPR is a share of the members and the FPR a share of the non-members, so their "
         "expected values do not depend on how many of each the evaluation holds (only their confidence "
         "intervals do); accuracy and precision do",
    "i": "equal accuracies say that the generalisation gap is zero on average, not for every example: a model "
         "still memorises some atypical examples and outliers, whose loss depends strongly on whether they were "
         "trained on, and an attack calibrated per example exposes some of them at a low FPR",
    "g": "it needs only the loss of each candidate, that is the predicted probabilities and the true label: "
         "black-box access to the model's outputs suffices",
}


statement_checks(membership_statements, "membership_statements", STATEMENTS, TRUE_STATEMENTS, _WHY_NOT, exact=True,
                 hint="think about what the AUC averages over, how many "
                 "non-members a false-positive rate needs, what chance looks like at a fixed FPR, and what a "
                 "per-example reference changes")
