"""The chapter-1 checks: every reference solution passes on many seeds, and each plausible wrong answer (a
buggy budget check, a wrong field of a threat model, a wrong set of statements) fails the property written
for it on every one of 20 seeds, with a message that says what to fix."""
import textwrap

import pytest
import torch

from grading_helpers import ROOT, assert_passes_on_seeds, assert_set_runs_quickly, exec_notebook_code, read
from mlsec_kit.grading import get_exercise, run_question
from mlsec_kit.grading.sets import ch01

EXERCISE_ID = "01_threat_models"
SOURCE = ROOT / "exercises" / "source" / f"{EXERCISE_ID}.ipynb"
QUESTIONS = ("within_budget", "sticker_threat_model", "reviews_threat_model", "insurer_threat_model",
             "defence_statements")
EXERCISE = get_exercise(EXERCISE_ID)
SEEDS = range(30_000, 30_000 + 20)


@pytest.fixture(scope="module")
def solutions() -> dict:
    """The source notebook's namespace after running it here (its own self-check cell included)."""
    return exec_notebook_code(read(SOURCE))


def test_the_set_declares_the_chapter_questions():
    assert tuple(EXERCISE.questions) == QUESTIONS
    assert EXERCISE.title == "Exercises: threat models" and EXERCISE.chapter == 1
    assert all(3 <= q.max_score <= 5 for q in EXERCISE.questions.values())


def test_the_schema_is_the_chapters():
    """The fields graded here are the ones the chapter's definition and glossary entry name."""
    chapter = (ROOT / "chapters" / "01_threat_models.ipynb").read_text(encoding="utf-8")
    glossary = (ROOT / "book" / "glossary.md").read_text(encoding="utf-8")
    for values in ch01.SCHEMA.values():
        for value in values:
            assert value in chapter and value in glossary, value


@pytest.mark.parametrize("name", QUESTIONS)
def test_every_solution_passes_every_check_on_many_seeds(solutions, name):
    assert_passes_on_seeds(EXERCISE.questions[name], solutions[name], SEEDS)


def test_the_whole_set_runs_in_seconds(solutions):
    assert_set_runs_quickly(EXERCISE, solutions, limit=5)


def _threat_model(name, **change):
    answer = {**ch01.SCENARIOS[name], **change}
    return f"def {name}():\n    return {answer!r}"


MISTAKES = [
    ("within_budget", "max over the whole batch", """
        def within_budget(x, x_adv, eps, norm):
            if norm not in ("linf", "l2"):
                raise ValueError("norm")
            d = x_adv - x
            size = d.abs().max() if norm == "linf" else d.norm()
            ok = (size <= eps + 1e-6) & ((x_adv >= 0) & (x_adv <= 1)).all()
            return ok.expand(x.shape[0]).clone()""", ["linf", "l2", "accepts"], "judge each example on its own"),
    ("within_budget", "forgets the [0, 1] box", """
        def within_budget(x, x_adv, eps, norm):
            if norm not in ("linf", "l2"):
                raise ValueError("norm")
            d = (x_adv - x).flatten(1)
            size = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
            return size <= eps + 1e-6""", ["linf", "l2"], "outside [0, 1]"),
    ("within_budget", "strict inequality", """
        def within_budget(x, x_adv, eps, norm):
            if norm not in ("linf", "l2"):
                raise ValueError("norm")
            d = (x_adv - x).flatten(1)
            size = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
            return (size < eps) & ((x_adv >= 0) & (x_adv <= 1)).flatten(1).all(1)""",
     ["accepts a perturbation"], "closed"),
    ("within_budget", "l2 computed as linf", """
        def within_budget(x, x_adv, eps, norm):
            if norm not in ("linf", "l2"):
                raise ValueError("norm")
            size = (x_adv - x).flatten(1).abs().amax(1)
            return (size <= eps + 1e-6) & ((x_adv >= 0) & (x_adv <= 1)).flatten(1).all(1)""", ["l2"], "l2 size"),
    ("within_budget", "l2 norm per row of the image", """
        def within_budget(x, x_adv, eps, norm):
            if norm not in ("linf", "l2"):
                raise ValueError("norm")
            d = x_adv - x
            size = d.abs().flatten(1).amax(1) if norm == "linf" else d.norm(dim=-1).flatten(1).amax(1)
            return (size <= eps + 1e-6) & ((x_adv >= 0) & (x_adv <= 1)).flatten(1).all(1)""", ["l2"], "l2 size"),
    ("within_budget", "any other norm falls back to l2", """
        def within_budget(x, x_adv, eps, norm):
            d = (x_adv - x).flatten(1)
            size = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
            return (size <= eps + 1e-6) & ((x_adv >= 0) & (x_adv <= 1)).flatten(1).all(1)""",
     ["rejects a norm"], "ValueError"),
    ("within_budget", "a float mask", """
        def within_budget(x, x_adv, eps, norm):
            if norm not in ("linf", "l2"):
                raise ValueError("norm")
            d = (x_adv - x).flatten(1)
            size = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
            return ((size <= eps + 1e-6) & ((x_adv >= 0) & (x_adv <= 1)).flatten(1).all(1)).float()""",
     ["returns one bool", "linf", "l2", "accepts"], "torch.bool"),
    ("sticker_threat_model", "black-box", _threat_model("sticker_threat_model", knowledge="black-box"),
     ["knowledge"], "weights are public"),
    ("sticker_threat_model", "grey-box", _threat_model("sticker_threat_model", knowledge="grey-box"),
     ["knowledge"], "knowledge is"),
    ("sticker_threat_model", "indiscriminate", _threat_model("sticker_threat_model", specificity="indiscriminate"),
     ["specificity"], "one particular sign"),
    ("sticker_threat_model", "training time", _threat_model("sticker_threat_model", phase="training"),
     ["phase"], "already trained"),
    ("sticker_threat_model", "availability", _threat_model("sticker_threat_model", goal="availability"),
     ["goal"], "every other sign"),
    ("sticker_threat_model", "a misspelt value", _threat_model("sticker_threat_model", knowledge="whitebox"),
     ["returns a dict", "knowledge"], "one of white-box"),
    ("reviews_threat_model", "integrity", _threat_model("reviews_threat_model", goal="integrity"),
     ["goal"], "nobody can use"),
    ("reviews_threat_model", "targeted", _threat_model("reviews_threat_model", specificity="targeted"),
     ["specificity"], "for everyone"),
    ("reviews_threat_model", "inference time", _threat_model("reviews_threat_model", phase="inference"),
     ["phase"], "training data"),
    ("reviews_threat_model", "white-box", _threat_model("reviews_threat_model", knowledge="white-box"),
     ["knowledge"], "neither architecture"),
    ("reviews_threat_model", "grey-box", _threat_model("reviews_threat_model", knowledge="grey-box"),
     ["knowledge"], "knowledge is"),
    ("insurer_threat_model", "integrity", _threat_model("insurer_threat_model", goal="integrity"),
     ["goal"], "learn a secret"),
    ("insurer_threat_model", "training time", _threat_model("insurer_threat_model", phase="training"),
     ["phase"], "only queries"),
    ("insurer_threat_model", "indiscriminate", _threat_model("insurer_threat_model", specificity="indiscriminate"),
     ["specificity"], "one particular applicant"),
    ("insurer_threat_model", "white-box", _threat_model("insurer_threat_model", knowledge="white-box"),
     ["knowledge"], "only the API's scores"),
    ("insurer_threat_model", "a list, not a dict", """
        def insurer_threat_model():
            return ["confidentiality", "targeted", "black-box", "inference"]""", None, "expected a dict"),
    ("insurer_threat_model", "an extra key", """
        def insurer_threat_model():
            return {"goal": "confidentiality", "specificity": "targeted", "knowledge": "black-box",
                    "phase": "inference", "adversary": "insurer"}""", ["returns a dict"], "expected exactly"),
]
for letters, missing_or_wrong in [("abe", "extraction"), ("bce", "class-level"), ("bde", "encryption hides")]:
    MISTAKES.append(("defence_statements", f"'{letters}'", f"def defence_statements():\n    return {letters!r}",
                     ["names no false"], missing_or_wrong))
for letters in ("b", "e"):
    MISTAKES.append(("defence_statements", f"'{letters}'", f"def defence_statements():\n    return {letters!r}",
                     ["names every true"], "missing"))
for letters in ("abcde", ""):   # naming everything or nothing is not an answer: no point at all
    MISTAKES.append(("defence_statements", f"'{letters}'", f"def defence_statements():\n    return {letters!r}",
                     ["returns a string", "names every true", "names no false"], "not an answer"))
MISTAKES.append(("defence_statements", "a list of letters", "def defence_statements():\n    return ['b', 'e']",
                 None, "expected a string"))


@pytest.mark.parametrize("name, label, code, failing, message", MISTAKES, ids=[f"{m[0]}: {m[1]}" for m in MISTAKES])
def test_each_mistake_fails_its_property_on_every_seed(name, label, code, failing, message):
    namespace = {"torch": torch}
    exec(textwrap.dedent(code), namespace)
    question = EXERCISE.questions[name]
    for seed in SEEDS:
        result = run_question(question, namespace[name], seed=seed)
        failed = [p for p in result.properties if not p.passed]
        assert failed, f"seed {seed}: " + result.report()
        if failing is not None:  # exactly these properties fail; the others still earn their points
            expected = {p.description for p in result.properties if p.description.startswith(tuple(failing))}
            assert len(expected) == len(failing)
            assert {p.description for p in failed} == expected, f"seed {seed}: " + result.report()
        assert any(message in p.message for p in failed), f"seed {seed}: " + result.report()
        assert all("\n" not in p.message for p in result.properties)
