"""Notice when a submission tampers with the checker: a snapshot of the grader, taken before student code.

The grader's subprocess loads an exercise set's checks, takes a :class:`Snapshot`, runs the student's
cells, and calls :meth:`Snapshot.verify` before and after each question. The snapshot holds references
(not copies) to

* every entry of every ``mlsec_kit.grading`` module, and the code, defaults and closure of every function
  and method defined there, so ``grading.check = ...``, ``core.run_question = ...`` or
  ``some_check.__code__ = ...`` show up;
* the exercise set, its questions and their properties (a change there affects only that question);
* the entries of the modules and classes the checks rely on (``torch``, ``torch.nn.functional``,
  ``torch.Tensor``, ``numpy``, ``math``, ``builtins``, ...), so ``torch.allclose = lambda *a: True`` shows.

Entries replaced or deleted since the snapshot count, and so do entries added where an addition changes
behaviour: any name added to a watched class (``torch.Tensor.__eq__ = ...`` shadows the inherited one),
and any name other than a submodule added to a grading module (a global there shadows a builtin).
Names added to a dependency count only when they shadow a builtin: ``import torch.distributions`` adds
one to ``torch``, harmlessly. This notices monkeypatching; it is not a sandbox (see the teaching guide).
"""
from __future__ import annotations

import sys
import types
import builtins
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from .core import ExerciseSet

__all__ = ["Problem", "Snapshot"]

_DEPENDENCIES = ("builtins", "math", "copy", "json", "numpy", "torch", "torch.nn", "torch.nn.functional",
                 "torch.optim", "torch.utils.data")
_VOLATILE = {"builtins": {"_", "__", "___"}}  # IPython and the REPL store results there


@dataclass(frozen=True)
class Problem:
    """Something the submission changed: a dotted name, how it changed, the questions it affects."""

    name: str
    change: str  # "replaced", "deleted", "added" or "rewritten" (a function's code, defaults or closure)
    questions: Optional[frozenset[str]] = None  # None: every question

    @property
    def what(self) -> str:
        return f"{self.name} was {self.change}"

    def affects(self, question: str) -> bool:
        return self.questions is None or question in self.questions


def _function_state(fn: types.FunctionType) -> tuple[Any, ...]:
    cells = tuple(c.cell_contents if _cell_filled(c) else None for c in fn.__closure__ or ())
    return (fn.__code__, fn.__defaults__, fn.__kwdefaults__) + cells


def _cell_filled(cell: Any) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


@dataclass
class _Watched:
    """A dict-like object under watch, the entries it had, and what to make of entries added later."""

    label: str
    mapping: Any
    saved: dict[str, Any]
    questions: Optional[frozenset[str]] = None
    added: str = "ignore"  # "any" (classes), "non-modules" (grading modules), "builtins" (dependencies)
    skip: set[str] = field(default_factory=set)

    def problems(self) -> list[Problem]:
        found = []
        for key, value in self.saved.items():
            if key in self.skip:
                continue
            try:
                present = key in self.mapping
                same = present and self.mapping[key] is value
            except Exception:  # a mapping replaced by something that raises
                present = same = False
            if not same:
                found.append(Problem(self._name(key), "replaced" if present else "deleted", self.questions))
        if self.added != "ignore":
            for key in set(self.mapping) - set(self.saved) - self.skip:
                if self.added == "any" or (self.added == "builtins" and hasattr(builtins, key)) or (
                        self.added == "non-modules" and not isinstance(self.mapping[key], types.ModuleType)):
                    found.append(Problem(self._name(key), "added", self.questions))
        return found

    def _name(self, key: str) -> str:
        return f"{self.label}[{key!r}]" if self.label.startswith("sys.") else f"{self.label}.{key}"


class Snapshot:
    """References to the grader's objects, to compare with later by identity."""

    def __init__(self) -> None:
        self._mappings: list[_Watched] = []
        self._functions: list[tuple[str, types.FunctionType, tuple[Any, ...], Optional[frozenset[str]]]] = []
        self._seen: set[int] = set()
        # held here so that replacing them later cannot silence verify()
        self._problems_of, self._state_of = _Watched.problems, _function_state

    @classmethod
    def of_grader(cls, exercise: ExerciseSet, extra_modules: Iterable[str] = ()) -> "Snapshot":
        """Snapshot the grading package, ``exercise`` and the modules its checks use."""
        from . import core
        from .sets import SETS

        core._warm_up()  # torch's first optimizer step rewraps torch.manual_seed and SGD.step: do it now
        snap = cls()
        owner: dict[int, frozenset[str]] = {}
        for name, question in exercise.questions.items():
            scope = frozenset({name})
            snap.watch_mapping(f"{exercise.id}.{name}", vars(question), scope, added="any")
            for i, prop in enumerate(question.properties):
                snap.watch_mapping(f"{exercise.id}.{name}.properties[{i}]", vars(prop), scope, added="any")
                snap.watch_function(f"{exercise.id}.{name}: check {prop.description!r}", prop.fn, scope)
                owner[id(prop.fn)] = scope
        snap.watch_mapping(exercise.id, vars(exercise), added="any")
        snap.watch_mapping(f"{exercise.id}.questions", exercise.questions, added="any")
        snap.watch_mapping("mlsec_kit.grading.core._REGISTRY", core._REGISTRY)
        snap.watch_mapping("mlsec_kit.grading.sets.SETS", SETS)
        names = sorted(m for m in sys.modules if m == "mlsec_kit.grading" or m.startswith("mlsec_kit.grading."))
        for name in names:
            snap.watch_module(name, sys.modules[name], owner, grading=True)
        for name in [*extra_modules, *_DEPENDENCIES]:
            if name in sys.modules:
                snap.watch_module(name, sys.modules[name], owner, grading=False)
        return snap

    def watch_mapping(self, label: str, mapping: Any, questions: Optional[frozenset[str]] = None, *,
                      added: str = "ignore", owner: Optional[dict[int, frozenset[str]]] = None,
                      skip: Iterable[str] = ()) -> None:
        """Watch the entries of a dict-like object (a module's, class's or instance's ``__dict__``)."""
        saved = dict(mapping)
        # an entry holding one question's check affects only that question
        owned = {key for key, value in saved.items() if owner and id(value) in owner}
        shared = {key: value for key, value in saved.items() if key not in owned}
        self._mappings.append(_Watched(label, mapping, shared, questions, added, set(skip) | owned))
        for key in owned:
            self._mappings.append(_Watched(label, mapping, {key: saved[key]}, owner[id(saved[key])]))

    def watch_function(self, label: str, fn: Any, questions: Optional[frozenset[str]] = None) -> None:
        """Watch a Python function's code, defaults and closure."""
        if isinstance(fn, types.FunctionType) and id(fn) not in self._seen:
            self._seen.add(id(fn))
            self._functions.append((label, fn, _function_state(fn), questions))

    def watch_class(self, label: str, cls: type) -> None:
        """Watch a class and its bases: their entries, methods, and names added to them."""
        for base in cls.__mro__[:-1]:  # object excluded
            name = label if base is cls else f"{base.__module__}.{base.__qualname__}"
            self.watch_mapping(name, vars(base), added="any")
            for attr, member in vars(base).items():
                member = getattr(member, "__func__", getattr(member, "fget", member))
                self.watch_function(f"{name}.{attr}", member)

    def watch_module(self, name: str, module: types.ModuleType, owner: dict[int, frozenset[str]],
                     *, grading: bool) -> None:
        """Watch a module's entries and functions; for a grading module, also the classes it defines."""
        self.watch_mapping(name, vars(module), added="non-modules" if grading else "builtins", owner=owner,
                           skip=_VOLATILE.get(name, ()))
        self._mappings.append(_Watched(f"sys.modules[{name!r}]", sys.modules, {name: module}))
        for key, value in list(vars(module).items()):
            if isinstance(value, types.FunctionType):
                self.watch_function(f"{name}.{key}", value, owner.get(id(value)))
            elif grading and isinstance(value, type) and value.__module__ == name:
                self.watch_class(f"{name}.{key}", value)
        if name == "torch":
            import torch.utils.data
            for cls in (module.Tensor, module.nn.Module, module.nn.Linear, module.optim.SGD,
                        torch.utils.data.DataLoader):
                self.watch_class(f"torch.{cls.__qualname__}", cls)

    def verify(self) -> list[Problem]:
        """Everything replaced, deleted or added against the rules since the snapshot (empty if nothing)."""
        problems = [p for watched in self._mappings for p in self._problems_of(watched)]
        for label, fn, state, questions in self._functions:
            now = self._state_of(fn)
            if len(now) != len(state) or any(a is not b for a, b in zip(now, state)):
                problems.append(Problem(label, "rewritten", questions))
        return problems

    def __len__(self) -> int:
        return sum(len(w.saved) for w in self._mappings) + len(self._functions)
