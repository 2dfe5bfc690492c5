"""The sandbox a submission runs in: what it can see, write and reach, and that nothing it starts survives it."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grading_helpers import ROOT
from mlsec_kit.grading.sandbox import Limits, Sandbox, bwrap_works, describe

PROBE = r"""
import os, socket, subprocess, sys, time
def can(f):
    try:
        f()
        return True
    except Exception:
        return False
print("SEE_REPO", can(lambda: os.listdir(sys.argv[1])))
print("WRITE_TMPDIR", can(lambda: open(os.path.join(sys.argv[2], "x"), "w").write("x")))
print("WRITE_HERE", can(lambda: open("here.txt", "w").write("x")))
print("NETWORK", can(lambda: socket.create_connection(("192.0.2.1", 80), timeout=1)))
print("BIG", can(lambda: bytearray(900 * 2**20)))
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", sys.argv[3]], start_new_session=True)
print("STARTED", flush=True)
time.sleep(30)
"""


@pytest.mark.skipif(os.name != "posix", reason="POSIX sandboxes only")
def test_sandbox_hides_the_repository_and_kills_what_it_started(tmp_path):
    package = tmp_path / "package"
    package.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    box = Sandbox(tmp_path / "box", package, Limits(memory_mb=512))
    log = tmp_path / "log.txt"
    with open(log, "wb") as out:
        marker = f"mlsec-sandbox-test-{os.getpid()}-{time.monotonic_ns()}"
        proc = box.start([sys.executable, "-c", PROBE, str(ROOT), str(outside), marker],
                         {"PATH": os.environ.get("PATH", "")}, pass_fds=(), stdout=out.fileno())
    deadline = time.monotonic() + 60
    while "STARTED" not in log.read_text() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    time.sleep(0.3)
    text = log.read_text()
    isolated = bwrap_works() or box.uid is not None  # else the weak fallback: limits only
    assert "STARTED" in text, text
    assert "BIG False" in text  # the memory limit
    assert "WRITE_HERE True" in text and "NETWORK False" in text
    if isolated:
        assert "WRITE_TMPDIR False" in text and not any(outside.iterdir())
    if bwrap_works():
        assert "SEE_REPO False" in text
    def running() -> list[str]:
        return subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split()

    assert running(), "the probe's detached process should still run before the sandbox is closed"
    box.close()
    time.sleep(0.2)
    if isolated:
        assert not running(), "a process the sandbox started outlived it"
    assert describe()
