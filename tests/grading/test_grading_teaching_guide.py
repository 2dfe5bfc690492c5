"""The teaching guide is a well-formed page, and its worked example (a new exercise set) really works."""
import os
import re
import shutil
import subprocess
import sys

import pytest

from grading_helpers import ROOT
from mlsec_kit.grading import exercise_ids
from mlsec_kit.grading.source import strip_solutions

GUIDE = ROOT / "book" / "teaching_guide.md"
TEXT = GUIDE.read_text(encoding="utf-8")


def _python_block(first_line: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", TEXT, re.S)
    found = [b for b in blocks if b.startswith(first_line)]
    assert len(found) == 1, f"no single python block starting with {first_line!r}"
    return found[0]


def test_page_structure():
    lines = TEXT.splitlines()
    assert lines[0] == "(teaching-guide)="
    outside_code = re.sub(r"````.*?````|```.*?```", "", TEXT, flags=re.S)
    levels = [len(m) for m in re.findall(r"^(#+) ", outside_code, re.M)]
    assert levels[0] == 1 and levels.count(1) == 1
    assert all(b - a <= 1 for a, b in zip(levels, levels[1:])), "a heading level is skipped"
    assert set(re.findall(r"\{ref\}`([^`]+)`", TEXT)) <= {"intro", "how-to-use"}
    weeks = re.findall(r"^\| (\d+) \|", TEXT, re.M)
    assert weeks == [str(w) for w in range(1, 16)]
    assert "python -m mlsec_kit.grading grade" in TEXT


def test_syllabus_names_exactly_the_sets_the_package_ships():
    rows = re.findall(r"^\| (\d+) \|.*\| ([^|]+) \|$", TEXT, re.M)
    named = {cell.strip().strip("`") for _, cell in rows if cell.strip().startswith("`")}
    assert named == set(exercise_ids())
    for week, cell in rows:  # a set sits in its chapter's week
        if cell.strip().startswith("`"):
            assert cell.strip().strip("`").startswith(f"{int(week):02d}_")


def test_marker_example_generates_what_the_guide_says():
    stripped = strip_solutions(_python_block("def clip_to_budget("))
    raise_line = ('raise NotImplementedError("clip_to_budget is not implemented yet: '
                  'replace this line with your code")')
    assert raise_line in stripped
    assert "clamp(0, 1)" not in stripped


@pytest.mark.notebooks
def test_worked_example_set_passes_its_own_tests(tmp_path):
    package = tmp_path / "package" / "mlsec_kit"
    shutil.copytree(ROOT / "mlsec_kit", package, ignore=shutil.ignore_patterns("__pycache__"))
    (package / "grading" / "sets" / "ch99.py").write_text(_python_block("# mlsec_kit/grading/sets/ch99.py"))
    registry = package / "grading" / "sets" / "__init__.py"
    registry.write_text(registry.read_text().replace(
        '"02_ml_basics": "mlsec_kit.grading.sets.ch02",\n',
        '"02_ml_basics": "mlsec_kit.grading.sets.ch02",\n    "99_example": "mlsec_kit.grading.sets.ch99",\n'))
    (tmp_path / "test_ch99.py").write_text(_python_block("# tests/grading/test_ch99.py"))
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_ch99.py"],
                         cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(package.parent)})
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout
