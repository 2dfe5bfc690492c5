"""The release workflow's steps, run here: build the sdist and the wheel, install the wheel into a fresh venv
that does not see the repository, and from outside it list the exercise sets, run one check() and execute one
chapter and one exercise notebook (scripts/release_check.py; the release workflow runs the same script in a
Colab-like environment).

Offline, the venv reuses this environment's packages (torch and the rest) through a .pth file derived from
the running interpreter, and the wheel goes in without dependencies."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.notebooks


def test_wheel_installs_and_runs_outside_the_repository(tmp_path):
    pytest.importorskip("build", reason="the `build` package is not installed (pip install -r requirements.txt)")
    env = {k: v for k, v in __import__("os").environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "release_check.py"), "--out", str(tmp_path),
                           "--reuse-site-packages"], capture_output=True, text=True, timeout=900, env=env,
                          cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    wheel = next((tmp_path / "dist").glob("mlsec_kit-*.whl"))
    assert next((tmp_path / "dist").glob("mlsec_kit-*.tar.gz"))
    import zipfile
    names = zipfile.ZipFile(wheel).namelist()
    assert "mlsec_kit/grading/sets/ch02.py" in names and "mlsec_kit/_release.py" in names
    assert not [n for n in names if n.startswith(("tests/", "chapters/", "scripts/"))]
    assert f"from {tmp_path / 'venv'}" in out                        # the kit came from the venv
    assert "a correct standardize passes, a leaking one fails" in out
    assert "executed" in out and "01_threat_models.ipynb" in out and "02_ml_basics.ipynb" in out
    assert out.rstrip().endswith("release check passed")
