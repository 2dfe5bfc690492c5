"""Grade one submitted notebook in a process of its own.

Why a fresh ``python`` process hosting an IPython shell, and not a Jupyter kernel: the grader must call
the student's functions itself and hand structured results back to the parent without going through
anything the student's code prints. In a kernel that means injecting grader code into the student's
namespace; here the grader's own frame holds its references (taken before any student code runs) and
writes its results to a file the parent names. ``IPython``'s shell still runs each cell exactly as a
notebook would (magics, ``display``, ``%%time``), with ``%pip``, ``%conda`` and ``!`` commands turned
into no-ops so an install line costs nothing.

The parent (:func:`grade_notebook`) copies the ``mlsec_kit`` package into a fresh folder for each
submission, so a submission that edits the checks on disk changes only its own copy (and is caught by
comparing hashes), starts ``python -m mlsec_kit.grading.runner`` there with the job on standard input,
and kills the process group at the per-notebook time limit. Inside (:func:`main`) each cell gets a time
limit, a failing cell does not stop the next, and each question is graded on a fresh seed, between two
:class:`~mlsec_kit.grading.integrity.Snapshot` checks. Results are rewritten after every question, so a
notebook killed while grading keeps the questions graded before.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from . import core
from .core import CheckResult, ExerciseSet, get_exercise
from .integrity import Snapshot
from .limits import TimeLimitExceeded, time_limit

__all__ = ["Submission", "grade_notebook", "main"]


# ---- inside the grading process ------------------------------------------------------------------------
def _skipped(line: str = "", *args: Any, **kwargs: Any) -> None:
    print(f"[grader] skipped: {line}".rstrip())


def _make_shell() -> Any:
    """An IPython shell with history off and install/shell commands turned into no-ops."""
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.text import SList
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False
    config.InteractiveShell.colors = "NoColor"
    shell = InteractiveShell.instance(config=config)
    for magic in ("pip", "conda", "mamba"):
        shell.register_magic_function(_skipped, "line", magic)
    shell.system = shell.system_raw = shell.system_piped = _skipped
    shell.getoutput = lambda *args, **kwargs: SList()
    return shell


def _cell_error(index: int, source: str, error: BaseException) -> str:
    first = next((line.strip() for line in source.splitlines() if line.strip()), "")
    first = first if len(first) <= 40 else first[:37] + "..."
    if isinstance(error, TimeLimitExceeded):
        what = f"stopped: it {error} (an endless loop?)"
    elif isinstance(error, SyntaxError):
        what = f"{type(error).__name__}: {error.msg} (line {error.lineno})"
    else:
        text = (str(error).strip().splitlines() or [""])[0][:160]
        what = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return f"cell {index} ({first}): {what}"


def _execute_cells(shell: Any, cells: list[tuple[int, str]], timeout: Optional[float]) -> list[str]:
    """Run each cell in turn, each with a time limit; return one line per cell that failed."""
    errors = []
    for index, source in cells:
        try:
            with time_limit(timeout):
                result = shell.run_cell(source, store_history=False)
            error = result.error_before_exec or result.error_in_exec
        except (Exception, TimeLimitExceeded) as err:  # raised outside the cell's own code
            error = err
        if error is not None:
            errors.append(_cell_error(index, source, error))
    return errors


def _tamper_note(problems: list[Any], during: str = "") -> str:
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"tampering with the checker: {problems[0].what}{during}{more}; no points"


def _grade_question(question: core.Question, namespace: dict[str, Any], verify: Any,
                    run: Any, seed: int, timeout: Optional[float]) -> CheckResult:
    problems = [p for p in verify() if p.affects(question.name)]
    if problems:
        return CheckResult.zero(question, _tamper_note(problems), seed)
    if question.name not in namespace:
        return CheckResult.zero(question, f"{question.name} is not defined in the notebook "
                                          "(did its cell raise an error?)", seed)
    result = run(question, namespace[question.name], seed=seed, timeout=timeout)
    problems = [p for p in verify() if p.affects(question.name)]
    if problems:
        return CheckResult.zero(question, _tamper_note(problems, f" while {question.name} ran"), seed)
    return result


def main() -> None:
    """Entry point of the grading process: read the job from stdin, grade, write results, exit."""
    job = json.loads(sys.stdin.read())
    sys.stdin = open(os.devnull)  # input() in a cell gets EOF instead of waiting forever
    # held before any student code runs, so that replacing them later changes nothing here
    write, seek, truncate, exit_now, dumps = os.write, os.lseek, os.ftruncate, os._exit, json.dumps
    fd = os.open(job["results"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)

    def save(payload: dict[str, Any]) -> None:
        data = dumps({**payload, "nonce": job["nonce"]}).encode()
        truncate(fd, 0)
        seek(fd, 0, 0)
        write(fd, data)

    exercise: ExerciseSet = get_exercise(job["exercise"])
    questions = tuple(exercise.questions.values())
    run = core.run_question
    core.set_grading_mode(True)
    core._warm_up()
    shell = _make_shell()
    namespace = shell.user_ns
    verify = Snapshot.of_grader(exercise).verify
    payload: dict[str, Any] = {"questions": [], "cells": [], "complete": False, "package": core.__file__}
    save(payload)
    payload["cells"] = _execute_cells(shell, [tuple(c) for c in job["cells"]], job["cell_timeout"])
    save(payload)
    for question in questions:
        seed = core.derive_seed(job["seed"], question.exercise, question.name)
        result = _grade_question(question, namespace, verify, run, seed, job["check_timeout"])
        payload["questions"].append(result.to_dict())
        save(payload)
    payload["complete"] = True
    save(payload)
    try:
        sys.stdout.flush()
    finally:
        exit_now(0)  # no atexit handlers or threads of the submission run after this


# ---- in the instructor's process -----------------------------------------------------------------------
@dataclass
class Submission:
    """The outcome of grading one notebook."""

    student: str
    path: Path
    status: str  # ok, errors, timeout, crashed, tampering, invalid notebook, grader error
    questions: list[CheckResult]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    seed: Optional[int] = None

    @property
    def total(self) -> int:
        return sum(q.score for q in self.questions)

    @property
    def max_score(self) -> int:
        return sum(q.max_score for q in self.questions)

    def score_of(self, name: str) -> int:
        return next((q.score for q in self.questions if q.name == name), 0)


def _hash_tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the grading process and anything it started."""
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _read_results(path: Path, nonce: str) -> Optional[dict[str, Any]]:
    """What the grading process wrote, if it is well formed and carries this run's nonce."""
    try:
        payload = json.loads(path.read_text())
        if not isinstance(payload, dict) or payload.get("nonce") != nonce:
            return None
        payload["questions"] = [CheckResult.from_dict(d) for d in payload["questions"]]
        payload["cells"] = [str(line) for line in payload["cells"]]
        return payload
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _child_env(package_root: Path, home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(package_root), env.get("PYTHONPATH", "")]))
    env.update(MPLBACKEND="Agg", IPYTHONDIR=str(home / "ipython"), PYTHONDONTWRITEBYTECODE="1",
               MLSEC_PROGRESS="0")
    env.setdefault("OMP_NUM_THREADS", "1")  # exercise problems are tiny; several gradings share the CPU
    return env


def _log_tail(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    # the last line of output says why only when it is an error (a segfault, an out-of-memory kill)
    return lines[-1][:200] if lines and ("Error" in lines[-1] or "Fatal" in lines[-1]) else ""


def grade_notebook(path: Path, exercise: ExerciseSet, *, seed: int, timeout: float = 300.0,
                   cell_timeout: Optional[float] = 60.0, check_timeout: Optional[float] = core.DEFAULT_TIMEOUT
                   ) -> Submission:
    """Grade the notebook at ``path`` in a subprocess; never raises because of the submission.

    Args:
        path: the submitted ``.ipynb``.
        exercise: the exercise set to grade against.
        seed: the grader's seed; each question's instances are drawn from it.
        timeout: seconds the whole notebook may take, cells and checks; then the process is killed.
        cell_timeout: seconds one cell may take before it is interrupted (``None``: no limit).
        check_timeout: seconds one property check may take.
    """
    path, start = Path(path), time.monotonic()
    submission = Submission(path.stem, path, "ok", [], seed=seed)
    try:
        import nbformat
        notebook = nbformat.read(str(path), as_version=4)
        cells = [(i + 1, cell.source) for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
    except Exception as err:  # not JSON, not a notebook, unreadable
        return _all_zero(submission, exercise, "invalid notebook", f"could not read the notebook: "
                         f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:160]}", start)
    with tempfile.TemporaryDirectory(prefix="mlsec-grade-") as tmp:
        tmp_path = Path(tmp)
        package_root, work, results = tmp_path / "package", tmp_path / "work", tmp_path / "results.json"
        work.mkdir()
        shutil.copytree(Path(core.__file__).parents[1], package_root / "mlsec_kit",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        hashes = _hash_tree(package_root)
        nonce = secrets.token_hex(16)
        job = {"exercise": exercise.id, "cells": cells, "seed": seed, "cell_timeout": cell_timeout,
               "check_timeout": check_timeout, "results": str(results), "nonce": nonce}
        log = tmp_path / "log.txt"
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "mlsec_kit.grading.runner"], stdin=subprocess.PIPE,
                                    stdout=out, stderr=subprocess.STDOUT, cwd=work,
                                    env=_child_env(package_root, tmp_path),
                                    start_new_session=os.name == "posix")
            try:
                proc.stdin.write(json.dumps(job).encode())
                proc.stdin.close()
            except OSError:
                pass
            try:
                returncode: Optional[int] = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                returncode = None
            _kill_group(proc)
        payload = _read_results(results, nonce)
        after = _hash_tree(package_root)
        edited = sorted(k for k in hashes.keys() | after.keys() if hashes.get(k) != after.get(k))
        tail = _log_tail(log)
    return _collect(submission, exercise, payload, returncode, edited, tail, timeout, start)


def _all_zero(submission: Submission, exercise: ExerciseSet, status: str, note: str, start: float,
              done: Optional[list[CheckResult]] = None) -> Submission:
    done = done or []
    graded = {r.name for r in done}
    submission.questions = done + [CheckResult.zero(q, note, submission.seed)
                                   for q in exercise.questions.values() if q.name not in graded]
    submission.status, submission.seconds = status, time.monotonic() - start
    submission.notes.append(note)
    return submission


def _collect(submission: Submission, exercise: ExerciseSet, payload: Optional[dict[str, Any]],
             returncode: Optional[int], edited: list[str], tail: str, timeout: float, start: float
             ) -> Submission:
    """Turn what the grading process left behind into a :class:`Submission`."""
    done = payload["questions"] if payload else []
    if payload:
        submission.notes += payload["cells"]
    if edited:
        note = f"tampering with the checker: edited {', '.join(edited[:3])} on disk; no points"
        return _all_zero(submission, exercise, "tampering", note, start)
    if returncode is None:
        note = (f"stopped after {timeout:g} s: the notebook did not finish in time "
                "(an endless loop, or a long computation at top level?)")
        return _all_zero(submission, exercise, "timeout", note, start, done)
    if not payload or not payload.get("complete"):
        note = f"the notebook ended the grading process (exit code {returncode})"
        note += f": {tail}" if tail else ""
        return _all_zero(submission, exercise, "crashed", note, start, done)
    submission.questions = done
    tampered = [q for q in done if q.note.startswith("tampering")]
    if tampered:
        submission.status = "tampering"
        names = ", ".join(q.name for q in tampered)
        submission.notes.append(f"{tampered[0].note} (questions: {names})")
    elif payload["cells"]:
        submission.status = "errors"
    submission.seconds = time.monotonic() - start
    return submission


if __name__ == "__main__":
    main()
