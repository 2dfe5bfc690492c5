"""Checks of the chapter-7 exercise set: stamp a patch trigger, plant a BadNets backdoor, score a class's
representations with spectral signatures, and a conceptual question on detecting backdoors.

Student functions take and return torch tensors, numbers and strings: ``apply_patch(x, size, value, corner)
-> x_triggered``, ``badnets(x, y, target, rate, generator) -> (x_poisoned, y_poisoned, poisoned_indices)``,
``spectral_score(reps) -> scores`` and ``backdoor_statements() -> letters``.

How the instances make each typical mistake fail on every seed:

- images are never square (``H != W``) and have two or three channels, and every property tries all four
  corners, so swapping rows and columns, mixing up the corners or patching one channel always shows;
- pixels are drawn from ``[0, 1)`` and the patch value from ``(0.05, 0.95)``, so every patched pixel changes
  and a hard-coded white patch is caught;
- BadNets' rates are chosen so that ``rate * n`` has a fractional part in ``(0.05, 0.45)`` (round = floor <
  ceil) or in ``(0.55, 0.95)`` (floor < round = ceil), so both floor and ceil are wrong on every draw; the
  target class holds a quarter to a third of the rows, so a rate taken of the other classes' rows only is off
  by at least 1.5 rows; row 0 is always of the target class, so indices into the list of candidate rows never
  coincide with the rows of the set; and one instance asks for as many poisons as there are rows of other
  classes, so a draw from all the rows picks target-class rows except with probability ``1 / C(n, m)``;
- an answer to the statements that names none or all of them fails every property (it is not an answer);
- the module's own reference helpers (``_reference_patch``, ``_square``, ``_reference_scores``, ``_variants``)
  are forbidden
  with the kit's functions, since a submission can import them;
- the representations handed to ``spectral_score`` carry a common offset of norm about 35-80 with a component of 20-40 along
  the poisons' direction, so a score without centring, or one that projects the uncentred rows, is far off.
"""
from __future__ import annotations

import math

import torch

from ..core import ExerciseSet
from ..expect import call, describe, expect_tensor, expect_value_error, fail, fmt, statement_checks
from ..instances import randint

SET = ExerciseSet("07_backdoors", "Exercises: backdoors", chapter=7)

_POISONING = "mlsec_kit.attacks.poisoning"
_DEFENSES = "mlsec_kit.defenses"
_CHECKER = "mlsec_kit.grading.sets.ch07"  # this module's reference helpers answer questions too
CORNERS = ("top_left", "top_right", "bottom_left", "bottom_right")
PATCH = 3  # badnets stamps a white PATCH x PATCH square in the bottom-right corner (BadNets' trigger)


def _uniform(rng: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=rng, dtype=torch.float64))


def _seeded(rng: torch.Generator) -> torch.Generator:
    """A fresh generator for the student's function, seeded from the property's own."""
    return torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=rng)))


# ---- (a) apply_patch -------------------------------------------------------------------------------------
apply_patch = SET.question(
    "apply_patch", "apply_patch(x, size, value, corner) -> x_triggered",
    forbid=(f"{_POISONING}.patch_trigger", f"{_POISONING}.backdoor.patch_trigger",
            f"{_POISONING}.backdoor.Trigger.apply", f"{_CHECKER}._reference_patch", f"{_CHECKER}._square"))


def _square(h: int, w: int, size: int, corner: str) -> torch.Tensor:
    """The boolean ``(H, W)`` mask of the ``size x size`` square at ``corner``."""
    mask = torch.zeros(h, w, dtype=torch.bool)
    rows = slice(0, size) if corner.startswith("top") else slice(h - size, h)
    cols = slice(0, size) if corner.endswith("left") else slice(w - size, w)
    mask[rows, cols] = True
    return mask


def _reference_patch(x: torch.Tensor, size: int, value: float, corner: str) -> torch.Tensor:
    return torch.where(_square(*x.shape[-2:], size, corner), torch.full_like(x, value), x)


def _images(rng: torch.Generator) -> torch.Tensor:
    """A batch ``(N, C, H, W)`` with 2-3 channels and ``H != W`` (both 5-12), pixels in ``[0, 1)``."""
    h = randint(rng, 5, 12)
    w = h + randint(rng, 1, 4) * (1 if randint(rng, 0, 1) else -1)
    w = w if 5 <= w <= 12 else h + (h - w)  # mirror back into range, still != h
    return torch.rand(randint(rng, 2, 5), randint(rng, 2, 3), h, w, generator=rng)


def _span(mask: torch.Tensor) -> str:
    """Where a boolean ``(H, W)`` mask is set: rows a-b, columns c-d (or nowhere)."""
    if not bool(mask.any()):
        return "no pixel"
    r, c = mask.nonzero(as_tuple=True)
    return f"rows {int(r.min())}-{int(r.max())}, columns {int(c.min())}-{int(c.max())}"


def _patched(fn, x: torch.Tensor, size: int, value: float, corner: str) -> tuple[torch.Tensor, str]:
    what = f"apply_patch(x {describe(x)}, size={size}, value={value:.3g}, corner={corner!r})"
    out = expect_tensor(call(fn, x.clone(), size, value, corner, name="apply_patch"), what, shape=x.shape)
    if out.dtype != x.dtype:
        fail(f"{what} returned dtype {out.dtype}; expected x's dtype {x.dtype}")
    return out, what


def _patch_cases(rng: torch.Generator):
    """All four corners in a random order, each with a random size in [2, min(H, W) - 1], plus a 1x1 patch and
    one as large as the image allows."""
    for i in torch.randperm(4, generator=rng).tolist():
        x = _images(rng)
        yield x, randint(rng, 2, min(x.shape[-2:]) - 1), _uniform(rng, 0.05, 0.95), CORNERS[i]
    for size in (1, None):
        x = _images(rng)
        corner = CORNERS[randint(rng, 0, 3)]
        yield x, size or min(x.shape[-2:]), _uniform(rng, 0.05, 0.95), corner


@apply_patch.prop("returns a new tensor of x's shape and dtype, and leaves x unchanged")
def _patch_new(fn, rng):
    for x, size, value, corner in _patch_cases(rng):
        kept = x.clone()
        what = f"apply_patch(x {describe(x)}, size={size}, value={value:.3g}, corner={corner!r})"
        out = expect_tensor(call(fn, x, size, value, corner, name="apply_patch"), what, shape=x.shape)
        if not torch.equal(x, kept):
            fail(f"{what} changed x in place ({int((x != kept).sum())} pixels); stamp the patch on a copy "
                 "(x.clone()), so the clean images stay available")
        if out.dtype != x.dtype:
            fail(f"{what} returned dtype {out.dtype}; expected x's dtype {x.dtype}")


@apply_patch.prop("sets the size x size square at the named corner to value, in every image and channel")
def _patch_square(fn, rng):
    for x, size, value, corner in _patch_cases(rng):
        out, what = _patched(fn, x, size, value, corner)
        expected = _reference_patch(x, size, value, corner)
        square = _square(*x.shape[-2:], size, corner)
        wrong = (out != expected)[..., square]  # (N, C, pixels of the square)
        if bool(wrong.any()):
            n, c = (int(i) for i in wrong.any(-1).nonzero()[0])
            got = (out[n, c] == value)
            fail(f"{what} on a {x.shape[-2]}x{x.shape[-1]} image: the {corner} patch covers {_span(square)}, "
                 f"but in image {n}, channel {c} the pixels equal to value are at {_span(got)}; rows count "
                 "from the top (H = x.shape[-2]), columns from the left (W = x.shape[-1])")


@apply_patch.prop("changes no pixel outside that square")
def _patch_outside(fn, rng):
    for x, size, value, corner in _patch_cases(rng):
        out, what = _patched(fn, x, size, value, corner)
        square = _square(*x.shape[-2:], size, corner)
        changed = (out != x).any(0).any(0) & ~square
        if bool(changed.any()):
            fail(f"{what} on a {x.shape[-2]}x{x.shape[-1]} image changed pixels at {_span(changed)}, outside "
                 f"the {corner} square ({_span(square)}); the patch is size x size pixels and nothing else moves")


@apply_patch.prop("raises a ValueError for a size outside [1, min(H, W)] or an unknown corner")
def _patch_bad_input(fn, rng):
    x = _images(rng)
    h, w = x.shape[-2:]
    corner = CORNERS[randint(rng, 0, 3)]
    # min(H, W) + 1 fits the longer side (H != W), so a size checked against max(H, W) is caught every time
    for size in (0, min(h, w) + 1, max(h, w) + randint(rng, 1, 3)):
        expect_value_error(fn, (x.clone(), size, 0.5, corner),
                            f"apply_patch(x {describe(x)}, size={size}, value=0.5, corner={corner!r})",
                            f"a patch must fit a {h}x{w} image: size in [1, {min(h, w)}] (slicing would quietly "
                            "patch less or the whole image)", "size")
    for bad in ("center", corner.replace("_", "-"), corner.split("_")[0]):
        expect_value_error(fn, (x.clone(), 2, 0.5, bad), f"apply_patch(x {describe(x)}, size=2, value=0.5, "
                            f"corner={bad!r})", f"corner must be one of {', '.join(CORNERS)}", "corner")


# ---- (b) badnets -----------------------------------------------------------------------------------------
badnets = SET.question(
    "badnets", "badnets(x, y, target, rate, generator) -> (x_poisoned, y_poisoned, poisoned_indices)",
    forbid=(f"{_POISONING}.badnets", f"{_POISONING}.backdoor.badnets", f"{_POISONING}.patch_trigger",
            f"{_POISONING}.backdoor.patch_trigger", f"{_POISONING}.backdoor.Trigger.apply",
            f"{_POISONING}.random_label_flip", f"{_POISONING}.label_flip.random_label_flip",
            f"{_POISONING}.backdoor._choose", f"{_POISONING}.num_poisoned", f"{_POISONING}.label_flip.num_poisoned",
            f"{_POISONING}.poison_count", f"{_POISONING}.backdoor.poison_count",
            f"{_CHECKER}._reference_patch", f"{_CHECKER}._square"))


def _training_set(rng: torch.Generator, *, target_share: tuple[float, float] = (0.25, 1 / 3)):
    """``n`` images ``(n, C, H, W)`` in ``[0, 1)`` with labels in ``[0, K)``; the target class holds a share
    of the rows in ``target_share``, the first row among them; the other rows spread over the other classes."""
    n, k = randint(rng, 40, 80), randint(rng, 3, 6)
    target = randint(rng, 0, k - 1)
    t = randint(rng, math.ceil(target_share[0] * n), math.floor(target_share[1] * n))
    others = torch.tensor([c for c in range(k) if c != target])
    y = others[torch.randint(0, k - 1, (n,), generator=rng)]
    y[torch.randperm(n - 1, generator=rng)[: t - 1] + 1] = target
    y[0] = target
    h, w = randint(rng, 6, 10), randint(rng, 6, 10)
    x = torch.rand(n, randint(rng, 1, 2), h, w, generator=rng)
    return x, y, target


def _fractional_rate(rng: torch.Generator, n: int, upper: bool) -> float:
    """A rate in about [0.15, 0.35] whose ``rate * n`` has a fractional part in (0.55, 0.95) when ``upper``,
    else in (0.05, 0.45): away from halves, so floor, round and ceil are told apart."""
    k = randint(rng, math.ceil(0.15 * n), math.floor(0.35 * n) - 1)
    u = _uniform(rng, 0.55, 0.95) if upper else _uniform(rng, 0.05, 0.45)
    return (k + u) / n


def _poison(fn, x, y, target, rate, generator):
    what = f"badnets(x {describe(x)}, y {describe(y)}, target={target}, rate={rate:.4g}, generator)"
    out = call(fn, x.clone(), y.clone(), target, rate, generator, name="badnets")
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        fail(f"{what} returned {describe(out)}; expected a triple (x_poisoned, y_poisoned, poisoned_indices)")
    xp = expect_tensor(out[0], what + "[0]", shape=x.shape)
    yp = expect_tensor(out[1], what + "[1]", shape=y.shape)
    if isinstance(out[2], (list, tuple)):
        fail(f"{what} returned the indices as a {type(out[2]).__name__}; expected an int64 tensor")
    idx = expect_tensor(out[2], what + "[2]")
    if idx.dim() != 1 or idx.dtype == torch.bool or idx.is_floating_point() or idx.is_complex():
        fail(f"{what} returned indices {describe(idx)}; expected a 1-D integer tensor (int64) of row numbers "
             "(not a mask)")
    idx = idx.long()  # int32 row numbers are row numbers too
    if xp.dtype != x.dtype or yp.dtype != y.dtype:
        fail(f"{what} returned dtypes {xp.dtype} and {yp.dtype}; expected x's {x.dtype} and y's {y.dtype}")
    return xp, yp, idx, what


@badnets.prop("returns (x_poisoned, y_poisoned, poisoned_indices) and leaves x and y unchanged")
def _bn_form(fn, rng):
    x, y, target = _training_set(rng)
    rate = _fractional_rate(rng, len(y), upper=bool(randint(rng, 0, 1)))
    xs, ys = x.clone(), y.clone()
    what = f"badnets(x {describe(x)}, y {describe(y)}, target={target}, rate={rate:.4g}, generator)"
    out = call(fn, xs, ys, target, rate, _seeded(rng), name="badnets")
    if not (torch.equal(xs, x) and torch.equal(ys, y)):
        which = " and ".join(n for n, a, b in (("x", xs, x), ("y", ys, y)) if not torch.equal(a, b))
        fail(f"{what} changed {which} in place; poison copies (x.clone(), y.clone()): the defender's clean "
             "copy, and every later experiment on it, must stay intact")
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        fail(f"{what} returned {describe(out)}; expected a triple (x_poisoned, y_poisoned, poisoned_indices)")
    _poison(fn, x, y, target, rate, _seeded(rng))


@badnets.prop("poisons round(rate * n) rows, n the size of the whole training set (none at rate 0)")
def _bn_count(fn, rng):
    for upper in (False, True) if randint(rng, 0, 1) else (True, False):
        x, y, target = _training_set(rng)
        n, rate = len(y), _fractional_rate(rng, len(y), upper)
        _, _, idx, what = _poison(fn, x, y, target, rate, _seeded(rng))
        expected, others = round(rate * n), int((y != target).sum())
        if len(idx) != expected:
            hints = {math.floor(rate * n): "floor(rate * n): int() truncates",
                     math.ceil(rate * n): "ceil(rate * n)",
                     round(rate * others): f"round(rate * {others}), a share of the other classes' rows only"}
            hint = hints.get(len(idx), "")
            fail(f"{what} poisoned {len(idx)} rows; rate * n = {rate * n:.3f}, so round(rate * n) = {expected}"
                 + (f" (that is {hint})" if hint else "") + "; the rate is a fraction of all n rows")
    x, y, target = _training_set(rng)  # rate 0 is in [0, 1]: no poison, a clean copy
    xp, yp, idx, what = _poison(fn, x, y, target, 0.0, _seeded(rng))
    if len(idx) or not (torch.equal(xp, x) and torch.equal(yp, y)):
        fail(f"{what} poisoned {len(idx)} rows or changed x or y; at rate 0 there are round(0 * n) = 0 poisons "
             "(return copies of x and y and an empty index tensor)")


@badnets.prop("poisons only rows whose label is not the target")
def _bn_others(fn, rng):
    x, y, target = _training_set(rng, target_share=(0.4, 0.5))
    n = len(y)
    for _ in range(6):
        rate = _fractional_rate(rng, n, upper=bool(randint(rng, 0, 1)))
        _, _, idx, what = _poison(fn, x, y, target, rate, _seeded(rng))
        if len(idx) and (idx.min() < 0 or idx.max() >= n):
            fail(f"{what} returned row numbers outside [0, {n})")
        inside = idx[y[idx] == target]
        if len(inside):
            fail(f"{what} poisoned row {int(inside[0])}, already of the target class {target}; draw the rows from "
                 "those with y != target (a target-class row with the trigger teaches the model nothing new)")
    others = int((y != target).sum())
    rate = others / n  # every row of another class must be poisoned
    _, _, idx, what = _poison(fn, x, y, target, rate, _seeded(rng))
    if not torch.equal(torch.unique(idx), (y != target).nonzero().flatten()):
        fail(f"{what} asks for round({rate:.4g} * {n}) = {others} poisons, exactly the rows of other classes; "
             f"it poisoned {int((y[idx] == target).sum())} rows of the target class {target}: draw from "
             "the rows with y != target only")


@badnets.prop("stamps the white 3x3 bottom-right patch on the rows it returns and relabels them to target; "
              "returns their sorted indices and leaves every other row alone")
def _bn_rows(fn, rng):
    for _ in range(3):
        x, y, target = _training_set(rng)
        rate = _fractional_rate(rng, len(y), upper=bool(randint(rng, 0, 1)))
        xp, yp, idx, what = _poison(fn, x, y, target, rate, _seeded(rng))
        n = len(y)
        if len(idx) and (idx.min() < 0 or idx.max() >= n):
            fail(f"{what} returned row numbers outside [0, {n})")
        if len(torch.unique(idx)) != len(idx):
            fail(f"{what} returned a row twice among the indices; draw the rows without replacement")
        if not torch.equal(idx, idx.sort().values):
            fail(f"{what} returned unsorted indices; return them sorted (idx.sort().values)")
        changed = ((xp != x).flatten(1).any(1) | (yp != y)).nonzero().flatten()
        if not torch.equal(changed, idx):
            extra = sorted(set(changed.tolist()) - set(idx.tolist()))
            missing = sorted(set(idx.tolist()) - set(changed.tolist()))
            fail(f"{what}: the indices returned are not the rows that changed ("
                 + (f"row {extra[0]} changed but is not listed" if extra else f"row {missing[0]} is listed but "
                    "did not change") + "); return the indices of the rows of x you poisoned, not positions in "
                 "the list of candidate rows")
        if not bool((yp[idx] == target).all()):
            fail(f"{what} left row {int(idx[yp[idx] != target][0])} with label {int(yp[idx][yp[idx] != target][0])}; "
                 f"BadNets relabels every poisoned row to the target {target}")
        expected = _reference_patch(x[idx], PATCH, 1.0, "bottom_right")
        if not torch.equal(xp[idx], expected):
            i = int((xp[idx] != expected).flatten(1).any(1).nonzero()[0])
            got = (xp[idx][i] != x[idx][i]).any(0)
            fail(f"{what}: poisoned row {int(idx[i])} changed at {_span(got)}; expected the {PATCH}x{PATCH} square "
                 f"at rows {x.shape[-2] - PATCH}-{x.shape[-2] - 1}, columns {x.shape[-1] - PATCH}-{x.shape[-1] - 1} "
                 "set to 1.0 in every channel (apply_patch(x[idx], 3, 1.0, 'bottom_right'))")


@badnets.prop("draws the rows at random with generator: a seed gives the same rows, and over 100 seeds every row "
              "of another class is drawn")
def _bn_random(fn, rng):
    x, y, target = _training_set(rng)
    n = len(y)
    rate = _fractional_rate(rng, n, upper=bool(randint(rng, 0, 1)))
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=rng))
    first = _poison(fn, x, y, target, rate, torch.Generator().manual_seed(seed))
    again = _poison(fn, x, y, target, rate, torch.Generator().manual_seed(seed))
    if not torch.equal(first[2], again[2]):
        fail(f"{first[3]} poisoned different rows with two generators seeded alike; draw every random number "
             "with generator (torch.randperm(m, generator=generator)), not from torch's global generator")
    counts = torch.zeros(n)
    for s in range(100):
        idx = _poison(fn, x, y, target, rate, torch.Generator().manual_seed(seed + 1 + s))[2]
        if len(torch.unique(idx)) != len(idx):
            fail(f"{first[3]} returned a row twice among the indices (generator seeded {seed + 1 + s}); draw the "
                 "rows without replacement (torch.randperm, not torch.randint)")
        counts[idx] += 1
    never = ((counts == 0) & (y != target)).nonzero().flatten()
    if len(never):
        fail(f"{first[3]}: over 100 seeds, {len(never)} of the {int((y != target).sum())} rows of other classes "
             f"were never poisoned (row {int(never[0])} among them), where each should be drawn about "
             f"{100 * len(first[2]) / int((y != target).sum()):.0f} times: draw uniformly among all of them")


@badnets.prop("raises a ValueError for a rate outside [0, 1] or one that needs more rows than the other classes "
              "have")
def _bn_bad_rate(fn, rng):
    x, y, target = _training_set(rng)
    n, others = len(y), int((y != target).sum())
    too_many = (others + 1) / n
    for rate, why in ((-_uniform(rng, 0.05, 0.5), "rate must be in [0, 1]"),
                      (1 + _uniform(rng, 0.05, 0.5), "rate must be in [0, 1]"),
                      (too_many, f"round(rate * {n}) = {others + 1} poisons, but only {others} rows are not of the "
                                 f"target class {target}")):
        expect_value_error(fn, (x.clone(), y.clone(), target, rate, _seeded(rng)),
                            f"badnets(x {describe(x)}, y {describe(y)}, target={target}, rate={rate:.4g}, "
                            "generator)", why, "rate")


# ---- (c) spectral_score ----------------------------------------------------------------------------------
spectral_score = SET.question(
    "spectral_score", "spectral_score(reps) -> scores",
    forbid=(f"{_DEFENSES}.spectral_signatures", f"{_DEFENSES}.backdoor.spectral_signatures",
            f"{_CHECKER}._reference_scores", f"{_CHECKER}._variants"))  # |projection| squared is the score


def _reference_scores(reps: torch.Tensor) -> torch.Tensor:
    r = reps.double()
    centred = r - r.mean(0, keepdim=True)
    v = torch.linalg.svd(centred, full_matrices=False).Vh[0]
    return (centred @ v) ** 2


def _reps(rng: torch.Generator) -> torch.Tensor:
    """One class's representations ``(N, D)``, float32: unit Gaussian noise, 15-30% of the rows shifted by 8-12
    along a direction ``w`` (a clear top singular vector), plus a common offset of norm about 35-80 with a
    component of 20-40 along ``w``."""
    n, d = randint(rng, 40, 80), randint(rng, 6, 16)
    w = torch.randn(d, generator=rng, dtype=torch.float64)
    w /= w.norm()
    u = torch.randn(d, generator=rng, dtype=torch.float64)
    u = u - (u @ w) * w
    u /= u.norm()
    offset = _uniform(rng, 20, 40) * w + _uniform(rng, 30, 70) * u
    reps = torch.randn(n, d, generator=rng, dtype=torch.float64)
    poisons = torch.randperm(n, generator=rng)[: max(2, round(_uniform(rng, 0.15, 0.3) * n))]
    reps[poisons] += _uniform(rng, 8, 12) * w
    return (reps + offset).float()


def _scores(fn, reps: torch.Tensor) -> tuple[torch.Tensor, str]:
    what = f"spectral_score(reps {describe(reps)})"
    out = expect_tensor(call(fn, reps.clone(), name="spectral_score"), what, shape=(len(reps),))
    if not out.is_floating_point():
        fail(f"{what} returned dtype {out.dtype}; expected floating-point scores")
    if not bool(torch.isfinite(out).all()):
        fail(f"{what} returned non-finite scores")
    return out.double(), what


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-3) -> bool:
    return float((a - b).abs().max()) <= rtol * max(1.0, float(b.abs().max()))


def _variants(reps: torch.Tensor) -> dict[str, torch.Tensor]:
    """Scores that typical mistakes give, to name the mistake in a failure message."""
    r = reps.double()
    centred = r - r.mean(0, keepdim=True)
    u_, s_, vh = torch.linalg.svd(centred, full_matrices=False)
    raw_v = torch.linalg.svd(r, full_matrices=False).Vh[0]
    row_centred = r - r.mean(1, keepdim=True)
    return {
        "the squared projection of the UNCENTRED rows: subtract the class mean first": (r @ raw_v) ** 2,
        "the uncentred rows projected on the centred rows' vector (as ART does): project R_i - mean, not R_i":
            (r @ vh[0]) ** 2,
        "|projection|, not its square": (centred @ vh[0]).abs(),
        "the top LEFT singular vector squared, u_i^2: the score is (s u_i)^2 = ((R_i - mean) . v)^2": u_[:, 0] ** 2,
        "the squared distance from the mean, ||R_i - mean||^2: project on the top singular vector only":
            centred.pow(2).sum(1),
        "the projection on the LAST singular vector: Vh[0] is the top one": (centred @ vh[-1]) ** 2,
        "centred along the wrong axis (each row's own mean): subtract the mean over the rows, reps.mean(0)":
            (row_centred @ torch.linalg.svd(row_centred, full_matrices=False).Vh[0]) ** 2,
    }


@spectral_score.prop("returns one non-negative score per row, as a float tensor, and leaves reps unchanged")
def _ss_form(fn, rng):
    reps = _reps(rng)
    kept = reps.clone()
    what = f"spectral_score(reps {describe(reps)})"
    out = expect_tensor(call(fn, reps, name="spectral_score"), what, shape=(len(reps),))
    if not torch.equal(reps, kept):
        fail(f"{what} changed reps in place (reps -= reps.mean(0)?); centre a copy: reps - reps.mean(0)")
    if not out.is_floating_point():
        fail(f"{what} returned dtype {out.dtype}; expected floating-point scores")
    low = float(out.min())
    if low < -1e-6 * max(1.0, float(out.abs().max())):
        fail(f"{what} returned a negative score ({fmt(low)}); the score is a SQUARED projection (a signed one "
             "depends on the arbitrary sign the SVD gives the singular vector)")


@spectral_score.prop("is ((R_i - mean) . v)^2, v the top right singular vector of the centred representations")
def _ss_value(fn, rng):
    reps = _reps(rng)
    got, what = _scores(fn, reps)
    expected = _reference_scores(reps)
    if _close(got, expected):
        return
    hint = next((f"; that is {h}" for h, v in _variants(reps).items() if _close(got, v)), "")
    i = int((got - expected).abs().argmax())
    fail(f"{what}: row {i} scored {fmt(got[i])}, expected {fmt(expected[i])}{hint}")


@spectral_score.prop("does not change when every row is shifted by the same vector or reflected (R -> -R)")
def _ss_shift(fn, rng):
    reps = _reps(rng)
    base, what = _scores(fn, reps)
    shift = torch.randn(reps.shape[1], generator=rng)
    shift *= _uniform(rng, 50, 100) / float(shift.norm())
    moved, _ = _scores(fn, reps + shift)
    if not _close(moved, base):
        i = int((moved - base).abs().argmax())
        fail(f"{what}: adding the same vector (norm {fmt(shift.norm())}) to every row changed row {i}'s score from "
             f"{fmt(base[i])} to {fmt(moved[i])}; centre the rows on their mean before the SVD and the projection, "
             "so a common offset cannot become the top direction")
    flipped, _ = _scores(fn, -reps)
    if not _close(flipped, base):
        i = int((flipped - base).abs().argmax())
        fail(f"{what}: negating every row changed row {i}'s score from {fmt(base[i])} to {fmt(flipped[i])}; the "
             "singular vector's sign is arbitrary, and squaring the projection makes the score independent of it")


@spectral_score.prop("scales by a^2 when the representations are scaled by a")
def _ss_scale(fn, rng):
    reps = _reps(rng)
    base, what = _scores(fn, reps)
    a = _uniform(rng, 2.0, 4.0) if randint(rng, 0, 1) else _uniform(rng, 0.25, 0.5)
    scaled, _ = _scores(fn, reps * a)
    if not _close(scaled, a * a * base):
        i = int(base.argmax())
        ratio = float(scaled[i] / base[i]) if float(base[i]) else float("nan")
        fail(f"{what}: scaling reps by a = {a:.3g} multiplied the top score by {ratio:.4g}, not a^2 = {a * a:.4g}; "
             "the score is a squared length: no normalisation, no absolute value, and the singular value "
             "stays in (use (R - mean) @ v, not the left singular vector alone)")


# ---- (d) backdoor_statements (conceptual) ----------------------------------------------------------------
backdoor_statements = SET.question("backdoor_statements", "backdoor_statements() -> str of letters, e.g. 'ac'")
STATEMENTS = {
    "a": "A backdoored model can be as accurate on a clean test set as a model trained on clean data, so clean "
         "accuracy cannot tell whether a trigger is planted.",
    "b": "STRIP flags an input when the model's predictions on its blends with clean images disagree a lot, "
         "that is, when their entropy is high.",
    "c": "Superimposing clean images on a triggered input leaves the trigger in place, so the model keeps "
         "predicting the target class and the entropy of its predictions stays low.",
    "d": "The attack success rate is measured on triggered test inputs of every class, the target class included.",
    "e": "Spectral signatures need a clean, trusted subset of the training data to compare the suspect rows with.",
    "f": "Spectral signatures find BadNets' poisons among the rows labelled with the target class: relabelled to "
         "it, the poisons share the trigger's feature, and their common shift can become the top singular "
         "direction of that class's representations.",
    "g": "Centring the representations before the SVD is optional: it changes every score by the same constant.",
}
TRUE_STATEMENTS = frozenset("acf")
_WHY_NOT = {
    "b": "a trigger survives the superimposition and keeps the prediction on the target class, so triggered "
         "inputs have LOW entropy; high entropy is what clean inputs show",
    "d": "a target-class input counts as a success without any backdoor; the rate is measured on inputs whose "
         "true class is not the target",
    "e": "the defence inspects the (possibly poisoned) training set itself, one class at a time, with the model "
         "trained on it; no clean reference is needed",
    "g": "without centring a common offset of the representations becomes the top singular vector, and the "
         "scores rank the rows along it, not along the poisons' direction",
}


statement_checks(backdoor_statements, "backdoor_statements", STATEMENTS, TRUE_STATEMENTS, _WHY_NOT, exact=True,
                 hint="think about what a backdoored model does on clean inputs, "
                 "what a trigger does to a blend, and where the relabelled poisons end up")
