"""What every benchmark's results file says about where and when it was measured: the commit, the time, the
machine's load before and after (the machines are shared, so a time means little without it)."""
from __future__ import annotations

import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def commit() -> str:
    """The checkout's short commit hash, or ``"unknown"`` outside git."""
    out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def load_sentence(start: tuple, end: tuple) -> str:
    """The 1/5/15-minute load averages at the start and the end of a run, and the core count, as one sentence."""
    return (f"Machine load average (1, 5, 15 min) {start[0]:.2f}, {start[1]:.2f}, {start[2]:.2f} at the start and "
            f"{end[0]:.2f}, {end[1]:.2f}, {end[2]:.2f} at the end, on {os.cpu_count()} cores.")


def write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")
