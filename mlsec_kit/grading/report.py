"""Grade a folder of notebooks and write what an instructor needs: a CSV, feedback, Gradescope results.

Next to the CSV (``--out grades.csv``) go ``feedback/<student>.txt`` (the lines a student reads) and
``results/<student>/results.json`` in Gradescope's autograder format. The student's name is the file
name without ``.ipynb``.
"""
from __future__ import annotations

import csv
import json
import os
import secrets
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Optional

from tqdm.auto import tqdm

from .core import DEFAULT_TIMEOUT, CheckResult, ExerciseSet, get_exercise
from .runner import Submission, grade_notebook

__all__ = ["grade_folder", "write_csv", "feedback_text", "gradescope_results", "submissions_in"]


def submissions_in(folder: Path) -> list[Path]:
    """The ``.ipynb`` files directly in ``folder``, by name (checkpoints and hidden files left out)."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix == ".ipynb" and p.is_file()
                  and not p.name.startswith("."))


def grade_folder(exercise_id: str, folder: Path, out: Path, *, seed: Optional[int] = None,
                 timeout: float = 300.0, cell_timeout: Optional[float] = 60.0,
                 check_timeout: Optional[float] = DEFAULT_TIMEOUT, jobs: int = 1,
                 progress: Optional[bool] = None) -> list[Submission]:
    """Grade every notebook in ``folder`` and write the CSV ``out``, feedback and Gradescope results.

    Args:
        exercise_id: e.g. ``"02_ml_basics"``.
        folder: holds the submitted ``.ipynb`` files.
        out: the CSV to write; ``feedback/`` and ``results/`` go in the same folder.
        seed: the grader's seed (default: a fresh random one, written to every feedback file).
        timeout: seconds per notebook; cell_timeout: seconds per cell; check_timeout: seconds per check.
        jobs: notebooks graded at the same time, each in its own process.
        progress: show a progress bar (default: when writing to a terminal and ``MLSEC_PROGRESS`` is not 0).

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
    with bar, ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(grade_notebook, p, exercise, seed=seed, timeout=timeout,
                               cell_timeout=cell_timeout, check_timeout=check_timeout): p for p in paths}
        for future in as_completed(futures):
            try:
                submissions.append(future.result())
            except Exception as err:  # a fault of the grader's machine (disk full, ...): note it, go on
                submissions.append(_grader_error(futures[future], exercise, seed, err))
            bar.update(1)
    submissions.sort(key=lambda s: s.student)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_csv(out, exercise, submissions)
    for sub in submissions:
        feedback = out.parent / "feedback" / f"{sub.student}.txt"
        feedback.parent.mkdir(exist_ok=True)
        feedback.write_text(feedback_text(exercise, sub), encoding="utf-8")
        results = out.parent / "results" / sub.student / "results.json"
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps(gradescope_results(exercise, sub), indent=2) + "\n", encoding="utf-8")
    return submissions


def _grader_error(path: Path, exercise: ExerciseSet, seed: int, err: Exception) -> Submission:
    note = f"the grader failed on this notebook ({type(err).__name__}: {err}); grade it again"
    return Submission(path.stem, path, "grader error", [CheckResult.zero(q, note, seed)
                                                        for q in exercise.questions.values()], [note], seed=seed)


def write_csv(path: Path, exercise: ExerciseSet, submissions: list[Submission]) -> None:
    """One row per student: points per question, total, max, status and notes."""
    names = list(exercise.questions)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["student", *names, "total", "max", "status", "notes"])
        for sub in submissions:
            writer.writerow([sub.student, *(sub.score_of(n) for n in names), sub.total, sub.max_score,
                             sub.status, " | ".join(sub.notes)])


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


def gradescope_results(exercise: ExerciseSet, sub: Submission) -> dict[str, Any]:
    """Gradescope's autograder ``results.json``: one test per question, the total as the score."""
    tests = []
    for result in sub.questions:
        body = ([result.note] if result.note else []) + [p.line().strip() for p in result.properties]
        tests.append({"name": f"{exercise.questions[result.name].signature}", "score": result.score,
                      "max_score": result.max_score, "output": "\n".join(body), "visibility": "visible"})
    summary = [f"{exercise.title}: {sub.total}/{sub.max_score} (status: {sub.status}, seed {sub.seed})"]
    return {"score": sub.total, "execution_time": round(sub.seconds, 1),
            "output": "\n".join(summary + sub.notes), "visibility": "visible", "stdout_visibility": "hidden",
            "tests": tests}
