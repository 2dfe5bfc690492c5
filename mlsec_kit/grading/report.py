"""Grade a folder of notebooks and write what an instructor needs: a CSV, feedback, Gradescope results.

Next to the CSV (``--out grades.csv``) go ``feedback/<student>.txt`` (the lines a student reads) and
``results/<student>/results.json`` in Gradescope's autograder format. The student's name is the file
name without ``.ipynb``.
"""
from __future__ import annotations

import csv
import io
import json
import multiprocessing
import os
import secrets
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Optional

from tqdm.auto import tqdm

from .core import DEFAULT_TIMEOUT, CheckResult, ExerciseSet, get_exercise
from .runner import Submission, grade_notebook

__all__ = ["grade_folder", "write_csv", "feedback_text", "gradescope_results", "submissions_in"]


def submissions_in(folder: Path) -> list[Path]:
    """The files directly in ``folder``, by name (hidden files and checkpoints left out): every one gets a row,
    a file that is not a notebook a row that says so."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and not p.name.startswith("."))


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: readers see the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _grade_in_worker(path: Path, exercise_id: str, sets_dir: Optional[str], kwargs: dict) -> Submission:
    """A pool worker (a fresh grader process): load the set, grade one notebook."""
    from .core import load_sets

    if sets_dir:
        load_sets(sets_dir)
    return grade_notebook(path, get_exercise(exercise_id), **kwargs)


def grade_folder(exercise_id: str, folder: Path, out: Path, *, seed: Optional[int] = None,
                 timeout: float = 300.0, cell_timeout: Optional[float] = 60.0,
                 check_timeout: Optional[float] = DEFAULT_TIMEOUT, jobs: int = 1,
                 progress: Optional[bool] = None, sets_dir: Optional[Path] = None,
                 limits: Any = None, visibility: Optional[dict[str, str]] = None) -> list[Submission]:
    """Grade every notebook in ``folder`` and write the CSV ``out``, feedback and Gradescope results.

    Args:
        exercise_id: e.g. ``"02_ml_basics"``.
        folder: holds the submitted ``.ipynb`` files.
        out: the CSV to write; ``feedback/`` and ``results/`` go in the same folder.
        seed: the grader's seed (default: a fresh random one, written to every feedback file).
        timeout: seconds per notebook; cell_timeout: seconds per cell; check_timeout: seconds per check.
        jobs: notebooks graded at the same time, each by a grader process of its own (``jobs > 1``).
        progress: show a progress bar (default: when writing to a terminal and ``MLSEC_PROGRESS`` is not 0).
        sets_dir: a folder of instructor-private exercise sets (see :func:`~mlsec_kit.grading.core.load_sets`).
        limits: the sandbox's :class:`~mlsec_kit.grading.sandbox.Limits`.
        visibility: Gradescope visibility per question name (``visible``, ``after_due_date``, ``hidden``).

    Every file is written once, atomically, after every submission's process has ended.

    Returns:
        One :class:`~mlsec_kit.grading.runner.Submission` per notebook, by student name.
    """
    exercise = get_exercise(exercise_id)
    paths = submissions_in(folder)
    seed = secrets.randbelow(2**31) if seed is None else seed
    if progress is None and os.environ.get("MLSEC_PROGRESS", "1") == "0":
        progress = False
    disable = None if progress is None else not progress  # None: only on a terminal
    bar = tqdm(total=len(paths), desc=f"grading {exercise_id}", unit="notebook", disable=disable)
    submissions = []
    kwargs = dict(seed=seed, timeout=timeout, cell_timeout=cell_timeout, check_timeout=check_timeout,
                  limits=limits)
    with bar:
        if jobs <= 1:
            for p in paths:
                try:
                    submissions.append(grade_notebook(p, exercise, **kwargs))
                except Exception as err:  # a fault of the grader's machine (disk full, ...): note it, go on
                    submissions.append(_grader_error(p, exercise, seed, err))
                bar.update(1)
        else:
            context = multiprocessing.get_context("spawn")  # fresh grader processes, nothing shared
            with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
                futures = {pool.submit(_grade_in_worker, p, exercise_id, str(sets_dir) if sets_dir else None,
                                       kwargs): p for p in paths}
                for future in as_completed(futures):
                    try:
                        submissions.append(future.result())
                    except Exception as err:
                        submissions.append(_grader_error(futures[future], exercise, seed, err))
                    bar.update(1)
    submissions.sort(key=lambda s: s.student)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_csv(out, exercise, submissions)
    for sub in submissions:
        _write_atomic(out.parent / "feedback" / f"{sub.student}.txt", feedback_text(exercise, sub))
        _write_atomic(out.parent / "results" / sub.student / "results.json",
                      json.dumps(gradescope_results(exercise, sub, visibility), indent=2) + "\n")
    return submissions


def _grader_error(path: Path, exercise: ExerciseSet, seed: int, err: Exception) -> Submission:
    note = f"the grader failed on this notebook ({type(err).__name__}: {err}); grade it again"
    return Submission(path.stem, path, "grader error", [CheckResult.zero(q, note, seed)
                                                        for q in exercise.questions.values()], [note], seed=seed)


def write_csv(path: Path, exercise: ExerciseSet, submissions: list[Submission]) -> None:
    """One row per student: points per question, total, max, status and notes."""
    names = list(exercise.questions)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["student", *names, "total", "max", "status", "notes"])
    for sub in submissions:
        writer.writerow([sub.student, *(sub.score_of(n) for n in names), sub.total, sub.max_score,
                         sub.status, " | ".join(sub.notes)])
    _write_atomic(Path(path), buffer.getvalue())


def feedback_text(exercise: ExerciseSet, sub: Submission) -> str:
    """What a student reads: status, notebook errors, then every property's line per question."""
    lines = [f"{exercise.title} ({exercise.id})", f"submission: {sub.path.name}",
             f"graded on fresh random inputs (seed {sub.seed}); status: {sub.status}"]
    lines += [f"note: {note}" for note in sub.notes]
    for result in sub.questions:
        lines += ["", f"{result.name}: {result.score}/{result.max_score}"]
        lines += [f"  {result.note}"] if result.note else []
        lines += [p.line() for p in result.properties]
    lines += ["", f"total: {sub.total}/{sub.max_score}"]
    return "\n".join(lines) + "\n"


VISIBILITIES = ("visible", "after_due_date", "after_published", "hidden")


def gradescope_results(exercise: ExerciseSet, sub: Submission,
                       visibility: Optional[dict[str, str]] = None) -> dict[str, Any]:
    """Gradescope's autograder ``results.json``: one test per question, the total as the score.

    ``visibility`` maps a question's name (or ``"*"``, the default of every test) to ``visible``,
    ``after_due_date``, ``after_published`` or ``hidden``.
    """
    visibility = dict(visibility or {})
    for key, value in visibility.items():
        if value not in VISIBILITIES:
            raise ValueError(f"visibility of {key!r} must be one of {', '.join(VISIBILITIES)}, got {value!r}")
    tests = []
    for result in sub.questions:
        body = ([result.note] if result.note else []) + [p.line().strip() for p in result.properties]
        tests.append({"name": f"{exercise.questions[result.name].signature}", "score": result.score,
                      "max_score": result.max_score, "output": "\n".join(body),
                      "visibility": visibility.get(result.name, visibility.get("*", "visible"))})
    summary = [f"{exercise.title}: {sub.total}/{sub.max_score} (status: {sub.status}, seed {sub.seed})"]
    return {"score": sub.total, "execution_time": round(sub.seconds, 1),
            "output": "\n".join(summary + sub.notes), "visibility": "visible", "stdout_visibility": "hidden",
            "tests": tests}
