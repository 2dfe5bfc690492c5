"""One grading run over a folder of real submissions: correct, partial, blank, crashing, looping and
tampering notebooks (and a few harder cases) get the right points in one CSV, and the run never stops."""
import csv
import hashlib
import json
import subprocess
import sys
import time

import pytest

from grading_helpers import QUESTIONS, ROOT, solved, submission
from mlsec_kit.grading import get_exercise
from mlsec_kit.grading.__main__ import main
from mlsec_kit.grading.runner import grade_notebook

pytestmark = pytest.mark.notebooks
EXERCISE = get_exercise("02_ml_basics")
FULL = {name: q.max_score for name, q in EXERCISE.questions.items()}
ZERO = dict.fromkeys(QUESTIONS, 0)
CHECKS_FILE = ROOT / "mlsec_kit" / "grading" / "sets" / "ch02.py"
LOOP = "while True:\n    pass"
LOOPING_EPOCH = "def train_one_epoch(model, loader, optimizer):\n    while True:\n        pass\n"

SUBMISSIONS = {
    # name: (how to build it, expected points per question, expected status, words expected in the notes)
    "correct": (dict(answers=solved(*QUESTIONS)), FULL, "ok", []),
    "partial": (dict(answers={**solved("standardize", "accuracy"), "per_example_loss":
                              "def per_example_loss(model, X, y):\n"
                              "    return F.cross_entropy(model(X), y, reduction='none')\n"}),
                {**ZERO, "standardize": 5, "accuracy": 3, "per_example_loss": 3}, "ok", []),
    "blank": (dict(), ZERO, "ok", []),
    "crashing": (dict(answers={**solved(*QUESTIONS), "accuracy": "def accuracy(logits, y)\n    return 1.0\n"},
                      extra=[("setup", "raise RuntimeError('my experiment crashed')")]),
                 {**FULL, "accuracy": 0, "generalization_gap": 0}, "errors",
                 ["RuntimeError: my experiment crashed", "SyntaxError"]),
    "looping": (dict(answers={**solved(*QUESTIONS), "train_one_epoch": LOOPING_EPOCH},
                     extra=[("standardize", LOOP)]),
                {**FULL, "train_one_epoch": 0}, "errors", ["stopped: it took longer than 6 s"]),
    "tampering": (dict(answers=solved(*QUESTIONS), extra=[("generalization_gap", (
        "import mlsec_kit.grading as grading\n"
        "from mlsec_kit.grading import core\n"
        "grading.check = lambda *args, **kwargs: print('score: 5/5')\n"
        "core.run_question = lambda question, fn, **kwargs: None\n"
        "def check(name, fn):\n"
        "    print(f'{name}\\n  [pass] everything\\nscore: 5/5')\n"
        "print('score: 21/21')"))]),
                  ZERO, "tampering", ["tampering with the checker: mlsec_kit.grading.check was replaced"]),
    # harder cases
    "stubborn": (dict(answers=solved(*QUESTIONS), extra=[("setup", (
        "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\n" + LOOP))]),
                 ZERO, "timeout", ["stopped after 25 s"]),
    "exits": (dict(answers=solved(*QUESTIONS), extra=[("generalization_gap", "import os\nos._exit(3)")]),
              ZERO, "crashed", ["exit code 3"]),
    "edits_one_check": (dict(answers=solved(*QUESTIONS), extra=[("setup", (
        "from mlsec_kit.grading import get_exercise\n"
        "for prop in get_exercise('02_ml_basics').questions['accuracy'].properties:\n"
        "    prop.fn.__code__ = (lambda fn, rng: None).__code__"))]),
                        {**FULL, "accuracy": 0}, "tampering", []),
    "edits_file": (dict(answers=solved(*QUESTIONS), extra=[("setup", (
        "import mlsec_kit.grading.sets.ch02 as ch02\n"
        "with open(ch02.__file__, 'a') as f:\n"
        "    f.write('\\n# all checks pass\\n')"))]),
                   ZERO, "tampering", ["edited mlsec_kit/grading/sets/ch02.py on disk"]),
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("submissions")
    for name, (build, *_) in SUBMISSIONS.items():
        submission(folder / f"{name}.ipynb", **build)
    (folder / "not_a_notebook.ipynb").write_text("{ this is not json")
    checks_before = hashlib.sha256(CHECKS_FILE.read_bytes()).hexdigest()
    out = tmp_path_factory.mktemp("grades") / "grades.csv"
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT)}
    start = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "mlsec_kit.grading", "grade", "02_ml_basics", str(folder),
                          "--out", str(out), "--timeout", "25", "--cell-timeout", "6", "--check-timeout", "3",
                          "--seed", "12345", "--jobs", "2"], capture_output=True, text=True, env=env, cwd=ROOT)
    seconds = time.monotonic() - start
    assert run.returncode == 0, run.stderr
    assert hashlib.sha256(CHECKS_FILE.read_bytes()).hexdigest() == checks_before  # the repo's checks untouched
    with open(out, newline="") as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    return out, rows, run.stdout, seconds


def test_every_submission_has_one_row(graded):
    out, rows, stdout, _ = graded
    assert set(rows) == set(SUBMISSIONS) | {"not_a_notebook"}
    header = out.read_text().splitlines()[0].split(",")
    assert header == ["student", *QUESTIONS, "total", "max", "status", "notes"]
    assert "graded 11 notebooks (seed 12345)" in stdout


@pytest.mark.parametrize("name", SUBMISSIONS)
def test_points_status_and_notes(graded, name):
    _, rows, _, _ = graded
    _, points, status, words = SUBMISSIONS[name]
    row = rows[name]
    assert {q: int(row[q]) for q in QUESTIONS} == points, row
    assert int(row["total"]) == sum(points.values()) and int(row["max"]) == sum(FULL.values())
    assert row["status"] == status, row
    for word in words:
        assert word in row["notes"], row["notes"]


def test_unreadable_notebook_scores_zero(graded):
    _, rows, _, _ = graded
    assert rows["not_a_notebook"]["status"] == "invalid notebook" and rows["not_a_notebook"]["total"] == "0"


def test_feedback_says_what_failed_and_why(graded):
    out, *_ = graded
    feedback = out.parent / "feedback"
    assert sorted(p.stem for p in feedback.iterdir()) == sorted([*SUBMISSIONS, "not_a_notebook"])
    partial = (feedback / "partial.txt").read_text()
    assert "seed 12345" in partial and f"total: 11/{sum(FULL.values())}" in partial
    assert "per_example_loss: 3/5" in partial and "call model.eval()" in partial
    assert "not implemented yet" in partial
    looping = (feedback / "looping.txt").read_text()
    assert "took longer than 3 s (an endless loop?)" in looping and "not run: an earlier check" in looping
    tampering = (feedback / "tampering.txt").read_text()
    assert "tampering with the checker" in tampering and "[pass] everything" not in tampering
    edits = (feedback / "edits_one_check.txt").read_text()
    assert "02_ml_basics.accuracy: check 'returns a Python float' was rewritten" in edits


def test_gradescope_results(graded):
    out, rows, _, _ = graded
    for name in rows:
        results = json.loads((out.parent / "results" / name / "results.json").read_text())
        assert results["score"] == int(rows[name]["total"])
        assert [t["max_score"] for t in results["tests"]] == [FULL[q] for q in QUESTIONS]
        assert sum(t["score"] for t in results["tests"]) == results["score"]
        assert {"name", "score", "max_score", "output"} <= set(results["tests"][0])
    correct = json.loads((out.parent / "results" / "correct" / "results.json").read_text())
    assert correct["tests"][0]["name"].startswith("standardize(") and "[pass]" in correct["tests"][0]["output"]


def test_the_run_stays_within_its_time_limits(graded):
    *_, seconds = graded
    assert seconds < 150  # 11 notebooks on 2 workers, one of them killed after 25 s


def test_install_lines_and_input_do_not_hold_up_grading(tmp_path, repo_env):
    path = submission(tmp_path / "chatty.ipynb", answers=solved("accuracy"), extra=[
        ("setup", "%pip install -q some-package-that-does-not-exist\n!pip install another-one"),
        ("accuracy", "name = input('your name? ')")])
    start = time.monotonic()
    result = grade_notebook(path, EXERCISE, seed=1, timeout=60)
    assert time.monotonic() - start < 30
    assert result.score_of("accuracy") == 3 and result.total == 3
    assert result.status == "errors" and any("EOFError" in note for note in result.notes)
    assert not any("pip" in note for note in result.notes)  # the install lines were skipped, not failed


def test_cli_errors_are_clear(tmp_path, capsys):
    def run(*args):
        with pytest.raises(SystemExit) as exit_:
            main(["grade", *args])
        return exit_.value.code, capsys.readouterr().err

    code, err = run("02_ml_basics", str(tmp_path / "nowhere"))
    assert code == 2 and "does not exist" in err
    code, err = run("99_nothing", str(tmp_path))
    assert code == 2 and "unknown exercise '99_nothing'" in err
    code, err = run("02_ml_basics", str(tmp_path))
    assert code == 2 and "holds no .ipynb files" in err
    code, err = run("02_ml_basics", str(tmp_path), "--timeout", "-1")
    assert code == 2 and "must be > 0 seconds" in err


def test_a_grader_fault_on_one_notebook_does_not_stop_the_run(tmp_path, monkeypatch):
    from mlsec_kit.grading import report

    for name in ("first", "second"):
        (tmp_path / f"{name}.ipynb").write_text("{}")

    def flaky(path, exercise, **kwargs):
        if path.stem == "first":
            raise OSError("disk full")
        return report.Submission(path.stem, path, "ok", [report.CheckResult.zero(q, "blank")
                                                         for q in exercise.questions.values()], seed=kwargs["seed"])

    monkeypatch.setattr(report, "grade_notebook", flaky)
    subs = report.grade_folder("02_ml_basics", tmp_path, tmp_path / "out" / "grades.csv", seed=3, progress=False)
    assert [(s.student, s.status) for s in subs] == [("first", "grader error"), ("second", "ok")]
    assert "disk full" in (tmp_path / "out" / "grades.csv").read_text()
