"""Checks of the chapter-1 exercise set: one small coding question (is an adversarial example inside the
threat model's budget?) and conceptual questions (classify a scenario with the chapter's threat-model
schema; say which statements about defences are true), graded automatically.

The conceptual questions take no input: the student's function returns the answer as plain data (a dict
of strings, a string of letters). Each field of the schema is its own property, so a wrong field costs one
point and its message says what the field means, not what the answer is.
"""
from __future__ import annotations

import torch

from ..core import CheckFailure, ExerciseSet
from ..expect import call, describe, expect_tensor, fail, statement_checks
from ..instances import randint
from ..limits import TimeLimitExceeded

SET = ExerciseSet("01_threat_models", "Exercises: threat models", chapter=1)

# The chapter's threat-model schema (definition "Threat model" in chapter 1): the fields a classification
# gives and the values each may take.
SCHEMA: dict[str, tuple[str, ...]] = {
    "goal": ("integrity", "availability", "confidentiality"),
    "specificity": ("targeted", "indiscriminate"),
    "knowledge": ("white-box", "grey-box", "black-box"),
    "phase": ("training", "inference"),
}
_MEANING = {
    "goal": "which property of the system the adversary harms: wrong answers on chosen inputs (integrity), "
            "a model too poor to use (availability), or secrets about data or model (confidentiality)",
    "specificity": "whether the adversary cares about particular inputs or records (targeted) or about any "
                   "of them, across the board (indiscriminate)",
    "knowledge": "what the adversary knows of the model: its weights and gradients (white-box), its outputs "
                 "only (black-box), or something in between such as the architecture (grey-box)",
    "phase": "when the adversary acts: on the training data (training) or on a trained, fixed model "
             "(inference)",
}


# ---- (a) within_budget ---------------------------------------------------------------------------------
within_budget = SET.question("within_budget", "within_budget(x, x_adv, eps, norm) -> bool tensor (N,)")


def _budget_instance(rng: torch.Generator, norm: str):
    """A batch of images in [0, 1] and candidates: some inside the ball and the box, some just outside the
    ball, some outside [0, 1] only. Returns (x, x_adv, eps, expected)."""
    n, c, h = randint(rng, 6, 12), randint(rng, 1, 3), randint(rng, 3, 6)
    x = 0.3 + 0.4 * torch.rand(n, c, h, h, generator=rng)  # 1.5 eps away still lies inside [0, 1]
    eps = 0.05 + 0.15 * float(torch.rand((), generator=rng))
    # random signs; for l2 scaled to unit length, so every pixel moves by the same small amount: an l2
    # perturbation of 1.5 eps has a tiny linf size, and one image row carries only part of its l2 size
    unit = torch.randint(0, 2, x.shape, generator=rng).float().mul(2).sub(1)
    if norm == "l2":
        unit = unit / unit[0].numel() ** 0.5
    kind = torch.arange(n) % 3  # 0: inside, 1: 1.5 eps away, 2: inside the ball but outside [0, 1]
    kind = kind[torch.randperm(n, generator=rng)]
    scale = torch.where(kind == 1, torch.tensor(1.5), torch.tensor(0.6)).view(-1, 1, 1, 1)
    x_adv = x + eps * scale * unit
    for i in (kind == 2).nonzero().flatten().tolist():  # one pixel set to -eps/2 or 1 + eps/2: outside the box
        x[i].view(-1)[0] = 0.0 if i % 2 else 1.0
        x_adv[i].view(-1)[0] = -0.5 * eps if i % 2 else 1 + 0.5 * eps
    return x, x_adv, eps, kind == 0


def _verdicts(fn, x, x_adv, eps, norm) -> torch.Tensor:
    what = f"within_budget(x {describe(x)}, x_adv {describe(x_adv)}, eps={eps:.3g}, norm={norm!r})"
    out = expect_tensor(call(fn, x.clone(), x_adv.clone(), eps, norm, name="within_budget"), what,
                        shape=(x.shape[0],))
    if out.dtype != torch.bool:
        fail(f"{what} returned dtype {out.dtype}; expected torch.bool (one True/False per example)")
    return out


@within_budget.prop("returns one bool per example, shape (N,)")
def _wb_shape(fn, rng):
    for norm in ("linf", "l2"):
        x, x_adv, eps, _ = _budget_instance(rng, norm)
        _verdicts(fn, x, x_adv, eps, norm)


def _compare(fn, rng, norm: str) -> None:
    for _ in range(3):
        x, x_adv, eps, expected = _budget_instance(rng, norm)
        got = _verdicts(fn, x, x_adv, eps, norm)
        wrong = (got != expected).nonzero().flatten().tolist()
        if wrong:
            i = wrong[0]
            delta = (x_adv[i] - x[i]).flatten()
            size = float(delta.abs().max() if norm == "linf" else delta.norm())
            box = bool(((x_adv[i] >= 0) & (x_adv[i] <= 1)).all())
            fail(f"example {i} of {len(got)} (norm={norm!r}, eps={eps:.3g}): its perturbation has {norm} size "
                 f"{size:.3g} and it is {'inside' if box else 'outside'} [0, 1]; you said {bool(got[i])}, "
                 f"expected {bool(expected[i])} (judge each example on its own)")


@within_budget.prop("linf: True exactly when max |x_adv - x| <= eps for that example and x_adv is in [0, 1]")
def _wb_linf(fn, rng):
    _compare(fn, rng, "linf")


@within_budget.prop("l2: True exactly when ||x_adv - x||_2 <= eps for that example and x_adv is in [0, 1]")
def _wb_l2(fn, rng):
    _compare(fn, rng, "l2")


@within_budget.prop("accepts a perturbation of exactly eps (the ball is closed)")
def _wb_boundary(fn, rng):
    # multiples of 1/64 are exact in float32, so x_adv - x is exactly eps: `<` rejects it on every draw
    for norm in ("linf", "l2"):
        n, d = randint(rng, 4, 8), randint(rng, 8, 20)
        x = torch.randint(16, 48, (n, 1, 1, d), generator=rng).float() / 64
        eps = randint(rng, 2, 10) / 64
        if norm == "linf":
            step = eps * torch.randint(0, 2, x.shape, generator=rng).float().mul(2).sub(1)
        else:  # one pixel moves by eps: an l2 size of exactly eps
            step = torch.zeros_like(x)
            step.view(n, -1)[torch.arange(n), torch.randint(0, d, (n,), generator=rng)] = eps
        got = _verdicts(fn, x, x + step, eps, norm)
        if not bool(got.all()):
            fail(f"perturbations of {norm} size exactly eps={eps:.4g} were rejected; the ball is closed "
                 f"(size <= eps), and a small tolerance such as 1e-6 absorbs float rounding")


@within_budget.prop("rejects a norm other than 'linf' or 'l2' with a ValueError")
def _wb_bad_norm(fn, rng):
    x = torch.rand(3, 1, 2, 2, generator=rng)
    try:
        fn(x, x.clone(), 0.1, "l1")
    except ValueError:
        return
    except (NotImplementedError, CheckFailure, TimeLimitExceeded, KeyboardInterrupt):
        raise  # "not implemented yet" and the time limit are reported as such
    except Exception as err:  # noqa: BLE001 - any other exception is the wrong kind
        fail(f"within_budget(..., norm='l1') raised {type(err).__name__}; expected a ValueError naming norm")
    fail("within_budget(..., norm='l1') returned a value; expected a ValueError that names norm and the "
         "accepted values 'linf' and 'l2'")


# ---- (b)-(d) classify a scenario ----------------------------------------------------------------------
SCENARIOS: dict[str, dict[str, str]] = {
    "sticker_threat_model": {"goal": "integrity", "specificity": "targeted", "knowledge": "white-box",
                             "phase": "inference"},
    "reviews_threat_model": {"goal": "availability", "specificity": "indiscriminate", "knowledge": "black-box",
                             "phase": "training"},
    "insurer_threat_model": {"goal": "confidentiality", "specificity": "targeted", "knowledge": "black-box",
                             "phase": "inference"},
}
_WHY: dict[tuple[str, str, str], str] = {  # (question, field, wrong value): why it is wrong
    ("sticker_threat_model", "knowledge", "black-box"): "the weights are public and the adversary downloads them",
    ("sticker_threat_model", "specificity", "indiscriminate"): "the adversary wants one particular sign misread",
    ("sticker_threat_model", "phase", "training"): "the model is already trained; only the sign changes",
    ("sticker_threat_model", "goal", "availability"): "the model keeps working on every other sign",
    ("reviews_threat_model", "goal", "integrity"): "no particular input is to be misclassified; the aim is a "
                                                   "model nobody can use",
    ("reviews_threat_model", "phase", "inference"): "the reviews enter the training data",
    ("reviews_threat_model", "knowledge", "white-box"): "the competitor knows neither architecture nor weights",
    ("reviews_threat_model", "specificity", "targeted"): "the competitor wants the model to fail for everyone",
    ("insurer_threat_model", "goal", "integrity"): "nothing is misclassified; the insurer wants to learn a secret",
    ("insurer_threat_model", "phase", "training"): "the insurer only queries the released model",
    ("insurer_threat_model", "specificity", "indiscriminate"): "the insurer asks about one particular applicant",
    ("insurer_threat_model", "knowledge", "white-box"): "the insurer sees only the API's scores",
}


def _answer(fn, name: str) -> dict:
    out = call(fn, name=name)
    if not isinstance(out, dict):
        fail(f"{name}() returned {describe(out)}; expected a dict with the keys {', '.join(SCHEMA)}")
    return out


def _scenario_questions() -> None:
    for name, key in SCENARIOS.items():
        question = SET.question(name, f"{name}() -> dict with keys {', '.join(SCHEMA)}")

        @question.prop("returns a dict with exactly the schema's keys, each set to one of its allowed values")
        def _form(fn, rng, name=name):
            out = _answer(fn, name)
            if set(out) != set(SCHEMA):
                fail(f"{name}() returned the keys {sorted(map(str, out))}; expected exactly {sorted(SCHEMA)}")
            for field, allowed in SCHEMA.items():
                if out[field] not in allowed:
                    fail(f"{name}()[{field!r}] is {out[field]!r}; expected one of {', '.join(allowed)}")

        for field in SCHEMA:
            @question.prop(f"{field}: {_MEANING[field].split(':')[0]}")
            def _field(fn, rng, name=name, field=field, right=key[field]):
                value = _answer(fn, name).get(field)
                if value != right:
                    why = _WHY.get((name, field, value))
                    fail(f"{field} = {value!r} does not fit the scenario" + (f": {why}" if why else
                         f"; {field} is {_MEANING[field]}"))


_scenario_questions()


# ---- (e) which statements about defences are true -----------------------------------------------------
defence_statements = SET.question("defence_statements", "defence_statements() -> str of letters, e.g. 'ac'")
STATEMENTS = {
    "a": "Training with differential privacy stops model extraction through the prediction API.",
    "b": "Differential privacy bounds how much a membership-inference attack can learn about any one record.",
    "c": "Differential privacy stops model inversion from showing what a typical member of a class looks like.",
    "d": "Encrypting the client's input homomorphically protects the training data from membership inference "
         "by users of the released model.",
    "e": "A defence evaluated only against attacks that ignore it can be broken by an adaptive attacker.",
}
TRUE_STATEMENTS = frozenset("be")
_WHY_NOT = {
    "a": "DP hides individual records, not the function the model computes; extraction copies the function",
    "c": "DP protects individuals; a class-level average is a property of many records and is meant to be learned",
    "d": "encryption hides the client's input from the provider; the model's answers still reflect its "
         "training data",
}


statement_checks(defence_statements, "defence_statements", STATEMENTS, TRUE_STATEMENTS, _WHY_NOT, exact=False,
                 hint="reread the chapter's table of threats and defences "
                 "and its paragraph on adaptive attackers")
