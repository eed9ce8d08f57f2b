"""The explicit lifecycle every service's ``main()`` follows: signals set a stop event, readiness
drops first, then work stops in a fixed order, then the process exits 0.

    stop = install_signal_handlers(health)
    ...start things...
    while not stop.is_set(): do_work()
    ...stop things in reverse order...

A stop that hangs is the hardest fault to diagnose after the fact: the orchestrator kills the
process and whatever held it is gone. So a service that has not exited ``exit_deadline_s`` after the
signal writes every thread's stack to stderr, logs ``shutdown_overran`` and exits with
:data:`EXIT_STOP_OVERRAN` (one wedged so hard that no Python thread runs writes the stacks and exits 1,
:data:`BACKSTOP_S` later); and ``kill -USR1 PID`` writes the same stacks at any time, without stopping.
"""

from __future__ import annotations

import faulthandler
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO, TypeVar

from edgeinspect.core.observability import Health, get_logger

T = TypeVar("T")
log = get_logger(__name__)


EXIT_STOP_OVERRAN = 70
"""Exit status of a service that did not finish stopping within its deadline (stacks are in its log)."""
DEFAULT_EXIT_DEADLINE_S = 25.0
"""Below the 30 s an orchestrator waits by default before SIGKILL, so the stacks reach the log first."""
BACKSTOP_S = 3.0
"""How long after the deadline a C-level timer (faulthandler's: it needs neither the GIL nor a Python
thread) writes the stacks and exits 1, for a process so wedged that the watchdog thread cannot run."""


def install_signal_handlers(
    health: Health | None = None, exit_deadline_s: float = DEFAULT_EXIT_DEADLINE_S
) -> threading.Event:
    """SIGTERM and SIGINT set the returned event (and mark the service not ready).

    The first one also arms :func:`exit_watchdog` with ``exit_deadline_s``; SIGUSR1 dumps every
    thread's stack to stderr.
    """
    stop = threading.Event()

    def _handle(signum: int, _frame: object) -> None:
        log.info("shutdown_requested", signal=signal.Signals(signum).name)
        if health is not None:
            health.mark_stopping()
        if not stop.is_set():
            exit_watchdog(exit_deadline_s)
        stop.set()

    signal.signal(signal.SIGTERM, _handle)
    signal.signal(signal.SIGINT, _handle)
    faulthandler.register(signal.SIGUSR1, file=_stack_file(), all_threads=True)
    return stop


def _stack_file() -> TextIO:
    """stderr where it is a real file (faulthandler writes to the descriptor), else the original one."""
    try:
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        original = sys.__stderr__
        return original if original is not None else sys.stderr
    return sys.stderr


def exit_watchdog(deadline_s: float) -> threading.Thread:
    """End the process ``deadline_s`` from now, with every thread's stack in the log, unless it exits first.

    A daemon thread: a process that exits in time never hears of it, while one stuck in a stop
    step or in joining a worker thread at interpreter exit leaves the stacks that show what held it.
    A thread that never gives the GIL back (a C extension stuck while holding it) would keep that
    thread from running at all, so faulthandler's timer backs it up :data:`BACKSTOP_S` later.
    """
    faulthandler.dump_traceback_later(deadline_s + BACKSTOP_S, exit=True, file=_stack_file())

    def _expire() -> None:
        time.sleep(deadline_s)
        log.error(
            "shutdown_overran",
            deadline_s=deadline_s,
            threads=sorted(t.name for t in threading.enumerate()),
            hint="the stacks of every thread follow on stderr; the one not in a wait is what held the stop",
        )
        stacks = _stack_file()
        faulthandler.dump_traceback(file=stacks, all_threads=True)
        stacks.flush()
        os._exit(EXIT_STOP_OVERRAN)

    thread = threading.Thread(target=_expire, name="exit-watchdog", daemon=True)
    thread.start()
    return thread


class Backoff:
    """Exponential backoff with full jitter, for reconnecting to a broker, Redis or a camera."""

    def __init__(
        self, initial: float = 0.5, maximum: float = 30.0, factor: float = 2.0, seed: int | None = None
    ):
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.attempt = 0
        self._random = random.Random(seed)

    def next_delay(self) -> float:
        """The delay before the next attempt; grows until ``maximum``."""
        ceiling = min(self.maximum, self.initial * self.factor**self.attempt)
        self.attempt += 1
        return self._random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0


def retry_until(
    action: Callable[[], T],
    stop: threading.Event,
    *,
    what: str,
    errors: tuple[type[BaseException], ...],
    backoff: Backoff | None = None,
) -> T | None:
    """Call ``action`` until it succeeds or ``stop`` is set, waiting with backoff between failures.

    Each failure is logged with what was attempted and how long until the next try; returns ``None``
    only when asked to stop.
    """
    backoff = backoff or Backoff()
    while not stop.is_set():
        try:
            result = action()
        except errors as exc:
            delay = backoff.next_delay()
            log.warning("retrying", what=what, error=str(exc), retry_in_s=round(delay, 2))
            stop.wait(delay)
            continue
        backoff.reset()
        return result
    return None


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds pass (used by start-up and tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
