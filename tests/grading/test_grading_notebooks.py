"""Every exercise notebook runs in a real Jupyter kernel, as in Colab: the student version without errors,
each check reporting "not implemented yet"; the source with every check at full marks.

The student notebooks are read from the book build's execution cache (all of them, every run). The sources
are not in the book, so each would be one more execution; every source is already graded in every run through
the grader's sandbox (``test_grading_remote``), and its solutions pass their checks on many seeds (the set's
``test_chNN``), so the run in a kernel checks a rotating sample (``tests/rotation.py``): the sets the last
commit changed plus a window of 2, always with chapter 2's (whose last cell trains on real data).
``MLSEC_SOURCES=all`` runs every source, as the weekly scheduled run does."""
import os
import re

from pathlib import Path

import pytest

from grading_helpers import ROOT
from mlsec_kit.grading import exercise_ids, get_exercise
from mlsec_kit.grading.source import source_path, student_path
from notebook_pool import execute_many
from rotation import changed_exercises, sample_for

pytestmark = pytest.mark.notebooks
CHECK_CELL = re.compile(r'^check\("(\w+)", (\w+)\)$')
SOURCES = sorted(set(sample_for(exercise_ids(), "MLSEC_SOURCES", changed=changed_exercises(exercise_ids())))
                 | {"02_ml_basics"})


@pytest.fixture(scope="module")
def executed(executed_from_cache, tmp_path_factory):
    """``run(path)``: a student notebook as the book build executed it (read from the execution cache); a
    source notebook (not in the book) executed in a fresh folder, all sources at once in the pool (one
    kernel per core), with this checkout's mlsec_kit importable in the kernel."""
    sources = {}

    def run(path):
        if Path(path).resolve().parent == (ROOT / "exercises").resolve():
            return executed_from_cache(path)
        if not sources:
            env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
            jobs = [(source_path(ROOT, e), tmp_path_factory.mktemp("run")) for e in SOURCES]
            sources.update(execute_many(jobs, timeout=120, env=env))
        nb, error, _ = sources[path]
        assert error is None, f"{Path(path).name} failed to execute:\n{error}"
        return nb
    return run


def _reports(nb) -> dict[str, str]:
    """The printed report of each check cell, by question."""
    reports = {}
    for cell in nb.cells:
        match = CHECK_CELL.match(cell.source) if cell.cell_type == "code" else None
        if match:
            assert {o.output_type for o in cell.outputs} == {"stream"}  # the report (one or more stream chunks), no stray Out[]
            reports[match.group(1)] = "".join(o.text for o in cell.outputs)
    return reports


@pytest.mark.parametrize("exercise_id", exercise_ids())
def test_student_notebook_runs_and_every_check_says_not_implemented(executed, exercise_id):
    questions = get_exercise(exercise_id).questions
    reports = _reports(executed(student_path(ROOT, exercise_id)))
    assert set(reports) == set(questions)
    for name, report in reports.items():
        assert report.strip().endswith(f"score: 0/{questions[name].max_score}")
        assert report.count("not implemented yet") == questions[name].max_score


@pytest.mark.parametrize("exercise_id", SOURCES)
def test_source_notebook_runs_with_every_check_passing(executed, exercise_id):
    questions = get_exercise(exercise_id).questions
    reports = _reports(executed(source_path(ROOT, exercise_id)))
    assert set(reports) == set(questions)
    for name, report in reports.items():
        k = questions[name].max_score
        assert report.strip().endswith(f"score: {k}/{k}") and "[FAIL]" not in report


def test_chapter_2_trains_on_real_data_once_solved(executed):
    student_last = executed(student_path(ROOT, "02_ml_basics")).cells[-1].outputs[0].text
    assert student_last.startswith("not yet: standardize is not implemented yet")
    last = executed(source_path(ROOT, "02_ml_basics")).cells[-1].outputs[0].text
    assert re.search(r"generalisation gap: [+-]\d\.\d{3}", last)
    losses = [float(x) for x in re.findall(r"mean training loss (\d\.\d+)", last)]
    assert len(losses) == 5 and losses[-1] < losses[0]
