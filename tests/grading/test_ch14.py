"""The chapter-14 checks (the log-perplexity of a canary's secret, exposure from ranks, the zlib ratio and the
ranking of samples by it, what memorisation and its defences mean): every reference solution passes on any seed,
correct answers written differently pass too, and each plausible wrong answer fails, on every one of many seeds,
with a message that says what to fix. No model crosses the wire: the grader hands over the numbers a model gives."""
import math
import textwrap
import zlib

import pytest
import torch

from grading_helpers import (ROOT, assert_blank_scores_nothing, assert_forbidden_names_resolve, assert_mistake_fails,
                             assert_notebook_states, assert_passes_on_seeds, assert_set_runs_quickly, fails_quickly,
                             run_blocked, solution_functions)
from mlsec_kit import lm
from mlsec_kit.grading import get_exercise, run_question
from mlsec_kit.grading.sets import ch14

EXERCISE_ID = "14_language_models"
EXERCISE = get_exercise(EXERCISE_ID)
SOURCE = ROOT / "exercises" / "source" / f"{EXERCISE_ID}.ipynb"
QUESTIONS = ("secret_log_perplexity", "exposure", "zlib_ratio", "zlib_top_k", "lm_statements")
SEEDS = range(1400, 1420)  # the grader draws seeds of its own: a mistake must fail on every one


@pytest.fixture(scope="module")
def solutions() -> dict:
    """The setup cell and the cells defining the functions (not the cells that train a model)."""
    return solution_functions(SOURCE, QUESTIONS)


def _namespace() -> dict:
    return {"torch": torch, "math": math, "zlib": zlib, "lm": lm}


def test_the_set_declares_the_chapter_questions():
    assert tuple(EXERCISE.questions) == QUESTIONS
    assert EXERCISE.title == "Exercises: memorisation in language models" and EXERCISE.chapter == 14
    assert all(3 <= q.max_score <= 7 for q in EXERCISE.questions.values())
    forbid = {name: set(q.forbid) for name, q in EXERCISE.questions.items()}
    assert {"mlsec_kit.lm.exposure_from_rank", "mlsec_kit.lm.rank_of"} <= forbid["exposure"]
    assert "mlsec_kit.lm.zlib_entropy" in forbid["zlib_ratio"] and "mlsec_kit.lm.zlib_entropy" in forbid["zlib_top_k"]
    for name in QUESTIONS[:4]:  # the module's reference helpers answer every question
        assert {f"mlsec_kit.grading.sets.ch14._reference_{q}" for q in QUESTIONS[:4]} <= forbid[name]


def test_the_source_notebook_mentions_its_chapter():
    text = SOURCE.read_text(encoding="utf-8")
    assert "chapter 14" in text.lower() and "mlsec-kit @ git+" in text


# ---- the reference solutions ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", QUESTIONS)
def test_every_solution_passes_every_check_on_many_seeds(solutions, name):
    assert_passes_on_seeds(EXERCISE.questions[name], solutions[name], SEEDS)


@pytest.mark.parametrize("name", QUESTIONS[:4])
def test_the_module_reference_passes_too(name):
    assert_passes_on_seeds(EXERCISE.questions[name], getattr(ch14, f"_reference_{name}"), range(3))


def test_the_whole_set_runs_in_seconds(solutions):
    assert_set_runs_quickly(EXERCISE, solutions, limit=5)


def test_a_blank_notebook_scores_nothing():
    assert_blank_scores_nothing(EXERCISE)


# ---- answers built on the kit: they pass unblocked, and earn nothing of value once the grader blocks them ----
def _kit_exposure(secret_logperp, candidate_logperps):
    if candidate_logperps.numel() == 0 or not bool((candidate_logperps == secret_logperp).any()):
        raise ValueError("candidate_logperps must hold the secret")
    index = int((candidate_logperps == secret_logperp).nonzero()[0])
    rank = lm.rank_of(candidate_logperps, index, ties="average")
    if rank == int(rank):
        return lm.exposure_from_rank(int(rank), candidate_logperps.numel())
    return math.log2(candidate_logperps.numel()) - math.log2(rank)


def _kit_zlib_ratio(log_perplexity_bits, text):
    if log_perplexity_bits < 0:
        raise ValueError("log_perplexity_bits must be >= 0")
    return log_perplexity_bits / lm.zlib_entropy(text)


def _kit_zlib_top_k(log_perplexities, texts, k):
    if not 1 <= k <= len(texts):
        raise ValueError("k must be in [1, len(texts)]")
    ratios = [float(b) / lm.zlib_entropy(t) for b, t in zip(log_perplexities, texts)]
    return sorted(range(len(texts)), key=ratios.__getitem__)[:k]


def _zlib_bits_ratio(log_perplexity_bits, text):
    if log_perplexity_bits < 0:
        raise ValueError("log_perplexity_bits must be >= 0")
    return log_perplexity_bits / ch14._zlib_bits(text)   # the grader's own helper: forbidden too


def test_every_forbidden_name_is_a_kit_function_and_is_blocked_while_grading():
    """The names resolve (a typo would block nothing); answers built on the kit or on the grader's helpers earn full
    marks unblocked, and cannot run at all once the grader blocks the question's names (as it does in the
    submission's process; in this process the grader's own references would be blocked too, so the answers are
    called directly)."""
    from mlsec_kit.grading.runner import _block

    assert_forbidden_names_resolve(EXERCISE)
    forbid = {name: set(q.forbid) for name, q in EXERCISE.questions.items()}
    assert {"mlsec_kit.lm.exposure", "mlsec_kit.lm.exposures"} <= forbid["exposure"]
    assert "mlsec_kit.grading.sets.ch14._zlib_bits" in forbid["zlib_ratio"] & forbid["zlib_top_k"]
    g = torch.Generator().manual_seed(1)
    logprobs, start = ch14._canary_logprobs(g)
    secret, cands = ch14._candidates(g, 3, 500, ties=1)
    bits, texts, k = ch14._top_k_instance(g)
    for name, fn, args in [("exposure", _kit_exposure, (secret, cands)),
                           ("zlib_ratio", _kit_zlib_ratio, (float(bits[0]), texts[0])),
                           ("zlib_ratio", _zlib_bits_ratio, (float(bits[0]), texts[0])),
                           ("zlib_top_k", _kit_zlib_top_k, (bits, texts, k)),
                           ("secret_log_perplexity", ch14._reference_secret_log_perplexity, (logprobs, start)),
                           ("exposure", ch14._reference_exposure, (secret, cands)),
                           ("zlib_top_k", ch14._reference_zlib_top_k, (bits, texts, k))]:
        question = EXERCISE.questions[name]
        assert run_question(question, fn, seed=1).passed, run_question(question, fn, seed=1).report()
        undo = _block(list(question.forbid))
        try:
            with pytest.raises(Exception, match="implement this yourself"):
                fn(*args)
        finally:
            undo()
        fn(*args)  # unblocked again


def test_run_blocked_reports_the_kit_answer_as_forbidden():
    """The shared helper's view: with the names blocked in this process the kit-built answer scores at most the
    bad-input point and the report says to implement it."""
    result = run_blocked(EXERCISE.questions["zlib_ratio"], _kit_zlib_ratio)
    assert result.score <= 1, result.report()


CORRECT_VARIANTS = """
def slp_log2(token_logprobs, secret_start):
    # log2 of the probabilities themselves, in float32: the tolerance allows it
    if not 0 <= secret_start <= len(token_logprobs):
        raise ValueError("secret_start out of range")
    return -torch.log2(token_logprobs.float().exp())[secret_start:].sum().item()

def slp_loop(token_logprobs, secret_start):
    n = len(token_logprobs)
    if secret_start < 0 or secret_start > n:
        raise ValueError(f"secret_start must be in [0, {n}]")
    total = 0.0
    for t in range(secret_start, n):
        total -= float(token_logprobs[t]) / math.log(2)
    return total

def exposure_sorted(secret_logperp, candidate_logperps):
    # the positions (from 1) of the secret's value in the sorted scores: the rank is their mean
    values = torch.sort(candidate_logperps).values
    hits = (values == secret_logperp).nonzero().flatten()
    if len(values) == 0 or len(hits) == 0:
        raise ValueError("candidate_logperps does not hold the secret")
    return math.log2(len(values) / (hits.double().mean().item() + 1))

def exposure_searchsorted(secret_logperp, candidate_logperps):
    c = candidate_logperps
    if c.numel() == 0 or secret_logperp not in c.tolist():
        raise ValueError("candidate_logperps: the secret is not a candidate")
    values, s = torch.sort(c).values, torch.tensor(secret_logperp, dtype=c.dtype)
    first, last = int(torch.searchsorted(values, s)) + 1, int(torch.searchsorted(values, s, right=True))
    return float(torch.log2(torch.tensor(float(c.numel())) / ((first + last) / 2)))

def exposure_float32(secret_logperp, candidate_logperps):
    c = candidate_logperps.float()
    s = torch.tensor(secret_logperp, dtype=torch.float32)
    if c.numel() == 0 or not bool((c == s).any()):
        raise ValueError("candidate_logperps must hold the secret")
    rank = 1 + (c < s).sum().float() + ((c == s).sum().float() - 1) / 2
    return (torch.log2(torch.tensor(float(c.numel()))) - torch.log2(rank)).item()

def top_k_numpy(log_perplexities, texts, k):
    import numpy as np
    if not 1 <= k <= len(texts):
        raise ValueError("k must be in [1, len(texts)]")
    ratios = np.array([float(b) / (8 * len(zlib.compress(t.encode()))) for b, t in zip(log_perplexities, texts)])
    return list(np.argsort(ratios, kind="stable")[:k])      # NumPy ints

def zlib_ratio_level6(log_perplexity_bits, text):
    if log_perplexity_bits < 0:
        raise ValueError("log_perplexity_bits < 0")
    return log_perplexity_bits / len(zlib.compress(bytes(text, "utf-8"), 6)) / 8

def top_k_argsort(log_perplexities, texts, k):
    if not isinstance(k, int) or k < 1 or k > len(texts):
        raise ValueError("k: out of range")
    z = torch.tensor([8.0 * len(zlib.compress(t.encode())) for t in texts], dtype=torch.float64)
    return torch.argsort(log_perplexities / z)[:k]      # a tensor of indices is accepted

def top_k_distinct(log_perplexities, texts, k):
    # the distinct samples ranked, as Carlini et al. 2021 de-duplicate before counting (the texts are distinct)
    if not 1 <= k <= len(texts):
        raise ValueError("k must be in [1, len(texts)]")
    first = {}
    for i, t in enumerate(texts):
        first.setdefault(t, i)
    ratios = {i: float(log_perplexities[i]) / (8 * len(zlib.compress(t.encode("utf-8")))) for t, i in first.items()}
    return sorted(ratios, key=ratios.get)[:k]

def statements_spaced():
    return "a, D; e H"
"""


def test_differently_built_correct_answers_pass():
    """float32 log2 of the probabilities, a loop, ranks from sorting, searchsorted or float32 comparisons, zlib at
    its default level 6 given explicitly, argsort returning a tensor or NumPy ints, letters with separators: full
    marks."""
    namespace = _namespace()
    exec(textwrap.dedent(CORRECT_VARIANTS), namespace)
    for name, fn in [("secret_log_perplexity", "slp_log2"), ("secret_log_perplexity", "slp_loop"),
                     ("exposure", "exposure_sorted"), ("exposure", "exposure_searchsorted"),
                     ("exposure", "exposure_float32"), ("zlib_top_k", "top_k_numpy"),
                     ("zlib_ratio", "zlib_ratio_level6"), ("zlib_top_k", "top_k_argsort"),
                     ("zlib_top_k", "top_k_distinct"),
                     ("lm_statements", "statements_spaced")]:
        assert_passes_on_seeds(EXERCISE.questions[name], namespace[fn], range(6))


# ---- typical mistakes ------------------------------------------------------------------------------------------
_SLP_HEAD = """
    def secret_log_perplexity(token_logprobs, secret_start):
        if not 0 <= secret_start <= len(token_logprobs):
            raise ValueError("secret_start must be in [0, len(token_logprobs)]")
"""
_EXP_HEAD = """
    def exposure(secret_logperp, candidate_logperps):
        c = candidate_logperps
        if c.numel() == 0 or not bool((c == secret_logperp).any()):
            raise ValueError("candidate_logperps must hold the secret")
"""
_ZR_HEAD = """
    def zlib_ratio(log_perplexity_bits, text):
        if log_perplexity_bits < 0:
            raise ValueError("log_perplexity_bits must be >= 0")
"""
_TK_HEAD = """
    def zlib_top_k(log_perplexities, texts, k):
        if not 1 <= k <= len(texts):
            raise ValueError("k must be in [1, len(texts)]")
        z = [8 * len(zlib.compress(t.encode("utf-8"))) for t in texts]
        bits = [float(b) for b in log_perplexities]
"""


def _body(head: str, body: str) -> str:
    return head + textwrap.indent(textwrap.dedent(body).strip("\n"), " " * 8)


SLP_WHOLE = _body(_SLP_HEAD, "return -token_logprobs.sum().item() / math.log(2)   # the whole canary")
SLP_NATS = _body(_SLP_HEAD, "return -token_logprobs[secret_start:].sum().item()   # nats")
SLP_SKIP_FIRST = _body(_SLP_HEAD, "return -token_logprobs[secret_start + 1:].sum().item() / math.log(2)   # BOS at 0")
SLP_ONE_EARLY = _body(_SLP_HEAD, "return -token_logprobs[max(secret_start - 1, 0):].sum().item() / math.log(2)")
SLP_PREFIX = _body(_SLP_HEAD, "return -token_logprobs[:secret_start].sum().item() / math.log(2)")
SLP_MEAN = _body(_SLP_HEAD, "return -token_logprobs[secret_start:].mean().item() / math.log(2)   # per token")
SLP_SIGN = _body(_SLP_HEAD, "return token_logprobs[secret_start:].sum().item() / math.log(2)")
SLP_NO_CHECK = """
    def secret_log_perplexity(token_logprobs, secret_start):
        return -token_logprobs[secret_start:].sum().item() / math.log(2)
"""
SLP_INDEX_ERROR = """
    def secret_log_perplexity(token_logprobs, secret_start):
        total = 0.0
        for t in range(secret_start, len(token_logprobs)):
            total -= token_logprobs[t].item()     # a negative start indexes from the end; beyond: an empty loop
        return total / math.log(2)
"""

EX_RANK0 = _body(_EXP_HEAD, """
rank = int((c < secret_logperp).sum())          # counted from 0
return math.log2(len(c)) - math.log2(rank)""")
EX_RANK0_TORCH = _body(_EXP_HEAD, """
rank = (c < secret_logperp).sum()               # counted from 0: log2(0) = -inf
return (torch.log2(torch.tensor(float(len(c)))) - torch.log2(rank.double())).item()""")
EX_DESC = _body(_EXP_HEAD, """
rank = 1 + int((c > secret_logperp).sum())      # the highest log-perplexity first
return math.log2(len(c)) - math.log2(rank)""")
EX_NATS = _body(_EXP_HEAD, """
rank = 1 + int((c < secret_logperp).sum())
return math.log(len(c)) - math.log(rank)""")
EX_SIZE_MINUS = _body(_EXP_HEAD, """
rank = 1 + int((c < secret_logperp).sum())
return math.log2(len(c) - 1) - math.log2(rank)     # |R| without the secret""")
EX_SIZE_PLUS = _body(_EXP_HEAD, """
rank = 1 + int((c < secret_logperp).sum())
return math.log2(len(c) + 1) - math.log2(rank)     # the secret counted twice""")
EX_TIES_FOR = _body(_EXP_HEAD, """
rank = 1 + int((c < secret_logperp).sum())     # right without ties; ties counted for the secret
return math.log2(len(c)) - math.log2(rank)""")
EX_TIES_FLOORDIV = _body(_EXP_HEAD, """
rank = 1 + int((c < secret_logperp).sum()) + (int((c == secret_logperp).sum()) - 1) // 2   # // for /
return math.log2(len(c)) - math.log2(rank)""")
EX_TIES_CEIL = _body(_EXP_HEAD, """
rank = 1 + int((c < secret_logperp).sum()) + math.ceil((int((c == secret_logperp).sum()) - 1) / 2)
return math.log2(len(c)) - math.log2(rank)""")
EX_TIES_AGAINST = _body(_EXP_HEAD, """
rank = int((c <= secret_logperp).sum())        # right without ties; ties counted against the secret
return math.log2(len(c)) - math.log2(rank)""")
EX_TIES_PLUS1 = _body(_EXP_HEAD, """
rank = 1 + int((c <= secret_logperp).sum())    # the secret's own entry counted as lower
return math.log2(len(c)) - math.log2(rank)""")
EX_UNIQUE = _body(_EXP_HEAD, """
rank = 1 + int((c < secret_logperp).sum())
return math.log2(len(torch.unique(c))) - math.log2(rank)     # |R| as the number of distinct scores""")
EX_LOG_RANK = _body(_EXP_HEAD, """
rank = 1 + int((c < secret_logperp).sum())
return math.log2(rank)""")
EX_NO_CHECK = """
    def exposure(secret_logperp, candidate_logperps):
        c = candidate_logperps
        rank = 1 + int((c < secret_logperp).sum()) + (int((c == secret_logperp).sum()) - 1) / 2
        return math.log2(len(c)) - math.log2(rank)
"""

ZR_INVERTED = _body(_ZR_HEAD, "return 8 * len(zlib.compress(text.encode('utf-8'))) / log_perplexity_bits")
ZR_BYTES = _body(_ZR_HEAD, "return log_perplexity_bits / len(zlib.compress(text.encode('utf-8')))")
ZR_UNCOMPRESSED = _body(_ZR_HEAD, "return log_perplexity_bits / (8 * len(text))")
ZR_UNCOMPRESSED_BYTES = _body(_ZR_HEAD, "return log_perplexity_bits / (8 * len(text.encode('utf-8')))")
ZR_NO_CHECK = """
    def zlib_ratio(log_perplexity_bits, text):
        return log_perplexity_bits / (8 * len(zlib.compress(text.encode("utf-8"))))
"""

TK_HIGHEST = _body(_TK_HEAD, "return sorted(range(len(texts)), key=lambda i: -bits[i] / z[i])[:k]")
TK_BITS = _body(_TK_HEAD, "return sorted(range(len(texts)), key=lambda i: bits[i])[:k]   # perplexity alone")
TK_PER_BYTE = _body(_TK_HEAD, "return sorted(range(len(texts)), key=lambda i: bits[i] / len(texts[i].encode()))[:k]")
TK_INVERTED = _body(_TK_HEAD, "return sorted(range(len(texts)), key=lambda i: z[i] / bits[i])[:k]")
TK_SORTED = _body(_TK_HEAD, "return sorted(sorted(range(len(texts)), key=lambda i: bits[i] / z[i])[:k])")
TK_TEXTS = _body(_TK_HEAD, "return [texts[i] for i in sorted(range(len(texts)), key=lambda i: bits[i] / z[i])[:k]]")
TK_NO_CHECK = """
    def zlib_top_k(log_perplexities, texts, k):
        z = [8 * len(zlib.compress(t.encode("utf-8"))) for t in texts]
        return sorted(range(len(texts)), key=lambda i: float(log_perplexities[i]) / z[i])[:k]
"""

WRONG_EVERY_SEED = [
    ("secret_log_perplexity", SLP_WHOLE, "summed over the whole canary"),
    ("secret_log_perplexity", SLP_NATS, "natural log"),
    ("secret_log_perplexity", SLP_SKIP_FIRST, "the secret's first token dropped"),
    ("secret_log_perplexity", SLP_ONE_EARLY, "one prefix token added"),
    ("secret_log_perplexity", SLP_PREFIX, "the prefix instead of the secret"),
    ("secret_log_perplexity", SLP_MEAN, "the mean per token"),
    ("secret_log_perplexity", SLP_SIGN, "the sign forgotten"),
    ("secret_log_perplexity", SLP_NO_CHECK, "no check of secret_start"),
    ("secret_log_perplexity", SLP_INDEX_ERROR, "a loop without a check"),
    ("exposure", EX_RANK0, "rank counted from 0"),
    ("exposure", EX_RANK0_TORCH, "rank counted from 0 in torch (inf)"),
    ("exposure", EX_DESC, "ranked by descending log-perplexity"),
    ("exposure", EX_NATS, "natural logs"),
    ("exposure", EX_SIZE_MINUS, "log2 |R| over |R| - 1"),
    ("exposure", EX_SIZE_PLUS, "log2 |R| over |R| + 1"),
    ("exposure", EX_TIES_FOR, "ties counted for the secret"),
    ("exposure", EX_TIES_AGAINST, "ties counted against the secret"),
    ("exposure", EX_TIES_FLOORDIV, "half the ties rounded down (//)"),
    ("exposure", EX_TIES_CEIL, "half the ties rounded up"),
    ("exposure", EX_TIES_PLUS1, "1 + the number of lower-or-equal"),
    ("exposure", EX_UNIQUE, "|R| as the number of distinct scores"),
    ("exposure", EX_LOG_RANK, "log2 rank returned"),
    ("exposure", EX_NO_CHECK, "no check of candidate_logperps"),
    ("zlib_ratio", ZR_INVERTED, "the ratio inverted"),
    ("zlib_ratio", ZR_BYTES, "zlib length in bytes"),
    ("zlib_ratio", ZR_UNCOMPRESSED, "uncompressed length in characters"),
    ("zlib_ratio", ZR_UNCOMPRESSED_BYTES, "uncompressed length in bytes"),
    ("zlib_ratio", ZR_NO_CHECK, "no check of log_perplexity_bits"),
    ("zlib_top_k", TK_HIGHEST, "highest ratio first"),
    ("zlib_top_k", TK_BITS, "ranked by the model's bits alone"),
    ("zlib_top_k", TK_PER_BYTE, "ranked by bits per byte"),
    ("zlib_top_k", TK_INVERTED, "ranked by the inverted ratio"),
    ("zlib_top_k", TK_SORTED, "indices sorted"),
    ("zlib_top_k", TK_TEXTS, "texts instead of indices"),
    ("zlib_top_k", TK_NO_CHECK, "no check of k"),
]


_fails = fails_quickly  # the same verdict as run_question, in less time (grading_helpers)


@pytest.mark.parametrize("name, code, label", WRONG_EVERY_SEED, ids=[w[2] for w in WRONG_EVERY_SEED])
def test_a_wrong_answer_fails_on_every_seed(name, code, label):
    namespace = _namespace()
    exec(textwrap.dedent(code), namespace)
    passed = [seed for seed in SEEDS if not _fails(EXERCISE.questions[name], namespace[name], seed)]
    assert not passed, f"{label!r} passes on seeds {passed}"


def test_the_fast_verdict_is_run_questions(solutions):
    """``_fails`` agrees with ``run_question`` on right and wrong answers."""
    for name, code in [("secret_log_perplexity", SLP_NATS), ("exposure", EX_TIES_AGAINST),
                       ("zlib_ratio", ZR_BYTES), ("zlib_top_k", TK_SORTED)]:
        question = EXERCISE.questions[name]
        namespace = _namespace()
        exec(textwrap.dedent(code), namespace)
        for seed in range(2):
            assert _fails(question, namespace[name], seed) == (not run_question(question, namespace[name],
                                                                                seed=seed).passed)
            assert not _fails(question, solutions[name], seed)


# (question, code, failing properties (description prefixes; None: at least one), a phrase of the message)
MISTAKES = [
    ("secret_log_perplexity", SLP_WHOLE, ["is -sum log2 p", "counts every token"], "the whole canary"),
    ("secret_log_perplexity", SLP_NATS, ["is -sum log2 p", "counts every token"], "divide the natural-log sum"),
    ("secret_log_perplexity", SLP_SKIP_FIRST, ["is -sum log2 p", "counts every token"], "first token is missing"),
    ("secret_log_perplexity", SLP_ONE_EARLY, ["is -sum log2 p", "counts every token"], "one prefix token too many"),
    ("secret_log_perplexity", SLP_MEAN, ["is -sum log2 p", "counts every token"], "mean per token"),
    ("secret_log_perplexity", SLP_SIGN, ["is -sum log2 p", "counts every token"], "the sign"),
    ("secret_log_perplexity", SLP_NO_CHECK, ["raises a ValueError"], "negative index"),
    ("exposure", EX_RANK0, None, "math domain error"),
    ("exposure", EX_RANK0_TORCH, None, "rank counts from 1"),
    ("exposure", EX_DESC, None, "ascending log-perplexity"),
    ("exposure", EX_NATS, None, "nats"),
    ("exposure", EX_SIZE_MINUS, None, "not one fewer"),
    ("exposure", EX_SIZE_PLUS, None, "not one more"),
    ("exposure", EX_TIES_FOR, ["counts ties half", "gives a model that scores"], "maximum exposure"),
    ("exposure", EX_TIES_AGAINST, ["counts ties half", "gives a model that scores"], "Definition 3"),
    ("exposure", EX_TIES_FLOORDIV, ["counts ties half", "gives a model that scores"], "no // or rounding"),
    ("exposure", EX_TIES_CEIL, ["counts ties half", "gives a model that scores"], "no rounding up"),
    ("exposure", EX_LOG_RANK, None, "that is log2 of the rank"),
    ("exposure", EX_NO_CHECK, ["raises a ValueError"], "candidate_logperps"),
    ("zlib_ratio", ZR_INVERTED, ["is the model's bits", "is right on"], "inverted"),
    ("zlib_ratio", ZR_BYTES, ["is the model's bits", "is right on"], "8 bits per compressed byte"),
    ("zlib_ratio", ZR_UNCOMPRESSED, ["is the model's bits", "is right on"], "compress the text with zlib"),
    ("zlib_ratio", ZR_NO_CHECK, ["raises a ValueError"], "log_perplexity_bits"),
    ("zlib_top_k", TK_HIGHEST, ["returns the k indices", "ranks every sample"], "highest ratios first"),
    ("zlib_top_k", TK_BITS, ["returns the k indices", "ranks every sample"], "merely repetitive"),
    ("zlib_top_k", TK_PER_BYTE, ["returns the k indices", "ranks every sample"], "bits per byte"),
    ("zlib_top_k", TK_SORTED, ["returns the k indices", "ranks every sample"], "indices are sorted"),
    ("zlib_top_k", TK_TEXTS, ["returns the k indices", "ranks every sample"], "int indices"),
    ("zlib_top_k", TK_NO_CHECK, ["raises a ValueError"], "naming k"),
]


@pytest.mark.parametrize("name, code, failing, message", MISTAKES,
                         ids=[f"{m[0]}-{i}" for i, m in enumerate(MISTAKES)])
def test_a_mistake_fails_the_property_written_for_it(name, code, failing, message):
    assert_mistake_fails(EXERCISE.questions[name], code, name, _namespace(), failing, message)


@pytest.mark.parametrize("answer", ["", "abcdefgh", "ade", "adeh", "adehb", "adehf", "adehg", "bcfg", "xyz"])
def test_statements_earn_full_marks_only_when_exact(answer):
    result = run_question(EXERCISE.questions["lm_statements"], lambda: answer, seed=0)
    assert result.passed == (answer == "adeh"), result.report()
    if answer == "adehb":  # complete but not sound: the message says why b is false
        assert [p.passed for p in result.properties] == [False, True, False]
        assert "about 1 bit" in result.properties[2].message


def test_the_notebook_states_the_statements_the_checks_grade():
    """Each statement's text in the source notebook is the one ``lm_statements`` grades (Markdown aside)."""
    assert_notebook_states(SOURCE, ch14.STATEMENTS)


# ---- the instances keep the promises the every-seed guarantees rest on ----------------------------------------
def test_the_instances_keep_their_promises():
    for seed in range(200):
        rng = torch.Generator().manual_seed(seed)
        logprobs, start = ch14._canary_logprobs(rng)
        assert start >= 3 and len(logprobs) - start >= 3 and logprobs.dtype == torch.float64
        assert bool((-logprobs / math.log(2) >= 0.15).all()) and bool((logprobs < 0).all())
        size = int(torch.randint(64, 4097, (1,), generator=rng))
        for rank, ties in ((1, 0), (5, 0), (3, 2)):
            secret, cands = ch14._candidates(rng, rank, size, ties=ties)
            assert cands.numel() == size and 1 + int((cands < secret).sum()) == rank
            assert int((cands == secret).sum()) == 1 + ties
        for text in ch14._records(rng, 12)[:4] + [ch14._repetitive(rng)]:
            bits, _ = ch14._zlib_instance(rng, text)
            ratio = bits / ch14._zlib_bits(text)
            assert 0.02 <= ratio <= 0.7 or 1.5 <= ratio <= 3.5
        assert ch14._zlib_text_ok(ch14._repetitive(rng))
        bits, texts, k = ch14._top_k_instance(rng)
        assert len(set(texts)) == len(texts)  # one text, one score: a student may de-duplicate samples first
        right = ch14._reference_zlib_top_k(bits, texts, k)
        assert right != sorted(right) and all(w != right for w in ch14._wrong_orders(bits, texts, k).values())
    for template in ch14._NON_ASCII:
        for n in (1000, 123456, 999999):
            text = template.format(n=n)
            assert len(text) != len(text.encode("utf-8")) and ch14._zlib_text_ok(text)


def test_the_reference_agrees_with_the_kit():
    """The reference exposure is log2 |R| minus log2 of the kit's rank_of with ties="average" (the kit's exposure's
    rule; exposure_from_rank of the default rank_of without ties); the grader's zlib bits are the kit's
    zlib_entropy; the reference secret log-perplexity of a model's per-token log-probabilities is the kit's
    log_perplexity from start = len(prefix) (an untrained tiny model: no training needed)."""
    g = torch.Generator().manual_seed(0)
    for rank, ties in ((1, 0), (2, 0), (7, 0), (300, 0), (1, 1), (4, 3)):
        secret, cands = ch14._candidates(g, rank, 1000, ties=ties)
        index = int((cands == secret).nonzero()[0])
        assert ch14._reference_exposure(secret, cands) == pytest.approx(
            math.log2(1000) - math.log2(lm.rank_of(cands, index, ties="average")), abs=1e-12)
        if not ties:
            assert ch14._reference_exposure(secret, cands) == pytest.approx(
                lm.exposure_from_rank(lm.rank_of(cands, index), 1000), abs=1e-12)
    # a model that scores every candidate alike: about 1 bit, as the kit's exposure gives a constant model
    assert ch14._reference_exposure(3.0, torch.full((1000,), 3.0, dtype=torch.float64)) == pytest.approx(
        math.log2(2000 / 1001))
    for text in ch14._records(g, 5) + ["zoë", "ha" * 20, ""]:
        assert ch14._zlib_bits(text) == lm.zlib_entropy(text)
    torch.manual_seed(0)
    model = lm.tiny_lm().eval()
    canary = lm.Canary(template="my pin is {secret}", secret="4821")
    ids = torch.tensor([[lm.BOS] + list(canary.text.encode("utf-8"))])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids[:, :-1]).double(), -1).gather(-1, ids[:, 1:, None])[0, :, 0]
    start = len(canary.prefix.encode("utf-8"))
    kit = float(lm.log_perplexity(model, [canary.text], start=start)[0])
    assert ch14._reference_secret_log_perplexity(logp, start) == pytest.approx(kit, rel=1e-6)
    assert ch14._reference_secret_log_perplexity(logp, 0) > kit + 1  # the prefix costs bits too
