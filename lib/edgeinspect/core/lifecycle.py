"""The explicit lifecycle every service's ``main()`` follows: signals set a stop event, readiness
drops first, then work stops in a fixed order, then the process exits 0.

    stop = install_signal_handlers(health)
    ...start things...
    while not stop.is_set(): do_work()
    ...stop things in reverse order...
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from edgeinspect.core.observability import Health, get_logger

T = TypeVar("T")
log = get_logger(__name__)


def install_signal_handlers(health: Health | None = None) -> threading.Event:
    """SIGTERM and SIGINT set the returned event (and mark the service not ready)."""
    stop = threading.Event()

    def _handle(signum: int, _frame: object) -> None:
        log.info("shutdown_requested", signal=signal.Signals(signum).name)
        if health is not None:
            health.mark_stopping()
        stop.set()

    signal.signal(signal.SIGTERM, _handle)
    signal.signal(signal.SIGINT, _handle)
    return stop


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
