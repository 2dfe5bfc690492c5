"""One grading run over a folder of honest and dishonest submissions (and files that are not submissions at all):
each gets the right points, the dishonest ones score 0 on what they faked, the run never stops, and the CSV,
feedback and ``results.json`` are unchanged 10 s after it ended."""
import csv
import hashlib
import json
import os
import subprocess
import sys
import time

import nbformat
import pytest

from grading_helpers import QUESTIONS, ROOT, read, solved, submission
from mlsec_kit.grading import get_exercise
from mlsec_kit.grading.__main__ import main
from mlsec_kit.grading.runner import grade_notebook

pytestmark = pytest.mark.notebooks
EXERCISE = get_exercise("02_ml_basics")
FULL = {name: q.max_score for name, q in EXERCISE.questions.items()}
ZERO = dict.fromkeys(QUESTIONS, 0)
LOOP = "while True:\n    pass"
LOOPING_EPOCH = "def train_one_epoch(model, loader, optimizer):\n    while True:\n        pass\n"
SECRET = ROOT / "exercises" / "source" / "02_ml_basics.ipynb"
OUT_MARK = "@@OUT@@"  # replaced by the output folder, which a dishonest submission would like to rewrite

# a patch of a module the judge uses: fork_rng swallowing every failure, as in the reproduction
FORK_RNG_PATCH = """\
import contextlib, torch
class _Swallow(contextlib.AbstractContextManager):
    def __init__(self, *args, **kwargs):
        pass
    def __exit__(self, *exc):
        return True
torch.random.fork_rng = _Swallow
print('score: 21/21')"""
KIT_PATCH = """\
import mlsec_kit.grading as grading
from mlsec_kit.grading import core, expect
from mlsec_kit.grading.core import CheckResult
expect.fail = lambda message: None
core.run_question = lambda question, fn, **kwargs: CheckResult(question.exercise, question.name, 0, [],
                                                               question.max_score)
for question in core.get_exercise('02_ml_basics').questions.values():
    for prop in question.properties:
        prop.fn.__code__ = (lambda fn, rng: None).__code__
grading.check = lambda *args, **kwargs: print('score: 5/5')"""
DETACHED = f"""\
import os, subprocess, sys, textwrap
script = textwrap.dedent('''
    import os, time
    time.sleep(2)
    for _ in range(40):
        for path in ("{OUT_MARK}/grades.csv", "{OUT_MARK}/feedback/detached.txt",
                     "{OUT_MARK}/results/detached/results.json"):
            try:
                with open(path, "w") as f:
                    f.write("detached,5,3,5,5,3,21,21,ok,\\\\n")
            except OSError:
                pass
        time.sleep(0.5)
''')
subprocess.Popen([sys.executable, "-c", script], start_new_session=True,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
if os.fork() == 0:  # and a double fork that calls setsid
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c", script])
    os._exit(0)"""
READS_SOLUTIONS = f"""\
import json, os
found = []
for path in [{str(SECRET)!r}, "../../exercises/source/02_ml_basics.ipynb", "/proc/1/cwd/exercises/source/02_ml_basics.ipynb",
             f"/proc/{{os.getppid()}}/cwd/exercises/source/02_ml_basics.ipynb"]:
    try:
        cells = json.load(open(path))["cells"]
    except (OSError, ValueError):
        continue
    for cell in cells:
        if cell["cell_type"] == "code" and "".join(cell["source"]).startswith("def "):
            exec("".join(cell["source"]))
    found.append(path)
print("read", found)"""
MEMORY_HOG = "import numpy\ndef hog():\n    blocks = []\n    while True:\n        blocks.append(numpy.zeros(2**27))  # 1 GiB at a time\nhog()"
FORK_BOMB = """\
import os, time
for _ in range(100000):
    try:
        os.fork()
    except OSError:
        time.sleep(0.2)"""

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
    "alarm_ignored": (dict(answers=solved(*QUESTIONS), extra=[("setup", (
        # ignores the cell alarm and never returns (asleep: the notebook's deadline is what stops it, and a busy
        # loop would only take a core from the other tests for those 40 s). Its name sorts first, so the grader
        # starts it first and grades the others beside it: started last, its 40 s left a core idle.
        "import signal, time\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True:\n    time.sleep(1)"))]),
                 ZERO, "timeout", ["stopped after 40 s"]),
    "exits": (dict(answers=solved(*QUESTIONS), extra=[("generalization_gap", "import os\nos._exit(3)")]),
              ZERO, "crashed", ["exit code 3"]),
    "memory_hog": (dict(answers=solved(*QUESTIONS), extra=[("setup", MEMORY_HOG)]), FULL, "errors",
                   ["MemoryError"]),
    "fork_bomb": (dict(answers=solved(*QUESTIONS), extra=[("generalization_gap", FORK_BOMB)]), FULL, "errors",
                  ["stopped: it took longer than 6 s"]),
    # dishonest: each fakes every question and scores 0
    "patches_fork_rng": (dict(extra=[("setup", FORK_RNG_PATCH)]), ZERO, "ok", []),
    "patches_kit": (dict(extra=[("setup", KIT_PATCH)]), ZERO, "ok", []),
    "edits_checks_on_disk": (dict(extra=[("setup", (
        "import mlsec_kit.grading.sets.ch02 as ch02\n"
        "with open(ch02.__file__, 'a') as f:\n"
        "    f.write('\\n# all checks pass\\n')"))]), ZERO, "errors", ["cell 3"]),
    "detached": (dict(extra=[("setup", DETACHED)]), ZERO, "ok", []),
    "reads_solutions": (dict(extra=[("setup", READS_SOLUTIONS)]), ZERO, "ok", []),
    "kit_reference": (dict(answers={"standardize": (
        "def standardize(X_train, X_test):\n"
        "    from mlsec_kit.data.small import standardize as kit_standardize\n"
        "    a, b = kit_standardize(X_train.numpy(), X_test.numpy())\n"
        "    return torch.from_numpy(a).to(X_train.dtype), torch.from_numpy(b).to(X_test.dtype)\n")}),
        ZERO, "ok", []),
}
BAD_FILES = {  # name: (file name, expected words in the note)
    "not_a_notebook": ("not_a_notebook.txt", "not valid JSON"),
    "empty_file": ("empty_file.ipynb", "the file is empty"),
    "invalid_json": ("invalid_json.ipynb", "not valid JSON"),
    "no_code": ("no_code.ipynb", "has no code"),
    "other_set": ("other_set.ipynb", "a notebook of exercise set '10_differential_privacy', not '02_ml_basics'"),
    "huge": ("huge.ipynb", "over the 20 MB limit"),
}


def _bad_files(folder):
    (folder / "not_a_notebook.txt").write_text("my answers are in the PDF")
    (folder / "empty_file.ipynb").write_bytes(b"")
    (folder / "invalid_json.ipynb").write_text("{ this is not json")
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# nothing")]),
                   str(folder / "no_code.ipynb"))
    nbformat.write(read(ROOT / "exercises" / "10_differential_privacy.ipynb"), str(folder / "other_set.ipynb"))
    with open(folder / "huge.ipynb", "wb") as f:
        f.write(b'{"cells": [')
        f.truncate(200 * 2**20)  # 200 MB on disk (sparse)


def _snapshot(out):
    return {str(p.relative_to(out.parent)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.parent.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("submissions")
    out = tmp_path_factory.mktemp("grades") / "grades.csv"
    for name, (build, *_) in SUBMISSIONS.items():
        path = submission(folder / f"{name}.ipynb", **build)
        path.write_text(path.read_text().replace(OUT_MARK, str(out.parent)))
    _bad_files(folder)
    secret_before = hashlib.sha256(SECRET.read_bytes()).hexdigest()
    checks_before = hashlib.sha256((ROOT / "mlsec_kit/grading/sets/ch02.py").read_bytes()).hexdigest()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "mlsec_kit.grading", "grade", "02_ml_basics", str(folder),
                          "--out", str(out), "--timeout", "40", "--cell-timeout", "6", "--check-timeout", "5",
                          "--seed", "12345", "--jobs", "2"], capture_output=True, text=True, env=env, cwd=ROOT)
    seconds = time.monotonic() - start
    assert run.returncode == 0, run.stderr
    assert hashlib.sha256(SECRET.read_bytes()).hexdigest() == secret_before
    assert hashlib.sha256((ROOT / "mlsec_kit/grading/sets/ch02.py").read_bytes()).hexdigest() == checks_before
    written = _snapshot(out)
    time.sleep(10)  # a process the submission left behind would rewrite the results now
    with open(out, newline="") as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    return out, rows, run.stdout, seconds, written


def test_every_file_has_one_row(graded):
    out, rows, stdout, *_ = graded
    assert set(rows) == set(SUBMISSIONS) | set(BAD_FILES)
    header = out.read_text().splitlines()[0].split(",")
    assert header == ["student", *QUESTIONS, "total", "max", "status", "notes"]
    assert f"graded {len(SUBMISSIONS) + len(BAD_FILES)} notebooks (seed 12345)" in stdout


@pytest.mark.parametrize("name", SUBMISSIONS)
def test_points_status_and_notes(graded, name):
    _, rows, *_ = graded
    _, points, status, words = SUBMISSIONS[name]
    row = rows[name]
    assert {q: int(row[q]) for q in QUESTIONS} == points, row
    assert int(row["total"]) == sum(points.values()) and int(row["max"]) == sum(FULL.values())
    assert row["status"] == status, row
    for word in words:
        assert word in row["notes"], row["notes"]


@pytest.mark.parametrize("name", BAD_FILES)
def test_bad_files_get_a_row_with_a_clear_note(graded, name):
    _, rows, *_ = graded
    row = rows[name]
    assert row["status"] == "invalid notebook" and row["total"] == "0", row
    assert BAD_FILES[name][1] in row["notes"], row["notes"]


def test_results_are_unchanged_after_the_run(graded):
    out, *_, written = graded
    assert _snapshot(out) == written
    assert "detached,5,3" not in out.read_text()


def test_the_kit_reference_function_is_refused_with_a_message(graded):
    out, *_ = graded
    feedback = (out.parent / "feedback" / "kit_reference.txt").read_text()
    assert "implement this yourself, without `mlsec_kit.data.small.standardize`" in feedback


def test_feedback_says_what_failed_and_why(graded):
    out, *_ = graded
    feedback = out.parent / "feedback"
    assert sorted(p.stem for p in feedback.iterdir()) == sorted([*SUBMISSIONS, *BAD_FILES])
    partial = (feedback / "partial.txt").read_text()
    assert "seed 12345" in partial and f"total: 11/{sum(FULL.values())}" in partial
    assert "per_example_loss: 3/5" in partial and "call model.eval()" in partial
    assert "not implemented yet" in partial
    looping = (feedback / "looping.txt").read_text()
    assert "took longer than 5 s (an endless loop?)" in looping and "not run: an earlier check" in looping
    assert "[pass]" not in (feedback / "patches_kit.txt").read_text()


def test_gradescope_results(graded):
    out, rows, *_ = graded
    for name in rows:
        results = json.loads((out.parent / "results" / name / "results.json").read_text())
        assert results["score"] == int(rows[name]["total"])
        assert [t["max_score"] for t in results["tests"]] == [FULL[q] for q in QUESTIONS]
        assert sum(t["score"] for t in results["tests"]) == results["score"]
        assert {"name", "score", "max_score", "output", "visibility"} <= set(results["tests"][0])
    correct = json.loads((out.parent / "results" / "correct" / "results.json").read_text())
    assert correct["tests"][0]["name"].startswith("standardize(") and "[pass]" in correct["tests"][0]["output"]


def test_the_run_stays_within_its_time_limits(graded):
    *_, seconds, _ = graded
    assert seconds < 240  # 21 files on 2 workers, one notebook killed after 40 s


CH10_KIT = """\
import mlsec_kit as mk
def randomized_response(bits, epsilon, generator):
    return mk.dp.randomized_response(bits, epsilon=epsilon, generator=generator)
def rr_estimate(reports, epsilon):
    return float(mk.dp.randomized_response_estimate(reports, epsilon=epsilon))
def laplace_mean(x, lower, upper, epsilon, generator):
    return float(mk.dp.private_mean(x, lower=lower, upper=upper, epsilon=epsilon, generator=generator))
def sequential_composition(budgets):
    return tuple(mk.dp.sequential_composition(budgets))
def advanced_composition(epsilon, delta, k, delta_prime):
    return tuple(mk.dp.advanced_composition(epsilon=epsilon, delta=delta, k=k, delta_prime=delta_prime))
"""


def test_chapter_10_kit_wrappers_and_fork_rng_patch_score_zero(tmp_path, repo_env):
    ch10 = get_exercise("10_differential_privacy")
    student = read(ROOT / "exercises" / "10_differential_privacy.ipynb")
    for name, code in (("kit", CH10_KIT), ("patch", FORK_RNG_PATCH)):
        nb = read(ROOT / "exercises" / "10_differential_privacy.ipynb")
        nb.cells.append(nbformat.v4.new_code_cell(code))  # after the stubs it replaces
        nbformat.write(nb, str(tmp_path / f"{name}.ipynb"))
    assert student.cells  # the student notebook exists
    kit = grade_notebook(tmp_path / "kit.ipynb", ch10, seed=5, timeout=120)
    assert kit.total == 0, [q.report() for q in kit.questions]
    assert "implement this yourself, without `mlsec_kit.dp.mechanisms.randomized_response`" in \
        kit.questions[0].properties[0].message
    patch = grade_notebook(tmp_path / "patch.ipynb", ch10, seed=5, timeout=120)
    assert patch.total == 0 and patch.status == "ok", [q.report() for q in patch.questions]


def test_install_lines_and_input_do_not_hold_up_grading(tmp_path, repo_env):
    path = submission(tmp_path / "chatty.ipynb", answers=solved("accuracy"), extra=[
        ("setup", "%pip install -q some-package-that-does-not-exist\n!pip install another-one"),
        ("accuracy", "name = input('your name? ')")])
    start = time.monotonic()
    result = grade_notebook(path, EXERCISE, seed=1, timeout=60)
    assert time.monotonic() - start < 40
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
