"""Time limits interrupt endless loops, even ones that swallow exceptions, and clean up after themselves."""
import signal
import time

import pytest

from mlsec_kit.grading.limits import TimeLimitExceeded, can_limit_time, time_limit

pytestmark = pytest.mark.skipif(not can_limit_time(), reason="needs SIGALRM in the main thread")


def _spin() -> None:
    while True:
        pass


def test_interrupts_an_endless_loop_quickly():
    start = time.monotonic()
    with pytest.raises(TimeLimitExceeded, match="took longer than 0.2 s"):
        with time_limit(0.2):
            _spin()
    assert time.monotonic() - start < 2


def test_a_loop_that_swallows_the_first_interrupt_gets_another():
    caught = 0
    with pytest.raises(TimeLimitExceeded):
        with time_limit(0.2, repeat=0.1):
            while True:
                try:
                    _spin()
                except BaseException:
                    caught += 1
                    if caught > 1:
                        raise
    assert caught == 2


def test_fast_code_is_untouched_and_the_alarm_is_disarmed():
    previous = signal.getsignal(signal.SIGALRM)
    with time_limit(0.5):
        value = sum(range(1000))
    assert value == 499500
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) is previous
    time.sleep(0.6)  # nothing fires afterwards


def test_no_limit_and_bad_limits():
    with time_limit(None):
        time.sleep(0.01)
    with pytest.raises(ValueError, match="must be > 0"):
        with time_limit(0):
            pass
