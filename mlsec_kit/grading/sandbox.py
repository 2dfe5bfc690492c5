"""Start a submission's process in a sandbox, and make sure every process it started is gone afterwards.

The strongest mechanism the machine offers is used, and :func:`describe` says which:

* **bubblewrap** (``bwrap``, Debian package ``bubblewrap``) where it can create namespaces: the process sees a
  read-only system (``/usr``, ``/etc``, the Python environment), a read-only copy of ``mlsec_kit``, a private
  writable working directory and ``/tmp``, nothing else (no repository, no ``exercises/source``, no output
  folder, no ``/proc`` of the grader); no network; its own PID namespace, so when it ends the kernel kills
  every process it started, ``setsid`` and double forks included.
* **a dedicated user** when the grader runs as root (Gradescope, a CI container): the process runs as an unused
  uid (``60000 + slot``), cannot write the grader's files, and afterwards every process of that uid is killed.
  Combined with bubblewrap where both are available.
* **rlimits** always (POSIX): address space (memory), process count, CPU seconds, file size, no core files.

Where neither bubblewrap nor root is available (a laptop, macOS), the process runs as the instructor with the
rlimits only and its process group is killed at the end: a process that calls ``setsid`` can survive, and the
submission can read and write what the instructor can. The teaching guide says so.
"""
from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

__all__ = ["Limits", "Sandbox", "describe", "bwrap_works", "drop_privileges"]


@dataclass(frozen=True)
class Limits:
    """What one submission's process may use."""

    memory_mb: int = 4096      # address space; torch alone maps about 1 GiB
    processes: int = 64        # processes and threads of the sandbox's user
    cpu_seconds: int = 600     # CPU time, all threads together
    file_mb: int = 256         # largest file it may write

    def __post_init__(self) -> None:
        for name in ("memory_mb", "processes", "cpu_seconds", "file_mb"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")


_SLOTS_LOCK = threading.Lock()
_SLOTS_USED: set[int] = set()
_UID_BASE = 60000


@functools.lru_cache(maxsize=1)
def bwrap_works() -> bool:
    """Whether ``bwrap`` is installed and can create the namespaces the sandbox uses here."""
    if os.name != "posix" or shutil.which("bwrap") is None or os.environ.get("MLSEC_SANDBOX") == "none":
        return False
    try:
        args = [shutil.which("bwrap"), *_system_binds(), *_unshare(), "--die-with-parent", "true"]
        return subprocess.run(args, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def describe() -> str:
    """One line: which mechanisms isolate submissions on this machine."""
    parts = []
    if bwrap_works():
        parts.append("bubblewrap (no network, private filesystem view, PID namespace)")
    if os.name == "posix" and os.geteuid() == 0 and (bwrap_works() or _reachable(sys.base_prefix)):
        parts.append("a dedicated uid per submission")
    if os.name == "posix":
        parts.append("rlimits (memory, processes, CPU time, file size)")
    if not parts:
        return "none: this platform has no process limits; grade only submissions you trust"
    if not bwrap_works() and not (os.name == "posix" and os.geteuid() == 0 and _reachable(sys.base_prefix)):
        parts.append("WEAK: no bubblewrap and no dedicated user, so a process that calls setsid may outlive its "
                     "submission and the submission can read what you can")
    return ", ".join(parts)


def _unshare() -> list[str]:
    # as root, no user namespace: the process then drops to a dedicated uid that the host knows
    if os.geteuid() == 0:
        return ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    return ["--unshare-all"]


def _parents(path: str, made: set[str]) -> list[str]:
    """Directories above ``path`` made traversable (bwrap run as root makes them 0700 otherwise)."""
    out, parts = [], path.strip("/").split("/")[:-1]
    for i in range(1, len(parts) + 1):
        d = "/" + "/".join(parts[:i])
        if d not in made and d not in ("/usr", "/etc", "/opt"):
            out += ["--perms", "0755", "--dir", d]
            made.add(d)
    return out


def _system_binds() -> list[str]:
    args: list[str] = []
    for top in ("/usr", "/etc", "/opt"):
        if os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    # the private /tmp first: mounted after the environment's binds it would hide a virtual environment that
    # lives under /tmp (CI makes its venv with mktemp), and the submission could not start Python
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    seen = ["/usr", "/etc", "/opt"]
    made: set[str] = set()
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable)),
             sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    paths |= {os.path.realpath(p) for p in paths}
    for p in sorted(paths, key=len):  # parents first; a path inside one already bound is covered
        if os.path.isdir(p) and not any(p == s or p.startswith(s + "/") for s in seen):
            args += [*_parents(p, made), "--ro-bind", p, p]
            seen.append(p)
    return args


def drop_privileges() -> None:
    """In the submission's process: become the dedicated uid the grader chose (when it runs as root)."""
    uid = os.environ.pop("MLSEC_SANDBOX_UID", "")
    if uid and os.name == "posix" and os.geteuid() == 0:
        os.setgroups([])
        os.setgid(int(uid))
        os.setuid(int(uid))
        if os.geteuid() == 0:
            raise SystemExit("could not drop root privileges")


def _set_limits(limits: Limits, uid: Optional[int]) -> None:
    import resource

    def cap(which: int, value: int) -> None:
        soft, hard = resource.getrlimit(which)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (value, value))

    cap(resource.RLIMIT_AS, limits.memory_mb * 2**20)
    cap(resource.RLIMIT_CPU, limits.cpu_seconds)
    cap(resource.RLIMIT_FSIZE, limits.file_mb * 2**20)
    cap(resource.RLIMIT_CORE, 0)
    if uid is not None:  # counted per user: a user of its own gets the whole allowance
        cap(resource.RLIMIT_NPROC, limits.processes)
    elif os.path.isdir("/proc") and os.geteuid() != 0:  # shared with the instructor's own processes
        cap(resource.RLIMIT_NPROC, _count_uid(os.getuid()) + limits.processes)


class Sandbox:
    """One submission's process: :meth:`start` it, then :meth:`close` kills everything it started."""

    def __init__(self, root: Path, package: Path, limits: Limits = Limits()) -> None:
        self.root, self.package, self.limits = Path(root), Path(package), limits
        self.work = self.root / "work"
        self.work.mkdir(parents=True, exist_ok=True)
        self.uid: Optional[int] = None
        self.proc: Optional[subprocess.Popen] = None
        self.bwrap = bwrap_works()

    def _take_slot(self) -> None:
        """Claim a uid no other grading on this machine is using (a lock file per uid, across processes)."""
        if not (os.name == "posix" and os.geteuid() == 0):
            return
        if not self.bwrap and not all(_reachable(p) for p in (sys.base_prefix, sys.prefix, str(self.package))):
            return  # another user could not load Python from here: rlimits only (see describe())
        import fcntl

        folder = Path(tempfile.gettempdir()) / "mlsec-grade-uids"
        folder.mkdir(mode=0o700, exist_ok=True)
        for slot in range(900):
            with _SLOTS_LOCK:
                if slot in _SLOTS_USED:
                    continue
                fd = os.open(folder / f"{_UID_BASE + slot}.lock", os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    os.close(fd)
                    continue
                _SLOTS_USED.add(slot)
            self.uid, self._lock_fd = _UID_BASE + slot, fd
            _kill_uid(self.uid)  # leftovers of a grader that died: not ours to keep
            os.chown(self.work, self.uid, self.uid)
            for folder_ in (self.root, self.root.parent):
                os.chmod(folder_, 0o711)
            return
        raise RuntimeError("no free uid for the sandbox (900 gradings at once?)")

    def start(self, argv: list[str], env: dict[str, str], *, pass_fds: tuple[int, ...], stdout: int
              ) -> subprocess.Popen:
        """Start ``argv`` (a ``python`` command) inside the sandbox with ``env``."""
        self._take_slot()
        inner_work, inner_pkg = str(self.work), str(self.package)
        if self.bwrap:
            inner_work, inner_pkg = "/grader/work", "/grader/package"
            env = {**env, "PYTHONPATH": inner_pkg, "HOME": inner_work, "TMPDIR": "/tmp"}
            argv = [shutil.which("bwrap"), *_system_binds(), "--perms", "0755", "--dir", "/grader", "--ro-bind", str(self.package), inner_pkg,
                    "--bind", str(self.work), inner_work, "--chdir", inner_work, *_unshare(),
                    "--die-with-parent", "--new-session", "--hostname", "sandbox", "--", *argv]
        else:
            env = {**env, "PYTHONPATH": inner_pkg, "HOME": inner_work, "TMPDIR": inner_work}
        limits, uid = self.limits, self.uid
        if uid is not None:  # the process drops to it itself, once its interpreter is loaded
            env["MLSEC_SANDBOX_UID"] = str(uid)

        def preexec() -> None:
            if os.name == "posix":
                _set_limits(limits, uid)

        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.STDOUT,
                                     cwd=self.work, env=env, pass_fds=pass_fds,
                                     start_new_session=os.name == "posix",
                                     preexec_fn=preexec if os.name == "posix" else None)
        return self.proc

    def close(self) -> None:
        """Kill the process, its group, and (with a dedicated uid) every process of that uid; wait for them."""
        proc = self.proc
        if proc is not None:
            try:
                if os.name == "posix":
                    os.killpg(proc.pid, signal.SIGKILL)
                else:
                    proc.kill()
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()
        if self.uid is not None:
            for _ in range(50):
                if not _kill_uid(self.uid):
                    break
                time.sleep(0.05)
            with _SLOTS_LOCK:
                _SLOTS_USED.discard(self.uid - _UID_BASE)
                os.close(self._lock_fd)
            self.uid = None


def _reachable(path: str) -> bool:
    """Whether any user can reach ``path`` (every folder above it searchable by others)."""
    path = os.path.realpath(path)
    parts = path.strip("/").split("/")
    for i in range(len(parts)):
        folder = "/" + "/".join(parts[:i])
        try:
            if not os.stat(folder).st_mode & 0o001:
                return False
        except OSError:
            return False
    return True


def _count_uid(uid: int) -> int:
    """How many processes (threads included) ``uid`` runs now."""
    count = 0
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and os.stat(f"/proc/{entry}").st_uid == uid:
                count += len(os.listdir(f"/proc/{entry}/task"))
        except OSError:
            continue
    return count


def _kill_uid(uid: int) -> int:
    """SIGKILL every process whose real uid is ``uid``; the number found."""
    found = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                line = next(l for l in f if l.startswith("Uid:"))
            if int(line.split()[1]) == uid:
                found += 1
                os.kill(int(entry), signal.SIGKILL)
        except (OSError, StopIteration, ValueError, IndexError):
            continue
    return found
