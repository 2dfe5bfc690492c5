"""Time grading a class of correct submissions with this checkout's grader and with an earlier one.

    python benchmarks/grading_speed.py --students 120 --baseline 25b000a --jobs 2

Builds ``--students`` copies of the chapter-2 notebook with the reference solutions, then grades them in
rounds that alternate between the baseline commit (checked out into a temporary worktree) and this checkout,
``--round`` notebooks at a time, so both see the same load on a shared machine. Each grader is the real
command line (``python -m mlsec_kit.grading grade``) with ``--jobs``. Writes
``benchmarks/results/grading_speed.md``; exits 1 if a correct notebook did not get full marks, or if the new
grader takes more than twice the baseline's time.
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _notebooks(folder: Path, count: int) -> None:
    sys.path.insert(0, str(ROOT / "tests" / "grading"))
    from grading_helpers import QUESTIONS, solved, submission  # noqa: E402

    first = submission(folder / "student000.ipynb", answers=solved(*QUESTIONS))
    for i in range(1, count):
        shutil.copyfile(first, folder / f"student{i:03d}.ipynb")


def _grade(package_root: Path, folder: Path, out: Path, jobs: int) -> tuple[float, list[dict]]:
    env = {**os.environ, "PYTHONPATH": str(package_root), "MLSEC_PROGRESS": "0", "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    start = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "mlsec_kit.grading", "grade", "02_ml_basics", str(folder),
                          "--out", str(out), "--seed", "7", "--jobs", str(jobs)], env=env, cwd=folder,
                         capture_output=True, text=True)
    seconds = time.monotonic() - start
    if run.returncode != 0:
        raise SystemExit(f"grading with {package_root} failed:\n{run.stderr[-2000:]}")
    with open(out, newline="") as f:
        return seconds, list(csv.DictReader(f))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=120)
    parser.add_argument("--round", type=int, default=20, help="notebooks per round (default 20)")
    parser.add_argument("--baseline", default="25b000a", help="commit of the grader to compare with")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "grading_speed.md")
    args = parser.parse_args(argv)
    if args.students < 1 or args.round < 1:
        parser.error("--students and --round must be at least 1")
    times = {"baseline": 0.0, "new": 0.0}
    bad: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mlsec-grading-speed-") as tmp:
        tmp_path = Path(tmp)
        baseline = tmp_path / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(baseline), args.baseline],
                       check=True, capture_output=True)
        try:
            done = 0
            while done < args.students:
                count = min(args.round, args.students - done)
                folder = tmp_path / f"round{done}"
                folder.mkdir()
                _notebooks(folder, count)
                order = ["baseline", "new"] if (done // args.round) % 2 == 0 else ["new", "baseline"]
                for which in order:
                    seconds, rows = _grade(baseline if which == "baseline" else ROOT, folder,
                                           tmp_path / f"{which}{done}" / "grades.csv", args.jobs)
                    times[which] += seconds
                    bad += [f"{which}: {r['student']} {r['total']}/{r['max']} {r['status']}" for r in rows
                            if r["total"] != r["max"]]
                    print(f"{which:8s} {count} notebooks in {seconds:.1f} s", flush=True)
                done += count
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(baseline)],
                           capture_output=True)
    ratio = times["new"] / times["baseline"]
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Grading speed: a class of correct submissions",
        "",
        f"Measured {stamp} with `python benchmarks/grading_speed.py --students {args.students} "
        f"--round {args.round} --baseline {args.baseline} --jobs {args.jobs}` on {os.cpu_count()} CPU cores "
        f"({platform.machine()}, Python {platform.python_version()}). The machine was shared with other work "
        "while it ran, so both graders were timed in the same period, alternating rounds of "
        f"{args.round} notebooks.",
        "",
        "| grader | what it does | seconds for the class | seconds per notebook |",
        "| --- | --- | --- | --- |",
        f"| baseline ({args.baseline}) | checks run inside the notebook's process | {times['baseline']:.1f} | "
        f"{times['baseline'] / args.students:.2f} |",
        f"| this checkout | notebook in a sandbox, every check judged in the grader's process | "
        f"{times['new']:.1f} | {times['new'] / args.students:.2f} |",
        "",
        f"Ratio new / baseline: **{ratio:.2f}** (the budget is 2.0). Notebooks without full marks: {len(bad)}.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    for line in bad[:10]:
        print("not full marks:", line)
    return 1 if bad or ratio > 2.0 else 0


if __name__ == "__main__":
    sys.exit(main())
