"""check() and run_question(): partial credit, one-line reasons, and no exception escapes from student code."""
import time

import pytest
import torch

from mlsec_kit.grading import CheckResult, ExerciseSet, check, find_question, get_exercise, run_question
from mlsec_kit.grading.core import derive_seed
from mlsec_kit.grading.expect import call, fail

TOY = ExerciseSet("99_toy", "A toy set for the tests", chapter=99)
double = TOY.question("double", "double(x) -> tensor")


@double.prop("returns a tensor")
def _is_tensor(fn, rng):
    if not isinstance(call(fn, torch.randn(3, generator=rng)), torch.Tensor):
        fail("expected a tensor")


@double.prop("doubles every entry")
def _doubles(fn, rng):
    x = torch.randn(4, generator=rng)
    y = call(fn, x)
    if not torch.allclose(y, 2 * x):
        fail(f"on {x.tolist()} expected {(2 * x).tolist()}, got {y.tolist()}")


@double.prop("sees a fresh instance per seed")
def _records(fn, rng):
    SEEN.append(torch.randn(2, generator=rng))


SEEN: list = []


def test_partial_credit_and_one_line_reasons():
    result = run_question(double, lambda x: x + x if x.numel() == 3 else x, seed=1)
    assert (result.score, result.max_score) == (2, 3)
    assert [p.passed for p in result.properties] == [True, False, True]
    assert "expected" in result.properties[1].message and "\n" not in result.properties[1].message
    assert result.report().splitlines()[-1] == "score: 2/3"


def test_student_errors_become_failures():
    def broken(x):
        raise ValueError("boom")

    result = run_question(double, broken, seed=0)
    assert result.score == 1  # the seed-recording property does not call fn
    assert result.properties[0].message.startswith("raised ValueError: boom (on broken(tensor (3,) float32))")
    missing = run_question(double, lambda x: (_ for _ in ()).throw(NotImplementedError()), seed=0)
    assert missing.properties[0].message == "not implemented yet"
    exits = run_question(double, lambda x: exit(3), seed=0)
    assert "SystemExit" in exits.properties[0].message
    wrong_type = run_question(double, lambda x: x.tolist(), seed=0)
    assert wrong_type.properties[0].message == "expected a tensor"
    not_callable = run_question(double, 42, seed=0)
    assert not_callable.score == 0 and "should be a function, got int" in not_callable.note


def test_a_hanging_function_times_out_and_skips_the_rest():
    def hang(x):
        while True:
            pass

    start = time.monotonic()
    result = run_question(double, hang, seed=0, timeout=0.3)
    assert time.monotonic() - start < 3
    assert "took longer than 0.3 s" in result.properties[0].message
    assert result.properties[1].message.startswith("not run")
    assert result.score == 0


def test_seeds_draw_fresh_instances_and_restore_the_global_rng():
    SEEN.clear()
    torch.manual_seed(0)
    state = torch.get_rng_state()
    run_question(double, lambda x: 2 * x, seed=1)
    run_question(double, lambda x: 2 * x, seed=1)
    run_question(double, lambda x: 2 * x, seed=2)
    assert torch.equal(SEEN[0], SEEN[1]) and not torch.equal(SEEN[0], SEEN[2])
    assert torch.equal(torch.get_rng_state(), state)
    assert derive_seed("a", 1) == derive_seed("a", 1) != derive_seed("a", 2)


def test_check_prints_the_report_and_returns_the_result(capsys):
    def standardize(X_train, X_test):
        return X_train, X_test

    result = check("standardize", standardize)
    out = capsys.readouterr().out
    assert isinstance(result, CheckResult) and 0 < result.score < result.max_score
    assert out.strip().endswith(f"score: {result.score}/{result.max_score}")
    assert out.count("[FAIL]") == result.max_score - result.score
    again = check("standardize", standardize, quiet=True)
    assert capsys.readouterr().out == ""
    assert again.seed == result.seed and again.to_dict() == result.to_dict()  # reruns agree
    assert CheckResult.from_dict(result.to_dict()).report() == result.report()


def test_check_names():
    assert find_question("02_ml_basics/accuracy") is get_exercise("02_ml_basics").questions["accuracy"]
    with pytest.raises(ValueError, match="no exercise has a question 'acuracy'"):
        check("acuracy", lambda *a: 0)
    with pytest.raises(ValueError, match="unknown exercise"):
        get_exercise("00_nothing")
    with pytest.raises(ValueError, match="already declared"):
        TOY.question("double", "again")
