"""Time the execution of every notebook of the book in the ``small`` profile and write a table.

    python benchmarks/notebook_times.py                  # all chapters and exercises
    python benchmarks/notebook_times.py chapters/02*.ipynb --budget 60

Each notebook runs in a fresh kernel in its own folder, kernel start-up included, exactly as the book build
runs it. Run it on an otherwise idle machine: the budget (60 s on 2 CPU cores) is about a reader's laptop or
a Colab CPU runtime. Writes ``benchmarks/results/notebook_times.md`` (and ``.csv``) and exits 1 when a
notebook is over budget.
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlsec_kit.notebook import execute_notebook  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to time (default: chapters/**/*.ipynb and exercises/*.ipynb)")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds allowed per notebook (default 60)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "notebook_times")
    args = parser.parse_args(argv)
    if args.budget <= 0:
        parser.error(f"--budget must be > 0 seconds, got {args.budget}")
    paths = args.notebooks or sorted((ROOT / "chapters").glob("**/*.ipynb")) + sorted((ROOT / "exercises").glob("*.ipynb"))
    env = {"MLSEC_PROFILE": "small", "MLSEC_PROGRESS": "0"}
    rows = []
    for path in paths:
        path = path.resolve()
        try:
            _, seconds = execute_notebook(path, timeout=600, env=env)
            status = "ok" if seconds <= args.budget else "over budget"
        except Exception as err:  # report the failure in the table, keep timing the others
            seconds, status = float("nan"), f"failed: {type(err).__name__}"
        rows.append((str(path.relative_to(ROOT)), seconds, status))
        print(f"{rows[-1][0]:60s} {seconds:7.1f} s  {status}", flush=True)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    machine = f"{os.cpu_count()} CPU cores, {platform.machine()}, Python {platform.python_version()}"
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# Notebook execution times (small profile)", "",
             f"Measured {when} on {machine}; budget {args.budget:.0f} s per notebook, kernel start-up included.", "",
             "| notebook | seconds | status |", "| --- | ---: | --- |"]
    lines += [f"| {name} | {sec:.1f} | {status} |" for name, sec, status in rows]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    with open(args.out.with_suffix(".csv"), "w", newline="") as f:
        csv.writer(f).writerows([("notebook", "seconds", "status"), *rows])
    return 0 if all(status == "ok" for _, _, status in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
