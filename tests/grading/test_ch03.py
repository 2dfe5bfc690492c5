"""The chapter-3 checks (FGSM, PGD's projections, a PGD loop, robust accuracy over a grid of budgets, the
worst case of a linear model): every reference solution passes on any seed, and each plausible wrong
implementation fails the property written for it, on every one of many seeds."""

import pytest
import torch
import torch.nn.functional as F

from grading_helpers import assert_fails_on_every_seed, assert_mistake_fails, assert_passes_on_seeds, assert_set_runs_quickly, ROOT, solution_functions
from mlsec_kit.grading import get_exercise, run_question

EXERCISE = get_exercise("03_evasion_whitebox")
SOURCE = ROOT / "exercises" / "source" / "03_evasion_whitebox.ipynb"
STUDENT = ROOT / "exercises" / "03_evasion_whitebox.ipynb"
QUESTIONS = ("fgsm", "project_linf", "project_l2", "pgd", "robust_accuracy", "worst_case_margin")
SEEDS = range(100, 125)  # the grader draws seeds of its own: a mistake must fail on every one


@pytest.fixture(scope="module")
def solutions() -> dict:
    """The setup cell and the cells defining the three functions (not the real-data cell, which trains)."""
    return solution_functions(SOURCE, QUESTIONS)


def test_the_set_declares_the_chapter_questions():
    assert tuple(EXERCISE.questions) == QUESTIONS
    assert EXERCISE.chapter == 3 and EXERCISE.title == "Exercises: white-box evasion attacks"
    assert all(3 <= q.max_score <= 6 for q in EXERCISE.questions.values())
    kit = "mlsec_kit.attacks.evasion."
    assert {kit + "fgsm", kit + "pgd"} <= set(EXERCISE.questions["fgsm"].forbid)
    assert kit + "pgd" in EXERCISE.questions["pgd"].forbid and kit + "pgd" in EXERCISE.questions["robust_accuracy"].forbid
    assert kit + "project_l2" in EXERCISE.questions["project_l2"].forbid


@pytest.mark.parametrize("name", QUESTIONS)
def test_every_solution_passes_every_check_on_many_seeds(solutions, name):
    assert_passes_on_seeds(EXERCISE.questions[name], solutions[name], range(20_000, 20_000 + 40))


def test_the_kit_functions_pass_too():
    from mlsec_kit.attacks.evasion import fgsm, pgd, project_l2, project_linf
    fns = {"fgsm": lambda m, x, y, eps: fgsm(m, x, y, eps=eps),
           "project_linf": lambda d, eps: project_linf(d, eps=eps),
           "project_l2": lambda d, eps: project_l2(d, eps=eps),
           "pgd": lambda m, x, y, eps, alpha, steps: pgd(m, x, y, eps=eps, alpha=alpha, steps=steps)}
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
            return (x + eps * g.sign()).detach()""", ["stays within eps", "a pixel pushed past"], "clip to the valid range"),
    ("fgsm", "gradient, not its sign", """
        def fgsm(model, x, y, eps):
            x = x.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(F.cross_entropy(model(x), y), x)
            return (x + eps * g / g.abs().amax()).clamp(0, 1).detach()""", ["moves every pixel", "a pixel pushed past"],
     "use the sign"),
    ("fgsm", "descends the loss", """
        def fgsm(model, x, y, eps):
            x = x.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(F.cross_entropy(model(x), y), x)
            return (x - eps * g.sign()).clamp(0, 1).detach()""",
     ["moves every pixel", "a pixel pushed past", "raises the loss", "fools a weak model"], "against the gradient"),
    ("fgsm", "random noise", """
        def fgsm(model, x, y, eps):
            return (x + eps * torch.sign(torch.randn_like(x))).clamp(0, 1)""", None, "sign"),
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
    ("fgsm", "leaves a pixel unmoved instead of clipping it", """
        def fgsm(model, x, y, eps):
            xg = x.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(F.cross_entropy(model(xg), y), xg)
            x_new = x + eps * g.sign()
            return torch.where((x_new >= 0) & (x_new <= 1), x_new, x).detach()""",
     ["a pixel pushed past 0 or 1"], "do not leave such pixels unmoved"),
    ("fgsm", "returns a tensor attached to the graph", """
        def fgsm(model, x, y, eps):
            x = x.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(F.cross_entropy(model(x), y), x)
            return (x + eps * g.sign()).clamp(0, 1)""", ["returns a tensor shaped like x"], "attached"),
    ("project_l2", "maps a zero perturbation to a non-zero one", """
        def project_l2(delta, eps):
            n = delta.flatten(1).norm(dim=1).view(-1, *([1] * (delta.dim() - 1)))
            return torch.where(n > eps, delta * eps / n.clamp_min(1e-12), delta + 1e-3 * (n == 0))""",
     ["a zero perturbation"], "became non-zero"),
    ("project_l2", "nan_to_num turns the zero example into eps", """
        def project_l2(delta, eps):
            n = delta.flatten(1).norm(dim=1).view(-1, *([1] * (delta.dim() - 1)))
            return torch.nan_to_num(delta / n * torch.clamp(n, max=eps), nan=eps)""",
     ["a zero perturbation"], "became non-zero"),
    ("project_l2", "norm per row of an image, not per example", """
        def project_l2(delta, eps):
            n = delta.norm(dim=-1, keepdim=True)
            return delta * torch.where(n > eps, eps / n.clamp_min(1e-12), torch.ones_like(n))""",
     None, "per row"),
    ("pgd", "no projection", """
        def pgd(model, x, y, eps, alpha, steps):
            x_adv = x.clone()
            for _ in range(steps):
                xg = x_adv.clone().requires_grad_(True)
                (g,) = torch.autograd.grad(F.cross_entropy(model(xg), y), xg)
                x_adv = (x_adv + alpha * g.sign()).clamp(0, 1)
            return x_adv.detach()""", None, "project delta"),
    ("pgd", "clamps x_adv, not delta, to [-eps, eps]", """
        def pgd(model, x, y, eps, alpha, steps):
            x_adv = x.clone()
            for _ in range(steps):
                xg = x_adv.clone().requires_grad_(True)
                (g,) = torch.autograd.grad(F.cross_entropy(model(xg), y), xg)
                x_adv = (x_adv + alpha * g.sign()).clamp(-eps, eps).clamp(0, 1)
            return x_adv.detach()""", None, "differs"),
    ("pgd", "no clip to [0, 1]", """
        def pgd(model, x, y, eps, alpha, steps):
            delta = torch.zeros_like(x)
            for _ in range(steps):
                xg = (x + delta).requires_grad_(True)
                (g,) = torch.autograd.grad(F.cross_entropy(model(xg), y), xg)
                delta = (delta + alpha * g.sign()).clamp(-eps, eps)
            return (x + delta).detach()""", None, "[0, 1]"),
    ("pgd", "gradient, not its sign", """
        def pgd(model, x, y, eps, alpha, steps):
            delta = torch.zeros_like(x)
            for _ in range(steps):
                xg = (x + delta).requires_grad_(True)
                (g,) = torch.autograd.grad(F.cross_entropy(model(xg), y), xg)
                delta = (delta + alpha * g / g.abs().amax()).clamp(-eps, eps)
                delta = (x + delta).clamp(0, 1) - x
            return (x + delta).detach()""", None, "differs"),
    ("pgd", "one step only", """
        def pgd(model, x, y, eps, alpha, steps):
            xg = x.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(F.cross_entropy(model(xg), y), xg)
            return (x + (alpha * g.sign()).clamp(-eps, eps)).clamp(0, 1).detach()""", None, "single step"),
    ("pgd", "the gradient at x reused for every step", """
        def pgd(model, x, y, eps, alpha, steps):
            xg = x.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(F.cross_entropy(model(xg), y), xg)
            delta = torch.zeros_like(x)
            for _ in range(steps):
                delta = (delta + alpha * g.sign()).clamp(-eps, eps)
                delta = (x + delta).clamp(0, 1) - x
            return (x + delta).detach()""", None, "differs"),
    ("pgd", "descends the loss", """
        def pgd(model, x, y, eps, alpha, steps):
            delta = torch.zeros_like(x)
            for _ in range(steps):
                xg = (x + delta).requires_grad_(True)
                (g,) = torch.autograd.grad(F.cross_entropy(model(xg), y), xg)
                delta = (delta - alpha * g.sign()).clamp(-eps, eps)
                delta = (x + delta).clamp(0, 1) - x
            return (x + delta).detach()""", None, "differs"),
    ("pgd", "returns a tensor attached to the graph", """
        def pgd(model, x, y, eps, alpha, steps):
            delta = torch.zeros_like(x)
            for _ in range(steps):
                xg = (x + delta).requires_grad_(True)
                (g,) = torch.autograd.grad(F.cross_entropy(model(xg), y), xg, create_graph=True)
                delta = (delta + alpha * g.sign()).clamp(-eps, eps)
                delta = (x + delta).clamp(0, 1) - x
            return x + delta + 0 * xg""", None, "attached"),
    ("pgd", "a random start", """
        def pgd(model, x, y, eps, alpha, steps):
            delta = (torch.rand_like(x) * 2 - 1) * eps
            for _ in range(steps):
                xg = (x + delta).requires_grad_(True)
                (g,) = torch.autograd.grad(F.cross_entropy(model(xg), y), xg)
                delta = (delta + alpha * g.sign()).clamp(-eps, eps)
                delta = (x + delta).clamp(0, 1) - x
            return (x + delta).detach()""", None, "differs"),
    ("robust_accuracy", "agreement with the clean prediction, not the true label", """
        def robust_accuracy(model, x, y, eps_grid, steps):
            pred = model(x).argmax(1)
            out = []
            for eps in eps_grid:
                x_adv = REF_PGD(model, x, y, eps, 2.5 * eps / steps, steps) if eps > 0 else x
                out.append((model(x_adv).argmax(1) == pred).float().mean().item())
            return torch.tensor(out)""", None, "TRUE label"),
    ("robust_accuracy", "error rate instead of accuracy", """
        def robust_accuracy(model, x, y, eps_grid, steps):
            out = []
            for eps in eps_grid:
                x_adv = REF_PGD(model, x, y, eps, 2.5 * eps / steps, steps) if eps > 0 else x
                out.append((model(x_adv).argmax(1) != y).float().mean().item())
            return torch.tensor(out)""", None, "clean accuracy"),
    ("robust_accuracy", "FGSM instead of PGD", """
        def robust_accuracy(model, x, y, eps_grid, steps):
            out = []
            for eps in eps_grid:
                x_adv = REF_PGD(model, x, y, eps, eps, 1) if eps > 0 else x
                out.append((model(x_adv).argmax(1) == y).float().mean().item())
            return torch.tensor(out)""", None, "with PGD"),
    ("robust_accuracy", "the attack aims at the model's own predictions", """
        def robust_accuracy(model, x, y, eps_grid, steps):
            pred = model(x).argmax(1)
            out = []
            for eps in eps_grid:
                x_adv = REF_PGD(model, x, pred, eps, 2.5 * eps / steps, steps) if eps > 0 else x
                out.append((model(x_adv).argmax(1) == y).float().mean().item())
            return torch.tensor(out)""", None, "true labels"),
    ("robust_accuracy", "alpha = eps / steps (the ball is never reached)", """
        def robust_accuracy(model, x, y, eps_grid, steps):
            out = []
            for eps in eps_grid:
                x_adv = REF_PGD(model, x, y, eps, 0.5 * eps / steps, steps) if eps > 0 else x
                out.append((model(x_adv).argmax(1) == y).float().mean().item())
            return torch.tensor(out)""", None, "with PGD"),
    ("robust_accuracy", "one budget for the whole grid", """
        def robust_accuracy(model, x, y, eps_grid, steps):
            eps = max(eps_grid)
            x_adv = REF_PGD(model, x, y, eps, 2.5 * eps / steps, steps)
            acc = (model(x_adv).argmax(1) == y).float().mean().item()
            return torch.tensor([acc] * len(eps_grid))""", None, "clean accuracy"),
    ("worst_case_margin", "the L2 norm for an Linf budget", """
        def worst_case_margin(w, b, x, y, eps, norm):
            return y * (x @ w + b) - eps * w.norm()""", None, "DUAL norm"),
    ("worst_case_margin", "the Linf norm of w for an Linf budget", """
        def worst_case_margin(w, b, x, y, eps, norm):
            dual = w.abs().max() if norm == "linf" else w.norm()
            return y * (x @ w + b) - eps * dual""", None, "DUAL norm"),
    ("worst_case_margin", "the attacker helps the margin", """
        def worst_case_margin(w, b, x, y, eps, norm):
            dual = w.abs().sum() if norm == "linf" else w.norm()
            return y * (x @ w + b) + eps * dual""", None, "reaches"),
    ("worst_case_margin", "forgets the label", """
        def worst_case_margin(w, b, x, y, eps, norm):
            dual = w.abs().sum() if norm == "linf" else w.norm()
            return (x @ w + b) - eps * dual""", None, "reaches"),
    ("worst_case_margin", "eps times the dimension", """
        def worst_case_margin(w, b, x, y, eps, norm):
            return y * (x @ w + b) - eps * len(w) * (w.abs().max() if norm == "linf" else w.norm())""",
     None, "reaches"),
]


def _namespace():
    from mlsec_kit.grading.sets.ch03 import _reference_pgd
    ref = lambda *a: _reference_pgd(*a).detach()  # noqa: E731
    return {"torch": torch, "F": F, "REF_PGD": ref}


@pytest.mark.parametrize("name, label, code, failing, message", MISTAKES, ids=[m[1] for m in MISTAKES])
def test_each_mistake_fails_its_property(name, label, code, failing, message):
    assert_mistake_fails(EXERCISE.questions[name], code, name, _namespace(), failing, message)


@pytest.mark.parametrize("name, label, code, failing, message", MISTAKES, ids=[m[1] for m in MISTAKES])
def test_each_mistake_fails_on_every_seed(name, label, code, failing, message):
    assert_fails_on_every_seed(EXERCISE.questions[name], code, name, _namespace(), SEEDS, label)


def test_every_question_has_listed_mistakes():
    assert {m[0] for m in MISTAKES} == set(QUESTIONS)


# Executing the student and source notebooks is covered for every set by test_grading_notebooks.py.
