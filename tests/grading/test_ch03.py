"""The chapter-3 checks (FGSM and PGD's projections): every reference solution passes on any seed, each
typical mistake fails the property written for it, and both notebooks run in a real kernel."""
import re

import pytest
import torch
import torch.nn.functional as F

from grading_helpers import assert_mistake_fails, assert_passes_on_seeds, assert_set_runs_quickly, ROOT, exec_notebook_code, read
from mlsec_kit.grading import get_exercise, run_question

EXERCISE = get_exercise("03_evasion_whitebox")
SOURCE = ROOT / "exercises" / "source" / "03_evasion_whitebox.ipynb"
STUDENT = ROOT / "exercises" / "03_evasion_whitebox.ipynb"
QUESTIONS = ("fgsm", "project_linf", "project_l2")


@pytest.fixture(scope="module")
def solutions() -> dict:
    """The setup cell and the cells defining the three functions (not the real-data cell, which trains)."""
    nb = read(SOURCE)
    nb.cells = [c for c in nb.cells if c.cell_type == "code" and
                ("import mlsec_kit" in c.source or re.search(r"^def (fgsm|project_linf|project_l2)\(", c.source, re.M))]
    return exec_notebook_code(nb)


def test_the_set_declares_the_chapter_questions():
    assert tuple(EXERCISE.questions) == QUESTIONS
    assert EXERCISE.chapter == 3 and EXERCISE.title == "Exercises: white-box evasion attacks"
    assert all(4 <= q.max_score <= 5 for q in EXERCISE.questions.values())


@pytest.mark.parametrize("name", QUESTIONS)
def test_every_solution_passes_every_check_on_many_seeds(solutions, name):
    assert_passes_on_seeds(EXERCISE.questions[name], solutions[name], range(20_000, 20_000 + 40))


def test_the_kit_functions_pass_too():
    from mlsec_kit.attacks.evasion import fgsm, project_l2, project_linf
    fns = {"fgsm": lambda m, x, y, eps: fgsm(m, x, y, eps=eps),
           "project_linf": lambda d, eps: project_linf(d, eps=eps),
           "project_l2": lambda d, eps: project_l2(d, eps=eps)}
    for name, fn in fns.items():
        result = run_question(EXERCISE.questions[name], fn, seed=5)
        assert result.passed, result.report()


def test_the_whole_set_runs_in_seconds(solutions):
    assert_set_runs_quickly(EXERCISE, solutions)


MISTAKES = [
    ("fgsm", "no clipping", """
        def fgsm(model, x, y, eps):
            x = x.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(F.cross_entropy(model(x), y), x)
            return (x + eps * g.sign()).detach()""", ["stays within eps"], "clip to the valid range"),
    ("fgsm", "gradient, not its sign", """
        def fgsm(model, x, y, eps):
            x = x.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(F.cross_entropy(model(x), y), x)
            return (x + eps * g / g.abs().amax()).clamp(0, 1).detach()""", ["moves every pixel"], "use the sign"),
    ("fgsm", "descends the loss", """
        def fgsm(model, x, y, eps):
            x = x.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(F.cross_entropy(model(x), y), x)
            return (x - eps * g.sign()).clamp(0, 1).detach()""",
     ["moves every pixel", "raises the loss", "fools a weak model"], "against the gradient"),
    ("fgsm", "random noise", """
        def fgsm(model, x, y, eps):
            return (x + eps * torch.sign(torch.randn_like(x))).clamp(0, 1)""", None, "random signs"),
    ("fgsm", "in place", """
        def fgsm(model, x, y, eps):
            xg = x.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(F.cross_entropy(model(xg), y), xg)
            x += eps * g.sign(); x.clamp_(0, 1)
            return x""", ["returns a tensor shaped like x"], "in place"),
    ("project_linf", "rescales the vector", """
        def project_linf(delta, eps):
            m = delta.flatten(1).abs().amax(1).view(-1, *([1] * (delta.dim() - 1)))
            return delta * torch.where(m > eps, eps / m, torch.ones_like(m))""",
     ["returns the nearest point"], "do not rescale"),
    ("project_linf", "in place", """
        def project_linf(delta, eps):
            return delta.clamp_(-eps, eps)""", ["returns a tensor shaped like delta"], "in place"),
    ("project_linf", "clips to [0, eps]", """
        def project_linf(delta, eps):
            return delta.clamp(0, eps)""", ["a perturbation already inside", "returns the nearest point"],
     "must stay where they are"),
    ("project_l2", "norm over the whole batch", """
        def project_l2(delta, eps):
            n = delta.norm()
            return delta * eps / n if n > eps else delta.clone()""",
     ["an example already inside", "an example outside"], "on its own"),
    ("project_l2", "always rescales", """
        def project_l2(delta, eps):
            n = delta.flatten(1).norm(dim=1).view(-1, *([1] * (delta.dim() - 1)))
            return delta * eps / n.clamp_min(1e-12)""", ["an example already inside"], "was changed"),
    ("project_l2", "divides by zero", """
        def project_l2(delta, eps):
            n = delta.flatten(1).norm(dim=1).view(-1, *([1] * (delta.dim() - 1)))
            return torch.where(n > eps, delta / n * eps, delta / n * n)""", ["a zero perturbation"], "NaN"),
    ("project_l2", "clips coordinates", """
        def project_l2(delta, eps):
            return delta.clamp(-eps, eps)""", None, "norm"),
]


@pytest.mark.parametrize("name, label, code, failing, message", MISTAKES, ids=[m[1] for m in MISTAKES])
def test_each_mistake_fails_its_property(name, label, code, failing, message):
    assert_mistake_fails(EXERCISE.questions[name], code, name, {"torch": torch, "F": F}, failing, message)


# Executing the student and source notebooks is covered for every set by test_grading_notebooks.py.
