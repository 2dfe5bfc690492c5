"""Which notebooks a test run executes a second time (determinism), through the full path (smoke), or, for
the exercise sets, as their solution-filled source in a kernel (sources) and through the grader's sandbox (remote).

Executing every chapter again for each of those checks costs about a third of the test command (issue 11), so
by default one run checks ``k = 2`` chapters: every chapter the last commit or the working tree changed, plus
``k`` consecutive chapters (in book order, wrapping round) starting at a place the commit hash picks. Each commit
checks a different window, a rerun on the same commit checks the same one, and every chapter is checked within
a few commits. An environment variable (``MLSEC_DETERMINISM``, ``MLSEC_SMOKE``, ``MLSEC_SOURCES``,
``MLSEC_REMOTE``) set to ``all`` checks every chapter (or set); a number sets ``k`` (``0``: only the changed ones).
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_K = 2


def _git(*args) -> list[str]:
    out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return out.stdout.split() if out.returncode == 0 else []


def rotating_sample(chapters, *, setting: str, head: str, changed, var: str):
    """The chapters (paths or stems, compared by ``Path(...).stem``) to check, in book order."""
    chapters = sorted(chapters, key=lambda c: Path(c).stem)
    if setting.strip().lower() == "all":
        return chapters
    try:
        k = int(setting)
    except ValueError:
        k = -1
    if k < 0:
        raise ValueError(f"{var} must be 'all' or a number of chapters >= 0, got {setting!r}")
    start = int(head[:12], 16) % len(chapters) if head and chapters else 0
    window = {Path(chapters[(start + i) % len(chapters)]).stem for i in range(min(k, len(chapters)))}
    changed = {Path(c).stem for c in changed}
    return [c for c in chapters if Path(c).stem in window or Path(c).stem in changed]


def _changed_files() -> list[str]:
    return _git("diff", "--name-only", "HEAD~1", "HEAD") + _git("diff", "--name-only", "HEAD")


def changed_chapters() -> set[str]:
    """Stems of the chapter notebooks the last commit or the working tree changed."""
    return {Path(f).stem for f in _changed_files() if f.startswith("chapters/") and f.endswith(".ipynb")}


def changed_exercises(ids) -> set[str]:
    """The exercise sets among ``ids`` whose source or student notebook, or whose checks
    (``mlsec_kit/grading/sets/chNN*.py``), the last commit or the working tree changed."""
    changed = set()
    for f in _changed_files():
        path = Path(f)
        if f.startswith("exercises/") and path.suffix == ".ipynb":
            changed.add(path.stem)
        elif f.startswith("mlsec_kit/grading/sets/ch") and path.suffix == ".py":
            changed.update(i for i in ids if i[:2] == path.stem[2:4])
    return changed & set(ids)


def grading_machinery_changed() -> bool:
    """Whether the last commit or the working tree changed the grader itself (``mlsec_kit/grading/`` outside
    the sets' checks): then every set's grading path is checked, not a sample."""
    return any(f.startswith("mlsec_kit/grading/") and not f.startswith("mlsec_kit/grading/sets/")
               for f in _changed_files())


def sample_for(chapters, var: str, changed=None):
    """:func:`rotating_sample` with this checkout's HEAD, its changed chapters (or ``changed``) and
    ``os.environ[var]``."""
    return rotating_sample(chapters, setting=os.environ.get(var, str(DEFAULT_K)),
                           head=(_git("rev-parse", "HEAD") or [""])[0],
                           changed=changed_chapters() if changed is None else changed, var=var)
