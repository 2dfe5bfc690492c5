"""The chapter-7 checks (a patch trigger, BadNets, the spectral-signature score, which statements about
backdoor detection are true): every reference solution passes on any seed, and each plausible wrong
implementation fails the property written for it, on every one of many seeds."""

import pytest
import torch

from grading_helpers import (ROOT, assert_fails_on_every_seed, assert_forbidden_names_resolve, assert_mistake_fails,
                             assert_passes_on_seeds, assert_set_runs_quickly, run_blocked, solution_functions)
from mlsec_kit.grading import get_exercise, run_question
from mlsec_kit.grading.sets import ch07

EXERCISE = get_exercise("07_backdoors")
SOURCE = ROOT / "exercises" / "source" / "07_backdoors.ipynb"
QUESTIONS = ("apply_patch", "badnets", "spectral_score", "backdoor_statements")
SEEDS = range(700, 725)  # the grader draws seeds of its own: a mistake must fail on every one


@pytest.fixture(scope="module")
def solutions() -> dict:
    """The setup cell and the cells defining the four functions (not the real-data cell, which trains)."""
    return solution_functions(SOURCE, QUESTIONS)


def test_the_set_declares_the_chapter_questions():
    assert tuple(EXERCISE.questions) == QUESTIONS
    assert EXERCISE.chapter == 7 and EXERCISE.title == "Exercises: backdoors"
    assert all(3 <= q.max_score <= 6 for q in EXERCISE.questions.values())
    forbid = {name: set(q.forbid) for name, q in EXERCISE.questions.items()}
    assert "mlsec_kit.attacks.poisoning.patch_trigger" in forbid["apply_patch"]
    assert "mlsec_kit.attacks.poisoning.backdoor.Trigger.apply" in forbid["apply_patch"]
    assert {"mlsec_kit.attacks.poisoning.badnets", "mlsec_kit.attacks.poisoning.backdoor.badnets"} <= forbid["badnets"]
    assert "mlsec_kit.defenses.spectral_signatures" in forbid["spectral_score"]
    # the kit's helpers that would do a step of badnets: the count with its rate check, the draw of the rows
    assert {"mlsec_kit.attacks.poisoning.backdoor._choose", "mlsec_kit.attacks.poisoning.poison_count",
            "mlsec_kit.attacks.poisoning.num_poisoned"} <= forbid["badnets"]


def test_every_forbidden_name_is_a_kit_function_and_is_blocked_while_grading():
    """The names resolve (a typo would block nothing), and the kit's own answers score zero."""
    from mlsec_kit.attacks.poisoning import badnets, patch_trigger
    from mlsec_kit.defenses import spectral_signatures

    assert_forbidden_names_resolve(EXERCISE)
    kit = {
        "apply_patch": lambda x, size, value, corner: patch_trigger(x.shape[1:], size=size, value=value,
                                                                    corner=corner).apply(x),
        "badnets": lambda x, y, target, rate, g: badnets(x, y, target=target, rate=rate, generator=g,
                                                         trigger=patch_trigger(x.shape[1:], size=3)),
        "spectral_score": lambda reps: spectral_signatures(reps, torch.zeros(len(reps), dtype=torch.long),
                                                           eps_fraction=0.1)[0],
    }
    def reference_patch(x, size, value, corner):
        if not 1 <= size <= min(x.shape[-2:]) or corner not in ch07.CORNERS:
            raise ValueError("size or corner")
        return ch07._reference_patch(x, size, value, corner)

    # this module's reference helpers, which a submission can import as well
    def from_variants(reps):  # the checker's table of wrong scores holds |projection|: squared, the right one
        return next(v for k, v in ch07._variants(reps).items() if k.startswith("|projection|")) ** 2

    own = [("apply_patch", reference_patch), ("spectral_score", ch07._reference_scores),
           ("spectral_score", from_variants)]
    for name, fn in [*kit.items(), *own]:
        question = EXERCISE.questions[name]
        assert run_question(question, fn, seed=1).passed  # the kit itself is a correct answer ...
        result = run_blocked(question, fn)  # ... that earns nothing (but the validation
        assert result.score == (1 if fn is reference_patch else 0)  # written around the helper)


@pytest.mark.parametrize("name", QUESTIONS)
def test_every_solution_passes_every_check_on_many_seeds(solutions, name):
    assert_passes_on_seeds(EXERCISE.questions[name], solutions[name], range(70_000, 70_000 + 40))


def test_differently_built_correct_answers_pass():
    """Correct answers built another way earn full marks: negative slices, numpy's generator seeded from the
    torch one with int32 indices, multinomial draws, an eigendecomposition of the covariance, pca_lowrank."""
    import textwrap

    import numpy as np

    code = """
    def apply_patch(x, size, value, corner):
        h, w = x.shape[-2:]
        if corner not in ("top_left", "top_right", "bottom_left", "bottom_right"):
            raise ValueError(f"corner {corner!r} unknown")
        if not 1 <= size <= min(h, w):
            raise ValueError(f"size {size} does not fit")
        out = x.clone()
        rows = slice(None, size) if corner.startswith("top") else slice(-size, None)
        cols = slice(None, size) if corner.endswith("left") else slice(-size, None)
        out[:, :, rows, cols] = value
        return out

    def badnets(x, y, target, rate, generator):
        if not 0 <= rate <= 1:
            raise ValueError("rate out of range")
        k = round(rate * len(y))
        candidates = np.flatnonzero(y.numpy() != target)
        if k > len(candidates):
            raise ValueError("rate too large")
        rng = np.random.default_rng(int(torch.randint(0, 2**31, (1,), generator=generator)))
        idx = torch.from_numpy(np.sort(rng.choice(candidates, k, replace=False))).int()
        x_poisoned, y_poisoned = x.clone(), y.clone()
        x_poisoned[idx.long(), :, -3:, -3:] = 1.0
        y_poisoned[idx.long()] = target
        return x_poisoned, y_poisoned, idx

    def badnets_multinomial(x, y, target, rate, generator):
        if not 0 <= rate <= 1:
            raise ValueError("rate out of range")
        k = round(rate * len(y))
        candidates = (y != target).nonzero().flatten()
        if k > len(candidates):
            raise ValueError("rate too large")
        pick = torch.multinomial(torch.ones(len(candidates)), k, generator=generator) if k else candidates[:0]
        idx = candidates[pick].sort().values
        x_poisoned, y_poisoned = x.clone(), y.clone()
        x_poisoned[idx] = apply_patch(x[idx], 3, 1.0, "bottom_right")
        y_poisoned[idx] = target
        return x_poisoned, y_poisoned, idx

    def spectral_score(reps):
        centred = reps.double() - reps.double().mean(0)
        _, vectors = torch.linalg.eigh(centred.T @ centred)
        return (centred @ vectors[:, -1]) ** 2

    def spectral_score_lowrank(reps):
        _, _, v = torch.pca_lowrank(reps, q=min(6, *reps.shape), center=True)
        return ((reps - reps.mean(0)) @ v[:, 0]) ** 2
    """
    namespace = {"torch": torch, "np": np}
    exec(textwrap.dedent(code), namespace)
    for name, fn in [("apply_patch", "apply_patch"), ("badnets", "badnets"), ("badnets", "badnets_multinomial"),
                     ("spectral_score", "spectral_score"), ("spectral_score", "spectral_score_lowrank")]:
        assert_passes_on_seeds(EXERCISE.questions[name], namespace[fn], range(20))


def test_a_float32_spectral_score_passes_too():
    """The checks' tolerance admits single precision (the representations are float32, offsets included)."""
    code = """
    def spectral_score(reps):
        centred = reps.float() - reps.float().mean(0)
        return (centred @ torch.linalg.svd(centred, full_matrices=False).Vh[0]) ** 2
    """
    namespace = {"torch": torch}
    exec(code.replace("\n    ", "\n"), namespace)
    assert_passes_on_seeds(EXERCISE.questions["spectral_score"], namespace["spectral_score"], range(40))


def test_the_whole_set_runs_in_seconds(solutions):
    assert_set_runs_quickly(EXERCISE, solutions)


def test_the_instances_keep_their_promises():
    """The generators behind the every-seed guarantees: non-square images, rates away from halves with the
    other-classes-only count at least 1.5 rows off, row 0 of the target class, a large offset."""
    import math

    for seed in range(200):
        rng = torch.Generator().manual_seed(seed)
        x = ch07._images(rng)
        assert x.shape[-2] != x.shape[-1] and 5 <= min(x.shape[-2:]) and max(x.shape[-2:]) <= 12
        assert x.shape[1] >= 2
        x, y, target = ch07._training_set(rng)
        n, t = len(y), int((y == target).sum())
        assert y[0] == target and n / 4 <= t <= n / 3 + 1
        for upper in (False, True):
            rate = ch07._fractional_rate(rng, n, upper)
            frac = rate * n - math.floor(rate * n)
            assert (0.55 < frac < 0.95) if upper else (0.05 < frac < 0.45)
            assert math.floor(rate * n) != math.ceil(rate * n)
            assert abs(round(rate * (n - t)) - round(rate * n)) >= 1 and rate * t >= 1.5
            assert round(rate * n) <= n - t
        reps = ch07._reps(rng)
        assert float(reps.double().mean(0).norm()) > 30


_PATCH = """
        def apply_patch(x, size, value, corner):
            corners = ("top_left", "top_right", "bottom_left", "bottom_right")
            h, w = x.shape[-2:]
            if not 1 <= size <= min(h, w) or corner not in corners:
                raise ValueError("size or corner")"""
_SLICES = """
            rows = slice(0, size) if corner.startswith("top") else slice(h - size, h)
            cols = slice(0, size) if corner.endswith("left") else slice(w - size, w)"""
_COPY = """
            out = x.clone()
            out[..., rows, cols] = value
            return out"""

_BADNETS = """
        def badnets(x, y, target, rate, generator):
            if not 0 <= rate <= 1:
                raise ValueError("rate")"""
_COUNT = """
            count = round(rate * len(x))"""
_CANDIDATES = """
            candidates = (y != target).nonzero().flatten()
            if count > len(candidates):
                raise ValueError("rate")"""
_DRAW = """
            idx = candidates[torch.randperm(len(candidates), generator=generator)[:count]].sort().values"""
_POISON = """
            xp, yp = x.clone(), y.clone()
            xp[idx] = apply_patch(x[idx], 3, 1.0, "bottom_right")
            yp[idx] = target
            return xp, yp, idx"""


def _bn(*parts: str) -> str:
    return _BADNETS + "".join(parts)


_SCORE = """
        def spectral_score(reps):"""
_CENTRED = """
            centred = reps - reps.mean(0, keepdim=True)
            U, S, Vh = torch.linalg.svd(centred, full_matrices=False)"""

MISTAKES = [
    # ---- apply_patch ----------------------------------------------------------------------------------------
    ("apply_patch", "stamps the patch on x in place", _PATCH + _SLICES + """
            x[..., rows, cols] = value
            return x""", ["returns a new tensor"], "in place"),
    ("apply_patch", "top and bottom swapped", _PATCH + """
            rows = slice(h - size, h) if corner.startswith("top") else slice(0, size)
            cols = slice(0, size) if corner.endswith("left") else slice(w - size, w)""" + _COPY,
     ["sets the size", "changes no pixel"], "rows count"),
    ("apply_patch", "left and right swapped", _PATCH + """
            rows = slice(0, size) if corner.startswith("top") else slice(h - size, h)
            cols = slice(w - size, w) if corner.endswith("left") else slice(0, size)""" + _COPY,
     ["sets the size", "changes no pixel"], "columns"),
    ("apply_patch", "rows and columns mixed up (H for the width)", _PATCH + """
            rows = slice(0, size) if corner.startswith("top") else slice(w - size, w)
            cols = slice(0, size) if corner.endswith("left") else slice(h - size, h)""" + _COPY,
     None, "columns"),
    ("apply_patch", "one pixel too far: the patch hangs over the edge (h - size + 1 : h + 1)", _PATCH + """
            rows = slice(0, size) if corner.startswith("top") else slice(h - size + 1, h + 1)
            cols = slice(0, size) if corner.endswith("left") else slice(w - size + 1, w + 1)""" + _COPY,
     None, "the pixels equal to value"),
    ("apply_patch", "bottom-right patch placed past the image (h : h + size)", _PATCH + """
            rows = slice(0, size) if corner.startswith("top") else slice(h, h + size)
            cols = slice(0, size) if corner.endswith("left") else slice(w, w + size)""" + _COPY,
     ["sets the size"], "no pixel"),
    ("apply_patch", "a patch one pixel too large", _PATCH + """
            rows = slice(0, size + 1) if corner.startswith("top") else slice(h - size - 1, h)
            cols = slice(0, size + 1) if corner.endswith("left") else slice(w - size - 1, w)""" + _COPY,
     None, "outside"),
    ("apply_patch", "a patch one pixel too small", _PATCH + """
            rows = slice(0, size - 1) if corner.startswith("top") else slice(h - size + 1, h)
            cols = slice(0, size - 1) if corner.endswith("left") else slice(w - size + 1, w)""" + _COPY,
     ["sets the size"], "the pixels equal to value"),
    ("apply_patch", "patches the first channel only", _PATCH + _SLICES + """
            out = x.clone()
            out[:, 0, rows, cols] = value
            return out""", ["sets the size"], "channel 1"),
    ("apply_patch", "patches the first image only", _PATCH + _SLICES + """
            out = x.clone()
            out[0, :, rows, cols] = value
            return out""", ["sets the size"], "image 1"),
    ("apply_patch", "a white patch whatever the value", _PATCH + _SLICES + """
            out = x.clone()
            out[..., rows, cols] = 1.0
            return out""", ["sets the size"], "the pixels equal to value are at no pixel"),
    ("apply_patch", "blends the patch in at half weight", _PATCH + _SLICES + """
            out = x.clone()
            out[..., rows, cols] = 0.5 * out[..., rows, cols] + 0.5 * value
            return out""", ["sets the size"], "no pixel"),
    ("apply_patch", "no validation: slicing accepts any size and corner", """
        def apply_patch(x, size, value, corner):
            h, w = x.shape[-2:]""" + _SLICES + _COPY, ["raises a ValueError"], "expected a ValueError"),
    ("apply_patch", "checks the corner but not the size", """
        def apply_patch(x, size, value, corner):
            h, w = x.shape[-2:]
            if corner not in ("top_left", "top_right", "bottom_left", "bottom_right"):
                raise ValueError("corner")""" + _SLICES + _COPY, ["raises a ValueError"], "size in"),
    ("apply_patch", "an unknown corner falls back to bottom-right", """
        def apply_patch(x, size, value, corner):
            h, w = x.shape[-2:]
            if not 1 <= size <= min(h, w):
                raise ValueError("size")""" + _SLICES + _COPY, ["raises a ValueError"], "corner must be"),
    ("apply_patch", "a ValueError that names no argument", """
        def apply_patch(x, size, value, corner):
            h, w = x.shape[-2:]
            if not 1 <= size <= min(h, w) or corner not in ("top_left", "top_right", "bottom_left", "bottom_right"):
                raise ValueError("bad input")""" + _SLICES + _COPY, ["raises a ValueError"], "name the argument"),
    ("apply_patch", "the patch one pixel in from the corner", _PATCH + """
            rows = slice(1, size + 1) if corner.startswith("top") else slice(h - size - 1, h - 1)
            cols = slice(1, size + 1) if corner.endswith("left") else slice(w - size - 1, w - 1)""" + _COPY,
     ["sets the size", "changes no pixel"], "rows count"),
    ("apply_patch", "size checked against max(H, W)", """
        def apply_patch(x, size, value, corner):
            h, w = x.shape[-2:]
            if not 1 <= size <= max(h, w) or corner not in ("top_left", "top_right", "bottom_left", "bottom_right"):
                raise ValueError("size or corner")""" + _SLICES + _COPY, ["raises a ValueError"], "size in"),
    ("apply_patch", "a float64 result", _PATCH + _SLICES + """
            out = x.double()
            out[..., rows, cols] = value
            return out""", None, "dtype"),
    # ---- badnets ----------------------------------------------------------------------------------------------
    ("badnets", "poisons x and y in place", _bn(_COUNT, _CANDIDATES, _DRAW, """
            x[idx] = apply_patch(x[idx], 3, 1.0, "bottom_right")
            y[idx] = target
            return x, y, idx"""), ["returns (x_poisoned"], "in place"),
    ("badnets", "relabels y in place (x copied)", _bn(_COUNT, _CANDIDATES, _DRAW, """
            xp = x.clone()
            xp[idx] = apply_patch(x[idx], 3, 1.0, "bottom_right")
            y[idx] = target
            return xp, y, idx"""), ["returns (x_poisoned"], "changed y in place"),
    ("badnets", "floor(rate * n) poisons (int())", _bn("""
            count = int(rate * len(x))""", _CANDIDATES, _DRAW, _POISON), ["poisons round"], "floor"),
    ("badnets", "rate 0 refused: 0 < rate <= 1", """
        def badnets(x, y, target, rate, generator):
            if not 0 < rate <= 1:
                raise ValueError("rate")""" + _COUNT + _CANDIDATES + _DRAW + _POISON, ["poisons round"],
     "raised ValueError"),
    ("badnets", "ceil(rate * n) poisons", _bn("""
            count = math.ceil(rate * len(x))""", _CANDIDATES, _DRAW, _POISON), None, "ceil"),
    ("badnets", "the rate taken of the other classes' rows only", _bn("""
            candidates = (y != target).nonzero().flatten()
            count = round(rate * len(candidates))""", _DRAW, _POISON), None, "other classes' rows only"),
    ("badnets", "draws from every row, the target class included", _bn(_COUNT, """
            candidates = torch.arange(len(y))
            if count > int((y != target).sum()):
                raise ValueError("rate")""", _DRAW, _POISON), ["poisons only rows"], "already of the target class"),
    ("badnets", "draws round(rate * n) of all rows, then drops the target class's (too few poisons)", _bn(_COUNT, """
            if count > int((y != target).sum()):
                raise ValueError("rate")
            idx = torch.randperm(len(y), generator=generator)[:count]
            idx = idx[y[idx] != target].sort().values""", _POISON), None, "round(rate * n) ="),
    ("badnets", "the patch one pixel up from the corner (rows -4:-1)", _bn(_COUNT, _CANDIDATES, _DRAW, """
            xp, yp = x.clone(), y.clone()
            xp[idx, :, -4:-1, -3:] = 1.0
            yp[idx] = target
            return xp, yp, idx"""), ["stamps the white"], "expected the 3x3 square"),
    ("badnets", "returns positions in the candidate list, not rows of x", _bn(_COUNT, _CANDIDATES, """
            pick = torch.randperm(len(candidates), generator=generator)[:count].sort().values
            xp, yp = x.clone(), y.clone()
            xp[candidates[pick]] = apply_patch(x[candidates[pick]], 3, 1.0, "bottom_right")
            yp[candidates[pick]] = target
            return xp, yp, pick"""), None, "not positions in the list of candidate rows"),
    ("badnets", "poisons the positions in the candidate list", _bn(_COUNT, _CANDIDATES, """
            idx = torch.randperm(len(candidates), generator=generator)[:count].sort().values""", _POISON),
     None, "target class"),
    ("badnets", "unsorted indices", _bn(_COUNT, _CANDIDATES, """
            idx = candidates[torch.randperm(len(candidates), generator=generator)[:count]]""", _POISON),
     ["stamps the white"], "unsorted"),
    ("badnets", "keeps the labels (a clean-label attack without the perturbation)", _bn(_COUNT, _CANDIDATES, _DRAW, """
            xp = x.clone()
            xp[idx] = apply_patch(x[idx], 3, 1.0, "bottom_right")
            return xp, y.clone(), idx"""), ["stamps the white"], "relabels every poisoned row"),
    ("badnets", "relabels without the trigger (label flipping to the target)", _bn(_COUNT, _CANDIDATES, _DRAW, """
            yp = y.clone()
            yp[idx] = target
            return x.clone(), yp, idx"""), ["stamps the white"], "changed at no pixel"),
    ("badnets", "stamps the trigger on every row, relabels the chosen ones", _bn(_COUNT, _CANDIDATES, _DRAW, """
            yp = y.clone()
            yp[idx] = target
            return apply_patch(x, 3, 1.0, "bottom_right"), yp, idx"""), ["poisons round", "stamps the white"],
     "is not listed"),
    ("badnets", "the trigger in the top-left corner", _bn(_COUNT, _CANDIDATES, _DRAW, """
            xp, yp = x.clone(), y.clone()
            xp[idx] = apply_patch(x[idx], 3, 1.0, "top_left")
            yp[idx] = target
            return xp, yp, idx"""), ["stamps the white"], "rows 0-2"),
    ("badnets", "draws with torch's global generator", _bn(_COUNT, _CANDIDATES, """
            idx = candidates[torch.randperm(len(candidates))[:count]].sort().values""", _POISON),
     ["draws the rows"], "global generator"),
    ("badnets", "always the first rows of other classes", _bn(_COUNT, _CANDIDATES, """
            idx = candidates[:count]""", _POISON), ["draws the rows"], "never poisoned"),
    ("badnets", "draws with replacement", _bn(_COUNT, _CANDIDATES, """
            idx = candidates[torch.randint(len(candidates), (count,), generator=generator)].sort().values""",
                                             _POISON), None, "twice"),
    ("badnets", "returns a boolean mask of the poisoned rows", _bn(_COUNT, _CANDIDATES, _DRAW, """
            xp, yp = x.clone(), y.clone()
            xp[idx] = apply_patch(x[idx], 3, 1.0, "bottom_right")
            yp[idx] = target
            return xp, yp, yp != y"""), None, "not a mask"),
    ("badnets", "no validation: randperm quietly gives fewer rows", """
        def badnets(x, y, target, rate, generator):""" + _COUNT + """
            candidates = (y != target).nonzero().flatten()""" + _DRAW + _POISON, ["raises a ValueError"],
     "expected a ValueError"),
    ("badnets", "checks the rate's range but not the number of rows", _bn(_COUNT, """
            candidates = (y != target).nonzero().flatten()""", _DRAW, _POISON), ["raises a ValueError"],
     "rows are not of the target class"),
    # ---- spectral_score ----------------------------------------------------------------------------------------
    ("spectral_score", "no centring", _SCORE + """
            v = torch.linalg.svd(reps, full_matrices=False).Vh[0]
            return (reps @ v) ** 2""", ["is ((R_i", "does not change"], "UNCENTRED"),
    ("spectral_score", "projects the uncentred rows on the centred top vector (ART's score, squared)", _SCORE + _CENTRED + """
            return (reps @ Vh[0]) ** 2""", ["is ((R_i", "does not change"], "as ART does"),
    ("spectral_score", "ART's score: |uncentred projection|", _SCORE + _CENTRED + """
            return (reps @ Vh[0]).abs()""", None, "expected"),
    ("spectral_score", "centres in place", _SCORE + """
            reps -= reps.mean(0, keepdim=True)
            return (reps @ torch.linalg.svd(reps, full_matrices=False).Vh[0]) ** 2""", ["returns one"], "in place"),
    ("spectral_score", "the signed projection", _SCORE + _CENTRED + """
            return centred @ Vh[0]""", None, "SQUARED"),
    ("spectral_score", "the absolute projection", _SCORE + _CENTRED + """
            return (centred @ Vh[0]).abs()""", ["is ((R_i", "scales"], "not its square"),
    ("spectral_score", "the left singular vector alone, u_i^2", _SCORE + _CENTRED + """
            return U[:, 0] ** 2""", ["is ((R_i", "scales"], "LEFT"),
    ("spectral_score", "the left singular vector, unsquared", _SCORE + _CENTRED + """
            return U[:, 0]""", None, "SQUARED"),
    ("spectral_score", "the last singular vector", _SCORE + _CENTRED + """
            return (centred @ Vh[-1]) ** 2""", ["is ((R_i"], "LAST"),
    ("spectral_score", "the first column of Vh (the wrong axis)", _SCORE + _CENTRED + """
            return (centred @ Vh[:, 0]) ** 2""", None, "expected"),
    ("spectral_score", "the SVD of the transposed matrix (the wrong axis)", _SCORE + """
            centred = reps - reps.mean(0, keepdim=True)
            v = torch.linalg.svd(centred.T, full_matrices=False).Vh[0]
            return (centred @ v) ** 2""", None, "raised"),
    ("spectral_score", "each row centred on its own mean (the wrong axis)", _SCORE + """
            centred = reps - reps.mean(1, keepdim=True)
            return (centred @ torch.linalg.svd(centred, full_matrices=False).Vh[0]) ** 2""", None, "wrong axis"),
    ("spectral_score", "torch.pca_lowrank without centring (center=False)", _SCORE + """
            _, _, v = torch.pca_lowrank(reps, q=min(6, *reps.shape), center=False)
            return ((reps - reps.mean(0)) @ v[:, 0]) ** 2""", None, "expected"),
    ("spectral_score", "eigh's first eigenvector (eigh sorts ascending: the smallest)", _SCORE + """
            centred = reps - reps.mean(0)
            _, vectors = torch.linalg.eigh(centred.T @ centred)
            return (centred @ vectors[:, 0]) ** 2""", ["is ((R_i"], "LAST"),
    ("spectral_score", "standardised columns", _SCORE + """
            centred = (reps - reps.mean(0)) / reps.std(0)
            return (centred @ torch.linalg.svd(centred, full_matrices=False).Vh[0]) ** 2""", None, "expected"),
    ("spectral_score", "rows normalised to unit length first", _SCORE + """
            r = reps / reps.norm(dim=1, keepdim=True)
            centred = r - r.mean(0)
            return (centred @ torch.linalg.svd(centred, full_matrices=False).Vh[0]) ** 2""", None, "expected"),
    ("spectral_score", "squared distance from the mean", _SCORE + """
            return (reps - reps.mean(0)).pow(2).sum(1)""", ["is ((R_i"], "distance from the mean"),
    ("spectral_score", "scores normalised to [0, 1]", _SCORE + _CENTRED + """
            s = (centred @ Vh[0]) ** 2
            return s / s.max()""", ["is ((R_i", "scales"], "expected"),
    ("spectral_score", "the energy in the top two directions", _SCORE + _CENTRED + """
            return (centred @ Vh[:2].T).pow(2).sum(1)""", ["is ((R_i"], "expected"),
    ("spectral_score", "a float64 result is fine, an int one is not", _SCORE + _CENTRED + """
            return ((centred @ Vh[0]) ** 2).round().long()""", None, "floating-point"),
]
_EXACT, _EVERY, _NO_FALSE = "names exactly", "names every true", "names no false"
for letters, failing, message in [("acf", None, None), ("ac", [_EXACT, _EVERY], "missing"),
                                  ("", [_EXACT, _EVERY, _NO_FALSE], "not an answer"),
                                  ("acfb", [_EXACT, _NO_FALSE], "LOW entropy"),
                                  ("acfd", [_EXACT, _NO_FALSE], "true class is not the target"),
                                  ("acfe", [_EXACT, _NO_FALSE], "no clean reference"),
                                  ("acfg", [_EXACT, _NO_FALSE], "common offset"),
                                  ("bdeg", [_EXACT, _EVERY, _NO_FALSE], "LOW entropy"),
                                  ("abcdefg", [_EXACT, _EVERY, _NO_FALSE], "not an answer"),
                                  ("a, b, c, d, e, f, g", [_EXACT, _EVERY, _NO_FALSE], "not an answer"),
                                  ("abcdef", [_EXACT, _NO_FALSE], "LOW entropy"),
                                  ("acfz", [_EXACT, _EVERY, _NO_FALSE], "'z'")]:
    if failing is not None:
        MISTAKES.append(("backdoor_statements", repr(letters),
                         f"def backdoor_statements():\n    return {letters!r}", failing, message))
MISTAKES.append(("backdoor_statements", "a list of letters", "def backdoor_statements():\n    return ['a', 'c', 'f']",
                 None, "expected a string"))


def _namespace(solutions: dict) -> dict:
    import math
    return {"torch": torch, "math": math, "apply_patch": solutions["apply_patch"]}


@pytest.mark.parametrize("name, label, code, failing, message", MISTAKES, ids=[m[1] for m in MISTAKES])
def test_each_mistake_fails_its_property(solutions, name, label, code, failing, message):
    assert_mistake_fails(EXERCISE.questions[name], code, name, _namespace(solutions), failing, message)


@pytest.mark.parametrize("name, label, code, failing, message", MISTAKES, ids=[m[1] for m in MISTAKES])
def test_each_mistake_fails_on_every_seed(solutions, name, label, code, failing, message):
    assert_fails_on_every_seed(EXERCISE.questions[name], code, name, _namespace(solutions), SEEDS, label)


def test_every_question_has_listed_mistakes():
    assert {m[0] for m in MISTAKES} == set(QUESTIONS)


def test_the_statements_in_the_notebook_are_the_checks():
    """The question the student reads lists the very statements the checks grade."""
    import nbformat

    text = "\n".join(c.source for c in nbformat.read(SOURCE, as_version=4).cells if c.cell_type == "markdown")
    flat = " ".join(text.split())
    for letter, statement in ch07.STATEMENTS.items():
        assert f"**{letter}.** {statement}" in flat, letter


# Executing the student and source notebooks is covered for every set by test_grading_notebooks.py.
