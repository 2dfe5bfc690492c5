"""The tamper check: quiet after honest work, loud after monkeypatching, and scoped to what was touched."""
import torch

import mlsec_kit.grading as grading
from grading_helpers import SOURCE, exec_notebook_code, read
from mlsec_kit.grading import core, get_exercise, run_question
from mlsec_kit.grading.integrity import Snapshot

EXERCISE = get_exercise("02_ml_basics")


def test_honest_work_raises_no_alarm():
    snapshot = Snapshot.of_grader(EXERCISE)
    assert len(snapshot) > 3000  # the grading package, the set and the modules its checks use
    namespace = exec_notebook_code(read(SOURCE))  # imports, trains, calls check() in every way
    import torch.distributions  # noqa: F401  (adds a name to torch: allowed)
    for name, question in EXERCISE.questions.items():
        assert run_question(question, namespace[name], seed=5).passed
    assert snapshot.verify() == []


def test_monkeypatching_the_grader_or_its_dependencies_affects_every_question(monkeypatch):
    snapshot = Snapshot.of_grader(EXERCISE)
    monkeypatch.setattr(core, "run_question", lambda *args, **kwargs: None)
    monkeypatch.setattr(grading, "check", print)
    monkeypatch.setattr(torch, "allclose", lambda *args, **kwargs: True)
    monkeypatch.setattr(torch.Tensor, "__eq__", lambda self, other: True)
    found = {p.what for p in snapshot.verify()}
    assert {"mlsec_kit.grading.core.run_question was replaced", "mlsec_kit.grading.check was replaced",
            "torch.allclose was replaced", "torch.Tensor.__eq__ was added"} <= found
    assert all(p.questions is None for p in snapshot.verify())


def test_editing_one_questions_checks_affects_only_that_question(monkeypatch):
    snapshot = Snapshot.of_grader(EXERCISE)
    prop = EXERCISE.questions["accuracy"].properties[0]
    monkeypatch.setattr(prop.fn, "__code__", (lambda fn, rng: None).__code__)
    problems = snapshot.verify()
    assert [p.change for p in problems] == ["rewritten"]
    assert problems and all(p.affects("accuracy") and not p.affects("standardize") for p in problems)
    monkeypatch.undo()
    assert snapshot.verify() == []


def test_replacing_the_questions_or_the_registry_is_noticed(monkeypatch):
    snapshot = Snapshot.of_grader(EXERCISE)
    monkeypatch.setattr(EXERCISE.questions["standardize"], "properties", ())
    monkeypatch.setitem(core._REGISTRY, "02_ml_basics", None)
    found = snapshot.verify()
    assert any(p.what == "02_ml_basics.standardize.properties was replaced" and p.questions == {"standardize"}
               for p in found)
    assert any(p.what == "mlsec_kit.grading.core._REGISTRY.02_ml_basics was replaced" and p.questions is None
               for p in found)


def test_silencing_the_tamper_check_itself_does_not_work(monkeypatch):
    from mlsec_kit.grading import integrity
    snapshot = Snapshot.of_grader(EXERCISE)
    monkeypatch.setattr(integrity._Watched, "problems", lambda self: [])
    monkeypatch.setattr(integrity, "_function_state", lambda fn: ())
    monkeypatch.setattr(core, "run_question", print)
    assert "mlsec_kit.grading.core.run_question was replaced" in {p.what for p in snapshot.verify()}


def test_a_global_that_shadows_a_builtin_in_the_checks_is_noticed(monkeypatch):
    snapshot = Snapshot.of_grader(EXERCISE)
    import mlsec_kit.grading.sets.ch02 as ch02
    monkeypatch.setattr(ch02, "isinstance", lambda *args: True, raising=False)
    monkeypatch.setattr(torch.nn.functional, "float", lambda *args: 0.0, raising=False)
    found = {p.what for p in snapshot.verify()}
    assert found == {"mlsec_kit.grading.sets.ch02.isinstance was added", "torch.nn.functional.float was added"}
