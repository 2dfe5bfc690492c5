"""The chapter-10 checks: every reference solution passes on many seeds, each typical mistake fails the
property written for it with a message that says what to fix, and both notebooks run in a kernel."""
import math

import pytest
import torch

from grading_helpers import assert_mistake_fails, assert_passes_on_seeds, assert_set_runs_quickly, ROOT, exec_notebook_code, read
from mlsec_kit.grading import get_exercise

EXERCISE_ID = "10_differential_privacy"
SOURCE = ROOT / "exercises" / "source" / f"{EXERCISE_ID}.ipynb"
STUDENT = ROOT / "exercises" / f"{EXERCISE_ID}.ipynb"
QUESTIONS = ("randomized_response", "rr_estimate", "laplace_mean", "sequential_composition", "advanced_composition")
EXERCISE = get_exercise(EXERCISE_ID)


@pytest.fixture(scope="module")
def solutions() -> dict:
    """The source notebook's namespace after running it here (its own self-check cell included)."""
    return exec_notebook_code(read(SOURCE))


def test_the_set_declares_the_chapter_questions():
    assert tuple(EXERCISE.questions) == QUESTIONS
    assert EXERCISE.title == "Exercises: differential privacy" and EXERCISE.chapter == 10
    assert all(3 <= q.max_score <= 5 for q in EXERCISE.questions.values())


@pytest.mark.parametrize("name", QUESTIONS)
def test_every_solution_passes_every_check_on_many_seeds(solutions, name):
    assert_passes_on_seeds(EXERCISE.questions[name], solutions[name], range(20_000, 20_000 + 15))


def test_the_whole_set_runs_in_seconds(solutions):
    assert_set_runs_quickly(EXERCISE, solutions, limit=15)


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


# Executing the student and source notebooks is covered for every set by test_grading_notebooks.py.
