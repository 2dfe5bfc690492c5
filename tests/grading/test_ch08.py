"""The chapter-8 checks (loss-threshold scores, the TPR at a fixed FPR, an attack with a threshold fitted on the
attacker's reference data, which statements about measuring membership inference are true): every reference
solution passes on any seed, and each plausible wrong implementation fails the property written for it, on
every one of many seeds."""
import math

import numpy as np
import pytest
import torch

from grading_helpers import (ROOT, assert_fails_on_every_seed, assert_forbidden_names_resolve, assert_mistake_fails,
                             assert_passes_on_seeds, assert_set_runs_quickly, run_blocked, solution_functions)
from mlsec_kit.grading import get_exercise, run_question
from mlsec_kit.grading.sets import ch08

EXERCISE = get_exercise("08_membership_inference")
SOURCE = ROOT / "exercises" / "source" / "08_membership_inference.ipynb"
QUESTIONS = ("loss_scores", "tpr_at_fpr", "reference_attack", "membership_statements")
SEEDS = range(800, 825)  # the grader draws seeds of its own: a mistake must fail on every one


@pytest.fixture(scope="module")
def solutions() -> dict:
    """The setup cell and the cells defining the four functions (not the real-data cell, which trains)."""
    return solution_functions(SOURCE, QUESTIONS)


def test_the_set_declares_the_chapter_questions():
    assert tuple(EXERCISE.questions) == QUESTIONS
    assert EXERCISE.chapter == 8 and EXERCISE.title == "Exercises: membership inference"
    assert all(3 <= q.max_score <= 6 for q in EXERCISE.questions.values())
    forbid = {name: set(q.forbid) for name, q in EXERCISE.questions.items()}
    assert {"mlsec_kit.attacks.inference.loss_threshold_scores",
            "mlsec_kit.attacks.inference.per_example_loss"} <= forbid["loss_scores"]
    for name in ("tpr_at_fpr", "reference_attack"):
        assert {"mlsec_kit.attacks.inference.tpr_at_fpr", "mlsec_kit.attacks.inference.roc",
                "mlsec_kit.attacks.inference.global_threshold"} <= forbid[name]


def _kit_tpr(m, n, t):
    from mlsec_kit.attacks.inference import tpr_at_fpr

    if not 0 <= t <= 1:
        raise ValueError("target_fpr must be in [0, 1]")
    labels = torch.cat([torch.ones(len(m)), torch.zeros(len(n))]).long()
    return tpr_at_fpr(torch.cat([m, n]), labels, fpr=t).tpr


def _kit_attack(r, t, m, n):
    """The kit's threshold on the reference non-members, with every evaluation score as a candidate cut (a
    cut between data points is then the lowest one), flagged with the kit's ``>=``."""
    from mlsec_kit.attacks.inference import tpr_at_fpr

    if not 0 <= t <= 1:
        raise ValueError("target_fpr must be in [0, 1]")
    candidates = torch.cat([m, n])
    labels = torch.cat([torch.ones(len(candidates)), torch.zeros(len(r))]).long()
    thr = tpr_at_fpr(torch.cat([candidates, r]), labels, fpr=t).threshold
    return float((m >= thr).double().mean()), float((n >= thr).double().mean())


def test_every_forbidden_name_is_a_kit_function_and_is_blocked_while_grading():
    """The names resolve (a typo would block nothing), and the kit's own answers score zero."""
    import warnings

    from torch import nn

    from mlsec_kit.attacks.inference import loss_threshold_scores

    assert_forbidden_names_resolve(EXERCISE)
    answers = [
        ("loss_scores", lambda logits, labels: loss_threshold_scores(nn.Identity(), logits, labels)),
        ("loss_scores", ch08._reference_loss_scores),
        ("tpr_at_fpr", _kit_tpr),
        ("reference_attack", _kit_attack),
    ]
    for name, fn in answers:
        question = EXERCISE.questions[name]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the kit warns about budgets below one non-member (target 0)
            assert run_question(question, fn, seed=1).passed, run_question(question, fn, seed=1).report()
            result = run_blocked(question, fn)
        # the checks of validation and form that never reach the kit still pass; the values are never earned
        assert result.score < question.max_score - 1


@pytest.mark.parametrize("name", QUESTIONS)
def test_every_solution_passes_every_check_on_many_seeds(solutions, name):
    assert_passes_on_seeds(EXERCISE.questions[name], solutions[name], range(80_000, 80_000 + 40))


def test_differently_built_correct_answers_pass():
    """Correct answers built another way earn full marks: logsumexp by hand, float32 throughout, the ROC over
    every distinct score with "flag >=", NumPy, scikit-learn's full ROC, a 0-d NumPy array, a count of reference
    scores at or above each example, and the kit's convention for the reference threshold (flag at or above the
    lowest reference score that at most k of them reach)."""
    import textwrap

    code = """
    def loss_scores_lse(logits, labels):
        z = logits.double()
        return z.gather(1, labels[:, None]).squeeze(1) - torch.logsumexp(z, 1)

    def loss_scores_f32(logits, labels):
        return torch.log_softmax(logits, dim=-1)[torch.arange(len(labels)), labels]

    def tpr_roc(member_scores, non_member_scores, target_fpr):
        if not 0 <= target_fpr <= 1:
            raise ValueError("target_fpr out of range")
        best = 0.0
        for tau in torch.cat([member_scores, non_member_scores]).unique():
            if (non_member_scores >= tau).float().mean() <= target_fpr:
                best = max(best, (member_scores >= tau).float().mean().item())
        return best

    def tpr_numpy(member_scores, non_member_scores, target_fpr):
        if target_fpr < 0 or target_fpr > 1:
            raise ValueError(f"target_fpr={target_fpr} is not a rate")
        v = np.sort(non_member_scores.numpy())[::-1]
        k = int(np.floor(target_fpr * len(v) + 1e-9))
        return 1.0 if k >= len(v) else float(np.mean(member_scores.numpy() > v[k]))

    def tpr_sklearn_full(member_scores, non_member_scores, target_fpr):
        from sklearn.metrics import roc_curve
        if not 0 <= target_fpr <= 1:
            raise ValueError("target_fpr must be in [0, 1]")
        y = np.r_[np.ones(len(member_scores)), np.zeros(len(non_member_scores))]
        fpr, tpr, _ = roc_curve(y, torch.cat([member_scores, non_member_scores]).numpy(), drop_intermediate=False)
        return float(tpr[fpr <= target_fpr].max())

    def tpr_0d_array(member_scores, non_member_scores, target_fpr):
        return np.array(tpr_numpy(member_scores, non_member_scores, target_fpr))

    def attack_at_or_above(reference_scores, target_fpr, member_scores, non_member_scores):
        # the kit's global_threshold convention: the lowest reference score that at most k of them reach, flag >=
        if not 0 <= target_fpr <= 1:
            raise ValueError("target_fpr must be in [0, 1]")
        k = math.floor(target_fpr * len(reference_scores) + 1e-9)
        ok = [s for s in reference_scores.unique().tolist() if (reference_scores >= s).sum() <= k]
        tau = min(ok) if ok else math.inf
        return (member_scores >= tau).double().mean().item(), (non_member_scores >= tau).double().mean().item()

    def attack_counts(reference_scores, target_fpr, member_scores, non_member_scores):
        if not 0 <= target_fpr <= 1:
            raise ValueError("target_fpr must be a rate")
        budget = target_fpr * len(reference_scores)
        def flagged(s):  # at most the budget of reference scores at or above s
            return ((reference_scores[None, :] >= s[:, None]).sum(1) <= budget + 1e-9).float()
        return flagged(member_scores).mean().item(), flagged(non_member_scores).mean().item()
    """
    namespace = {"torch": torch, "np": np, "math": math}
    exec(textwrap.dedent(code), namespace)
    for name, fn in [("loss_scores", "loss_scores_lse"), ("loss_scores", "loss_scores_f32"),
                     ("tpr_at_fpr", "tpr_roc"), ("tpr_at_fpr", "tpr_numpy"), ("tpr_at_fpr", "tpr_sklearn_full"),
                     ("tpr_at_fpr", "tpr_0d_array"), ("reference_attack", "attack_counts"),
                     ("reference_attack", "attack_at_or_above")]:
        assert_passes_on_seeds(EXERCISE.questions[name], namespace[fn], range(20))


def test_the_whole_set_runs_in_seconds(solutions):
    assert_set_runs_quickly(EXERCISE, solutions)


def test_the_instances_keep_their_promises():
    """The generators behind the every-seed guarantees: extreme logits, a member at the cut, ties, budgets
    away from whole numbers (or exactly whole), a reference shifted against the evaluation."""
    for seed in range(200):
        rng = torch.Generator().manual_seed(seed)
        logits, labels = ch08._logits(rng, large=True)
        z = logits.double()
        assert labels[0] == z[0].argmin()
        assert z[1].max() - z[1, labels[1]] >= 800 and z[2, labels[2]] >= 800
        for kind in ("tie", "gap", "whole", "zero"):
            m, n, target, cut = ch08._scores_instance(rng, kind)
            v = n.sort(descending=True).values
            k = cut["k"]
            assert k == math.floor(target * len(n) + 1e-9)
            assert float(v[k]) == cut["c"] and bool((m == cut["c"]).any())  # a member at the cut
            assert k + 1 >= len(v) or float(v[k + 1]) < cut["c"]
            if kind == "tie":
                assert float(v[k - 1]) == cut["c"] and 0.3 < target * len(n) - k < 0.9
            step = cut["step"]
            if kind == "gap":  # v_k three steps or more above the cut, a member in between
                assert float(v[k - 1]) >= cut["c"] + 2.5 * step and bool(((m > cut["c"]) & (m < v[k - 1])).any())
                assert 0.55 < target * len(n) - k < 0.9 and target < target * len(n) - k
            if kind == "whole":  # v_k one step above the cut; one member at each of the two
                assert target * len(n) == k and float(np.float32(k / len(n))) <= target
                assert float(v[k - 1]) == pytest.approx(cut["c"] + step) and float(v[k - 2]) > float(v[k - 1])
                assert int((m == cut["c"]).sum()) == 1 and int((m == v[k - 1]).sum()) == 1
            if kind == "zero":
                assert target == 0 and bool((m > v[0]).any()) and bool((m == v[-1]).any())
        for direction in ("down", "up"):
            r, target, m, n, info = ch08._attack_instance(rng, direction)
            k_e, k_r, c_r, step = math.floor(target * len(n)), info["k_r"], info["c_r"], info["step"]
            assert k_r == math.floor(target * len(r)) != k_e and target < target * len(r) - k_r
            flagged = int((n > c_r).sum())
            assert flagged >= k_e + 2 if direction == "down" else flagged <= k_e - 1
            w = n.sort(descending=True).values
            assert w[k_e - 1] > w[k_e]
            rs = r.sort(descending=True).values
            assert float(rs[k_r]) == c_r and float(rs[k_r + 1]) < c_r
            tie = direction == "up"  # r_k = r_(k+1): "the k-th highest, flag >=" lets k + 1 through
            assert (float(rs[k_r - 1]) == c_r) == tie
            above = float(rs[k_r - 2] if tie else rs[k_r - 1])
            assert above == info["above"] and above >= c_r + 2.5 * step
            for value in (c_r, c_r + step, above - step, above):  # members at the cut, one step up, around t
                assert bool((m - value).abs().lt(1e-9).any())


def test_the_reference_answers_agree_with_scikit_learn_and_the_kit():
    """The checks' own answers on their instances: minus scikit-learn's log loss per example (and the kit's
    loss_threshold_scores), the largest TPR of scikit-learn's ROC points within the budget (and the kit's
    tpr_at_fpr), and the reference attack's rates from the kit's threshold on the reference."""
    import warnings

    from scipy.special import log_softmax
    from sklearn.metrics import roc_curve
    from torch import nn

    from mlsec_kit.attacks.inference import loss_threshold_scores, tpr_at_fpr

    for seed in range(40):
        rng = torch.Generator().manual_seed(seed)
        for large in (False, True):
            logits, labels = ch08._logits(rng, large=large)
            ours = ch08._reference_loss_scores(logits, labels)
            scipy = log_softmax(logits.double().numpy(), axis=1)[np.arange(len(labels)), labels.numpy()]
            assert np.allclose(ours.numpy(), scipy, rtol=1e-9, atol=1e-9)
            kit = loss_threshold_scores(nn.Identity(), logits, labels).double()
            assert torch.allclose(ours, kit, rtol=1e-5, atol=1e-4)
        for kind in ("tie", "gap", "whole", "zero"):
            m, n, target, _ = ch08._scores_instance(rng, kind)
            scores = torch.cat([m, n]).numpy()
            y = np.r_[np.ones(len(m)), np.zeros(len(n))]
            fpr, tpr, _ = roc_curve(y, scores, drop_intermediate=False)
            expected = float(tpr[fpr <= target + 1e-12].max())
            assert ch08._reference_tpr(m, n, target) == pytest.approx(expected, abs=1e-12)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                kit_tpr = tpr_at_fpr(torch.cat([m, n]), torch.from_numpy(y).long(), fpr=target).tpr
            assert ch08._reference_tpr(m, n, target) == pytest.approx(kit_tpr, abs=1e-12)
        for direction in ("down", "up"):
            r, target, m, n, info = ch08._attack_instance(rng, direction)
            assert ch08._reference_attack(r, target, m, n) == _kit_attack(r, target, m, n)


def test_whole_budgets_are_exact():
    assert len(ch08.WHOLE_BUDGETS) >= 20
    for target, n in ch08.WHOLE_BUDGETS:
        k = round(target * n)
        assert target * n == k and k / n == target and math.floor(target * n) == k


# ---- typical mistakes ------------------------------------------------------------------------------------
_LS = """
        def loss_scores(logits, labels):"""
_TF = """
        def tpr_at_fpr(member_scores, non_member_scores, target_fpr):
            if not 0 <= target_fpr <= 1:
                raise ValueError("target_fpr must be in [0, 1]")
            n = len(non_member_scores)
            v = non_member_scores.sort(descending=True).values"""
_RA = """
        def reference_attack(reference_scores, target_fpr, member_scores, non_member_scores):
            if not 0 <= target_fpr <= 1:
                raise ValueError("target_fpr must be in [0, 1]")
            r = reference_scores.sort(descending=True).values"""
_RATES = """
            return (member_scores > tau).double().mean().item(), (non_member_scores > tau).double().mean().item()"""

MISTAKES = [
    # ---- loss_scores ------------------------------------------------------------------------------------------
    ("loss_scores", "the loss itself (the wrong sign)", _LS + """
            return F.cross_entropy(logits, labels, reduction="none")""",
     ["is minus", "stays exact"], "MINUS the loss"),
    ("loss_scores", "log of softmax", _LS + """
            return torch.softmax(logits, 1).gather(1, labels[:, None]).squeeze(1).log()""",
     ["stays exact"], "underflows"),
    ("loss_scores", "log of softmax in float64", _LS + """
            return torch.softmax(logits.double(), 1).gather(1, labels[:, None]).squeeze(1).log()""",
     ["stays exact"], "underflows"),
    ("loss_scores", "a hand-written softmax, exp(z) / sum exp(z)", _LS + """
            e = logits.double().exp()
            return (e / e.sum(1, keepdim=True)).gather(1, labels[:, None]).squeeze(1).log()""",
     ["stays exact"], "overflows"),
    ("loss_scores", "log of a clamped probability", _LS + """
            p = torch.softmax(logits, 1).gather(1, labels[:, None]).squeeze(1)
            return p.clamp_min(1e-12).log()""", ["stays exact"], "log(eps)"),
    ("loss_scores", "log(p + 1e-12) in float64", _LS + """
            p = torch.softmax(logits.double(), 1).gather(1, labels[:, None]).squeeze(1)
            return (p + 1e-12).log()""", ["stays exact"], "expected"),
    ("loss_scores", "the probability of the true class, not its log", _LS + """
            return torch.softmax(logits, 1).gather(1, labels[:, None]).squeeze(1)""",
     ["is minus", "stays exact"], "probability of the true class"),
    ("loss_scores", "the mean loss (a number, not one per example)", _LS + """
            return -F.cross_entropy(logits, labels)""", None, "shape"),
    ("loss_scores", "the predicted class's log-probability (the label ignored)", _LS + """
            return torch.log_softmax(logits, 1).max(1).values""", ["is minus", "stays exact"], "expected"),
    ("loss_scores", "log_softmax over the examples (dim 0)", _LS + """
            return torch.log_softmax(logits, 0).gather(1, labels[:, None]).squeeze(1)""",
     ["is minus", "stays exact"], "expected"),
    ("loss_scores", "the true-class logit alone (no normalisation)", _LS + """
            return logits.gather(1, labels[:, None]).squeeze(1)""", ["is minus", "stays exact"], "expected"),
    ("loss_scores", "subtracts the row maximum from logits in place", _LS + """
            logits -= logits.max(1, keepdim=True).values
            return torch.log_softmax(logits, 1).gather(1, labels[:, None]).squeeze(1)""",
     ["returns one"], "in place"),
    ("loss_scores", "a NumPy array", _LS + """
            return -F.cross_entropy(logits, labels, reduction="none").numpy()""", None, "torch tensor"),
    # ---- tpr_at_fpr -------------------------------------------------------------------------------------------
    ("tpr_at_fpr", "the >= side: the first threshold whose FPR reaches the target", """
        def tpr_at_fpr(member_scores, non_member_scores, target_fpr):
            if not 0 <= target_fpr <= 1:
                raise ValueError("target_fpr must be in [0, 1]")
            for tau in non_member_scores.unique().flip(0):  # thresholds from the top, flag >= tau
                if (non_member_scores >= tau).double().mean() >= target_fpr:
                    return (member_scores >= tau).double().mean().item()
            return 1.0""", None, "the >= side"),
    ("tpr_at_fpr", "the >= side by index: the ceil(target * n)-th highest score, flag >=", _TF + """
            k = math.ceil(target_fpr * n)
            if k == 0:
                return (member_scores > v[0]).double().mean().item()
            return (member_scores >= v[k - 1]).double().mean().item()""", ["is the largest"], "expected"),
    ("tpr_at_fpr", "the k-th highest non-member score as threshold, flag >=", _TF + """
            k = math.floor(target_fpr * n)
            if k == 0:
                return (member_scores > v[0]).double().mean().item()
            return (member_scores >= v[k - 1]).double().mean().item()""", ["is the largest"], "flagging scores >= it"),
    ("tpr_at_fpr", "ceil(target * n) false positives", _TF + """
            k = math.ceil(target_fpr * n)
            return 1.0 if k >= n else (member_scores > v[k]).double().mean().item()""",
     ["is the largest"], "ceil or round"),
    ("tpr_at_fpr", "round(target * n) false positives", _TF + """
            k = round(target_fpr * n)
            return 1.0 if k >= n else (member_scores > v[k]).double().mean().item()""",
     ["is the largest"], "ceil or round"),
    ("tpr_at_fpr", "the FPR kept strictly below the target", """
        def tpr_at_fpr(member_scores, non_member_scores, target_fpr):
            if not 0 <= target_fpr <= 1:
                raise ValueError("target_fpr must be in [0, 1]")
            best = 0.0
            for tau in torch.cat([member_scores, non_member_scores]).unique():
                if (non_member_scores >= tau).double().mean() < target_fpr:
                    best = max(best, (member_scores >= tau).double().mean().item())
            return best""", None, "strictly below"),
    ("tpr_at_fpr", "torch.quantile(non-members, 1 - target) as threshold, flag >=", _TF + """
            q = torch.quantile(non_member_scores, 1 - target_fpr)
            return (member_scores >= q).double().mean().item()""", None, "torch.quantile(non_members"),
    ("tpr_at_fpr", "torch.quantile(non-members, 1 - target) as threshold, flag >", _TF + """
            q = torch.quantile(non_member_scores, 1 - target_fpr)
            return (member_scores > q).double().mean().item()""", None, "expected"),
    ("tpr_at_fpr", "scikit-learn's roc_curve with its default drop_intermediate=True", """
        def tpr_at_fpr(member_scores, non_member_scores, target_fpr):
            from sklearn.metrics import roc_curve
            if not 0 <= target_fpr <= 1:
                raise ValueError("target_fpr must be in [0, 1]")
            y = np.r_[np.ones(len(member_scores)), np.zeros(len(non_member_scores))]
            fpr, tpr, _ = roc_curve(y, torch.cat([member_scores, non_member_scores]).numpy())
            return float(tpr[fpr <= target_fpr].max())""", None, "default drop_intermediate=True"),
    ("tpr_at_fpr", "np.interp on scikit-learn's ROC", """
        def tpr_at_fpr(member_scores, non_member_scores, target_fpr):
            from sklearn.metrics import roc_curve
            if not 0 <= target_fpr <= 1:
                raise ValueError("target_fpr must be in [0, 1]")
            y = np.r_[np.ones(len(member_scores)), np.zeros(len(non_member_scores))]
            fpr, tpr, _ = roc_curve(y, torch.cat([member_scores, non_member_scores]).numpy())
            return float(np.interp(target_fpr, fpr, tpr))""", None, "np.interp"),
    ("tpr_at_fpr", "a threshold halfway between v_(k+1) and v_k, flag >", _TF + """
            k = math.floor(target_fpr * n + 1e-9)
            if k >= n:
                return 1.0
            tau = (v[k] + v[k - 1]) / 2 if k >= 1 else v[0]
            return (member_scores > tau).double().mean().item()""", ["is the largest"], "halfway"),
    ("tpr_at_fpr", "thresholds from the observed scores only, flag > (no threshold below every score)", """
        def tpr_at_fpr(member_scores, non_member_scores, target_fpr):
            if not 0 <= target_fpr <= 1:
                raise ValueError("target_fpr must be in [0, 1]")
            best = 0.0
            for tau in torch.cat([member_scores, non_member_scores]).unique():
                if (non_member_scores > tau).double().mean() <= target_fpr:
                    best = max(best, (member_scores > tau).double().mean().item())
            return best""", ["handles the extreme"], "observed scores"),
    ("tpr_at_fpr", "np.quantile(non-members, 1 - target, method='inverted_cdf'), flag >", """
        def tpr_at_fpr(member_scores, non_member_scores, target_fpr):
            if not 0 <= target_fpr <= 1:
                raise ValueError("target_fpr must be in [0, 1]")
            q = np.quantile(non_member_scores.numpy(), 1 - target_fpr, method="inverted_cdf")
            return float((member_scores.numpy() > q).mean())""", ["handles the extreme"], "observed scores"),
    ("tpr_at_fpr", "the budget counted over all examples, members included", _TF + """
            k = math.floor(target_fpr * (n + len(member_scores)))
            return 1.0 if k >= n else (member_scores > v[k]).double().mean().item()""", None, "expected"),
    ("tpr_at_fpr", "the threshold from the members' scores", _TF + """
            w = member_scores.sort(descending=True).values
            k = math.floor(target_fpr * len(w))
            return 1.0 if k >= len(w) else (member_scores > w[k]).double().mean().item()""", None, "expected"),
    ("tpr_at_fpr", "a percentage", _TF + """
            k = math.floor(target_fpr * n + 1e-9)
            return 100.0 if k >= n else 100 * (member_scores > v[k]).double().mean().item()""", None, "[0, 1]"),
    ("tpr_at_fpr", "a tensor, not a float", _TF + """
            k = math.floor(target_fpr * n + 1e-9)
            return torch.tensor(1.0) if k >= n else (member_scores > v[k]).double().mean()""",
     ["returns a Python float"], "Python float"),
    ("tpr_at_fpr", "no validation of target_fpr", """
        def tpr_at_fpr(member_scores, non_member_scores, target_fpr):
            n = len(non_member_scores)
            v = non_member_scores.sort(descending=True).values
            k = math.floor(target_fpr * n + 1e-9)
            return 1.0 if k >= n else (member_scores > v[max(k, 0)]).double().mean().item()""",
     ["raises a ValueError"], "expected a ValueError"),
    ("tpr_at_fpr", "a ValueError that names no argument", """
        def tpr_at_fpr(member_scores, non_member_scores, target_fpr):
            if not 0 <= target_fpr <= 1:
                raise ValueError("bad rate")
            n = len(non_member_scores)
            v = non_member_scores.sort(descending=True).values
            k = math.floor(target_fpr * n + 1e-9)
            return 1.0 if k >= n else (member_scores > v[k]).double().mean().item()""",
     ["raises a ValueError"], "name the argument"),
    ("tpr_at_fpr", "sorts the non-members' scores in place", """
        def tpr_at_fpr(member_scores, non_member_scores, target_fpr):
            if not 0 <= target_fpr <= 1:
                raise ValueError("target_fpr must be in [0, 1]")
            n = len(non_member_scores)
            non_member_scores[:] = non_member_scores.sort(descending=True).values
            k = math.floor(target_fpr * n + 1e-9)
            return 1.0 if k >= n else (member_scores > non_member_scores[k]).double().mean().item()""",
     ["returns a Python float"], "in place"),
    # ---- reference_attack -------------------------------------------------------------------------------------
    ("reference_attack", "the threshold fitted on the evaluation's non-members", """
        def reference_attack(reference_scores, target_fpr, member_scores, non_member_scores):
            if not 0 <= target_fpr <= 1:
                raise ValueError("target_fpr must be in [0, 1]")
            v = non_member_scores.sort(descending=True).values
            k = math.floor(target_fpr * len(v) + 1e-9)
            tau = v[k].item() if k < len(v) else -math.inf""" + _RATES,
     ["fits the threshold", "ignores"], "evaluation's own non-members"),
    ("reference_attack", "the threshold fitted on the evaluation, the >= side", """
        def reference_attack(reference_scores, target_fpr, member_scores, non_member_scores):
            if not 0 <= target_fpr <= 1:
                raise ValueError("target_fpr must be in [0, 1]")
            v = non_member_scores.sort(descending=True).values
            tau = v[math.ceil(target_fpr * len(v)) - 1].item()
            return (member_scores >= tau).double().mean().item(), (non_member_scores >= tau).double().mean().item()""",
     None, "expected"),
    ("reference_attack", "the threshold fitted on the evaluation's members and non-members (best accuracy)", """
        def reference_attack(reference_scores, target_fpr, member_scores, non_member_scores):
            if not 0 <= target_fpr <= 1:
                raise ValueError("target_fpr must be in [0, 1]")
            best, tau = -1.0, 0.0
            for t in torch.cat([member_scores, non_member_scores]).unique():
                gain = (member_scores > t).double().mean() - (non_member_scores > t).double().mean()
                if gain > best:
                    best, tau = gain, t""" + _RATES, None, "expected"),
    ("reference_attack", "the reference and evaluation non-members pooled", """
        def reference_attack(reference_scores, target_fpr, member_scores, non_member_scores):
            if not 0 <= target_fpr <= 1:
                raise ValueError("target_fpr must be in [0, 1]")
            r = torch.cat([reference_scores, non_member_scores]).sort(descending=True).values
            k = math.floor(target_fpr * len(r) + 1e-9)
            tau = r[k].item() if k < len(r) else -math.inf""" + _RATES, None, "expected"),
    ("reference_attack", "the FPR reported on the reference, not measured on the evaluation", _RA + """
            k = math.floor(target_fpr * len(r) + 1e-9)
            tau = r[k].item() if k < len(r) else -math.inf
            return (member_scores > tau).double().mean().item(), (reference_scores > tau).double().mean().item()""",
     ["fits the threshold", "ignores"], "FPR on the reference"),
    ("reference_attack", "the target FPR returned as the FPR", _RA + """
            k = math.floor(target_fpr * len(r) + 1e-9)
            tau = r[k].item() if k < len(r) else -math.inf
            return (member_scores > tau).double().mean().item(), float(target_fpr)""",
     ["fits the threshold", "ignores"], "expected"),
    ("reference_attack", "the >= side on the reference", _RA + """
            k = math.floor(target_fpr * len(r) + 1e-9)
            tau = r[k].item() if k < len(r) else -math.inf
            return (member_scores >= tau).double().mean().item(), (non_member_scores >= tau).double().mean().item()""",
     ["fits the threshold"], "the >= side"),
    ("reference_attack", "the k-th highest reference score, flag >=", _RA + """
            k = math.floor(target_fpr * len(r))
            tau = r[k - 1].item()
            return (member_scores >= tau).double().mean().item(), (non_member_scores >= tau).double().mean().item()""",
     ["fits the threshold"], "which ties with the"),
    ("reference_attack", "the k-th highest reference score, flag >", _RA + """
            k = math.floor(target_fpr * len(r))
            tau = r[k - 1].item()""" + _RATES, ["fits the threshold"],
     "highest reference score as threshold, flagging scores strictly above it"),
    ("reference_attack", "k counted from len(non_member_scores)", _RA + """
            k = math.floor(target_fpr * len(non_member_scores) + 1e-9)
            tau = r[k].item() if k < len(r) else -math.inf""" + _RATES, ["fits the threshold"],
     "len(non_member_scores)"),
    ("reference_attack", "a threshold halfway between r_(k+1) and r_k, flag >=", _RA + """
            k = math.floor(target_fpr * len(r) + 1e-9)
            tau = ((r[k] + r[k - 1]) / 2).item()
            return (member_scores >= tau).double().mean().item(), (non_member_scores >= tau).double().mean().item()""",
     ["fits the threshold"], "halfway"),
    ("reference_attack", "a threshold halfway between r_(k+1) and r_k, flag >", _RA + """
            k = math.floor(target_fpr * len(r) + 1e-9)
            tau = ((r[k] + r[k - 1]) / 2).item()""" + _RATES, ["fits the threshold"], "expected"),
    ("reference_attack", "ceil(target * n_ref) reference scores above the threshold", _RA + """
            k = math.ceil(target_fpr * len(r))
            tau = r[k].item() if k < len(r) else -math.inf""" + _RATES, ["fits the threshold"], "expected"),
    ("reference_attack", "torch.quantile of the reference", _RA + """
            tau = torch.quantile(reference_scores, 1 - target_fpr).item()""" + _RATES,
     ["fits the threshold"], "expected"),
    ("reference_attack", "(fpr, tpr) in the wrong order", _RA + """
            k = math.floor(target_fpr * len(r) + 1e-9)
            tau = r[k].item() if k < len(r) else -math.inf
            return (non_member_scores > tau).double().mean().item(), (member_scores > tau).double().mean().item()""",
     None, "swapped"),
    ("reference_attack", "tensors, not floats", _RA + """
            k = math.floor(target_fpr * len(r) + 1e-9)
            tau = r[k] if k < len(r) else -math.inf
            return (member_scores > tau).double().mean(), (non_member_scores > tau).double().mean()""",
     ["returns (tpr, fpr)"], "Python float"),
    ("reference_attack", "no validation of target_fpr", """
        def reference_attack(reference_scores, target_fpr, member_scores, non_member_scores):
            r = reference_scores.sort(descending=True).values
            k = max(0, math.floor(target_fpr * len(r) + 1e-9))
            tau = r[k].item() if k < len(r) else -math.inf""" + _RATES,
     ["raises a ValueError"], "expected a ValueError"),
]
_EXACT, _EVERY, _NO_FALSE = "names exactly", "names every true", "names no false"
for letters, failing, message in [("ac", [_EXACT, _EVERY], "missing"),
                                  ("ace", [_EXACT, _EVERY], "missing"),
                                  ("", [_EXACT, _EVERY, _NO_FALSE], "not an answer"),
                                  ("aceh b", [_EXACT, _NO_FALSE], "50.5%"),
                                  ("acehd", [_EXACT, _NO_FALSE], "oracle"),
                                  ("acehf", [_EXACT, _NO_FALSE], "do not depend"),
                                  ("acehg", [_EXACT, _NO_FALSE], "black-box"),
                                  ("acehi", [_EXACT, _NO_FALSE], "zero on average"),
                                  ("bdfgi", [_EXACT, _EVERY, _NO_FALSE], "50.5%"),
                                  ("abcdefghi", [_EXACT, _EVERY, _NO_FALSE], "not an answer"),
                                  ("a, b, c, d, e, f, g, h, i", [_EXACT, _EVERY, _NO_FALSE], "not an answer"),
                                  ("acefgh", [_EXACT, _NO_FALSE], "do not depend"),
                                  ("acehz", [_EXACT, _EVERY, _NO_FALSE], "'z'")]:
    MISTAKES.append(("membership_statements", repr(letters),
                     f"def membership_statements():\n    return {letters!r}", failing, message))
MISTAKES.append(("membership_statements", "a list of letters",
                 "def membership_statements():\n    return ['a', 'c', 'e', 'h']", None, "expected a string"))


def _namespace() -> dict:
    import torch.nn.functional as F

    return {"torch": torch, "math": math, "np": np, "F": F}


@pytest.mark.parametrize("name, label, code, failing, message", MISTAKES, ids=[m[1] for m in MISTAKES])
def test_each_mistake_fails_its_property(name, label, code, failing, message):
    assert_mistake_fails(EXERCISE.questions[name], code, name, _namespace(), failing, message)


@pytest.mark.parametrize("name, label, code, failing, message", MISTAKES, ids=[m[1] for m in MISTAKES])
def test_each_mistake_fails_on_every_seed(name, label, code, failing, message):
    assert_fails_on_every_seed(EXERCISE.questions[name], code, name, _namespace(), SEEDS, label)


def test_every_question_has_listed_mistakes():
    assert {m[0] for m in MISTAKES} == set(QUESTIONS)


def test_the_statements_in_the_notebook_are_the_checks():
    """The question the student reads lists the very statements the checks grade."""
    import nbformat

    text = "\n".join(c.source for c in nbformat.read(SOURCE, as_version=4).cells if c.cell_type == "markdown")
    flat = " ".join(text.split())
    for letter, statement in ch08.STATEMENTS.items():
        assert f"**{letter}.** {statement}" in flat, letter


# Executing the student and source notebooks is covered for every set by test_grading_notebooks.py.
