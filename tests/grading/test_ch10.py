"""The chapter-10 checks: every reference solution passes on many seeds, each typical mistake fails the
property written for it with a message that says what to fix, and both notebooks run in a kernel."""
import importlib
import math
import textwrap

import pytest
import torch

from grading_helpers import assert_mistake_fails, assert_passes_on_seeds, assert_set_runs_quickly, ROOT, exec_notebook_code, read
from mlsec_kit.grading import get_exercise, run_question
from mlsec_kit.grading.core import Question

EXERCISE_ID = "10_differential_privacy"
SOURCE = ROOT / "exercises" / "source" / f"{EXERCISE_ID}.ipynb"
STUDENT = ROOT / "exercises" / f"{EXERCISE_ID}.ipynb"
QUESTIONS = ("randomized_response", "rr_estimate", "sensitivity", "laplace_mean", "sequential_composition",
             "advanced_composition")
SEEDS = range(20_000, 20_000 + 20)
EXERCISE = get_exercise(EXERCISE_ID)


@pytest.fixture(scope="module")
def solutions() -> dict:
    """The source notebook's namespace after running it here (its own self-check cell included)."""
    return exec_notebook_code(read(SOURCE))


def test_the_set_declares_the_chapter_questions():
    assert tuple(EXERCISE.questions) == QUESTIONS
    assert EXERCISE.title == "Exercises: differential privacy" and EXERCISE.chapter == 10
    assert all(3 <= q.max_score <= 5 for q in EXERCISE.questions.values())
    # every question names the kit functions that would answer it, so the grader can block them
    assert all(q.forbid and all(f.startswith("mlsec_kit.dp.") for f in q.forbid) for q in EXERCISE.questions.values())
    for q in EXERCISE.questions.values():  # and each name resolves to a real kit function or class
        for dotted in q.forbid:
            module, _, attr = dotted.rpartition(".")
            assert callable(getattr(importlib.import_module(module), attr)), dotted


@pytest.mark.parametrize("name", QUESTIONS)
def test_every_solution_passes_every_check_on_many_seeds(solutions, name):
    assert_passes_on_seeds(EXERCISE.questions[name], solutions[name], SEEDS)


def test_the_whole_set_runs_in_seconds(solutions):
    assert_set_runs_quickly(EXERCISE, solutions, limit=20)


MISTAKES = [
    ("randomized_response", "truth and lie swapped", """
        def randomized_response(bits, epsilon, generator):
            p = math.exp(epsilon) / (1 + math.exp(epsilon))
            keep = torch.rand(bits.shape, generator=generator, dtype=torch.float64) >= p
            return torch.where(keep, bits, 1 - bits)""", ["keeps each bit", "lies symmetrically"], "swapped"),
    ("randomized_response", "p = eps / (1 + eps)", """
        def randomized_response(bits, epsilon, generator):
            keep = torch.rand(bits.shape, generator=generator) < epsilon / (1 + epsilon)
            return torch.where(keep, bits, 1 - bits)""", ["keeps each bit", "lies symmetrically"], "eps / (1 + eps)"),
    ("randomized_response", "global randomness", """
        def randomized_response(bits, epsilon, generator):
            p = math.exp(epsilon) / (1 + math.exp(epsilon))
            keep = torch.rand(bits.shape) < p
            return torch.where(keep, bits, 1 - bits)""", ["draws its randomness"], "generator"),
    ("randomized_response", "lies always say 1", """
        def randomized_response(bits, epsilon, generator):
            p = math.exp(epsilon) / (1 + math.exp(epsilon))
            keep = torch.rand(bits.shape, generator=generator) < p
            return torch.where(keep, bits, torch.ones_like(bits))""", None, "reports are 1"),
    ("rr_estimate", "raw fraction", """
        def rr_estimate(reports, epsilon):
            return reports.double().mean().item()""", ["inverts", "is unbiased"], "raw fraction"),
    ("rr_estimate", "clipped", """
        def rr_estimate(reports, epsilon):
            p = math.exp(epsilon) / (1 + math.exp(epsilon))
            return min(1.0, max(0.0, ((reports.double().mean() - (1 - p)) / (2 * p - 1)).item()))""",
     None, "do not clip"),
    ("rr_estimate", "a tensor", """
        def rr_estimate(reports, epsilon):
            p = math.exp(epsilon) / (1 + math.exp(epsilon))
            return (reports.double().mean() - (1 - p)) / (2 * p - 1)""", ["returns a Python float"], ".item()"),
    ("laplace_mean", "no clipping", """
        def laplace_mean(x, lower, upper, epsilon, generator):
            e = torch.empty(2, dtype=torch.float64).exponential_(generator=generator)
            return (x.mean() + (upper - lower) / (len(x) * epsilon) * (e[0] - e[1])).item()""",
     ["clips x", "empirical privacy loss"], "without clipping"),
    ("laplace_mean", "sensitivity without n", """
        def laplace_mean(x, lower, upper, epsilon, generator):
            e = torch.empty(2, dtype=torch.float64).exponential_(generator=generator)
            return (x.clamp(lower, upper).mean() + (upper - lower) / epsilon * (e[0] - e[1])).item()""",
     ["adds Laplace noise"], "divide by n too"),
    ("laplace_mean", "too little noise", """
        def laplace_mean(x, lower, upper, epsilon, generator):
            e = torch.empty(2, dtype=torch.float64).exponential_(generator=generator)
            return (x.clamp(lower, upper).mean() + 1 / (len(x) * epsilon) * (e[0] - e[1])).item()""",
     None, "at least"),
    ("laplace_mean", "Gaussian noise", """
        def laplace_mean(x, lower, upper, epsilon, generator):
            b = (upper - lower) / (len(x) * epsilon)
            return (x.clamp(lower, upper).mean() + b * torch.randn((), generator=generator, dtype=torch.float64)).item()""",
     None, "Gaussian"),
    ("sensitivity", "histogram 1 under replace", """
        def sensitivity(query, neighbours, lower, upper, n):
            if query == "sum":
                return float(max(abs(lower), abs(upper)) if neighbours == "add_remove" else upper - lower)
            if query == "mean":
                return (upper - lower) / n
            return 1.0""", ["histogram"], "two bins change"),
    ("sensitivity", "count 2 under replace", """
        def sensitivity(query, neighbours, lower, upper, n):
            if query == "sum":
                return float(max(abs(lower), abs(upper)) if neighbours == "add_remove" else upper - lower)
            if query == "mean":
                return (upper - lower) / n
            return 1.0 if neighbours == "add_remove" else 2.0""", ["count"], "not both"),
    ("sensitivity", "sum: upper instead of max(|lower|, |upper|)", """
        def sensitivity(query, neighbours, lower, upper, n):
            if query == "sum":
                return float(upper if neighbours == "add_remove" else upper - lower)
            if query == "mean":
                return (upper - lower) / n
            return 1.0 if query == "count" or neighbours == "add_remove" else 2.0""", ["clipped sum"], "|lower|"),
    ("sensitivity", "the relations swapped for the sum", """
        def sensitivity(query, neighbours, lower, upper, n):
            if query == "sum":
                return float(max(abs(lower), abs(upper)) if neighbours == "replace" else upper - lower)
            if query == "mean":
                return (upper - lower) / n
            return 1.0 if query == "count" or neighbours == "add_remove" else 2.0""", ["clipped sum"], "replace-one"),
    ("sensitivity", "mean without n", """
        def sensitivity(query, neighbours, lower, upper, n):
            if query == "sum":
                return float(max(abs(lower), abs(upper)) if neighbours == "add_remove" else upper - lower)
            if query == "mean":
                return float(upper - lower)
            return 1.0 if query == "count" or neighbours == "add_remove" else 2.0""", ["clipped mean"], "divide by n"),
    ("sequential_composition", "parallel instead", """
        def sequential_composition(budgets):
            return max(e for e, _ in budgets), max(d for _, d in budgets)""", ["adds up"], "parallel"),
    ("advanced_composition", "missing second term", """
        def advanced_composition(epsilon, delta, k, delta_prime):
            return epsilon * math.sqrt(2 * k * math.log(1 / delta_prime)), k * delta + delta_prime""",
     ["epsilon is"], "is missing"),
    ("advanced_composition", "delta forgets delta_prime", """
        def advanced_composition(epsilon, delta, k, delta_prime):
            eps = epsilon * math.sqrt(2 * k * math.log(1 / delta_prime)) + k * epsilon * math.expm1(epsilon)
            return eps, k * delta""", ["delta is"], "k * delta + delta'"),
]


@pytest.mark.parametrize("name, label, code, failing, message", MISTAKES, ids=[m[1] for m in MISTAKES])
def test_each_mistake_fails_its_property(name, label, code, failing, message):
    assert_mistake_fails(EXERCISE.questions[name], code, name, {"torch": torch, "math": math}, failing, message)


# ---- mistakes that passed before and must now fail on every seed the grader may draw ------------------------
RR_FIXED_FLIPS = """
    def randomized_response(bits, epsilon, generator):
        # right marginals, no privacy: exactly round(n (1 - p)) entries flipped
        p = math.exp(epsilon) / (1 + math.exp(epsilon))
        flat = bits.flatten().clone()
        k = round(flat.numel() * (1 - p))
        idx = torch.randperm(flat.numel(), generator=generator)[:k]
        flat[idx] = 1 - flat[idx]
        return flat.reshape(bits.shape)"""
LM_LOCAL_SENSITIVITY = """
    def laplace_mean(x, lower, upper, epsilon, generator):
        c = x.double().clamp(lower, upper)
        sensitivity = (c.max() - c.min()).item() / len(x)   # the data's own range: local sensitivity
        e = torch.empty(2, dtype=torch.float64).exponential_(generator=generator)
        return (c.mean() + sensitivity / epsilon * (e[0] - e[1])).item()"""
LM_NO_GENERATOR = """
    def laplace_mean(x, lower, upper, epsilon, generator):
        e = torch.empty(2, dtype=torch.float64).exponential_()
        return (x.double().clamp(lower, upper).mean() + (upper - lower) / (len(x) * epsilon) * (e[0] - e[1])).item()"""
LM_TOO_LITTLE = """
    def laplace_mean(x, lower, upper, epsilon, generator):
        e = torch.empty(2, dtype=torch.float64).exponential_(generator=generator)
        b = 0.8 * (upper - lower) / (len(x) * epsilon)   # 20% too little noise: epsilon is really 1.25 epsilon
        return (x.double().clamp(lower, upper).mean() + b * (e[0] - e[1])).item()"""
LM_N_PLUS_ONE = """
    def laplace_mean(x, lower, upper, epsilon, generator):
        e = torch.empty(2, dtype=torch.float64).exponential_(generator=generator)
        b = (upper - lower) / ((len(x) + 1) * epsilon)   # the sensitivity of a mean of n + 1 values
        return (x.double().clamp(lower, upper).mean() + b * (e[0] - e[1])).item()"""
LM_SEVEN_PERCENT_SHORT = """
    def laplace_mean(x, lower, upper, epsilon, generator):
        e = torch.empty(2, dtype=torch.float64).exponential_(generator=generator)
        b = 0.93 * (upper - lower) / (len(x) * epsilon)   # 7% too little noise
        return (x.double().clamp(lower, upper).mean() + b * (e[0] - e[1])).item()"""
LM_MAX_ABS = """
    def laplace_mean(x, lower, upper, epsilon, generator):
        e = torch.empty(2, dtype=torch.float64).exponential_(generator=generator)
        b = max(abs(lower), abs(upper)) / (len(x) * epsilon)   # the add/remove sum's sensitivity over n
        return (x.double().clamp(lower, upper).mean() + b * (e[0] - e[1])).item()"""
ADV_OR_SEQUENTIAL = """
    def advanced_composition(epsilon, delta, k, delta_prime):
        adv = epsilon * math.sqrt(2 * k * math.log(1 / delta_prime)) + k * epsilon * math.expm1(epsilon)
        return (adv, k * delta + delta_prime) if adv < k * epsilon else (k * epsilon, k * delta)"""


def _student(code: str, name: str):
    namespace = {"torch": torch, "math": math}
    exec(textwrap.dedent(code), namespace)
    return namespace[name]


def _only(question, prefix: str) -> Question:
    """The question reduced to its property whose description starts with ``prefix``."""
    props = [p for p in question.properties if p.description.startswith(prefix)]
    assert len(props) == 1, prefix
    single = Question(question.exercise, question.name, question.signature)
    single.properties = tuple(props)
    return single


@pytest.mark.parametrize("name, code, prefix, message", [
    ("randomized_response", RR_FIXED_FLIPS, "is epsilon-DP for the joint report", "fixed number"),
    ("laplace_mean", LM_LOCAL_SENSITIVITY, "its noise comes from the generator", "not the data"),
    ("laplace_mean", LM_NO_GENERATOR, "its noise comes from the generator", "seeded alike"),
    ("laplace_mean", LM_TOO_LITTLE, "adds Laplace noise", "too little noise"),
    ("laplace_mean", LM_N_PLUS_ONE, "adds Laplace noise", "too little noise"),
    ("laplace_mean", LM_SEVEN_PERCENT_SHORT, "adds Laplace noise", "too little noise"),
    ("laplace_mean", LM_MAX_ABS, "adds Laplace noise", "too little noise"),
], ids=["rr exactly round(n(1-p)) flips", "local sensitivity", "ignores the generator", "20% too little noise",
        "sensitivity over n + 1", "7% too little noise", "max(|lower|, |upper|) / n"])
def test_a_wrong_answer_fails_its_property_on_every_seed(name, code, prefix, message):
    question = _only(EXERCISE.questions[name], prefix)
    fn = _student(code, name)
    for seed in SEEDS:
        result = run_question(question, fn, seed=seed)
        assert not result.passed, (seed, result.report())
        assert message in result.properties[0].message, result.report()


def test_fixed_flips_pass_every_marginal_check_so_only_the_joint_audit_catches_them():
    result = run_question(EXERCISE.questions["randomized_response"], _student(RR_FIXED_FLIPS, "randomized_response"),
                          seed=5)
    assert [p.passed for p in result.properties] == [True, True, True, True, False], result.report()


@pytest.mark.parametrize("prefix", ["clipped sum", "count", "histogram", "clipped mean"])
def test_each_sensitivity_mistake_fails_on_every_seed(prefix):
    question = _only(EXERCISE.questions["sensitivity"], prefix)
    for name, label, code, failing, message in MISTAKES:
        if name == "sensitivity" and failing == [prefix]:
            fn = _student(code, name)
            assert all(not run_question(question, fn, seed=seed).passed for seed in SEEDS), label


def test_the_better_of_advanced_and_sequential_composition_is_accepted_on_every_seed():
    assert_passes_on_seeds(EXERCISE.questions["advanced_composition"], _student(ADV_OR_SEQUENTIAL,
                                                                                "advanced_composition"), SEEDS)


# Executing the student and source notebooks is covered for every set by test_grading_notebooks.py.
