"""A complete Gradescope autograder for one exercise set, and the command it runs there.

``python -m mlsec_kit.grading gradescope 10_differential_privacy --out autograder.zip`` writes a zip with

* ``setup.sh``: installs bubblewrap (the sandbox) and the kit, pinned to this book's release
  (:func:`mlsec_kit._release.install_requirement`, the one install source — never a bare package name);
* ``run_autograder``: grades the one notebook in ``/autograder/submission`` and writes
  ``/autograder/results/results.json`` in Gradescope's schema;
* ``config.json``: the set, time limits and each test's ``visibility``; ``sets/``: instructor-private sets.

On Gradescope the autograder runs as root, so the student's code runs as a dedicated unprivileged uid in the
sandbox (:mod:`~mlsec_kit.grading.sandbox`). ``AUTOGRADER_ROOT`` (default ``/autograder``) moves the whole
tree, which is how the tests run the generated ``run_autograder`` in a temporary folder.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Optional

from .._release import install_requirement
from .core import get_exercise, load_sets
from .report import VISIBILITIES, feedback_text, gradescope_results

__all__ = ["build_autograder", "autograde"]

_SETUP = """#!/usr/bin/env bash
# Gradescope runs this once when it builds the autograder image.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends bubblewrap python3 python3-pip python3-venv git
python3 -m venv /opt/mlsec
/opt/mlsec/bin/python -m pip install --upgrade pip
/opt/mlsec/bin/python -m pip install {requirement!r}
chmod -R a+rX /opt/mlsec
"""

_RUN = """#!/usr/bin/env bash
# Gradescope runs this for every submission; AUTOGRADER_ROOT lets a test run it in a temporary folder.
set -uo pipefail
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
PYTHON="${{MLSEC_PYTHON:-/opt/mlsec/bin/python}}"
mkdir -p "$ROOT/results"
exec "$PYTHON" -m mlsec_kit.grading autograde --root "$ROOT" --config "$ROOT/source/config.json"
"""


def build_autograder(exercise_id: str, out: Path, *, sets_dir: Optional[Path] = None,
                     visibility: Optional[dict[str, str]] = None, timeout: float = 300.0,
                     cell_timeout: float = 60.0, check_timeout: float = 10.0) -> Path:
    """Write the autograder zip for ``exercise_id`` to ``out``; return ``out``.

    Args:
        visibility: per question name (or ``"*"`` for all), one of ``visible``, ``after_due_date``,
            ``after_published``, ``hidden``.
        sets_dir: a folder of instructor-private sets, shipped inside the zip (Gradescope keeps it hidden).
    """
    if sets_dir is not None:
        load_sets(sets_dir)
    exercise = get_exercise(exercise_id)
    visibility = dict(visibility or {})
    for key, value in visibility.items():
        if key != "*" and key not in exercise.questions:
            raise ValueError(f"visibility names question {key!r}, which {exercise_id} does not have")
        if value not in VISIBILITIES:
            raise ValueError(f"visibility of {key!r} must be one of {', '.join(VISIBILITIES)}, got {value!r}")
    config = {"exercise": exercise_id, "visibility": visibility, "timeout": timeout, "cell_timeout": cell_timeout,
              "check_timeout": check_timeout, "sets": "sets" if sets_dir is not None else None}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in (("setup.sh", _SETUP.format(requirement=install_requirement(exercise.extras))),
                           ("run_autograder", _RUN.format())):
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o755 << 16
            zf.writestr(info, text)
        zf.writestr("config.json", json.dumps(config, indent=2) + "\n")
        if sets_dir is not None:
            for path in sorted(Path(sets_dir).glob("*.py")):
                zf.write(path, f"sets/{path.name}")
    return out


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def autograde(root: Path, config_path: Path) -> dict[str, Any]:
    """Grade the one notebook under ``root/submission``; write and return ``root/results/results.json``."""
    from .runner import Submission, grade_notebook

    root = Path(root)
    results_path = root / "results" / "results.json"
    try:
        config = json.loads(Path(config_path).read_text())
        if config.get("sets"):
            load_sets(Path(config_path).parent / config["sets"])
        exercise = get_exercise(config["exercise"])
    except Exception as err:  # the autograder itself is broken: say so, score nothing
        data = {"score": 0, "output": f"the autograder is misconfigured ({type(err).__name__}: {err}); "
                                      "tell your instructor", "tests": []}
        _write(results_path, data)
        return data
    notebooks = sorted(p for p in (root / "submission").rglob("*.ipynb")
                       if ".ipynb_checkpoints" not in p.parts and not p.name.startswith("."))
    if len(notebooks) != 1:
        found = ", ".join(p.name for p in notebooks) or "none"
        data = {"score": 0, "output": f"upload exactly one .ipynb notebook for {exercise.id}; found "
                                      f"{len(notebooks)} ({found}). Nothing was graded.",
                "visibility": "visible", "tests": []}
        _write(results_path, data)
        return data
    with tempfile.TemporaryDirectory(prefix="mlsec-autograde-") as tmp:
        # the sandbox gets a copy: it never sees the rest of /autograder
        copy = Path(tmp) / notebooks[0].name
        shutil.copyfile(notebooks[0], copy)
        sub: Submission = grade_notebook(copy, exercise, seed=_seed(), timeout=float(config.get("timeout", 300)),
                                         cell_timeout=float(config.get("cell_timeout", 60)),
                                         check_timeout=float(config.get("check_timeout", 10)))
    data = gradescope_results(exercise, sub, config.get("visibility") or {})
    data["output"] += "\n\n" + feedback_text(exercise, sub)
    _write(results_path, data)
    return data


def _seed() -> int:
    import secrets

    return secrets.randbelow(2**31 - 1) + 1
