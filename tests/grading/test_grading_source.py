"""Student notebooks are generated from the exercise sources, never edited by hand."""
import subprocess
import sys

import pytest

from grading_helpers import EXERCISE, QUESTIONS, ROOT, SOURCE, STUDENT, read
from mlsec_kit.grading import exercise_ids, get_exercise
from mlsec_kit.grading.__main__ import main
from mlsec_kit.grading.source import (SOLUTION_TAG, check_source, generate, render, source_path,
                                      strip_solutions, student_notebook, student_path)


def test_regions_become_one_raise_at_their_indentation():
    code = ("def f(x):\n    \"\"\"Doc.\"\"\"\n    # BEGIN SOLUTION\n    y = x + 1\n    return y\n"
            "    # END SOLUTION\n\n\nclass A:\n    def g(self):\n        # BEGIN SOLUTION\n        return 2\n"
            "        # END SOLUTION\n")
    out = strip_solutions(code)
    assert "return y" not in out and "return 2" not in out
    assert '    raise NotImplementedError("f is not implemented yet: replace this line with your code")' in out
    assert '        raise NotImplementedError("g is not implemented yet' in out
    namespace: dict = {}
    exec(out, namespace)  # the stripped code defines f; only calling it raises
    with pytest.raises(NotImplementedError, match="f is not implemented yet"):
        namespace["f"](1)


@pytest.mark.parametrize("code, message", [
    ("def f():\n    # BEGIN SOLUTION\n    return 1\n", "never closed"),
    ("def f():\n    return 1\n    # END SOLUTION\n", "without"),
    ("def f():\n    # BEGIN SOLUTION\n    # BEGIN SOLUTION\n    # END SOLUTION\n", "inside another"),
    ("# BEGIN SOLUTION\nx = 1\n# END SOLUTION\n", "inside a function body"),
])
def test_malformed_regions_are_refused(code, message):
    with pytest.raises(ValueError, match=message):
        strip_solutions(code)


@pytest.mark.parametrize("exercise_id", exercise_ids())
def test_committed_student_notebook_matches_its_source(exercise_id):
    expected = render(student_notebook(read(source_path(ROOT, exercise_id)), exercise_id))
    assert student_path(ROOT, exercise_id).read_text(encoding="utf-8") == expected, (
        f"exercises/{exercise_id}.ipynb is out of date: run `python -m mlsec_kit.grading generate`")
    assert generate(ROOT, [exercise_id], check_only=True) == []


@pytest.mark.parametrize("exercise_id", exercise_ids())
def test_every_source_declares_its_questions_and_checks(exercise_id):
    assert check_source(read(source_path(ROOT, exercise_id)), get_exercise(exercise_id)) == []


def test_student_notebook_has_no_solutions_and_no_outputs():
    source, student = read(SOURCE), read(STUDENT)
    assert "BEGIN SOLUTION" not in STUDENT.read_text()
    assert not any(SOLUTION_TAG in c.metadata.get("tags", []) for c in student.cells)
    assert any(SOLUTION_TAG in c.metadata.get("tags", []) for c in source.cells)
    assert all(c.outputs == [] and c.execution_count is None for c in student.cells if c.cell_type == "code")
    assert all(c.outputs == [] for c in source.cells if c.cell_type == "code")
    assert student.metadata["mlsec_kit"]["exercise"] == EXERCISE
    for name in QUESTIONS:
        stub = next(c.source for c in student.cells if c.source.startswith(f"def {name}("))
        assert "raise NotImplementedError" in stub and f'"""' in stub  # the docstring stays


def test_first_code_cell_is_the_colab_install_guard():
    first = next(c.source for c in read(STUDENT).cells if c.cell_type == "code")
    lines = [line.strip() for line in first.splitlines()]
    from mlsec_kit._release import install_requirement
    install = next(line for line in lines if line.startswith("%pip install"))
    assert install_requirement() in install  # pinned to the release, never a bare package name
    assert lines.index("import mlsec_kit") < lines.index("except ImportError:") < lines.index(install)
    assert "from mlsec_kit.grading import check" in lines and "mk.seed_everything(0)" in lines


def test_a_source_missing_a_check_cell_is_refused():
    broken = read(SOURCE)
    broken.cells = [c for c in broken.cells if 'check("accuracy"' not in c.source]
    assert check_source(broken, get_exercise(EXERCISE)) == ['no cell calls check("accuracy", accuracy)']


def test_generate_command_writes_and_checks(tmp_path, capsys):
    (tmp_path / "exercises" / "source").mkdir(parents=True)
    (tmp_path / "exercises" / "source" / SOURCE.name).write_bytes(SOURCE.read_bytes())
    run = lambda *args: main(["generate", *args, "--root", str(tmp_path)])
    assert run(EXERCISE, "--check") == 1 and "out of date" in capsys.readouterr().out
    assert run(EXERCISE) == 0
    assert (tmp_path / "exercises" / STUDENT.name).read_text() == STUDENT.read_text()
    assert run(EXERCISE, "--check") == 0 and "up to date" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        run("99_nothing")
    if len(exercise_ids()) > 1:  # a registered set whose source is missing is an error, not a skip
        assert run() == 2 and "has no source notebook" in capsys.readouterr().err
    source = tmp_path / "exercises" / "source" / SOURCE.name
    source.write_text(source.read_text().replace("# END SOLUTION", "", 1))
    assert run(EXERCISE) == 2 and "never closed" in capsys.readouterr().err


def test_generate_runs_as_a_module():
    done = subprocess.run([sys.executable, "-m", "mlsec_kit.grading", "generate", "--check"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0 and "up to date" in done.stdout
