"""Which notebooks a test run executes a second time (determinism), through the full path (smoke), or, for
the exercise sets, as their solution-filled source in a kernel (sources) and through the grader's sandbox (remote).

Executing every chapter again for each of those checks costs about a third of the test command (issue 11), so by
default one run checks ``k = 2`` chapters' worth (``k = 1`` for the smoke run, ``DEFAULT_K_FOR``): every chapter the
last commit or the working tree changed, plus consecutive chapters (in book order, wrapping round) starting at a
place the commit hash picks. Each commit checks a different window, a rerun on the same commit checks the same one,
and every chapter is checked within a few commits. For the chapters the window is measured in time, not in chapters:
it takes consecutive chapters while their small-profile times (``benchmarks/results/notebook_times.csv``) add up to
at most ``k`` times the mean chapter's (at least one chapter). Two average chapters fill it, and chapter 5 alone
does. The smoke run measures its window in its own times (``benchmarks/results/full_profile_smoke.csv``): a
chapter's smoke run can cost five times its small profile (chapter 8 trains its 17 models as CNNs on CIFAR-format
images). Counted in chapters, the smoke and second runs took 189 s with chapters 14 and 15 in the window, 89 s with
chapters 1 and 15. An environment variable (``MLSEC_DETERMINISM``, ``MLSEC_SMOKE``, ``MLSEC_SOURCES``,
``MLSEC_REMOTE``) set to ``all`` checks every chapter (or set); a number sets ``k`` (``0``: only the changed ones).
"""
from __future__ import annotations

import csv
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_K = 2
# the smoke run's own default: one mean chapter's worth of smoke time (about 30 s) a run. Its path (the full
# datasets' loaders at tiny sizes) changes far less often than the chapters, and a changed chapter is always run.
DEFAULT_K_FOR = {"MLSEC_SMOKE": 1}


def _git(*args) -> list[str]:
    out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return out.stdout.split() if out.returncode == 0 else []


def notebook_seconds(path: Path = ROOT / "benchmarks" / "results" / "notebook_times.csv") -> dict[str, float]:
    """Each chapter's time by stem from a table of times (columns ``notebook,seconds,status``; empty if it is
    missing): by default the small-profile times ``benchmarks/notebook_times.py`` writes beside its Markdown;
    ``benchmarks/full_profile.py`` writes its smoke times in the same columns."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return {}
    return {Path(r["notebook"]).stem: float(r["seconds"]) for r in rows if r["notebook"].startswith("chapters/")}


def rotating_sample(chapters, *, setting: str, head: str, changed, var: str, seconds=None):
    """The chapters (paths or stems, compared by ``Path(...).stem``) to check, in book order. With ``seconds``
    (stem -> time) the window holds consecutive chapters worth at most ``k`` mean chapters (at least one;
    a chapter without a time counts as a mean one); without, ``k`` chapters."""
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
    ring = [Path(chapters[(start + i) % len(chapters)]).stem for i in range(len(chapters))]
    if seconds:
        known = [seconds[c] for c in ring if c in seconds] or [1.0]
        mean = sum(known) / len(known)
        cost = [seconds.get(c, mean) for c in ring]
        taken, total = 0, 0.0
        while k and taken < len(ring) and (taken == 0 or total + cost[taken] <= k * mean):
            total += cost[taken]
            taken += 1
        window = set(ring[:taken])
    else:
        window = set(ring[:k])
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


def sample_for(chapters, var: str, changed=None, seconds=None):
    """:func:`rotating_sample` with this checkout's HEAD, its changed chapters (or ``changed``),
    ``os.environ[var]`` and ``seconds`` (chapter times, e.g. :func:`notebook_seconds`; None: count chapters)."""
    return rotating_sample(chapters, setting=os.environ.get(var, str(DEFAULT_K_FOR.get(var, DEFAULT_K))),
                           head=(_git("rev-parse", "HEAD") or [""])[0],
                           changed=changed_chapters() if changed is None else changed, var=var, seconds=seconds)
