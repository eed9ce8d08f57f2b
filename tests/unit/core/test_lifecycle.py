"""Lifecycle helpers: backoff grows and caps; retry_until retries, and stops when asked; a stop that
hangs ends the process with every thread's stack in its log; SIGUSR1 dumps them without stopping."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading

from edgeinspect.core.lifecycle import EXIT_STOP_OVERRAN, Backoff, retry_until

# A service whose stop never finishes: a non-daemon thread that ignores the stop event blocks the
# interpreter's exit (the way a worker stuck in a call would).
STUCK_SERVICE = textwrap.dedent(
    """
    import sys, threading
    from edgeinspect.core.lifecycle import install_signal_handlers
    from edgeinspect.core.observability import configure_logging

    def stuck_in_a_call() -> None:
        threading.Event().wait()

    configure_logging(service="stuck")
    stop = install_signal_handlers(exit_deadline_s=float(sys.argv[1]))
    threading.Thread(target=stuck_in_a_call, name="stuck-worker").start()
    print("ready", flush=True)
    stop.wait()
    print("stopping", flush=True)
    """
)


# A service wedged harder: after the signal its main thread holds the GIL for ever (the regex engine
# never releases it), so no Python thread, the exit watchdog included, runs again.
WEDGED_SERVICE = textwrap.dedent(
    """
    import re, sys
    from edgeinspect.core.lifecycle import install_signal_handlers
    from edgeinspect.core.observability import configure_logging

    configure_logging(service="wedged")
    stop = install_signal_handlers(exit_deadline_s=float(sys.argv[1]))
    print("ready", flush=True)
    stop.wait()
    re.match(r"(a+)+$", "a" * 64 + "b")
    """
)


def _start_stuck_service(deadline_s: float, script: str = STUCK_SERVICE) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(deadline_s)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def test_backoff_grows_then_caps() -> None:
    backoff = Backoff(initial=1.0, maximum=8.0, seed=1)
    delays = [backoff.next_delay() for _ in range(8)]
    assert delays[0] <= 1.0 and all(d <= 8.0 for d in delays) and max(delays) >= 4.0
    backoff.reset()
    assert backoff.next_delay() <= 1.0


def test_retry_until_returns_after_failures() -> None:
    calls = {"n": 0}

    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise ConnectionError("down")
        return "up"

    stop = threading.Event()
    result = retry_until(flaky, stop, what="flaky", errors=(ConnectionError,), backoff=Backoff(0.001, 0.002))
    assert result == "up" and calls["n"] == 3


def test_retry_until_gives_up_when_stopped() -> None:
    stop = threading.Event()
    stop.set()
    assert retry_until(lambda: 1 / 0, stop, what="never", errors=(ZeroDivisionError,)) is None


def test_a_stop_that_hangs_exits_with_every_threads_stack_in_the_log() -> None:
    proc = _start_stuck_service(deadline_s=0.5)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_STOP_OVERRAN
    event = next(json.loads(line) for line in err.splitlines() if "shutdown_overran" in line)
    assert event["deadline_s"] == 0.5
    assert "stuck-worker" in event["threads"]  # the log names the threads still alive
    assert "in stuck_in_a_call" in err  # and the stacks show where the stuck one waits


def test_a_stop_wedged_with_the_gil_held_still_ends_with_the_stacks_in_the_log() -> None:
    proc = _start_stuck_service(deadline_s=0.5, script=WEDGED_SERVICE)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err[-2000:]  # faulthandler's exit: the watchdog thread never ran
    assert "shutdown_overran" not in err
    assert "Timeout (" in err and " in match" in err  # the stacks, from the C-level timer, show the wedge


def test_sigusr1_dumps_the_stacks_and_the_service_keeps_running() -> None:
    proc = _start_stuck_service(deadline_s=60.0)
    try:
        proc.send_signal(signal.SIGUSR1)
        assert proc.stderr is not None
        lines = []
        while not any("in stuck_in_a_call" in line for line in lines):
            line = proc.stderr.readline()
            assert line, "the stacks never came"
            lines.append(line)
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait(timeout=30)
