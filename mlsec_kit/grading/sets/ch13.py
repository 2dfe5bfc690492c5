"""Checks of the chapter-13 exercise set: additive secret sharing over Z_2^64, Beaver multiplication split by party,
pairwise-mask secure aggregation with dropouts, and who learns what in MPC and federated learning.

Student functions: ``share(x, parties, generator) -> list of tensors``, ``reconstruct(shares) -> tensor``,
``beaver_open(x_i, y_i, a_i, b_i) -> (e_i, f_i)``, ``beaver_close(i, e, f, a_i, b_i, c_i) -> z_i``,
``mask_update(i, update, pair_seeds) -> masked``, ``unmask_sum(masked, dropped_seeds) -> sum`` and
``mpc_statements() -> letters``.

**Ring elements are int64 tensors.** The ring is Z_2^64 read in two's complement, as in the kit's
:mod:`mlsec_kit.crypto.mpc.ring`: torch's int64 addition, subtraction and multiplication wrap around modulo 2^64,
which is exactly the ring's arithmetic. No fixed-point encoding is involved: the secrets are arbitrary int64
values, the extremes ``-2^63`` and ``2^63 - 1`` included.

**The grader is the network.** No party object crosses the grading wire (the student's functions run in a separate,
sandboxed process and receive only tensors, ints and dicts), so each protocol is split into what *one* party
computes locally, and the grader does the rest: it holds the secrets, plays the dealer (Beaver triples ``a, b,
c = a b``), calls the student's function once per party with *only that party's* shares, adds up what the parties
broadcast (the opened ``e = sum_i e_i`` and ``f = sum_i f_i``), and hands the opened values back. A party using
another party's share is impossible by construction: ``beaver_open`` and ``beaver_close`` receive party ``i``'s
shares and the opened values, nothing else. Every party runs the protocol as the question states it (``e = x - a``,
``f = y - b``, ``z_i = c_i + e b_i + f a_i``, plus ``e f`` at party 0 only), because the other parties, played by
the grader, run it too: the mirror convention ``e = a - x`` (with a close that compensates) is just as private
and, run by *every* party, computes the same product, but one party using it among parties that do not breaks
the product; the question fixes the convention and the check of ``beaver_open`` requires exactly it (its failure
message says so). The same holds for the masks' signs in secure aggregation (the mask of the pair ``(i, j)`` is
added by the smaller index and subtracted by the larger): the grader's clients and server follow the question's
convention.

**Uniformity, statistically.** "Every share is uniform over the ring and independent of the secret" is checked
on 4096 sharings of each of two very different secrets (0 and a constant of magnitude at least ``2^62``), by a
chi-square test on each of the sixteen 4-bit windows of every share (bits 0-3, 4-7, ..., 60-63: 16 bins, 256
expected values each); a window fails when its p-value is below ``P_MIN = 1e-8``. For three or more parties, any
two shares are independent too (any ``n - 1`` shares are jointly uniform), tested on the sum and the difference
of every pair. Each window test sees 4 bits at a time, so a value whose two 32-bit halves are one draw (``lo <<
32 | lo``: only 2^32 of the 2^64 values, and the last share narrows the secret to 2^32 candidates) would pass
it; the eight windows of bits 32-63 of ``v ^ (v << 32)`` (the high half XOR the low half: uniform for a uniform
``v``, constant for a repeated half) are tested too. The secrets are ``(64, 64)`` tensors, so a pad reused along a
row shows as well. A masked update in secure aggregation (1024 entries) is tested the same way. A correct
answer's p-values are uniform on (0, 1) (256 expected values per bin, 64 for a masked update: the chi-square
approximation is close, as a simulation of 2e6 multinomial draws per size confirmed), so with at most about 790
windows in the three properties it fails one with probability below ``1e-5`` per graded run (a union bound); the
tests run the reference on 300 seeds. Every named
mistake puts the mass of some window in half of the bins or fewer (a chi-square statistic of at least 4096 on
4096 values; about 7000 for an unmasked update's 1024 small entries, which fill 2 bins of the top window): a
p-value below 1e-300, so it fails on every seed.

How the instances make each typical mistake fail on every seed:

- ``share`` with "the secret minus a small random value" (``[x - r, r]`` with ``r`` small): the share ``r`` has
  bits 60-63 all 0 or all 1; shares drawn in ``[0, 2^32)`` (``torch.randint(0, 2**32)``) or in ``[0, 2^63)``:
  their top window holds one bin (or half of them); two 32-bit halves joined with a low half drawn in
  ``[0, 2^31)`` (bit 31 always 0: the window of bits 28-31 fills half its bins) or signed (``hi << 32 | lo``
  with a negative ``lo`` sets every high bit: the top window has half its values in one bin); the last share
  equal to the secret (the others random and unused): the sum of the shares is not the secret (the sum
  property), and that share is a constant (the uniformity property); one random value broadcast to every entry
  (one draw per call): every entry of that share is equal; one random value reused for every share but the last
  (``[r, r, x - 2r]``): the difference of two shares is 0 (the pairwise property, always with 3 or 4 parties);
  torch's global generator instead of ``generator``: two calls with generators seeded alike differ (the
  generator property); re-seeding ``generator`` at each call, or drawing from a copy of it (a two-time pad: the
  difference of two last shares is ``x - x'``; the kit's dealer shares every value from one generator): two
  sharings from one generator give the same shares (the generator property); one 32-bit draw in both halves
  (``lo << 32 | lo`` or ``lo * (2^32 + 1)``): the halves test; one pad per row of a 2-D secret: every row of the
  share is constant (the uniformity property); ``parties = 1`` accepted: the bad-input property; a float share:
  the form property.
- ``reconstruct`` in Python ints or floats without the wrap-around: every instance holds entries whose shares
  sum, as integers, beyond int64 (``parties`` copies of ``2^63 - 1``), so a Python-int sum overflows when it is
  turned back into an int64 tensor, and a float64 sum rounds full-range values (its ulp there is 2^11): wrong
  entries; ``shares[-1]`` or ``shares[0] - shares[1]`` alone: wrong on the random secrets; shares of different
  shapes accepted (torch broadcasts ``(k,)`` and ``(1,)`` silently): the bad-input property. Every sum property
  runs with 2, 3, 4 and 5 parties.
- ``beaver_open`` broadcasting the shares themselves (``(x_i, y_i)``): the parties open ``x`` and ``y``; the
  instances have ``a != 0`` and ``b != 0`` in some entry, so the opened value is not ``x - a``; the triple's
  share added instead of subtracted (``x_i + a_i``) or the mirror ``a_i - x_i``: the opened value is ``x + a`` or
  ``a - x``, which differs from ``x - a`` wherever ``a`` is not ``0`` or ``2 x`` (redrawn until it does); a shape
  check of the number of dimensions only: the bad ``a_i`` has ``x_i``'s number of dimensions and another shape.
- ``beaver_close`` adding ``e f`` at every party, or at none, using ``- e b_i - f a_i``, or ``e a_i + f b_i``
  (``a`` and ``b`` swapped): each instance is redrawn until every such product differs from ``x y`` (mod 2^64)
  in some entry, with 2 parties and with each of 3, 4 and 5 in the second property (so ``e f`` added by parties
  0 and 4 fails too); a ValueError for a negative ``i`` whose message does not name ``i`` as a word: the
  bad-input property (``expect_value_error`` alone would accept any message with the letter i).
- ``mask_update`` without masks: its output is the update, whose entries are small (``|u| < 2^20``), so bits
  60-63 are constant; both members of a pair adding the mask: the masks do not cancel in the sum of all clients
  (the sum is off by ``2 sum_{i<j} PRG(s_ij)``, a uniform 64-bit vector); the signs reversed (added by the larger
  index): the masks cancel, but the server, which removes a dropped client's masks by the question's convention,
  gets a wrong sum whenever a client drops (the interoperability property always has a dropout).
- ``unmask_sum`` ignoring the dropped clients' masks (right only when no one drops), removing them with the wrong
  sign, or always subtracting (or always adding) ``PRG(s_ij)`` whatever the order of ``i`` and ``j``: the dropout
  property always drops 1 to ``n - 3`` of ``n`` clients (``n`` in [5, 7]), one of them with survivors on both
  sides, so there are pairs ``(i, j)`` with ``i < j`` and with ``i > j``; every such error (and that of masks
  that do not cancel) is a nonzero multiple of a sum of uniform 64-bit PRG vectors of 4 or more entries: zero
  with probability below 2^-250, checked on the test seeds. A right int64 sum returned through float32 or
  float64: the server's checks plant one entry of magnitude in [2^59, 2^60) in every update (odd, beyond the
  exact integers of both), so the rounding shows; the small-update bound matters only to the masked-update
  uniformity property.

Forbidden while a question is graded (a submission could import them): the kit's :func:`mlsec_kit.crypto.mpc.share`
and :func:`~mlsec_kit.crypto.mpc.random_ring` (it draws the uniform ring elements the question asks for), and this
module's :func:`prg` and ``_uniform_ring`` (seeded uniform ring elements too) for ``share``;
:func:`mlsec_kit.crypto.mpc.reconstruct` and this module's ``_ring_sum`` for ``reconstruct``; this module's
``_reference_*`` helpers for every question. (Blocking happens in the submission's process only, so the grader,
which calls ``_uniform_ring`` and ``_ring_sum`` itself, is unaffected.) Nothing in the kit answers the other
questions with the grader's inputs: :func:`mlsec_kit.crypto.mpc.beaver_product` and ``mul`` work on the kit's
``SharedTensor`` inside a ``Network`` that holds every party's share (a party in this exercise holds only its own)
and return a new sharing, not one party's broadcast or share; :func:`mlsec_kit.fl.secure_aggregate` draws its own
keys, masks in Z_2^48 with its own PRG and needs the plaintext updates, so it can compute neither a masked update
for the grader's seeds nor the sum from the grader's masked updates. They stay allowed. :func:`prg` stays allowed
for ``mask_update`` and ``unmask_sum``: it is the PRG the question gives.
"""
from __future__ import annotations

import itertools
import re
from typing import Any

import torch

from ..core import ExerciseSet
from ..expect import call, describe, expect_value_error, fail, statement_checks
from ..instances import randint

SET = ExerciseSet("13_secure_computation", "Exercises: secure computation and federated learning", chapter=13)

_MPC = "mlsec_kit.crypto.mpc"
_CHECKER = "mlsec_kit.grading.sets.ch13"  # this module's reference helpers answer questions too
INT64_MIN, INT64_MAX = -2 ** 63, 2 ** 63 - 1
P_MIN = 1e-8  # a 4-bit window fails the chi-square test below this p-value
WINDOWS = tuple((shift, f"bits {shift}-{shift + 3}" + (" (the top)" if shift == 60 else " (the lowest)" if shift == 0
                                                          else "")) for shift in range(60, -1, -4))
SHARINGS = 4096  # sharings of each secret in the uniformity checks
MASKED_SIZE = 1024  # entries of an update in the uniformity check of a masked update
UPDATE_BOUND = 2 ** 20  # |update entries| < this: fixed-point updates are small next to the ring


# ---- the ring, the PRG and the statistics ------------------------------------------------------------------
def prg(seed: int, size: int) -> torch.Tensor:
    """The pseudo-random generator of the pairwise masks: ``size`` elements of Z_2^64 (an int64 tensor, every
    value equally likely) expanded from the integer ``seed`` in ``[0, 2^63)``. The same seed gives the same
    mask, so two clients that share a seed compute the same mask. (torch's seeded generator: a model of the
    AES-CTR PRG of Bonawitz et al. 2017, not a cryptographic one.)"""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= INT64_MAX:
        raise ValueError(f"seed must be an int in [0, 2^63), got {seed!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(f"size must be an int >= 0, got {size!r}")
    g = torch.Generator().manual_seed(seed)
    return _uniform_ring((size,), g)


def _uniform_ring(shape, rng: torch.Generator) -> torch.Tensor:
    """Uniform int64 ring elements: a high and a low 32-bit half joined (the grader's own draw)."""
    hi = torch.randint(-2 ** 31, 2 ** 31, tuple(shape), generator=rng, dtype=torch.int64)
    lo = torch.randint(0, 2 ** 32, tuple(shape), generator=rng, dtype=torch.int64)
    return (hi << 32) | lo


def _ring_sum(tensors) -> torch.Tensor:
    tensors = list(tensors)
    total = tensors[0].clone()
    for t in tensors[1:]:
        total = total + t
    return total


def _seed(rng: torch.Generator) -> int:
    return int(torch.randint(0, 2 ** 62, (1,), generator=rng, dtype=torch.int64))


_SHIFTS = torch.tensor([shift for shift, _ in WINDOWS], dtype=torch.int64)


def _window_counts(values: torch.Tensor) -> torch.Tensor:
    """``(len(WINDOWS), 16)``: how often each value of each 4-bit window occurs."""
    bins = (values.reshape(-1, 1) >> _SHIFTS) & 15
    offset = bins + 16 * torch.arange(len(WINDOWS), dtype=torch.int64)
    return torch.bincount(offset.reshape(-1), minlength=16 * len(WINDOWS)).reshape(len(WINDOWS), 16)


def _window_p_values(values: torch.Tensor) -> torch.Tensor:
    """The chi-square p-value of each 4-bit window of ``values`` against the uniform distribution on 16 values
    (15 degrees of freedom), in the order of :data:`WINDOWS`."""
    counts = _window_counts(values).double()
    expected = values.numel() / 16
    stat = ((counts - expected) ** 2 / expected).sum(1)
    return torch.special.gammaincc(torch.full_like(stat, 7.5), stat / 2)


def _window_p_value(values: torch.Tensor, shift: int) -> float:
    """The chi-square p-value of the window of bits ``shift .. shift + 3``."""
    return float(_window_p_values(values)[[s for s, _ in WINDOWS].index(shift)])


def _non_uniform(values: torch.Tensor) -> str:
    """'' when every window passes; else which window fails and how."""
    ps = _window_p_values(values)
    if bool((ps >= P_MIN).all()):
        return _halves_repeat(values)
    k = int(torch.nonzero(ps < P_MIN)[0])
    used = int((_window_counts(values)[k] > 0).sum())
    return (f"{WINDOWS[k][1]} are not uniform (chi-square p = {float(ps[k]):.1e} < {P_MIN:g}; {used} of the 16 "
            "values occur)")


def _halves_repeat(values: torch.Tensor) -> str:
    """'' unless bits 32-63 depend on bits 0-31: the windows of bits 32-63 of ``values ^ (values << 32)`` (the high
    half XOR the low half), uniform for a uniform value, constant when one 32-bit draw fills both halves."""
    ps = _window_p_values(values ^ (values << 32))[:8]
    if bool((ps >= P_MIN).all()):
        return ""
    k = int(torch.nonzero(ps < P_MIN)[0])
    return (f"bits 32-63 repeat or depend on bits 0-31 (the high half XOR the low half: {WINDOWS[k][1]}, "
            f"chi-square p = {float(ps[k]):.1e} < {P_MIN:g}); draw both 32-bit halves independently")


def _ring_tensor(out: Any, what: str, shape) -> torch.Tensor:
    if not isinstance(out, torch.Tensor):
        fail(f"{what} returned {describe(out)}; expected an int64 tensor (a ring element)")
    if out.dtype != torch.int64:
        fail(f"{what} returned dtype {out.dtype}; expected torch.int64: ring elements of Z_2^64, whose "
             "arithmetic wraps around (no floats, no Python ints)")
    if tuple(out.shape) != tuple(shape):
        fail(f"{what} returned shape {tuple(out.shape)}; expected {tuple(shape)}")
    return out.detach().as_subclass(torch.Tensor)


def _shape(rng: torch.Generator) -> tuple:
    return (randint(rng, 3, 9),) if randint(rng, 0, 1) else (randint(rng, 2, 4), randint(rng, 2, 5))


# ---- (a) share and reconstruct -----------------------------------------------------------------------------
share = SET.question(
    "share", "share(x, parties, generator) -> list of parties int64 tensors",
    forbid=(f"{_MPC}.share", f"{_MPC}.ring.share", f"{_MPC}.random_ring", f"{_MPC}.ring.random_ring",
            f"{_CHECKER}.prg", f"{_CHECKER}._uniform_ring", f"{_CHECKER}._reference_share"))


def _reference_share(x: torch.Tensor, parties: int, generator: torch.Generator) -> list:
    if isinstance(parties, bool) or not isinstance(parties, int) or parties < 2:
        raise ValueError(f"parties must be an int >= 2, got {parties!r}")
    shares = [_uniform_ring(x.shape, generator) for _ in range(parties - 1)]
    return shares + [x - _ring_sum(shares) if shares else x.clone()]


def _secrets(rng: torch.Generator, shape) -> torch.Tensor:
    """Full-range int64 secrets with the extremes planted."""
    x = _uniform_ring(shape, rng).reshape(-1)
    x[0], x[-1] = INT64_MIN, INT64_MAX
    return x.reshape(shape)


def _shares(fn, x: torch.Tensor, parties: int, rng: torch.Generator, seed: int | None = None) -> list:
    what = f"share(x {tuple(x.shape)} int64, parties={parties}, generator)"
    g = torch.Generator().manual_seed(_seed(rng) if seed is None else seed)
    out = call(fn, x.clone(), parties, g, name="share")
    if not isinstance(out, (list, tuple)) or len(out) != parties:
        fail(f"{what} returned {describe(out)}; expected a list of {parties} int64 tensors, one per party")
    return [_ring_tensor(s, f"{what}: share {k}", x.shape) for k, s in enumerate(out)]


@share.prop("returns a list of parties int64 tensors of x's shape")
def _sh_form(fn, rng):
    for parties in (2, randint(rng, 3, 5)):
        _shares(fn, _secrets(rng, _shape(rng)), parties, rng)


@share.prop("the shares add up to x modulo 2^64 (2 to 5 parties, the extremes -2^63 and 2^63 - 1 included)")
def _sh_sum(fn, rng):
    for parties in (2, 3, 4, 5):
        x = _secrets(rng, _shape(rng))
        total = _ring_sum(_shares(fn, x, parties, rng))
        if not torch.equal(total, x):
            bad = int((total != x).sum())
            fail(f"with {parties} parties the shares add up (mod 2^64) to another value than x in {bad} of "
                 f"{x.numel()} entries; the last share must be x minus the sum of the others, in int64")


def _two_secrets(rng: torch.Generator) -> dict:
    big = int(_uniform_ring((1,), rng))
    big = big | (1 << 62) if big >= 0 else big & ~(1 << 62)  # |big| >= 2^62
    return {"0": 0, f"{big}": big}


@share.prop("every share is uniform over Z_2^64 whatever the secret: chi-square on each 4-bit window of 4096 "
            "sharings of 0 and of a secret of magnitude >= 2^62")
def _sh_uniform(fn, rng):
    parties = randint(rng, 2, 4)
    first = "the first share" if parties == 2 else f"the first {parties - 1} shares"
    for label, secret in _two_secrets(rng).items():
        x = torch.full((64, SHARINGS // 64), secret, dtype=torch.int64)  # 2-D: a pad reused along a row shows
        for k, s in enumerate(_shares(fn, x, parties, rng)):
            problem = _non_uniform(s)
            if problem:
                fail(f"{parties} parties, secret {label} in each of {SHARINGS} entries: share {k}'s {problem}; "
                     f"every share must be uniform over all 2^64 values, or it tells its party something about "
                     f"the secret (draw each entry of {first} independently from the whole ring, not a small "
                     "range)")


@share.prop("any two shares are independent (3 or 4 parties): their sum and difference are uniform too")
def _sh_pairs(fn, rng):
    parties = randint(rng, 3, 4)
    for label, secret in _two_secrets(rng).items():
        x = torch.full((64, SHARINGS // 64), secret, dtype=torch.int64)
        shares = _shares(fn, x, parties, rng)
        for i, j in itertools.combinations(range(parties), 2):
            for op, value in (("difference", shares[i] - shares[j]), ("sum", shares[i] + shares[j])):
                problem = _non_uniform(value)
                if problem:
                    fail(f"{parties} parties, secret {label}, the {op} of shares {i} and {j}: {problem}; with "
                         f"{parties} parties any {parties - 1} shares must be independent and uniform (draw "
                         "every share but the last afresh)")


@share.prop("draws its randomness from generator: the same seed gives the same shares, another seed other shares, "
            "and two sharings from one generator differ")
def _sh_generator(fn, rng):
    x = _secrets(rng, _shape(rng))
    seed = _seed(rng)
    first, again = _shares(fn, x, 3, rng, seed), _shares(fn, x, 3, rng, seed)
    if not all(torch.equal(a, b) for a, b in zip(first, again)):
        fail("two calls with generators seeded alike gave different shares; draw every random value from the "
             "generator argument (torch.randint(..., generator=generator)), not torch's global one")
    g = torch.Generator().manual_seed(seed)
    again_one = [call(fn, x.clone(), 3, g, name="share") for _ in range(2)]
    if torch.equal(_ring_tensor(again_one[0][0], "share: share 0", x.shape),
                   _ring_tensor(again_one[1][0], "share: share 0", x.shape)):
        fail("two sharings drawn from one generator gave the same first share: the pad is reused (the difference "
             "of the last shares of x and x' is x - x'); draw from generator without re-seeding or copying it")
    other = _shares(fn, x, 3, rng, seed + 1)
    if torch.equal(first[0], other[0]):
        fail("generators seeded differently gave the same first share: the shares must be random, drawn from "
             "the generator")


@share.prop("raises a ValueError naming parties when parties < 2")
def _sh_bad(fn, rng):
    x = _secrets(rng, (4,))
    g = torch.Generator().manual_seed(_seed(rng))
    for bad in (1, 0):
        expect_value_error(fn, (x.clone(), bad, g), f"share(x, parties={bad}, generator)",
                           "one share would be the secret itself; sharing needs at least 2 parties", "parties")


reconstruct = SET.question("reconstruct", "reconstruct(shares) -> int64 tensor",
                           forbid=(f"{_MPC}.reconstruct", f"{_MPC}.ring.reconstruct", f"{_CHECKER}._ring_sum",
                                   f"{_CHECKER}._reference_reconstruct"))


def _reference_reconstruct(shares) -> torch.Tensor:
    if len(shares) < 2 or any(s.shape != shares[0].shape for s in shares):
        raise ValueError("shares must hold at least 2 tensors of one shape")
    return _ring_sum(shares)


def _overflowing_sharing(rng: torch.Generator, parties: int, shape) -> tuple:
    """A secret and its shares, the first entry's shares all 2^63 - 1 (their integer sum is beyond int64)."""
    x = _secrets(rng, shape)
    shares = _reference_share(x, parties, rng)
    flat = [s.reshape(-1) for s in shares]
    for s in flat:
        s[0] = INT64_MAX
    x.reshape(-1)[0] = int(_ring_sum([s[:1] for s in flat]))
    return x, [s.reshape(shape) for s in flat]


def _reconstructed(fn, shares: list, shape) -> tuple:
    what = f"reconstruct({len(shares)} shares of shape {shape})"
    return _ring_tensor(call(fn, [s.clone() for s in shares], name="reconstruct"), what, shape), what


@reconstruct.prop("returns an int64 tensor of the shares' shape")
def _re_form(fn, rng):
    shape = _shape(rng)
    _reconstructed(fn, _reference_share(_secrets(rng, shape), 2, rng), shape)


@reconstruct.prop("returns the secret: the shares' sum modulo 2^64 (2 to 5 parties, sums beyond int64 included)")
def _re_value(fn, rng):
    for parties in (2, 3, 4, 5):
        shape = _shape(rng)
        x, shares = _overflowing_sharing(rng, parties, shape)
        got, what = _reconstructed(fn, shares, shape)
        if not torch.equal(got, x):
            bad = int((got != x).sum())
            fail(f"{what} differs from the secret in {bad} of {x.numel()} entries; add the shares as int64 "
                 "tensors (the sum wraps around modulo 2^64), not as Python ints or floats")


@reconstruct.prop("raises a ValueError naming shares when there are fewer than 2 or their shapes differ")
def _re_bad(fn, rng):
    x, shares = _overflowing_sharing(rng, 2, (4,))
    expect_value_error(fn, ([shares[0].clone()],), "reconstruct([one share])",
                       "a single share is not a sharing (at least 2 parties)", "shares")
    other = _uniform_ring((1,), rng)
    expect_value_error(fn, ([shares[0].clone(), other],), "reconstruct([share (4,), share (1,)])",
                       "the shares of one secret have one shape (torch would broadcast (1,) silently)", "shares")


# ---- (b) Beaver multiplication, split by party -------------------------------------------------------------
beaver_open = SET.question("beaver_open", "beaver_open(x_i, y_i, a_i, b_i) -> (e_i, f_i)",
                           forbid=(f"{_CHECKER}._reference_open",))
beaver_close = SET.question("beaver_close", "beaver_close(i, e, f, a_i, b_i, c_i) -> z_i",
                            forbid=(f"{_CHECKER}._reference_close",))


def _reference_open(x_i, y_i, a_i, b_i):
    if a_i.shape != x_i.shape or y_i.shape != x_i.shape or b_i.shape != y_i.shape:
        raise ValueError("y_i, a_i and b_i must have x_i's shape")
    return x_i - a_i, y_i - b_i


def _reference_close(i, e, f, a_i, b_i, c_i):
    if isinstance(i, bool) or not isinstance(i, int) or i < 0:
        raise ValueError(f"i must be a party index >= 0, got {i!r}")
    z = c_i + e * b_i + f * a_i
    return z + e * f if i == 0 else z


def _beaver_alternatives(inst: dict) -> dict:
    """What the typical mistakes compute, each with the right value it must differ from: beaver_close's products
    (against ``x y``) and beaver_open's opened values (against ``x - a`` and ``y - b``)."""
    x, y, a, b, c = inst["x"], inst["y"], inst["a"], inst["b"], inst["c"]
    e, f, n = x - a, y - b, inst["parties"]
    xy = x * y
    return {"e f at every party": (c + e * b + f * a + n * (e * f), xy), "e f at no party": (c + e * b + f * a, xy),
            "- e b - f a": (c - e * b - f * a + e * f, xy), "e a + f b": (c + e * a + f * b + e * f, xy),
            "opened x": (x, e), "opened x + a": (x + a, e), "opened a - x": (a - x, e),
            "opened y": (y, f), "opened y + b": (y + b, f), "opened b - y": (b - y, f)}


def _beaver_instance(rng: torch.Generator, parties: int) -> dict:
    """Secrets x, y, a dealer's triple (a, b, c = a b), all shared among ``parties``; redrawn until every
    alternative of :func:`_beaver_alternatives` differs from the right value in some entry."""
    shape = _shape(rng)
    while True:
        x, y = _secrets(rng, shape), _uniform_ring(shape, rng)
        a, b = _uniform_ring(shape, rng), _uniform_ring(shape, rng)
        inst = {"x": x, "y": y, "a": a, "b": b, "c": a * b, "parties": parties, "shape": shape}
        if all(not torch.equal(wrong, right) for wrong, right in _beaver_alternatives(inst).values()):
            break
    for name in ("x", "y", "a", "b", "c"):
        inst[f"{name}_sh"] = _reference_share(inst[name], parties, rng)
    return inst


def _open_all(fn, inst: dict) -> tuple:
    """Every party's broadcast from ``fn`` (each given only its own shares), and the opened e and f."""
    e_parts, f_parts = [], []
    for i in range(inst["parties"]):
        what = f"beaver_open(party {i}'s shares x_i, y_i, a_i, b_i of shape {inst['shape']})"
        out = call(fn, *(inst[f"{k}_sh"][i].clone() for k in "xyab"), name="beaver_open")
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            fail(f"{what} returned {describe(out)}; expected a pair (e_i, f_i): what party i broadcasts")
        e_parts.append(_ring_tensor(out[0], f"{what}: e_i", inst["shape"]))
        f_parts.append(_ring_tensor(out[1], f"{what}: f_i", inst["shape"]))
    return e_parts, f_parts, _ring_sum(e_parts), _ring_sum(f_parts)


@beaver_open.prop("returns a pair (e_i, f_i) of int64 tensors of the shares' shape")
def _bo_form(fn, rng):
    _open_all(fn, _beaver_instance(rng, 2))


@beaver_open.prop("the opened e = sum_i e_i and f = sum_i f_i are x - a and y - b: every party receives x and y "
                  "masked by the dealer's uniform a and b, nothing else (2 to 4 parties)")
def _bo_masked(fn, rng):
    for parties in (2, randint(rng, 3, 4)):
        inst = _beaver_instance(rng, parties)
        _, _, e, f = _open_all(fn, inst)
        for opened, secret, mask, letter in ((e, "x", "a", "e"), (f, "y", "b", "f")):
            want = inst[secret] - inst[mask]
            if torch.equal(want, opened):
                continue
            if torch.equal(opened, inst[secret]):
                fail(f"the {parties} parties' broadcasts add up to {secret} itself: every party now knows the "
                     f"secret {secret}; broadcast {secret}_i - {mask}_i, so that only {secret} - {mask} is opened")
            if torch.equal(opened, inst[secret] + inst[mask]) or torch.equal(opened, inst[mask] - inst[secret]):
                fail(f"the opened {letter} is {'x + a' if letter == 'e' else 'y + b'} or its mirror, a mask "
                     f"as private as {secret} - {mask}, but not the protocol's: the other parties (the grader) "
                     f"open {letter} = {secret} - {mask} and compute their shares of x y from it; broadcast "
                     f"{secret}_i - {mask}_i")
            fail(f"the opened {letter} = sum_i {letter}_i is not {secret} - {mask} (mod 2^64) with "
                 f"{parties} parties; party i broadcasts {secret}_i - {mask}_i")


@beaver_open.prop("raises a ValueError naming a_i when the triple's share has another shape than x_i")
def _bo_bad(fn, rng):
    inst = _beaver_instance(rng, 2)
    x_i, y_i, a_i, b_i = (inst[f"{k}_sh"][0] for k in "xyab")
    bad = a_i.reshape(-1)[:1].reshape((1,) * a_i.dim()).clone()
    expect_value_error(fn, (x_i.clone(), y_i.clone(), bad, b_i.clone()),
                       f"beaver_open(x_i {tuple(x_i.shape)}, y_i, a_i {tuple(bad.shape)}, b_i)",
                       "a triple is for one shape (torch would broadcast a (1,) tensor silently)", "a_i")


def _close_all(fn, inst: dict) -> torch.Tensor:
    e, f = inst["x"] - inst["a"], inst["y"] - inst["b"]  # opened by the grader, as the protocol states
    parts = []
    for i in range(inst["parties"]):
        what = f"beaver_close({i}, e, f, a_{i}, b_{i}, c_{i}) of shape {inst['shape']}"
        out = call(fn, i, e.clone(), f.clone(), *(inst[f"{k}_sh"][i].clone() for k in "abc"),
                   name="beaver_close")
        parts.append(_ring_tensor(out, what, inst["shape"]))
    return _ring_sum(parts)


def _check_product(fn, inst: dict) -> None:
    z, xy = _close_all(fn, inst), inst["x"] * inst["y"]
    if torch.equal(z, xy):
        return
    n = inst["parties"]
    hints = {"e f at every party": f"e f was added by every party ({n} times); party 0 alone adds it",
             "e f at no party": "the e f term is missing; party 0 (and only it) adds e f",
             "- e b - f a": "the signs of e b_i and f a_i are wrong: x y = (e + a)(f + b) = c + e b + f a + e f",
             "e a + f b": "a and b are swapped: x y = (e + a)(f + b) = c + e b + f a + e f"}
    alternatives = _beaver_alternatives(inst)
    why = next((hints[k] for k in hints if torch.equal(z, alternatives[k][0])),
               "x y = (e + a)(f + b) = c + e b + f a + e f, so party i's share is c_i + e b_i + f a_i, plus e f at "
               "party 0")
    fail(f"with {n} parties the shares z_i add up to x y (mod 2^64) in {int((z == xy).sum())} of {xy.numel()} "
         f"entries only: {why}")


@beaver_close.prop("returns an int64 tensor z_i of the shares' shape")
def _bc_form(fn, rng):
    inst = _beaver_instance(rng, 2)
    _close_all(fn, inst)


@beaver_close.prop("2 parties: the shares z_0 + z_1 reconstruct x y modulo 2^64")
def _bc_two(fn, rng):
    for _ in range(2):
        _check_product(fn, _beaver_instance(rng, 2))


@beaver_close.prop("3 to 5 parties: the shares reconstruct x y modulo 2^64 (e f added once, by party 0)")
def _bc_many(fn, rng):
    for parties in (3, 4, 5):
        _check_product(fn, _beaver_instance(rng, parties))


@beaver_close.prop("raises a ValueError naming i when i is not a party index (negative)")
def _bc_bad(fn, rng):
    inst = _beaver_instance(rng, 2)
    e, f = inst["x"] - inst["a"], inst["y"] - inst["b"]
    bad = -randint(rng, 1, 3)
    args = (bad, e, f, *(inst[f"{k}_sh"][0].clone() for k in "abc"))
    why = "parties are numbered 0, 1, ..., and party 0 adds e f"
    expect_value_error(fn, args, f"beaver_close(i={bad}, ...)", why, "i")
    try:  # expect_value_error looks for the letter i anywhere; the message must name i as a word
        fn(*args)
    except ValueError as err:  # it raised one: expect_value_error failed on anything else
        if not re.search(r"\bi\b", str(err)):
            fail(f"beaver_close(i={bad}, ...) raised a ValueError that does not name i (as a word, e.g. "
                 f"\"i must be >= 0\"): {why}")


# ---- (c) pairwise-mask secure aggregation with dropouts -----------------------------------------------------
mask_update = SET.question("mask_update", "mask_update(i, update, pair_seeds) -> masked int64 tensor",
                           forbid=(f"{_CHECKER}._reference_mask",))
unmask_sum = SET.question("unmask_sum", "unmask_sum(masked, dropped_seeds) -> int64 tensor (the survivors' sum)",
                          forbid=(f"{_CHECKER}._reference_unmask",))


def _reference_mask(i, update, pair_seeds):
    if i in pair_seeds:
        raise ValueError(f"pair_seeds must not hold client {i} itself: a client has no pair with itself")
    masked = update.clone()
    for j, seed in pair_seeds.items():
        mask = prg(seed, update.numel()).reshape(update.shape)
        masked = masked + mask if i < j else masked - mask
    return masked


def _reference_unmask(masked, dropped_seeds):
    if not masked:
        raise ValueError("masked must hold at least one survivor's update")
    total = _ring_sum(masked.values())
    for (i, j), seed in dropped_seeds.items():
        if j in masked or i not in masked:
            raise ValueError(f"dropped_seeds: pair ({i}, {j}) must be (survivor, dropped client)")
        mask = prg(seed, total.numel()).reshape(total.shape)
        total = total - mask if i < j else total + mask
    return total


def _clients(rng: torch.Generator, n: int, size: int, *, large: bool = False) -> dict:
    """``n`` clients' small updates and a symmetric table of pair seeds; with ``large``, every update's first
    entry is an odd value of magnitude in [2^59, 2^60) (sums beyond float64's exact integers, 2^53)."""
    updates = [torch.randint(-UPDATE_BOUND + 1, UPDATE_BOUND, (size,), generator=rng, dtype=torch.int64)
               for _ in range(n)]
    if large:
        for u in updates:
            big = int(torch.randint(2 ** 59, 2 ** 60, (1,), generator=rng)) | 1
            u[0] = big if randint(rng, 0, 1) else -big
    seeds = {}
    for i, j in itertools.combinations(range(n), 2):
        seeds[(i, j)] = seeds[(j, i)] = _seed(rng)
    return {"n": n, "size": size, "updates": updates, "seeds": seeds}


def _pair_seeds(clients: dict, i: int) -> dict:
    return {j: clients["seeds"][(i, j)] for j in range(clients["n"]) if j != i}


def _mask(fn, clients: dict, i: int) -> torch.Tensor:
    what = f"mask_update({i}, update ({clients['size']},), pair_seeds for {clients['n'] - 1} partners)"
    out = call(fn, i, clients["updates"][i].clone(), _pair_seeds(clients, i), name="mask_update")
    return _ring_tensor(out, what, (clients["size"],))


def _dropouts(rng: torch.Generator, n: int) -> list:
    """1 to n - 3 dropped clients, one of them with survivors on both sides (pairs i < j and i > j exist)."""
    while True:
        k = randint(rng, 1, n - 3)
        dropped = sorted(torch.randperm(n, generator=rng)[:k].tolist())
        survivors = [i for i in range(n) if i not in dropped]
        if any(min(survivors) < j < max(survivors) for j in dropped):
            return dropped


def _dropped_seeds(clients: dict, dropped) -> dict:
    return {(i, j): clients["seeds"][(i, j)] for i in range(clients["n"]) if i not in dropped for j in dropped}


@mask_update.prop("returns an int64 tensor of the update's shape")
def _mu_form(fn, rng):
    clients = _clients(rng, randint(rng, 3, 5), randint(rng, 4, 12))
    _mask(fn, clients, randint(rng, 0, clients["n"] - 1))


@mask_update.prop("the masks cancel: the sum of all clients' masked updates is the sum of their updates")
def _mu_cancel(fn, rng):
    clients = _clients(rng, randint(rng, 3, 6), randint(rng, 4, 12))
    masked = [_mask(fn, clients, i) for i in range(clients["n"])]
    if not torch.equal(_ring_sum(masked), _ring_sum(clients["updates"])):
        fail(f"the {clients['n']} masked updates add up to another value than the updates' sum (mod 2^64): the "
             "masks do not cancel; the mask PRG(s_ij) of the pair (i, j) is added by the client with the smaller "
             "index and subtracted by the other")


@mask_update.prop("a masked update alone looks uniform (chi-square on each 4-bit window of 1024 entries): the server "
                  "learns nothing from it")
def _mu_uniform(fn, rng):
    clients = _clients(rng, randint(rng, 3, 5), MASKED_SIZE)
    i = randint(rng, 0, clients["n"] - 1)
    masked = _mask(fn, clients, i)
    if torch.equal(masked, clients["updates"][i]):
        fail(f"client {i}'s masked update is its update: the server sees it in the clear; add the pair masks")
    problem = _non_uniform(masked)
    if problem:
        fail(f"client {i}'s masked update: {problem}; the sum of the pair masks, uniform 64-bit values from "
             "prg(seed, size), must hide every entry")


@mask_update.prop("the server removes a dropped client's masks by the question's convention and gets the "
                  "survivors' sum (1 to n - 3 of n clients drop)")
def _mu_dropouts(fn, rng):
    clients = _clients(rng, randint(rng, 5, 7), randint(rng, 4, 12))
    dropped = _dropouts(rng, clients["n"])
    survivors = [i for i in range(clients["n"]) if i not in dropped]
    masked = {i: _mask(fn, clients, i) for i in survivors}
    got = _reference_unmask(masked, _dropped_seeds(clients, dropped))
    if not torch.equal(got, _ring_sum(clients["updates"][i] for i in survivors)):
        fail(f"clients {dropped} of {clients['n']} dropped out; the server removed their masks with the survivors "
             "by the question's convention (PRG(s_ij) added by the smaller index i < j, subtracted by the larger) "
             "and did not get the survivors' sum: your masks follow another convention")


@mask_update.prop("raises a ValueError naming pair_seeds when it holds the client's own index")
def _mu_bad(fn, rng):
    clients = _clients(rng, 3, 4)
    seeds = _pair_seeds(clients, 1)
    seeds[1] = _seed(rng)
    expect_value_error(fn, (1, clients["updates"][1].clone(), seeds), "mask_update(1, update, pair_seeds with key 1)",
                       "a client has no pair with itself", "pair_seeds")


def _unmask(fn, masked: dict, dropped_seeds: dict, what: str, size: int) -> torch.Tensor:
    out = call(fn, {i: m.clone() for i, m in masked.items()}, dict(dropped_seeds), name="unmask_sum")
    return _ring_tensor(out, what, (size,))


@unmask_sum.prop("returns the sum of all clients' updates when no one drops out (an int64 tensor)")
def _us_all(fn, rng):
    clients = _clients(rng, randint(rng, 3, 6), randint(rng, 4, 12), large=True)
    masked = {i: _reference_mask(i, clients["updates"][i], _pair_seeds(clients, i)) for i in range(clients["n"])}
    got = _unmask(fn, masked, {}, f"unmask_sum({clients['n']} masked updates, no dropouts)", clients["size"])
    if not torch.equal(got, _ring_sum(clients["updates"])):
        fail(f"with no dropouts unmask_sum returned another value than the sum of the {clients['n']} updates; "
             "add the masked updates as int64 tensors: the masks cancel")


@unmask_sum.prop("returns the survivors' sum when 1 to n - 3 of n clients drop out (their masks removed with the "
                 "survivors' seeds, the sign by index order)")
def _us_dropouts(fn, rng):
    for _ in range(2):
        clients = _clients(rng, randint(rng, 5, 7), randint(rng, 4, 12), large=True)
        dropped = _dropouts(rng, clients["n"])
        survivors = [i for i in range(clients["n"]) if i not in dropped]
        masked = {i: _reference_mask(i, clients["updates"][i], _pair_seeds(clients, i)) for i in survivors}
        seeds = _dropped_seeds(clients, dropped)
        got = _unmask(fn, masked, seeds, f"unmask_sum({len(survivors)} masked updates, clients {dropped} dropped)",
                      clients["size"])
        want = _ring_sum(clients["updates"][i] for i in survivors)
        if torch.equal(got, want):
            continue
        total = _ring_sum(masked.values())
        if torch.equal(got, total):
            fail(f"clients {dropped} dropped out and unmask_sum returned the plain sum of the masked updates: the "
                 "survivors' masks with the dropped clients do not cancel; remove each with its seed")
        fail(f"clients {dropped} of {clients['n']} dropped out and unmask_sum did not return the survivors' sum; "
             "survivor i added PRG(s_ij) for a dropped j > i and subtracted it for j < i: undo exactly that")


@unmask_sum.prop("raises a ValueError naming masked when it is empty, and naming dropped_seeds when a pair's "
                 "second client did not drop")
def _us_bad(fn, rng):
    clients = _clients(rng, 4, 4)
    expect_value_error(fn, ({}, {}), "unmask_sum(masked={}, dropped_seeds={})",
                       "there is no survivor to sum", "masked")
    masked = {i: _reference_mask(i, clients["updates"][i], _pair_seeds(clients, i)) for i in (0, 1, 2)}
    seeds = {(0, 3): clients["seeds"][(0, 3)], (1, 3): clients["seeds"][(1, 3)], (2, 3): clients["seeds"][(2, 3)],
             (0, 1): clients["seeds"][(0, 1)]}
    expect_value_error(fn, (masked, seeds), "unmask_sum(masked from 0, 1, 2; dropped_seeds with the pair (0, 1))",
                       "client 1 did not drop out: the masks between survivors cancel, and removing one breaks "
                       "the sum (a server asking for it is probing)", "dropped_seeds")


# ---- (d) statements (conceptual) ---------------------------------------------------------------------------
mpc_statements = SET.question("mpc_statements", "mpc_statements() -> str of letters, e.g. 'ac'")
STATEMENTS = {
    "a": "With additive sharing of x among three parties, any two of them who pool their shares learn x.",
    "b": "In Beaver's multiplication the parties open e = x - a and f = y - b; since the dealer's a and b are "
         "uniform, secret and used once, e and f reveal nothing about x and y. Using the same triple for a second "
         "product x' y' would reveal x - x' to every party.",
    "c": "Semi-honest MPC guarantees a correct result even when one party deviates from the protocol, since every "
         "message it sends is masked.",
    "d": "Secure aggregation as Bonawitz et al. (2017) design it (pairwise masks, self-masks, Shamir shares of "
         "both) shows an honest-but-curious server only the sum of the surviving clients' updates, not any single "
         "update.",
    "e": "Secure aggregation also stops model poisoning: a boosted or backdoored update is hidden in the sum, so it "
         "cannot harm the global model.",
    "f": "Coordinate-wise median, trimmed mean and Krum need the individual updates (Krum their pairwise "
         "distances), so they cannot simply be run on top of secure aggregation, which reveals only the sum.",
    "g": "In federated learning the raw data never leave the clients, so an honest-but-curious server cannot "
         "reconstruct a client's training examples from what it receives.",
    "h": "DP-FedAvg (McMahan et al. 2018) clips each client's update to norm C, adds Gaussian noise of standard "
         "deviation sigma C to the sum of the updates of clients sampled independently with probability q, and "
         "accounts the subsampled Gaussian with sample rate q and one step per round: the guarantee is client-level "
         "(user-level when each client holds one user's data), for adding or removing all the data of one client.",
    "i": "Once an inference has been computed under MPC, the revealed prediction tells the party that receives it "
         "nothing about the model or the other parties' inputs.",
    "j": "In this exercise's simplified protocol (pairwise masks only; the server gets the seeds of a dropped "
         "client's pairs from the survivors), a client that was declared the only dropout but whose masked update "
         "arrives late anyway is exposed: the server holds the seeds of all its pairs and can remove every mask. "
         "Bonawitz et al.'s self-mask b_u, whose shares the server gets only for clients it did not declare "
         "dropped, is what prevents this.",
}
TRUE_STATEMENTS = frozenset("bdfhj")
_WHY_NOT = {
    "a": "additive sharing is n-out-of-n: with three parties, two shares are uniform and independent of x; only "
         "all three together reconstruct it",
    "c": "semi-honest security assumes every party follows the protocol; a party that deviates can change the "
         "result at will (adding a constant to its share shifts the output) — malicious security needs MACs, as "
         "in SPDZ",
    "e": "secure aggregation hides the updates from the server, the poisoned one included; the sum still contains "
         "it, and the server can no longer inspect the individual updates that robust rules need",
    "g": "an update is a function of the data: chapter 9's DLG/iDLG reconstruct a client's examples from a "
         "single-example gradient, and a FedAvg update after one full-batch step is one",
    "i": "MPC protects everything but the output, and the output leaks by itself: membership inference and model "
         "extraction (chapters 8 and 9) work from predictions alone",
}


statement_checks(mpc_statements, "mpc_statements", STATEMENTS, TRUE_STATEMENTS, _WHY_NOT, exact=True,
                 hint="think about which coalitions a sharing protects against, what each protocol opens, whom "
                 "secure aggregation hides updates from, and what the output itself leaks")
