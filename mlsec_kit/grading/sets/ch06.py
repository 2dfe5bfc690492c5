"""Checks of the chapter-6 exercise set: random label flipping, label flipping that picks the rows a clean
model is surest of (a furthest-first heuristic), and a conceptual question (how many flipped labels overturn
a class's majority, spread over the other classes or concentrated on one).

Every property draws a small random problem (labels, a few features, random logits), so the whole set runs in
about a second. Student functions take and return torch tensors and numbers:
``random_label_flip(x, y, *, rate, num_classes, generator) -> (x_poisoned, y_poisoned, poisoned_indices)``,
``confident_label_flip(x, y, logits, *, rate) -> (x_poisoned, y_poisoned, poisoned_indices)`` and
``flips_to_overturn(n, num_classes, concentrated) -> int``.

How the mistakes are made to fail on every seed: the count properties draw ``rate * n`` with a fractional
part in [0.15, 0.35] (round = floor < ceil), in [0.65, 0.85] (floor < round = ceil) and exactly 1/2 with an
even integer part (Python's round goes down, ``int(rate * n + 0.5)`` up), so floor, ceil and half-up rounding
each miss one; the statistical properties use thousands of rows, so a self-flip, a fixed target or a skewed
draw is many standard deviations away while a correct answer stays within six (a three-class instance of
20,000 rows catches even a draw redrawn once and then sent to y + 1); a small instance graded over
100 generators catches a draw that never reaches some rows (``randperm(n - 1)``); and the margin and overturn
instances are redrawn until every listed wrong rule gives a different answer from the right one.

The kit's attacks and this module's own reference helpers (``_margins``, ``_runner_up``, ``_overturn``) are
forbidden: a submission that imports them scores zero on that question.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..core import CheckFailure, ExerciseSet
from ..expect import describe, expect_tensor, fail
from ..instances import randint
from ..limits import TimeLimitExceeded

SET = ExerciseSet("06_poisoning", "Exercises: poisoning the training set", chapter=6)

_P = "mlsec_kit.attacks.poisoning"
_FLIPS = (f"{_P}.random_label_flip", f"{_P}.label_flip.random_label_flip", f"{_P}.targeted_label_flip",
          f"{_P}.label_flip.targeted_label_flip", f"{_P}.label_flip._other_class",
          # with steps=0 the gradient attack returns exactly the random flip (its documented start)
          f"{_P}.gradient_poisoning", f"{_P}.gradient.gradient_poisoning")
_COUNTS = (f"{_P}.num_poisoned", f"{_P}.label_flip.num_poisoned", f"{_P}.poison_count",
           f"{_P}.backdoor.poison_count", f"{_P}.backdoor._choose")  # _choose: the kit's sorted draw of rows
# this module's own reference helpers answer the questions too (a submission can import them)
_CHECKER = "mlsec_kit.grading.sets.ch06"
_OWN = (f"{_CHECKER}._margins", f"{_CHECKER}._runner_up", f"{_CHECKER}._overturn")


def _invoke(fn, what: str, *args, **kwargs):
    """``fn(*args, **kwargs)``; an exception becomes a failure that says on which call (as ``expect.call``)."""
    try:
        return fn(*args, **kwargs)
    except (NotImplementedError, CheckFailure, TimeLimitExceeded, KeyboardInterrupt):
        raise
    except Exception as err:
        text = (str(err).strip().splitlines() or [""])[0][:200]
        fail(f"raised {type(err).__name__}: {text} (on {what})")


def _triple(out, what: str, x: torch.Tensor, y: torch.Tensor):
    """The ``(x_poisoned, y_poisoned, poisoned_indices)`` a flip returns, checked for type, shape and dtype."""
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        fail(f"{what} returned {describe(out)}; expected a triple (x_poisoned, y_poisoned, poisoned_indices)")
    xp = expect_tensor(out[0], what + " (x_poisoned)", shape=x.shape)
    yp = expect_tensor(out[1], what + " (y_poisoned)", shape=y.shape)
    idx = expect_tensor(out[2], what + " (poisoned_indices)")
    if yp.dtype != y.dtype:
        fail(f"{what} returned y_poisoned of dtype {yp.dtype}; keep the labels' dtype {y.dtype} (start from y.clone())")
    if idx.dim() != 1 or idx.dtype == torch.bool or idx.is_floating_point() or idx.is_complex():
        fail(f"{what} returned poisoned_indices {describe(idx)}; expected a 1-D integer tensor (int64) of row "
             "numbers (not a boolean mask: use mask.nonzero().flatten())")
    idx = idx.long()  # int32 row numbers are row numbers too
    if not torch.equal(xp, x):
        fail(f"{what} returned an x_poisoned that differs from x; label flipping changes labels only: return "
             "x.clone()")
    return xp, yp, idx


def _check_rows(idx: torch.Tensor, yp: torch.Tensor, y: torch.Tensor, what: str) -> None:
    """The indices are sorted, distinct and in range, and every row outside them keeps its label."""
    n = len(y)
    if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= n):
        fail(f"{what} returned poisoned_indices from {int(idx.min())} to {int(idx.max())}; rows run from 0 to {n - 1}")
    if len(idx) > 1 and not bool((idx[1:] > idx[:-1]).all()):
        dup = len(torch.unique(idx)) < len(idx)
        fail(f"{what} returned poisoned_indices that are " + ("not distinct (a row drawn twice: draw without "
             "replacement, torch.randperm)" if dup else "not sorted: return them in increasing order "
             "(.sort().values)"))
    outside = torch.ones(n, dtype=torch.bool)
    outside[idx] = False
    changed = ((yp != y) & outside).nonzero().flatten()
    if len(changed):
        fail(f"{what} changed the label of row {int(changed[0])} (and {len(changed) - 1} more), which is not in "
             "poisoned_indices: return the indices of exactly the rows you flipped")


def _count_message(got: int, rate: float, n: int, what: str) -> str:
    product = rate * n
    rules = [(math.floor(product), "floor(rate * n) (int() truncates)"), (math.ceil(product), "ceil(rate * n)"),
             (int(product + 0.5), "int(rate * n + 0.5), which rounds halves up")]
    names = [name for value, name in rules if value == got]
    hint = f"; that is {' or '.join(names)}" if names and got != round(product) else ""
    return (f"{what} poisoned {got} rows; rate * n = {product:.4g}, so round(rate * n) = {round(product)} "
            f"(Python's round: halves go to the even integer, round(2.5) == 2){hint}")


def _count_rates(rng: torch.Generator, low: int = 12, high: int = 80) -> list[tuple[int, float]]:
    """``(n, rate)`` pairs: ``rate * n`` a little above an integer, a little below one, and exactly a half
    whose integer part is even (rate 1/4, 1/8 or 3/4 times an n that makes it so, exact in binary)."""
    pairs = []
    for lo, hi in ((0.15, 0.35), (0.65, 0.85)):
        n = randint(rng, low, high)
        k = randint(rng, 2, n // 2)
        frac = lo + (hi - lo) * float(torch.rand(1, generator=rng))
        pairs.append((n, (k + frac) / n))
    kind = randint(rng, 0, 2)
    if kind == 0:  # n = 4m + 2, rate 1/4: m + 1/2, m even
        m = 2 * randint(rng, 1, 8)
        pairs.append((4 * m + 2, 0.25))
    elif kind == 1:  # n = 8m + 4, rate 1/8: m + 1/2, m even
        m = 2 * randint(rng, 1, 4)
        pairs.append((8 * m + 4, 0.125))
    else:  # n = 4j + 2, rate 3/4: 3j + 3/2, 3j + 1 even when j is odd
        j = 2 * randint(rng, 0, 6) + 1
        pairs.append((4 * j + 2, 0.75))
    order = torch.randperm(len(pairs), generator=rng).tolist()
    return [pairs[i] for i in order]


# ---- (a) random_label_flip -------------------------------------------------------------------------------
random_label_flip = SET.question(
    "random_label_flip", "random_label_flip(x, y, *, rate, num_classes, generator) -> (x_poisoned, y_poisoned, "
    "poisoned_indices)", forbid=_FLIPS + _COUNTS + _OWN)


def _data(rng: torch.Generator, n: int, classes: int, *, present: int | None = None):
    """``n`` rows of 3 features and labels drawn from the first ``present`` (default: all) classes."""
    x = torch.randn(n, 3, generator=rng)
    y = torch.randint(0, present or classes, (n,), generator=rng)
    return x, y


def _flip(fn, x, y, rate, classes, seed):
    """Call the student's flip on copies of ``x`` and ``y``; fail if it changed them; return its triple."""
    xs, ys = x.clone(), y.clone()
    what = (f"random_label_flip(x {describe(x)}, y {describe(y)}, rate={rate:.4g}, num_classes={classes}, "
            f"generator)")
    out = _invoke(fn, what, xs, ys, rate=rate, num_classes=classes, generator=torch.Generator().manual_seed(seed))
    if not torch.equal(ys, y):
        fail(f"{what} changed y in place ({int((ys != y).sum())} labels); flip the labels of a copy, "
             "y_poisoned = y.clone()")
    if not torch.equal(xs, x):
        fail(f"{what} changed x in place; return a copy, x.clone(), and leave the inputs as they were")
    return (*_triple(out, what, x, y), what)


@random_label_flip.prop("returns (x_poisoned, y_poisoned, poisoned_indices) and leaves x and y unchanged")
def _rf_types(fn, rng):
    classes = randint(rng, 3, 10)
    n = randint(rng, 20, 60)
    x, y = _data(rng, n, classes)
    _flip(fn, x, y, 0.3 + 0.4 * float(torch.rand(1, generator=rng)), classes, randint(rng, 0, 10_000))


@random_label_flip.prop("poisons round(rate * n) rows (Python's round: halves to the even integer)")
def _rf_count(fn, rng):
    classes = randint(rng, 2, 10)
    for n, rate in [*_count_rates(rng), (randint(rng, 5, 30), 0.0), (randint(rng, 5, 30), 1.0)]:
        x, y = _data(rng, n, classes)
        _, yp, idx, what = _flip(fn, x, y, rate, classes, randint(rng, 0, 10_000))
        if len(idx) != round(rate * n):
            fail(_count_message(len(idx), rate, n, what))


@random_label_flip.prop("returns the sorted, distinct indices of exactly the rows whose label it changed")
def _rf_rows(fn, rng):
    for _ in range(3):
        classes = randint(rng, 2, 10)
        n = randint(rng, 30, 120)
        x, y = _data(rng, n, classes)
        _, yp, idx, what = _flip(fn, x, y, 0.2 + 0.5 * float(torch.rand(1, generator=rng)), classes,
                                 randint(rng, 0, 10_000))
        _check_rows(idx, yp, y, what)


@random_label_flip.prop("gives every flipped row a class in [0, num_classes) other than its own")
def _rf_other(fn, rng):
    # 300 or more flips: a label drawn from all num_classes classes (itself included) lands on its own class
    # at least once except with probability (1 - 1/10)^300 < 1e-13.
    classes = randint(rng, 2, 10)
    n = randint(rng, 600, 1000)
    x, y = _data(rng, n, classes)
    _, yp, idx, what = _flip(fn, x, y, 0.5 + 0.3 * float(torch.rand(1, generator=rng)), classes,
                             randint(rng, 0, 10_000))
    if len(torch.unique(idx)) < len(idx):  # with 300 or more of 1000 rows, a draw with replacement repeats some
        fail(f"{what} returned {len(idx) - len(torch.unique(idx))} rows twice in poisoned_indices; draw k distinct "
             "rows, without replacement (torch.randperm)")
    new = yp[idx]
    if len(new) and (int(new.min()) < 0 or int(new.max()) >= classes):
        fail(f"{what} gave labels from {int(new.min())} to {int(new.max())}; classes run from 0 to {classes - 1} "
             "(take the new label modulo num_classes)")
    same = int((new == y[idx]).sum())
    if same:
        fail(f"{what} 'flipped' {same} of {len(idx)} rows to their own class; draw the new label from the "
             f"{classes - 1} other classes, e.g. (y + torch.randint(1, num_classes, ...)) % num_classes")


# The share of flips from class c to each other class: 1 / (num_classes - 1) of c's flips; six standard
# deviations of the binomial count (a correct answer is outside in fewer than 1e-6 of the seeds, summed
# over the at most 25 cells), while a label drawn from all classes and moved off itself to y + 1 (twice as
# likely as the others) is 8 or more standard deviations off with these counts.
_SIGMAS = 6.0


@random_label_flip.prop("draws each new label uniformly from the num_classes - 1 other classes, even classes "
                        "absent from y")
def _rf_uniform(fn, rng):
    classes = randint(rng, 3, 6)
    n = randint(rng, 5000, 7000)
    x, y = _data(rng, n, classes, present=classes - 1)  # the last class never occurs in y
    _, yp, idx, what = _flip(fn, x, y, 0.5 + 0.3 * float(torch.rand(1, generator=rng)), classes,
                             randint(rng, 0, 10_000))
    old, new = y[idx], yp[idx]
    if len(new) and (int(new.min()) < 0 or int(new.max()) >= classes or bool((new == old).any())):
        fail(f"{what} gave a flipped row its own class or a label outside [0, {classes}); draw from the "
             f"{classes - 1} other classes")
    if not bool((new == classes - 1).any()):
        fail(f"{what} flipped no row to class {classes - 1}, which no row of y has; the classes are the "
             "num_classes given, not y.max() + 1")
    p = 1 / (classes - 1)
    for c in range(classes - 1):
        flips = new[old == c]
        for d in range(classes):
            if d == c:
                continue
            count, expected = int((flips == d).sum()), len(flips) * p
            spread = (len(flips) * p * (1 - p)) ** 0.5
            if abs(count - expected) > _SIGMAS * spread:
                fail(f"{what}: of {len(flips)} flipped rows of class {c}, {count} got label {d}; a uniform draw "
                     f"from the {classes - 1} other classes gives {expected:.0f} +- {spread:.0f} (not a fixed "
                     "class such as y + 1, nor a draw from all classes moved off the row's own)")
    # A small bias shows on three classes and many rows, pooled over the classes: a flip moves a row one class
    # up (y + 1 mod 3) or two, each with probability 1/2. A draw from all classes that is redrawn once and
    # then sent to y + 1 moves 5/9 of the rows one up: with 13,000 flips that is 12 standard deviations.
    n = randint(rng, 19_000, 21_000)
    x, y = _data(rng, n, 3)
    _, yp, idx, what = _flip(fn, x, y, 0.65, 3, randint(rng, 0, 10_000))
    up = int(((yp[idx] - y[idx]) % 3 == 1).sum())
    expected, spread = len(idx) / 2, (len(idx) / 4) ** 0.5
    if abs(up - expected) > _SIGMAS * spread:
        fail(f"{what}: {up} of the {len(idx)} flipped rows moved one class up (y + 1 mod 3) and "
             f"{len(idx) - up} two; a uniform draw from the 2 other classes gives {expected:.0f} +- {spread:.0f} "
             "each (a fallback to y + 1, after a draw that hit the row's own class, favours it)")


@random_label_flip.prop("chooses the rows uniformly at random with the generator: the same seed repeats, "
                        "another seed differs")
def _rf_rows_random(fn, rng):
    classes = randint(rng, 2, 10)
    n = randint(rng, 2000, 3000)
    x, y = _data(rng, n, classes)
    rate = 0.2 + 0.2 * float(torch.rand(1, generator=rng))
    seed = randint(rng, 0, 10_000)
    _, yp, idx, what = _flip(fn, x, y, rate, classes, seed)
    _, yp2, idx2, _ = _flip(fn, x, y, rate, classes, seed)
    _, _, idx3, _ = _flip(fn, x, y, rate, classes, seed + 1)
    if not (torch.equal(idx, idx2) and torch.equal(yp, yp2)):
        fail(f"{what} gave different results for two generators seeded {seed}; draw the rows and the new labels "
             "with generator=generator (not torch's global generator), so that a seed reproduces the poisoning")
    if torch.equal(idx, idx3):
        fail(f"{what} poisoned the same rows with generators seeded {seed} and {seed + 1}; draw the rows at "
             "random, torch.randperm(n, generator=generator)[:k]")
    k = len(idx)
    # Each quarter of the rows holds a hypergeometric number of the k chosen ones: k/4 +- six standard deviations.
    spread = (k * 0.25 * 0.75 * (n - k) / (n - 1)) ** 0.5
    for q in range(4):
        lo, hi = q * n // 4, (q + 1) * n // 4
        count, expected = int(((idx >= lo) & (idx < hi)).sum()), k * (hi - lo) / n
        if abs(count - expected) > _SIGMAS * spread + 1:
            fail(f"{what} chose {count} of its {k} rows among rows {lo}-{hi - 1}, where a uniform choice puts "
                 f"{expected:.0f} +- {spread:.0f}: choose the rows uniformly among all n")
    for c in range(classes):  # and each class holds a hypergeometric number of them: the choice ignores labels
        size = int((y == c).sum())
        count, expected = int((y[idx] == c).sum()), k * size / n
        spread = (k * (size / n) * (1 - size / n) * (n - k) / (n - 1)) ** 0.5
        if abs(count - expected) > _SIGMAS * spread + 1:
            fail(f"{what} chose {count} of its {k} rows among the {size} rows of class {c}, where a uniform choice "
                 f"puts {expected:.0f} +- {spread:.0f}: choose the rows whatever their label")
    # Every row can be chosen: over 100 generators, a row that a uniform choice takes with probability at least
    # 0.3 is missed by all of them with probability below 0.7^100 < 1e-15 (all rows: below 1e-13), while a
    # draw that never reaches some rows (randperm(n - 1), every other row, ...) leaves them out on every seed.
    n = randint(rng, 20, 40)
    x, y = _data(rng, n, classes)
    rate = (randint(rng, math.ceil(0.3 * n), n // 2) + 0.25) / n
    counts = torch.zeros(n)
    for s in range(100):
        _, _, idx, what = _flip(fn, x, y, rate, classes, seed + 2 + s)
        counts[idx] += 1
    never = (counts == 0).nonzero().flatten()
    if len(never):
        fail(f"{what}: over 100 generators, {len(never)} of the {n} rows were never chosen (row {int(never[0])} "
             f"among them), where each should be about {100 * round(rate * n) / n:.0f} times: choose among all "
             "n rows, torch.randperm(n, generator=generator)[:k]")


# ---- (b) confident_label_flip ----------------------------------------------------------------------------
confident_label_flip = SET.question(
    "confident_label_flip", "confident_label_flip(x, y, logits, *, rate) -> (x_poisoned, y_poisoned, "
    "poisoned_indices)", forbid=_FLIPS + _COUNTS + _OWN)


def _margins(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    true = logits.gather(1, y[:, None]).squeeze(1)
    return true - logits.scatter(1, y[:, None], float("-inf")).max(1).values


def _runner_up(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return logits.scatter(1, y[:, None], float("-inf")).argmax(1)


def _top(score: torch.Tensor, k: int) -> frozenset:
    return frozenset(torch.sort(-score, stable=True).indices[:k].tolist())


def _wrong_choices(logits: torch.Tensor, y: torch.Tensor, k: int) -> dict[str, frozenset]:
    """The rows the plausible wrong ranking rules would flip, with a hint for each."""
    top2 = logits.topk(2, dim=1).values
    true = logits.gather(1, y[:, None]).squeeze(1)
    probs = logits.double().softmax(1)
    return {
        "the rows with the SMALLEST margin (those nearest the boundary): flip the ones the model is surest of, "
        "they move the retrained boundary furthest": _top(-_margins(logits, y), k),
        "ranked by the gap between the two largest logits, whatever the label: use the true class's logit minus "
        "the largest other one (negative for a misclassified row)": _top(top2[:, 0] - top2[:, 1], k),
        "ranked by the true class's logit alone: subtract the largest other logit": _top(true, k),
        "ranked by the true logit minus the largest logit of ALL classes (0 for every correct row): leave the "
        "true class out of the maximum": _top(true - top2[:, 0], k),
        "the first rows: rank every row by its margin": frozenset(range(k)),
        "ranked by a margin of softmax probabilities: the margin is taken of the logits, not of the "
        "probabilities": _top(_margins(probs, y), k),
        "ranked by the true class's probability alone: use the true logit minus the largest other logit":
            _top(probs.gather(1, y[:, None]).squeeze(1), k),
        "ranked by the true logit minus the MEAN of the other logits: subtract the largest other logit":
            _top(true - (logits.sum(1) - true) / (logits.shape[1] - 1), k),
    }


def _margin_instance(rng: torch.Generator, *, rate: float | None = None):
    """Rows, labels and random logits, redrawn until every wrong ranking rule picks other rows than the margin."""
    while True:
        classes, n = randint(rng, 3, 6), randint(rng, 20, 50)
        x, y = _data(rng, n, classes)
        logits = 2 * torch.randn(n, classes, generator=rng)
        logits[torch.arange(n), y] += 1.5  # most rows correctly classified, some not
        frac = 0.15 + 0.2 * float(torch.rand(1, generator=rng))  # round(r * n) is the integer part
        r = rate if rate is not None else (randint(rng, 3, n // 3) + frac) / n
        k = round(r * n)
        right = _top(_margins(logits, y), k)
        if rate is not None or all(w != right for w in _wrong_choices(logits, y, k).values()):
            return x, y, logits, r


def _confident(fn, x, y, logits, rate):
    xs, ys, ls = x.clone(), y.clone(), logits.clone()
    what = f"confident_label_flip(x {describe(x)}, y {describe(y)}, logits {describe(logits)}, rate={rate:.4g})"
    out = _invoke(fn, what, xs, ys, ls, rate=rate)
    if not (torch.equal(xs, x) and torch.equal(ys, y) and torch.equal(ls, logits)):
        fail(f"{what} changed its inputs in place; flip the labels of a copy, y_poisoned = y.clone()")
    return (*_triple(out, what, x, y), what)


@confident_label_flip.prop("leaves its inputs unchanged and poisons round(rate * n) rows, returned sorted")
def _cf_count(fn, rng):
    for n, rate in _count_rates(rng, 20, 60):
        classes = randint(rng, 3, 6)
        x, y = _data(rng, n, classes)
        logits = 2 * torch.randn(n, classes, generator=rng)
        _, yp, idx, what = _confident(fn, x, y, logits, rate)
        if len(idx) != round(rate * n):
            fail(_count_message(len(idx), rate, n, what))
        _check_rows(idx, yp, y, what)


@confident_label_flip.prop("flips the rows with the largest margin, the true class's logit minus the largest "
                           "other logit")
def _cf_rows(fn, rng):
    for _ in range(2):
        x, y, logits, rate = _margin_instance(rng)
        _, yp, idx, what = _confident(fn, x, y, logits, rate)
        k = round(rate * len(y))
        got, right = frozenset(idx.tolist()), _top(_margins(logits, y), k)
        if got != right:
            hint = next((f"; those are {h}" for h, rows in _wrong_choices(logits, y, k).items() if rows == got), "")
            fail(f"{what} flipped rows {sorted(got)[:6]}{'...' if k > 6 else ''}; the {k} rows with the largest "
                 f"margin are {sorted(right)[:6]}{'...' if k > 6 else ''}{hint}")


@confident_label_flip.prop("gives each flipped row its runner-up class, the largest logit other than its own "
                           "class's")
def _cf_labels(fn, rng):
    # rate 1: every row is flipped, the correctly classified ones (runner-up = second largest logit) and the
    # misclassified ones (runner-up = the predicted class). Redrawn until both kinds occur and a misclassified
    # row's true class is its second largest logit (where "the second largest logit" would be its own class).
    while True:
        x, y, logits, _ = _margin_instance(rng, rate=1.0)
        pred, second = logits.argmax(1), logits.topk(2, dim=1).indices[:, 1]
        if bool((pred == y).any()) and bool(((pred != y) & (second == y)).any()):
            break
    _, yp, idx, what = _confident(fn, x, y, logits, 1.0)
    expected = _runner_up(logits, y)
    bad = (yp != expected).nonzero().flatten()
    if len(bad):
        i = int(bad[0])
        kind = "its own class: leave the true class out of the argmax" if int(yp[i]) == int(y[i]) else \
            f"expected {int(expected[i])}, the largest logit among the classes other than {int(y[i])}"
        fail(f"{what} (rate 1: every row flipped) gave row {i} (label {int(y[i])}, logits "
             f"[{', '.join(f'{v:.2f}' for v in logits[i].tolist())}]) the label {int(yp[i])}, {kind}")


# ---- (c) flips_to_overturn (conceptual: why random flips are weak and concentrated flips are not) --------
flips_to_overturn = SET.question("flips_to_overturn", "flips_to_overturn(n, num_classes, concentrated) -> int",
                                 forbid=_OWN)


def _overturn(n: int, classes: int, concentrated: bool) -> int:
    spread = 1 if concentrated else classes - 1
    return next(m for m in range(n + 1) if math.ceil(m / spread) > n - m)


def _ask(fn, n: int, classes: int, concentrated: bool) -> int:
    what = f"flips_to_overturn({n}, {classes}, {concentrated})"
    got = _invoke(fn, what, n, classes, concentrated)
    if isinstance(got, torch.Tensor) and got.numel() == 1 and not got.is_floating_point() \
            and got.dtype != torch.bool:
        got = int(got.item())
    if isinstance(got, np.integer):  # numpy's int64 is a count too
        got = int(got)
    if isinstance(got, bool) or not isinstance(got, int):
        fail(f"{what} returned {describe(got)}; expected a Python int, a number of rows")
    return got


def _overturn_hint(got: int, n: int, classes: int, concentrated: bool) -> str:
    s = 1 if concentrated else classes - 1
    hints = {n // 2 + 1: "a strict majority of n, which is the answer only when every flip goes to one class",
             math.ceil(n * s / (s + 1)): "a tie with the true label; a tie does not overturn it, one more flip does",
             n: "all n rows; far fewer suffice"}
    return next((f"; that is {h}" for v, h in hints.items() if v == got), "")


@flips_to_overturn.prop("returns a Python int; concentrated on one class it takes a strict majority of the n rows")
def _ov_concentrated(fn, rng):
    for n in (2 * randint(rng, 3, 200), 2 * randint(rng, 3, 200) + 1):
        classes = randint(rng, 3, 20)
        got = _ask(fn, n, classes, True)
        want = _overturn(n, classes, True)
        if got != want:
            hint = _overturn_hint(got, n, classes, True)
            fail(f"flips_to_overturn({n}, {classes}, True) = {got}; expected {want}: after m flips to one class "
                 f"it holds m rows and the true label n - m, so it takes m > n - m{hint}")


@flips_to_overturn.prop("spread evenly over the num_classes - 1 other classes: the smallest m whose largest "
                        "share, ceil(m / (num_classes - 1)), exceeds the n - m honest rows")
def _ov_spread(fn, rng):
    # n not a multiple of num_classes: no m gives a tie, so this checks the count, not the tie rule; and
    # n >= C (C + 1), so that spreading over C classes instead of C - 1 changes the answer by at least one
    # The first n leaves a remainder below C / 2, so n (C - 1) / C has a fractional part above 1/2: rounding
    # n (C - 1) / C instead of taking its floor gives one flip too many there.
    for i in range(3):
        classes = randint(rng, 3, 20)
        n = classes * randint(rng, classes + 1, 45) + randint(rng, 1, (classes - 1) // 2 if i == 0 else classes - 1)
        got, want = _ask(fn, n, classes, False), _overturn(n, classes, False)
        if got != want:
            fail(f"flips_to_overturn({n}, {classes}, False) = {got}; expected {want}: m flips spread over "
                 f"{classes - 1} classes give the largest one ceil(m / {classes - 1}) rows, against n - m for the "
                 f"true label{_overturn_hint(got, n, classes, False)}")


@flips_to_overturn.prop("a tie between the largest share and the true label does not overturn it")
def _ov_tie(fn, rng):
    # n a multiple of num_classes: at m = n (C - 1) / C every other class has n / C rows, as many as the true one
    classes = randint(rng, 2, 20)
    n = classes * randint(rng, 2, 30)
    for concentrated in (False, True):
        c = 2 if concentrated else classes
        size = n if not concentrated else 2 * randint(rng, 3, 100)
        got, want = _ask(fn, size, c, concentrated), _overturn(size, c, concentrated)
        if got != want:
            fail(f"flips_to_overturn({size}, {c}, {concentrated}) = {got}; expected {want}: the label most rows "
                 f"carry must be another class, strictly{_overturn_hint(got, size, c, concentrated)}")
