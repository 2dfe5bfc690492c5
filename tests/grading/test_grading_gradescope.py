"""The Gradescope autograder the grader writes: its files, and its run_autograder run in a simulated /autograder."""
import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from grading_helpers import ROOT, solved, submission
from mlsec_kit._release import install_requirement
from mlsec_kit.grading.__main__ import main

VISIBILITIES = {"visible", "hidden", "after_due_date", "after_published"}


def _validate(results: dict) -> None:
    """Gradescope's results.json schema, as far as the autograder uses it."""
    assert isinstance(results["score"], (int, float))
    assert isinstance(results.get("output", ""), str)
    assert results.get("visibility", "visible") in VISIBILITIES
    for test in results["tests"]:
        assert {"name", "score", "max_score", "output", "visibility"} <= set(test)
        assert isinstance(test["name"], str) and isinstance(test["output"], str)
        assert 0 <= test["score"] <= test["max_score"]
        assert test["visibility"] in VISIBILITIES
    assert results["score"] == sum(t["score"] for t in results["tests"])


def _autograder(tmp_path, *, visibility=("*=after_due_date", "accuracy=visible")):
    zip_path = tmp_path / "autograder.zip"
    args = ["gradescope", "02_ml_basics", "--out", str(zip_path), "--timeout", "120"]
    for v in visibility:
        args += ["--visibility", v]
    assert main(args) == 0
    root = tmp_path / "autograder"
    with zipfile.ZipFile(zip_path) as zf:
        assert set(zf.namelist()) == {"setup.sh", "run_autograder", "config.json"}
        zf.extractall(root / "source")
    (root / "submission").mkdir()
    return zip_path, root


def _run(root):
    script = root / "source" / "run_autograder"
    script.chmod(0o755)
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "MLSEC_PYTHON": sys.executable, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads((root / "results" / "results.json").read_text())


def test_setup_installs_the_extras_a_set_needs(tmp_path):
    """Set 12's checks build TenSEAL contexts: its autograder installs mlsec-kit[tenseal], pinned; every set's
    extras are optional dependencies the package declares."""
    import tomllib

    from mlsec_kit.grading import exercise_ids, get_exercise

    zip_path = tmp_path / "he.zip"
    assert main(["gradescope", "12_homomorphic_encryption", "--out", str(zip_path)]) == 0
    with zipfile.ZipFile(zip_path) as zf:
        setup = zf.read("setup.sh").decode()
    assert install_requirement(["tenseal"]) in setup
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for exercise_id in exercise_ids():
        assert set(get_exercise(exercise_id).extras) <= set(declared), exercise_id


def test_setup_installs_the_pinned_release_and_bubblewrap(tmp_path):
    zip_path, root = _autograder(tmp_path)
    setup = (root / "source" / "setup.sh").read_text()
    assert install_requirement() in setup and "bubblewrap" in setup
    assert "pip install mlsec-kit\n" not in setup and "install mlsec-kit " not in setup  # never a bare name
    config = json.loads((root / "source" / "config.json").read_text())
    assert config["exercise"] == "02_ml_basics"
    assert config["visibility"] == {"*": "after_due_date", "accuracy": "visible"}
    with zipfile.ZipFile(zip_path) as zf:
        assert (zf.getinfo("run_autograder").external_attr >> 16) & 0o111


def test_bad_options_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["gradescope", "02_ml_basics", "--out", str(tmp_path / "a.zip"), "--visibility", "*=sometimes"])
    assert "visible, after_due_date" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["gradescope", "02_ml_basics", "--out", str(tmp_path / "a.zip"), "--visibility", "nope=hidden"])
    assert "question 'nope'" in capsys.readouterr().err


@pytest.mark.notebooks
def test_run_autograder_grades_one_notebook_and_refuses_zero_or_several(tmp_path):
    _, root = _autograder(tmp_path)
    results = _run(root)  # nothing uploaded
    _validate(results)
    assert results["score"] == 0 and "exactly one .ipynb" in results["output"] and "found 0" in results["output"]
    submission(root / "submission" / "mine.ipynb", answers=solved("standardize", "accuracy"))
    shutil.copy(root / "submission" / "mine.ipynb", root / "submission" / "copy.ipynb")
    results = _run(root)
    _validate(results)
    assert results["score"] == 0 and "found 2" in results["output"]
    (root / "submission" / "copy.ipynb").unlink()
    results = _run(root)
    _validate(results)
    assert results["score"] == 8  # standardize (5) and accuracy (3)
    visibility = {t["name"].split("(")[0]: t["visibility"] for t in results["tests"]}
    assert visibility["accuracy"] == "visible" and visibility["standardize"] == "after_due_date"
    assert "standardize: 5/5" in results["output"]
