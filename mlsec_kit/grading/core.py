"""Exercise sets, their questions and property checks, and running one question's checks on a function.

An exercise set (one per chapter) declares questions; each question is graded by properties, each worth
one point. A property is a function ``prop(fn, rng)`` that draws a fresh random instance from ``rng``
(a seeded ``torch.Generator``), calls the student's ``fn`` on it and raises :class:`CheckFailure` with a
one-line, actionable message when the property does not hold::

    SET = ExerciseSet("02_ml_basics", "Exercises: machine learning with mlsec_kit", chapter=2)
    accuracy = SET.question("accuracy", "accuracy(logits, y) -> float")

    @accuracy.prop("returns a Python float")
    def _returns_float(fn, rng):
        ...

:func:`run_question` runs every property of a question with a per-property time limit and never raises
because of the student's code; :func:`check` is the notebook-facing wrapper that prints the report.
"""
from __future__ import annotations

import hashlib
import re
import sys
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import import_module
from typing import Any, Callable, Optional

import torch

from .limits import TimeLimitExceeded, time_limit

__all__ = ["CheckFailure", "Property", "Question", "ExerciseSet", "PropertyResult", "CheckResult",
           "get_exercise", "exercise_ids", "find_question", "derive_seed", "run_question", "check",
           "DEFAULT_TIMEOUT"]

DEFAULT_TIMEOUT = 10.0  # seconds one property may take, student code included
_MAX_MESSAGE = 240
_REGISTRY: dict[str, "ExerciseSet"] = {}
# mutated in place (never rebound), so the grader's tamper check sees the same object throughout
_STATE = {"grading": False, "warm": False}  # grading: inline check() calls do nothing (the grader's process)

CheckFn = Callable[[Callable[..., Any], torch.Generator], None]


class CheckFailure(Exception):
    """A property does not hold; the message is the one line the student reads."""


@dataclass(frozen=True)
class Property:
    """One graded property of a question: a description and the function that checks it."""

    description: str
    fn: CheckFn
    weight: float = 1


class Question:
    """A function the student writes, graded by its properties (one point each)."""

    def __init__(self, exercise: str, name: str, signature: str, *, forbid: tuple[str, ...] = ()) -> None:
        if not name.isidentifier():
            raise ValueError(f"name must be a Python identifier (the function's name), got {name!r}")
        bad = [f for f in forbid if not isinstance(f, str) or len(f.split(".")) < 2
               or not all(part.isidentifier() for part in f.split("."))
               or (f.startswith("mlsec_kit.") and "." not in f[10:])]
        if bad:
            raise ValueError("forbid must name functions by their dotted path, kit functions as "
                             f"'mlsec_kit.module.function' and a library's as 'package.module.function', got {bad!r}")
        self.exercise = exercise
        self.name = name
        self.signature = signature
        # the functions (the kit's, or a library's) that would answer this question; the grader blocks them while
        # it runs
        self.forbid: tuple[str, ...] = tuple(forbid)
        self.properties: tuple[Property, ...] = ()

    def prop(self, description: str, *, weight: float = 1) -> Callable[[CheckFn], CheckFn]:
        """Decorator: register ``fn(student_fn, rng)`` as the next property of this question, worth
        ``weight`` points (default 1)."""
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0 \
                or weight != weight or weight == float("inf"):
            raise ValueError(f"weight must be a positive number of points, got {weight!r}")

        def register(fn: CheckFn) -> CheckFn:
            self.properties = self.properties + (Property(description, fn, weight),)
            return fn
        return register

    def set_weights(self, *weights: float) -> "Question":
        """Give the properties, in order, these weights (an instructor's variant of a shipped set)."""
        if len(weights) != len(self.properties):
            raise ValueError(f"{self.name} has {len(self.properties)} properties, got {len(weights)} weights")
        for w in weights:
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not w > 0:
                raise ValueError(f"weights must be positive numbers of points, got {w!r}")
        self.properties = tuple(Property(p.description, p.fn, w) for p, w in zip(self.properties, weights))
        return self

    @property
    def max_score(self) -> float:
        total = sum(p.weight for p in self.properties)
        return int(total) if float(total).is_integer() else total

    def __repr__(self) -> str:
        return f"Question({self.exercise}/{self.name}, {self.max_score} properties)"


class ExerciseSet:
    """The questions of one exercise notebook, registered under an id such as ``"02_ml_basics"``."""

    def __init__(self, id: str, title: str, *, chapter: int, extras: tuple[str, ...] = ()) -> None:
        if not (len(id) > 3 and id[:2].isdigit() and id[2] == "_" and id[3:].isidentifier()):
            raise ValueError(f"id must look like 'NN_slug' (e.g. '02_ml_basics'), got {id!r}")
        bad = [e for e in extras if not isinstance(e, str) or not e.isidentifier()]
        if isinstance(extras, str) or bad:
            raise ValueError(f"extras must be a tuple of the kit's optional-dependency names, e.g. ('tenseal',), "
                             f"got {extras!r}")
        self.id = id
        self.title = title
        self.chapter = chapter
        # optional dependencies of mlsec-kit the checks need (installed with the kit by the Gradescope setup)
        self.extras: tuple[str, ...] = tuple(extras)
        self.questions: dict[str, Question] = {}
        _REGISTRY[id] = self  # a reloaded module replaces its set

    def question(self, name: str, signature: str, *, forbid: tuple[str, ...] = ()) -> Question:
        """Declare the next question; ``name`` is the function the student defines; ``forbid`` lists the kit
        functions (``"mlsec_kit.dp.randomized_response"``) or a library's (``"picklescan.scanner._list_globals"``)
        that would answer it, blocked while it is graded."""
        if name in self.questions:
            raise ValueError(f"question {name!r} is already declared in {self.id}")
        self.questions[name] = Question(self.id, name, signature, forbid=forbid)
        return self.questions[name]

    @property
    def max_score(self) -> int:
        return sum(q.max_score for q in self.questions.values())

    def __repr__(self) -> str:
        return f"ExerciseSet({self.id!r}, questions={list(self.questions)})"


def exercise_ids() -> tuple[str, ...]:
    """The ids of every exercise set the package ships."""
    from .sets import SETS
    return tuple(SETS)


def get_exercise(exercise_id: str) -> ExerciseSet:
    """The exercise set with this id, importing its checks module on first use."""
    from .sets import SETS
    if exercise_id in _REGISTRY and exercise_id not in SETS:  # an instructor's set, loaded with load_sets
        return _REGISTRY[exercise_id]
    if exercise_id not in SETS:
        raise ValueError(f"unknown exercise {exercise_id!r}; choose one of {', '.join(SETS)}")
    if exercise_id not in _REGISTRY:
        import_module(SETS[exercise_id])
    return _REGISTRY[exercise_id]


def load_sets(folder: Any) -> list[str]:
    """Import every ``*.py`` in ``folder`` (an instructor's private exercise sets); the ids they declare.

    A module there declares a set exactly as the shipped ones do (``SET = ExerciseSet(...)``, questions and
    properties); it may start from a shipped set's helpers (``from mlsec_kit.grading.sets import ch02``).
    """
    import importlib.util
    import sys
    from pathlib import Path

    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"sets folder {str(folder)!r} does not exist")
    ids: list[str] = []
    for path in sorted(folder.glob("*.py")):
        name = f"mlsec_private_sets_{derive_seed(str(path.resolve()))}_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        ids += [v.id for v in vars(module).values() if isinstance(v, ExerciseSet) and v.id not in ids]
    return ids


_CALL = re.compile(r"""\.question\(\s*(?:["'](\w+)["'])?""")


@lru_cache(maxsize=None)
def _declaring_sets() -> tuple[dict[str, tuple[str, ...]], tuple[str, ...]]:
    """Which shipped sets can declare a question name, read from their source without importing them.

    Returns ``(index, dynamic)``: ``index`` maps each name written literally in a ``.question("name", ...)``
    call to the sets that write it; ``dynamic`` lists the sets that also declare questions under computed
    names (``SET.question(name, ...)`` in a loop), which may declare any name. Importing every set to find
    one name costs seconds (some import SciPy's statistics, TenSEAL, Flower), while a student's first
    ``check("standardize", ...)`` needs only the set that declares it.
    """
    from importlib.util import find_spec

    from .sets import SETS
    index: dict[str, tuple[str, ...]] = {}
    dynamic: list[str] = []
    for exercise_id, module in SETS.items():
        try:
            with open(find_spec(module).origin, encoding="utf-8") as f:
                source = f.read()
        except (AttributeError, TypeError, OSError):  # no readable source (a zipped install): import them all
            return {}, tuple(SETS)
        names = _CALL.findall(source)
        if "" in names:
            dynamic.append(exercise_id)
        for name in dict.fromkeys(n for n in names if n):
            index[name] = index.get(name, ()) + (exercise_id,)
    return index, tuple(dynamic)


def find_question(name: str) -> Question:
    """A question by ``"name"`` (searched in every set) or ``"exercise/name"``."""
    if "/" in name:
        exercise_id, _, short = name.partition("/")
        questions = get_exercise(exercise_id).questions
        if short not in questions:
            raise ValueError(f"{exercise_id} has no question {short!r}; it has {', '.join(questions)}")
        return questions[short]
    index, dynamic = _declaring_sets()
    candidates = [i for i in exercise_ids() if i in index.get(name, ()) or i in dynamic]
    found = [s.questions[name] for s in map(get_exercise, candidates) if name in s.questions]
    if not found:  # not declared where the source says: search every set before saying there is none
        found = [s.questions[name] for s in map(get_exercise, exercise_ids()) if name in s.questions]
    if len(found) == 1:
        return found[0]
    if found:
        options = ", ".join(f"'{q.exercise}/{name}'" for q in found)
        raise ValueError(f"several exercise sets have a question {name!r}; write one of {options}")
    known = ", ".join(n for s in map(get_exercise, exercise_ids()) for n in s.questions)
    raise ValueError(f"no exercise has a question {name!r}; known questions: {known}")


def derive_seed(*parts: object) -> int:
    """A seed in ``[0, 2**31)`` that depends only on ``parts`` (stable across runs and machines)."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") % 2**31


@dataclass
class PropertyResult:
    """The outcome of one property: passed, or failed with a one-line reason."""

    description: str
    passed: bool
    message: str = ""
    weight: float = 1

    def line(self) -> str:
        if self.passed:
            return f"  [pass] {self.description}"
        return f"  [FAIL] {self.description}: {self.message}"


@dataclass
class CheckResult:
    """The outcome of one question: a point per passed property, or zero with a ``note`` saying why."""

    exercise: str
    name: str
    seed: Optional[int]
    properties: list[PropertyResult]
    max_score: float
    note: str = ""
    _printed_in: Optional[int] = field(default=None, repr=False, compare=False)

    @property
    def score(self) -> float:
        total = 0 if self.note else sum(p.weight for p in self.properties if p.passed)
        return int(total) if float(total).is_integer() else round(total, 4)

    @property
    def passed(self) -> bool:
        """Whether every property passed."""
        return self.max_score > 0 and self.score == self.max_score

    @classmethod
    def zero(cls, question: Question, note: str, seed: Optional[int] = None) -> "CheckResult":
        """No points for ``question``, for the reason in ``note`` (missing function, tampering, ...)."""
        return cls(question.exercise, question.name, seed, [], question.max_score, note)

    def report(self) -> str:
        """The text a student reads: one line per property, then the score."""
        seed = "" if self.seed is None else f" (seed {self.seed})"
        lines = [f"{self.name}{seed}"]
        if self.note:
            lines.append(f"  {self.note}")
        lines += [p.line() for p in self.properties]
        lines.append(f"score: {self.score}/{self.max_score}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"exercise": self.exercise, "name": self.name, "seed": self.seed, "max_score": self.max_score,
                "note": self.note,
                "properties": [[p.description, p.passed, p.message, p.weight] for p in self.properties]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CheckResult":
        props = [PropertyResult(str(d), bool(p), str(m), float(w)) for d, p, m, w in data["properties"]]
        return cls(str(data["exercise"]), str(data["name"]), data["seed"], props, data["max_score"],
                   str(data["note"]))

    def __repr__(self) -> str:
        return f"CheckResult({self.exercise}/{self.name}: {self.score}/{self.max_score})"

    def _ipython_display_(self) -> None:
        # check() already printed the report in this cell; show it again only when asked for later
        if self._printed_in is None or self._printed_in != _execution_count():
            print(self.report())


def _execution_count() -> Optional[int]:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return None if shell is None else shell.execution_count


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    text = text[0] if text else ""
    text = text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE - 3] + "..."
    return f"raised {type(err).__name__}: {text}" if text else f"raised {type(err).__name__}"


def _is_stub(fn: Any) -> bool:
    """True for a function that can do nothing but raise NotImplementedError, such as the student notebook's
    ``raise NotImplementedError("... is not implemented yet ...")``: the only name its code uses is
    NotImplementedError, and it defines no inner function (so it calls no library that could need warming)."""
    code = getattr(fn, "__code__", None)
    return (code is not None and code.co_names == ("NotImplementedError",)
            and not any(hasattr(c, "co_code") for c in code.co_consts))


def _warm_up() -> None:
    """Import what torch loads lazily on a first optimizer step (about 2 s), outside any time limit."""
    if not _STATE["warm"]:
        weight = torch.zeros(1, requires_grad=True)
        (weight * 2).sum().backward()
        torch.optim.SGD([weight], lr=0.1).step()
        _STATE["warm"] = True


def run_question(question: Question, fn: Any, *, seed: int, timeout: Optional[float] = DEFAULT_TIMEOUT
                 ) -> CheckResult:
    """Run every property of ``question`` on ``fn``; never raises because of ``fn``.

    Each property gets its own generator, seeded from ``seed``, the question and the property's index,
    and at most ``timeout`` seconds. The global torch RNG is restored afterwards. After a property runs
    out of time the rest are not run (they would most likely hang too).

    Args:
        question: the question to grade.
        fn: the student's function.
        seed: any int; the same seed gives the same instances.
        timeout: seconds per property (``None``: no limit).

    Returns:
        A :class:`CheckResult` with one :class:`PropertyResult` per property.
    """
    if not callable(fn):
        return CheckResult.zero(question, f"{question.name} should be a function, got {type(fn).__name__}",
                                seed)
    if not _is_stub(fn):  # a stub is graded in milliseconds: no need to spend 2 s warming torch up for it
        _warm_up()
    remote = hasattr(fn, "_begin_property")  # judged here, run in the submission's process: no alarm here
    results: list[PropertyResult] = []
    skip = ""
    for index, prop in enumerate(question.properties):
        w = prop.weight
        if skip:
            results.append(PropertyResult(prop.description, False, skip, w))
            continue
        sub_seed = derive_seed(seed, question.exercise, question.name, index)
        try:
            if remote:
                fn._begin_property(timeout)
            with torch.random.fork_rng(devices=[]), (nullcontext() if remote else time_limit(timeout)):
                torch.manual_seed(sub_seed)
                prop.fn(fn, torch.Generator().manual_seed(sub_seed))
        except CheckFailure as err:
            results.append(PropertyResult(prop.description, False, str(err), w))
        except NotImplementedError:
            results.append(PropertyResult(prop.description, False, "not implemented yet", w))
        except TimeLimitExceeded as err:
            results.append(PropertyResult(prop.description, False, f"{err} (an endless loop?)", w))
            skip = f"not run: an earlier check took longer than {err.seconds:g} s"
        except KeyboardInterrupt:
            raise
        except BaseException as err:  # anything the student's code raised, SystemExit included
            results.append(PropertyResult(prop.description, False, _one_line(err), w))
            if type(err).__name__ == "SubmissionStopped":
                skip = f"not run: {err}"
        else:
            results.append(PropertyResult(prop.description, True, "", w))
    return CheckResult(question.exercise, question.name, seed, results, question.max_score)


def set_grading_mode(on: bool) -> None:
    """Used by the grader's subprocess: while on, :func:`check` only says the grader will run it."""
    _STATE["grading"] = bool(on)


def check(name: str, fn: Any, *, seed: Optional[int] = None, timeout: Optional[float] = DEFAULT_TIMEOUT,
          quiet: bool = False) -> CheckResult:
    """Check your function ``fn`` for question ``name`` on fresh random instances, and print why it fails.

    Args:
        name: the question, e.g. ``"standardize"`` (or ``"02_ml_basics/standardize"``).
        fn: your function.
        seed: seed of the random instances; by default one derived from ``name``, so reruns agree.
            The grader uses seeds of its own.
        timeout: seconds each property may take.
        quiet: do not print the report.

    Returns:
        A :class:`CheckResult`: ``.score``, ``.max_score``, ``.passed`` and ``.report()``.

    Raises:
        ValueError: if no exercise has a question called ``name``.
    """
    question = find_question(name)
    if _STATE["grading"]:
        result = CheckResult(question.exercise, question.name, seed, [], question.max_score, "skipped")
        report = f"check({name!r}) skipped while grading: the grader runs the checks itself"
    else:
        seed = derive_seed(question.exercise, question.name) if seed is None else seed
        result = run_question(question, fn, seed=seed, timeout=timeout)
        report = result.report()
    if not quiet:
        sys.stdout.write(report + "\n")  # one write: the kernel sends the report as one stream message
        result._printed_in = _execution_count()
    return result
