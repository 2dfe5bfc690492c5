"""The chapter-13 checks (secret sharing over Z_2^64, Beaver multiplication split by party, pairwise-mask secure
aggregation with dropouts, who learns what): every reference solution passes on any seed, correct answers written
differently pass too, and each plausible wrong answer fails, on every one of many seeds, with a message that says
what to fix. The grader plays the dealer and the network: a party's function gets only that party's values."""
import itertools
import textwrap

import pytest
import torch

from grading_helpers import (ROOT, assert_blank_scores_nothing, assert_fails_on_every_seed,
                             assert_forbidden_names_resolve, assert_mistake_fails, assert_notebook_states,
                             assert_passes_on_seeds, assert_set_runs_quickly, fails_quickly, run_blocked,
                             solution_functions)
from mlsec_kit.crypto import mpc
from mlsec_kit.grading import get_exercise, run_question
from mlsec_kit.grading.sets import ch13

EXERCISE_ID = "13_secure_computation"
EXERCISE = get_exercise(EXERCISE_ID)
SOURCE = ROOT / "exercises" / "source" / f"{EXERCISE_ID}.ipynb"
QUESTIONS = ("share", "reconstruct", "beaver_open", "beaver_close", "mask_update", "unmask_sum", "mpc_statements")
SEEDS = range(1300, 1320)  # the grader draws seeds of its own: a mistake must fail on every one


@pytest.fixture(scope="module")
def solutions() -> dict:
    """The setup cell and the cells defining the functions (not the federated-updates cell)."""
    return solution_functions(SOURCE, QUESTIONS)


def _namespace() -> dict:
    return {"torch": torch, "prg": ch13.prg, "mpc": mpc}


def test_the_set_declares_the_chapter_questions():
    assert tuple(EXERCISE.questions) == QUESTIONS
    assert EXERCISE.title == "Exercises: secure computation and federated learning" and EXERCISE.chapter == 13
    assert EXERCISE.extras == ()
    assert all(2 <= q.max_score <= 7 for q in EXERCISE.questions.values())
    forbid = {name: set(q.forbid) for name, q in EXERCISE.questions.items()}
    assert {"mlsec_kit.crypto.mpc.share", "mlsec_kit.crypto.mpc.random_ring",
            "mlsec_kit.grading.sets.ch13.prg"} <= forbid["share"]
    assert "mlsec_kit.crypto.mpc.reconstruct" in forbid["reconstruct"]
    # prg is the PRG the aggregation questions give: allowed there
    assert not any("prg" in name for name in forbid["mask_update"] | forbid["unmask_sum"])


def test_the_source_notebook_mentions_its_chapter():
    text = SOURCE.read_text(encoding="utf-8")
    assert "chapter 13" in text.lower() and "mlsec-kit @ git+" in text


# ---- the grader is the network: each party's function sees only that party's values ---------------------------
def test_each_party_gets_only_its_own_shares_and_the_opened_values():
    inst_seen, close_seen = [], []

    def spy_open(x_i, y_i, a_i, b_i):
        inst_seen.append((x_i, y_i, a_i, b_i))
        if a_i.shape != x_i.shape:
            raise ValueError("a_i: wrong shape")
        return x_i - a_i, y_i - b_i

    def spy_close(i, e, f, a_i, b_i, c_i):
        close_seen.append((i, e, f))
        if i < 0:
            raise ValueError("i < 0")
        z = c_i + e * b_i + f * a_i
        return z + e * f if i == 0 else z

    assert run_question(EXERCISE.questions["beaver_open"], spy_open, seed=0).passed
    assert run_question(EXERCISE.questions["beaver_close"], spy_close, seed=0).passed
    assert all(all(type(t) is torch.Tensor and t.dtype == torch.int64 for t in args) for args in inst_seen)
    # every call of a product gets the same opened e and f, and the parties are numbered 0, 1, ...
    assert {i for i, _, _ in close_seen} >= {0, 1, 2}
    rng = torch.Generator().manual_seed(3)
    inst = ch13._beaver_instance(rng, 3)
    for k in "xyabc":  # no share of a party is another's, and none is the secret (a one-time pad)
        assert ch13._ring_sum(inst[f"{k}_sh"]).equal(inst[k])
        assert not any(torch.equal(s, inst[k]) for s in inst[f"{k}_sh"])


# ---- answers built on the kit: they pass unblocked, and earn nothing of value once the grader blocks them ----
def _kit_share(x, parties, generator):
    return mpc.share(x, parties=parties, generator=generator)


def _kit_random_ring_share(x, parties, generator):
    if parties < 2:
        raise ValueError("parties must be >= 2")
    shares = [mpc.random_ring(x.shape, generator=generator) for _ in range(parties - 1)]
    return shares + [x - sum(shares)]


def _prg_share(x, parties, generator):
    if parties < 2:
        raise ValueError("parties must be >= 2")
    shares = [ch13.prg(int(torch.randint(0, 2**62, (1,), generator=generator)), x.numel()).reshape(x.shape)
              for _ in range(parties - 1)]
    return shares + [x - sum(shares)]


def _kit_reconstruct(shares):
    return mpc.reconstruct(list(shares))


def test_every_forbidden_name_is_a_kit_function_and_is_blocked_while_grading():
    """The names resolve (a typo would block nothing), and the kit's own answers lose the value checks."""
    assert_forbidden_names_resolve(EXERCISE)
    for name, fn in [("share", _kit_share), ("share", _kit_random_ring_share), ("share", _prg_share),
                     ("reconstruct", _kit_reconstruct)]:
        question = EXERCISE.questions[name]
        assert run_question(question, fn, seed=1).passed, run_question(question, fn, seed=1).report()
        result = run_blocked(question, fn)
        # only the checks of bad input, which never reach the kit, may still pass
        assert result.score <= 1, result.report()


# ---- the reference solutions ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", QUESTIONS)
def test_every_solution_passes_every_check_on_many_seeds(solutions, name):
    assert_passes_on_seeds(EXERCISE.questions[name], solutions[name], SEEDS)


def test_the_statistical_checks_pass_the_reference_on_300_seeds(solutions):
    """The chi-square properties (a p-value below 1e-8 in any window fails) on the reference, property by
    property: a correct answer fails with probability below 1e-5 per run, so 300 seeds all pass."""
    props = {(q, p.description) : p for q in ("share", "mask_update")
             for p in EXERCISE.questions[q].properties if "uniform" in p.description}
    assert len(props) == 3
    for (q, _), prop in props.items():
        for seed in range(300):
            prop.fn(solutions[q], torch.Generator().manual_seed(seed))


def test_the_whole_set_runs_in_seconds(solutions):
    assert_set_runs_quickly(EXERCISE, solutions, limit=5)


def test_a_blank_notebook_scores_nothing():
    assert_blank_scores_nothing(EXERCISE)


CORRECT_VARIANTS = """
def share_halves(x, parties, generator):
    # two 32-bit halves joined, the random shares placed after the computed one
    if parties < 2:
        raise ValueError(f"parties must be at least 2, got {parties}")
    rand = []
    for _ in range(parties - 1):
        hi = torch.randint(-2**31, 2**31, x.shape, generator=generator)
        lo = torch.randint(0, 2**32, x.shape, generator=generator)
        rand.append((hi << 32) | lo)
    return (x - torch.stack(rand).sum(0), *rand)

def reconstruct_python_ints(shares):
    # Python ints, reduced modulo 2^64 and read back in two's complement: right
    if len(shares) < 2 or len({tuple(s.shape) for s in shares}) > 1:
        raise ValueError("shares: need 2 or more of one shape")
    flat = [s.reshape(-1).tolist() for s in shares]
    total = [sum(col) % 2**64 for col in zip(*flat)]
    signed = [v - 2**64 if v >= 2**63 else v for v in total]
    return torch.tensor(signed, dtype=torch.int64).reshape(shares[0].shape)

def reconstruct_stack(shares):
    if len(shares) < 2:
        raise ValueError("shares: at least two")
    try:
        return torch.stack(list(shares)).sum(0)
    except RuntimeError as err:
        raise ValueError(f"shares of different shapes: {err}") from None

def beaver_open_tuple(x_i, y_i, a_i, b_i):
    if x_i.shape != a_i.shape:
        raise ValueError("a_i: shape differs from x_i")
    return [x_i.sub(a_i), y_i.sub(b_i)]

def beaver_close_last(i, e, f, a_i, b_i, c_i):
    # e f added by party 1 (every check has at least 2 parties): exactly one party adds it
    if i < 0:
        raise ValueError("i must be >= 0")
    return c_i + e * b_i + f * a_i + (e * f if i == 1 else torch.zeros_like(e))

def mask_update_sorted(i, update, pair_seeds):
    if i in pair_seeds:
        raise ValueError("pair_seeds holds i")
    up = sum((prg(s, len(update)) for j, s in pair_seeds.items() if j > i), torch.zeros_like(update))
    down = sum((prg(s, len(update)) for j, s in pair_seeds.items() if j < i), torch.zeros_like(update))
    return update + up - down

def unmask_sum_stack(masked, dropped_seeds):
    if len(masked) == 0:
        raise ValueError("masked: empty")
    if any(j in masked for _, j in dropped_seeds):
        raise ValueError("dropped_seeds: a pair with a survivor")
    total = torch.stack(list(masked.values())).sum(0)
    size = total.numel()
    fix = [(prg(s, size) if i > j else -prg(s, size)) for (i, j), s in dropped_seeds.items()]
    return total + (torch.stack(fix).sum(0) if fix else 0)

def statements_spaced():
    return "b, D; f h J"
"""


def test_differently_built_correct_answers_pass():
    """Shares from two 32-bit halves (the random ones last), a reconstruction in Python ints read back in two's
    complement, e f added by party 1, masks summed per direction, letters with separators: full marks."""
    namespace = _namespace()
    exec(textwrap.dedent(CORRECT_VARIANTS), namespace)
    for name, fn in [("share", "share_halves"), ("reconstruct", "reconstruct_python_ints"),
                     ("reconstruct", "reconstruct_stack"), ("beaver_open", "beaver_open_tuple"),
                     ("beaver_close", "beaver_close_last"), ("mask_update", "mask_update_sorted"),
                     ("unmask_sum", "unmask_sum_stack"), ("mpc_statements", "statements_spaced")]:
        assert_passes_on_seeds(EXERCISE.questions[name], namespace[fn], range(6))


# ---- typical mistakes ------------------------------------------------------------------------------------------
_SHARE_HEAD = """
    def share(x, parties, generator):
        if parties < 2:
            raise ValueError("parties must be >= 2")
        full = lambda: torch.randint(-2**63, 2**63 - 1, x.shape, generator=generator)
"""


def _share(body: str) -> str:
    return _SHARE_HEAD + textwrap.indent(textwrap.dedent(body).strip("\n"), " " * 8)


SH_SMALL = _share("""
r = [torch.randint(0, 1000, x.shape, generator=generator) for _ in range(parties - 1)]
return [x - sum(r)] + r     # the secret minus a small random value""")
SH_SMALL_SIGNED = _share("""
r = [torch.randint(-2**20, 2**20, x.shape, generator=generator) for _ in range(parties - 1)]
return r + [x - sum(r)]""")
SH_32 = _share("""
r = [torch.randint(0, 2**32, x.shape, generator=generator) for _ in range(parties - 1)]
return r + [x - sum(r)]""")
SH_63 = _share("""
r = [torch.randint(0, 2**63 - 1, x.shape, generator=generator) for _ in range(parties - 1)]
return r + [x - sum(r)]""")
SH_LOW31 = _share("""
def ring():
    hi = torch.randint(-2**31, 2**31, x.shape, generator=generator)
    return (hi << 32) | torch.randint(0, 2**31, x.shape, generator=generator)   # bit 31 never set
r = [ring() for _ in range(parties - 1)]
return r + [x - sum(r)]""")
SH_SIGNED_LOW = _share("""
def ring():
    hi = torch.randint(-2**31, 2**31, x.shape, generator=generator)
    return (hi << 32) | torch.randint(-2**31, 2**31, x.shape, generator=generator)   # a negative low half
r = [ring() for _ in range(parties - 1)]
return r + [x - sum(r)]""")
SH_HALVES_REPEAT = _share("""
def ring():
    lo = torch.randint(0, 2**32, x.shape, generator=generator)
    return (lo << 32) | lo            # one 32-bit draw in both halves: 2^32 of the 2^64 values
r = [ring() for _ in range(parties - 1)]
return r + [x - sum(r)]""")
SH_HALVES_PRODUCT = _share("""
r = [torch.randint(0, 2**32, x.shape, generator=generator) * (2**32 + 1) for _ in range(parties - 1)]
return r + [x - sum(r)]""")
SH_RESEED = _share("""
generator.manual_seed(generator.initial_seed())      # "for reproducibility": every call reuses the pad
r = [full() for _ in range(parties - 1)]
return r + [x - sum(r)]""")
SH_COPY_GENERATOR = _share("""
g = torch.Generator().manual_seed(generator.initial_seed())   # a copy: the caller's generator never advances
r = [torch.randint(-2**63, 2**63 - 1, x.shape, generator=g) for _ in range(parties - 1)]
return r + [x - sum(r)]""")
SH_ROW_PAD = _share("""
r = [torch.randint(-2**63, 2**63 - 1, tuple(x.shape[:-1]) + (1,), generator=generator).expand(x.shape)
     for _ in range(parties - 1)]                     # one pad per row
return r + [x - sum(r)]""")
SH_LAST_SECRET = _share("return [full() for _ in range(parties - 1)] + [x.clone()]")
SH_BROADCAST = _share("""
r = [torch.randint(-2**63, 2**63 - 1, (1,), generator=generator).expand(x.shape) for _ in range(parties - 1)]
return r + [x - sum(r)]""")
SH_REUSED = _share("""
r = full()
return [r] * (parties - 1) + [x - (parties - 1) * r]""")
SH_GLOBAL = _share("""
r = [torch.randint(-2**63, 2**63 - 1, x.shape) for _ in range(parties - 1)]
return r + [x - sum(r)]""")
SH_FLOAT = _share("""
r = [torch.rand(x.shape, generator=generator, dtype=torch.float64) * 2.0**64 for _ in range(parties - 1)]
return r + [x.double() - sum(r)]""")
SH_ONE_PARTY = """
    def share(x, parties, generator):
        r = [torch.randint(-2**63, 2**63 - 1, x.shape, generator=generator) for _ in range(parties - 1)]
        return r + [x - sum(r, torch.zeros_like(x))]
"""

_RECON_HEAD = """
    def reconstruct(shares):
        if len(shares) < 2 or len({tuple(s.shape) for s in shares}) > 1:
            raise ValueError("shares: need 2 or more of one shape")
"""


def _recon(body: str) -> str:
    return _RECON_HEAD + textwrap.indent(textwrap.dedent(body).strip("\n"), " " * 8)


RE_PYINT = _recon("""
flat = [s.reshape(-1).tolist() for s in shares]
return torch.tensor([sum(col) for col in zip(*flat)]).reshape(shares[0].shape)""")
RE_PYINT_MOD = _recon("""
flat = [s.reshape(-1).tolist() for s in shares]
return torch.tensor([sum(col) % 2**64 for col in zip(*flat)]).reshape(shares[0].shape)""")
RE_FLOAT = _recon("return torch.stack(shares).double().sum(0).long()")
RE_LAST = _recon("return shares[-1].clone()")
RE_DIFF = _recon("return shares[0] - shares[1]")
RE_NO_CHECK = """
    def reconstruct(shares):
        return sum(shares[1:], shares[0])
"""

_OPEN_HEAD = """
    def beaver_open(x_i, y_i, a_i, b_i):
        if a_i.shape != x_i.shape:
            raise ValueError("a_i must have x_i's shape")
"""


def _open(body: str) -> str:
    return _OPEN_HEAD + textwrap.indent(textwrap.dedent(body).strip("\n"), " " * 8)


BO_SHARES = _open("return x_i.clone(), y_i.clone()     # broadcasts the shares: reveals x and y")
BO_PLUS = _open("return x_i + a_i, y_i + b_i")
BO_MIRROR = _open("return a_i - x_i, b_i - y_i")
BO_X_ONLY = _open("return x_i.clone(), y_i - b_i")
BO_DIM_CHECK = """
    def beaver_open(x_i, y_i, a_i, b_i):
        if a_i.dim() != x_i.dim():
            raise ValueError("a_i must have x_i's number of dimensions")
        return x_i - a_i, y_i - b_i
"""
BO_NO_CHECK = """
    def beaver_open(x_i, y_i, a_i, b_i):
        return x_i - a_i, y_i - b_i
"""

_CLOSE_HEAD = """
    def beaver_close(i, e, f, a_i, b_i, c_i):
        if i < 0:
            raise ValueError("i must be >= 0")
"""


def _close(body: str) -> str:
    return _CLOSE_HEAD + textwrap.indent(textwrap.dedent(body).strip("\n"), " " * 8)


BC_EVERY = _close("return c_i + e * b_i + f * a_i + e * f")
BC_NONE = _close("return c_i + e * b_i + f * a_i")
BC_SIGN = _close("return c_i - e * b_i - f * a_i + (e * f if i == 0 else 0)")
BC_SWAP = _close("return c_i + e * a_i + f * b_i + (e * f if i == 0 else 0)")
BC_MIRROR = _close("return c_i - e * b_i - f * a_i + (e * f if i == 0 else 0)")  # the close of e = a - x
BC_MOD4 = _close("return c_i + e * b_i + f * a_i + (e * f if i % 4 == 0 else 0)   # parties 0 and 4 both")
BC_MESSAGE = """
    def beaver_close(i, e, f, a_i, b_i, c_i):
        if i < 0:
            raise ValueError("a party index is never negative")
        return c_i + e * b_i + f * a_i + (e * f if i == 0 else 0)
"""
BC_NO_CHECK = """
    def beaver_close(i, e, f, a_i, b_i, c_i):
        return c_i + e * b_i + f * a_i + (e * f if i == 0 else 0)
"""

_MASK_HEAD = """
    def mask_update(i, update, pair_seeds):
        if i in pair_seeds:
            raise ValueError("pair_seeds must not hold i")
        masked = update.clone()
"""


def _mask(body: str) -> str:
    return _MASK_HEAD + textwrap.indent(textwrap.dedent(body).strip("\n"), " " * 8)


MU_NONE = _mask("return masked")
MU_BOTH = _mask("""
for j, s in pair_seeds.items():
    masked = masked + prg(s, len(update))
return masked""")
MU_REVERSED = _mask("""
for j, s in pair_seeds.items():
    masked = masked - prg(s, len(update)) if i < j else masked + prg(s, len(update))
return masked""")
MU_ONLY_UP = _mask("""
for j, s in pair_seeds.items():
    if i < j:
        masked = masked + prg(s, len(update))
return masked""")
MU_OWN_SEED = _mask("""
for j, s in pair_seeds.items():
    masked = masked + prg(s + i, len(update)) if i < j else masked - prg(s + i, len(update))
return masked""")
MU_NO_CHECK = """
    def mask_update(i, update, pair_seeds):
        masked = update.clone()
        for j, s in pair_seeds.items():
            masked = masked + prg(s, len(update)) if i < j else masked - prg(s, len(update))
        return masked
"""

_UNMASK_HEAD = """
    def unmask_sum(masked, dropped_seeds):
        if not masked:
            raise ValueError("masked is empty")
        if any(j in masked for _, j in dropped_seeds):
            raise ValueError("dropped_seeds: a pair with a survivor")
        total = sum(masked.values())
"""


def _unmask(body: str) -> str:
    return _UNMASK_HEAD + textwrap.indent(textwrap.dedent(body).strip("\n"), " " * 8)


US_IGNORE = _unmask("return total")
US_SIGN = _unmask("""
for (i, j), s in dropped_seeds.items():
    total = total + prg(s, total.numel()) if i < j else total - prg(s, total.numel())
return total""")
US_ALWAYS_SUB = _unmask("""
for (i, j), s in dropped_seeds.items():
    total = total - prg(s, total.numel())
return total""")
US_ALWAYS_ADD = _unmask("""
for (i, j), s in dropped_seeds.items():
    total = total + prg(s, total.numel())
return total""")
US_FLOAT = _unmask("""
total = torch.stack([m.double() for m in masked.values()]).sum(0)
for (i, j), s in dropped_seeds.items():
    total = total - prg(s, total.numel()).double() if i < j else total + prg(s, total.numel()).double()
return total.long()""")
US_FLOAT_END = _unmask("""
for (i, j), s in dropped_seeds.items():
    total = total - prg(s, total.numel()) if i < j else total + prg(s, total.numel())
return total.float().long()""")
US_DOUBLE_END = _unmask("""
for (i, j), s in dropped_seeds.items():
    total = total - prg(s, total.numel()) if i < j else total + prg(s, total.numel())
return total.double().long()""")
US_NO_CHECK = """
    def unmask_sum(masked, dropped_seeds):
        total = sum(masked.values(), torch.zeros(1, dtype=torch.int64))
        for (i, j), s in dropped_seeds.items():
            total = total - prg(s, total.numel()) if i < j else total + prg(s, total.numel())
        return total
"""

# (question, code, label): each fails on every seed
WRONG_EVERY_SEED = [
    ("share", SH_SMALL, "the secret minus a small random value"),
    ("share", SH_SMALL_SIGNED, "small signed random shares, the computed one last"),
    ("share", SH_32, "shares drawn in [0, 2^32)"),
    ("share", SH_63, "shares drawn in [0, 2^63)"),
    ("share", SH_LOW31, "halves joined, the low one in [0, 2^31)"),
    ("share", SH_SIGNED_LOW, "halves joined, the low one signed"),
    ("share", SH_HALVES_REPEAT, "one 32-bit draw in both halves"),
    ("share", SH_HALVES_PRODUCT, "one 32-bit draw times 2^32 + 1"),
    ("share", SH_RESEED, "the generator re-seeded at each call"),
    ("share", SH_COPY_GENERATOR, "a copy of the generator"),
    ("share", SH_ROW_PAD, "one pad per row"),
    ("share", SH_LAST_SECRET, "the last share is the secret"),
    ("share", SH_BROADCAST, "one random value per share, broadcast to every entry"),
    ("share", SH_REUSED, "one random value reused for every share but the last"),
    ("share", SH_GLOBAL, "torch's global generator instead of generator"),
    ("share", SH_FLOAT, "float shares"),
    ("share", SH_ONE_PARTY, "parties = 1 accepted"),
    ("reconstruct", RE_PYINT, "a Python-int sum without the wrap-around"),
    ("reconstruct", RE_PYINT_MOD, "a Python-int sum modulo 2^64 left unsigned"),
    ("reconstruct", RE_FLOAT, "a float64 sum"),
    ("reconstruct", RE_LAST, "the last share"),
    ("reconstruct", RE_DIFF, "the difference of two shares"),
    ("reconstruct", RE_NO_CHECK, "no check of the shares (one share, broadcast shapes)"),
    ("beaver_open", BO_SHARES, "broadcasting x_i and y_i"),
    ("beaver_open", BO_PLUS, "x_i + a_i"),
    ("beaver_open", BO_MIRROR, "the mirror a_i - x_i"),
    ("beaver_open", BO_X_ONLY, "x_i unmasked, y_i masked"),
    ("beaver_open", BO_NO_CHECK, "no shape check"),
    ("beaver_open", BO_DIM_CHECK, "a check of the number of dimensions only"),
    ("beaver_close", BC_EVERY, "e f at every party"),
    ("beaver_close", BC_NONE, "e f at no party"),
    ("beaver_close", BC_SIGN, "- e b_i - f a_i"),
    ("beaver_close", BC_SWAP, "a and b swapped"),
    ("beaver_close", BC_MOD4, "e f at parties 0 and 4"),
    ("beaver_close", BC_MESSAGE, "a ValueError that does not name i"),
    ("beaver_close", BC_NO_CHECK, "no check of i"),
    ("mask_update", MU_NONE, "no mask"),
    ("mask_update", MU_BOTH, "both members of a pair add the mask"),
    ("mask_update", MU_REVERSED, "the signs reversed (added by the larger index)"),
    ("mask_update", MU_ONLY_UP, "only the masks with larger partners"),
    ("mask_update", MU_OWN_SEED, "a seed of its own (s + i)"),
    ("mask_update", MU_NO_CHECK, "no check of pair_seeds"),
    ("unmask_sum", US_IGNORE, "the dropped clients' masks ignored"),
    ("unmask_sum", US_SIGN, "the wrong sign on the removal"),
    ("unmask_sum", US_ALWAYS_SUB, "always subtracting"),
    ("unmask_sum", US_ALWAYS_ADD, "always adding"),
    ("unmask_sum", US_FLOAT, "a float64 sum"),
    ("unmask_sum", US_FLOAT_END, "a right int64 sum returned through float32"),
    ("unmask_sum", US_DOUBLE_END, "a right int64 sum returned through float64"),
    ("unmask_sum", US_NO_CHECK, "no check of masked and dropped_seeds"),
]


_fails = fails_quickly  # the same verdict as run_question, in less time (grading_helpers)


@pytest.mark.parametrize("name, code, label", WRONG_EVERY_SEED, ids=[w[2] for w in WRONG_EVERY_SEED])
def test_a_wrong_answer_fails_on_every_seed(name, code, label):
    namespace = _namespace()
    exec(textwrap.dedent(code), namespace)
    passed = [seed for seed in SEEDS if not _fails(EXERCISE.questions[name], namespace[name], seed)]
    assert not passed, f"{label!r} passes on seeds {passed}"


def test_the_fast_verdict_is_run_questions(solutions):
    """``_fails`` agrees with ``run_question`` (and the shared helper) on right and wrong answers."""
    for name, code in [("share", SH_REUSED), ("beaver_close", BC_EVERY), ("unmask_sum", US_ALWAYS_SUB),
                       ("mask_update", MU_REVERSED)]:
        question = EXERCISE.questions[name]
        namespace = _namespace()
        exec(textwrap.dedent(code), namespace)
        for seed in range(2):
            assert _fails(question, namespace[name], seed) == (not run_question(question, namespace[name],
                                                                                seed=seed).passed)
            assert not _fails(question, solutions[name], seed)
        assert_fails_on_every_seed(question, code, name, _namespace(), range(2), name)


# (question, code, failing properties (description prefixes), a phrase of the message)
MISTAKES = [
    ("share", SH_SMALL, ["every share is uniform", "any two shares"], "are not uniform"),
    ("share", SH_LAST_SECRET, ["the shares add up", "every share is uniform"], "add up"),
    ("share", SH_REUSED, None, "difference of shares"),  # with 3 parties the last share 2 r fails alone too
    ("share", SH_LOW31, ["every share is uniform", "any two shares"], "bits 28-31"),
    ("share", SH_GLOBAL, ["draws its randomness"], "global"),
    ("share", SH_RESEED, ["draws its randomness"], "reuse"),
    ("share", SH_HALVES_REPEAT, ["every share is uniform", "any two shares"], "repeat or depend on bits 0-31"),
    ("share", SH_ONE_PARTY, ["raises a ValueError"], "parties"),
    ("reconstruct", RE_FLOAT, ["returns the secret"], "not as Python ints or floats"),
    ("beaver_open", BO_SHARES, ["the opened e"], "every party now knows the secret x"),
    ("beaver_open", BO_MIRROR, ["the opened e"], "not the protocol's"),
    ("beaver_close", BC_EVERY, ["2 parties", "3 to 5 parties"], "party 0 alone adds it"),
    ("beaver_close", BC_NONE, ["2 parties", "3 to 5 parties"], "the e f term is missing"),
    ("beaver_close", BC_SIGN, ["2 parties", "3 to 5 parties"], "signs"),
    ("beaver_close", BC_SWAP, ["2 parties", "3 to 5 parties"], "swapped"),
    ("mask_update", MU_NONE, ["a masked update alone", "the server removes"], "in the clear"),
    ("mask_update", MU_BOTH, ["the masks cancel", "the server removes"], "do not cancel"),
    ("mask_update", MU_REVERSED, ["the server removes"], "another convention"),
    ("unmask_sum", US_IGNORE, ["returns the survivors' sum"], "do not cancel"),
    ("unmask_sum", US_SIGN, ["returns the survivors' sum"], "undo exactly that"),
]


@pytest.mark.parametrize("name, code, failing, message", MISTAKES,
                         ids=[f"{m[0]}-{i}" for i, m in enumerate(MISTAKES)])
def test_a_mistake_fails_the_property_written_for_it(name, code, failing, message):
    assert_mistake_fails(EXERCISE.questions[name], code, name, _namespace(), failing, message)


def test_the_mirror_convention_is_private_and_right_when_every_party_runs_it():
    """Why the mirror ``e = a - x`` fails ``beaver_open``: not because it leaks or computes a wrong product when
    every party runs it (it does not), but because it does not interoperate with parties that run the stated
    protocol. Shown here with the grader's instance: all parties mirrored give x y; one mirrored party does not."""
    namespace = _namespace()
    exec(textwrap.dedent(BO_MIRROR), namespace)
    exec(textwrap.dedent(BC_MIRROR), namespace)
    inst = ch13._beaver_instance(torch.Generator().manual_seed(5), 3)
    opened = [namespace["beaver_open"](*(inst[f"{k}_sh"][i] for k in "xyab")) for i in range(3)]
    e, f = sum(o[0] for o in opened), sum(o[1] for o in opened)
    assert torch.equal(e, inst["a"] - inst["x"])
    z = sum(namespace["beaver_close"](i, e, f, *(inst[f"{k}_sh"][i] for k in "abc")) for i in range(3))
    assert torch.equal(z, inst["x"] * inst["y"])
    mixed = [ch13._reference_open(*(inst[f"{k}_sh"][i] for k in "xyab")) for i in range(2)] + opened[2:]
    e_mixed = sum(o[0] for o in mixed)
    assert not torch.equal(e_mixed, inst["x"] - inst["a"]) and not torch.equal(e_mixed, inst["a"] - inst["x"])


@pytest.mark.parametrize("answer", ["", "abcdefghij", "bdf", "bdfh", "bdfhj", "bdfhja", "bdfhjc", "xyz"])
def test_statements_earn_full_marks_only_when_exact(answer):
    result = run_question(EXERCISE.questions["mpc_statements"], lambda: answer, seed=0)
    assert result.passed == (answer == "bdfhj"), result.report()
    if answer == "bdfhjc":  # complete but not sound: the message says why c is false
        assert [p.passed for p in result.properties] == [False, True, False]
        assert "semi-honest" in result.properties[2].message


# ---- the instances keep the promises the every-seed guarantees rest on ----------------------------------------
def test_the_instances_keep_their_promises():
    for seed in range(200):
        rng = torch.Generator().manual_seed(seed)
        x = ch13._secrets(rng, ch13._shape(rng))
        assert int(x.reshape(-1)[0]) == ch13.INT64_MIN and int(x.reshape(-1)[-1]) == ch13.INT64_MAX
        for parties in (2, 5):
            secret, shares = ch13._overflowing_sharing(rng, parties, (4,))
            assert torch.equal(ch13._ring_sum(shares), secret)
            assert sum(int(s[0]) for s in shares) > ch13.INT64_MAX  # a Python-int sum leaves int64
        big = [v for k, v in ch13._two_secrets(rng).items() if v != 0]
        assert len(big) == 1 and abs(big[0]) >= 2 ** 62
        for parties in (2, 3, 5):
            inst = ch13._beaver_instance(rng, parties)
            assert all(not torch.equal(w, r) for w, r in ch13._beaver_alternatives(inst).values())
            for k in "xyabc":
                assert torch.equal(ch13._ring_sum(inst[f"{k}_sh"]), inst[k])
        n = int(torch.randint(5, 8, (1,), generator=rng))
        dropped = ch13._dropouts(rng, n)
        survivors = [i for i in range(n) if i not in dropped]
        assert 1 <= len(dropped) <= n - 3 and len(survivors) >= 3
        pairs = ch13._dropped_seeds(ch13._clients(rng, n, 4), dropped)
        assert any(i < j for i, j in pairs) and any(i > j for i, j in pairs)
        assert all(i in survivors and j in dropped for i, j in pairs)


def test_the_chi_square_window_test_separates_uniform_from_blatant():
    """The uniform window's p-value is spread over (0, 1); a window with all its mass in one bin (a small share),
    or on half the bins (the lowest bit fixed), has a p-value below 1e-300."""
    g = torch.Generator().manual_seed(0)
    ps = [ch13._window_p_value(ch13._uniform_ring((4096,), g), shift) for shift, _ in ch13.WINDOWS for _ in range(30)]
    assert min(ps) > 1e-4 and max(ps) < 1 and 0.3 < sum(ps) / len(ps) < 0.7
    small = torch.randint(0, 1000, (4096,), generator=g)
    assert ch13._window_p_value(small, 60) < 1e-300
    even = ch13._uniform_ring((4096,), g) * 2
    assert ch13._window_p_value(even, 0) < 1e-300
    assert ch13._non_uniform(ch13._uniform_ring((1024,), g)) == ""


def test_prg_is_deterministic_uniform_and_checks_its_input():
    assert torch.equal(ch13.prg(7, 16), ch13.prg(7, 16)) and not torch.equal(ch13.prg(7, 16), ch13.prg(8, 16))
    assert ch13.prg(3, 0).shape == (0,) and ch13.prg(3, 5).dtype == torch.int64
    assert ch13._non_uniform(ch13.prg(11, 4096)) == ""
    for bad in (-1, 2 ** 63, 1.5, True):
        with pytest.raises(ValueError, match="seed"):
            ch13.prg(bad, 3)
    with pytest.raises(ValueError, match="size"):
        ch13.prg(1, -1)


def test_the_reference_agrees_with_the_kit():
    """The reference sharing reconstructs with the kit's reconstruct, and the kit's Beaver product on a Network
    gives the same ring product as the reference's open and close on the same secrets."""
    g = torch.Generator().manual_seed(0)
    x = ch13._secrets(g, (6,))
    assert torch.equal(mpc.reconstruct(ch13._reference_share(x, 3, g)), x)
    net = mpc.Network(2, generator=torch.Generator().manual_seed(1))
    a, b = torch.randint(-1000, 1000, (5,), generator=g), torch.randint(-1000, 1000, (5,), generator=g)
    product = mpc.reconstruct(net.shares(mpc.beaver_product(net.share(a, encoded=True),
                                                            net.share(b, encoded=True))))
    inst = {"x": a, "y": b}
    triple_a, triple_b = ch13._uniform_ring((5,), g), ch13._uniform_ring((5,), g)
    shares = {k: ch13._reference_share(v, 2, g) for k, v in
              {"x": a, "y": b, "a": triple_a, "b": triple_b, "c": triple_a * triple_b}.items()}
    opened = [ch13._reference_open(*(shares[k][i] for k in "xyab")) for i in range(2)]
    e, f = opened[0][0] + opened[1][0], opened[0][1] + opened[1][1]
    z = sum(ch13._reference_close(i, e, f, *(shares[k][i] for k in "abc")) for i in range(2))
    assert torch.equal(z, product) and torch.equal(z, inst["x"] * inst["y"])


def test_the_notebook_states_the_statements_the_checks_grade():
    """Each statement's text in the source notebook is the one ``mpc_statements`` grades (Markdown aside)."""
    assert_notebook_states(SOURCE, ch13.STATEMENTS)


def test_every_pair_of_clients_shares_one_seed():
    clients = ch13._clients(torch.Generator().manual_seed(0), 5, 3)
    for i, j in itertools.permutations(range(5), 2):
        assert clients["seeds"][(i, j)] == clients["seeds"][(j, i)]
    assert len({clients["seeds"][(i, j)] for i, j in itertools.combinations(range(5), 2)}) == 10
