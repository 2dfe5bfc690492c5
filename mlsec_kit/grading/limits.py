"""Time limits for student code: stop a call that runs too long, in the main thread, without a process.

A grader must survive ``while True: pass``. Where the platform allows it (POSIX, main thread: a Jupyter
kernel, Colab, the grading subprocess) :func:`time_limit` arms ``SIGALRM`` with ``signal.setitimer``, and
the handler raises :class:`TimeLimitExceeded` inside the running code. The timer repeats every
``repeat`` seconds until the block ends, so code that swallows the first interrupt (``except:``) gets
another one. Elsewhere (Windows, a worker thread) the block runs without a limit; the grader's
per-notebook limit, which kills the whole process, still applies there.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator, Optional

__all__ = ["TimeLimitExceeded", "time_limit", "can_limit_time"]


class TimeLimitExceeded(BaseException):
    """Raised inside code that ran past its time limit.

    A ``BaseException`` (like ``KeyboardInterrupt``), so ``except Exception`` in student code does not
    swallow it.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__(f"took longer than {seconds:g} s")
        self.seconds = seconds


def can_limit_time() -> bool:
    """Whether :func:`time_limit` can interrupt code here (POSIX and the main thread)."""
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextmanager
def time_limit(seconds: Optional[float], *, repeat: float = 1.0) -> Iterator[None]:
    """Raise :class:`TimeLimitExceeded` in the block if it runs longer than ``seconds``.

    Args:
        seconds: the limit, > 0; ``None`` means no limit.
        repeat: seconds between further interrupts while the block keeps running, > 0.

    Raises:
        ValueError: if ``seconds`` or ``repeat`` is not positive.
    """
    if seconds is None or not can_limit_time():
        yield
        return
    if not seconds > 0 or not repeat > 0:
        raise ValueError(f"seconds and repeat must be > 0, got {seconds!r} and {repeat!r}")
    armed = [True]

    def _on_alarm(signum: int, frame: object) -> None:
        if armed[0]:
            raise TimeLimitExceeded(seconds)

    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds, repeat)
    try:
        yield
    finally:
        while True:  # an alarm may land before the disarm: catch it and disarm again
            try:
                armed[0] = False
                signal.setitimer(signal.ITIMER_REAL, 0)
                break
            except TimeLimitExceeded:
                continue
        signal.signal(signal.SIGALRM, previous)
