"""Bandwidth limit: a token bucket over an injectable clock.

The clock is a parameter so that tests and benchmarks measure the bytes sent over *simulated* time
(``ManualClock``) instead of asserting on wall-clock durations. The guarantee, for any window of
``T`` seconds, is ``bytes ≤ rate·T + burst + one chunk``: a chunk is paid for right after it was
handed to the transport (progress callbacks report after the fact), and the bucket may go into debt
so that a chunk larger than the bucket still passes, followed by the matching pause.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

from edgeinspect.core.errors import StorageError


class UploadCancelled(StorageError):
    """The service is stopping: an upload waiting on the bandwidth limit gives up (and resumes later)."""


class Clock(Protocol):
    """Monotonic time and waiting for a deadline; ``sleep_until`` returns False if a stop interrupted it.

    A deadline rather than a duration, so that several threads waiting on one simulated clock
    overlap (the clock moves to the latest deadline) exactly as they would in real time.
    """

    def monotonic(self) -> float: ...

    def sleep_until(self, deadline: float) -> bool: ...


class RealClock:
    """``time.monotonic`` and a wait that a stop event interrupts (so SIGTERM is never held up)."""

    def __init__(self, stop: threading.Event | None = None) -> None:
        self._stop = stop or threading.Event()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep_until(self, deadline: float) -> bool:
        return not self._stop.wait(max(0.0, deadline - time.monotonic()))


class ManualClock:
    """Simulated time: ``sleep_until`` moves it to the deadline at once. For tests and benchmarks."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.slept = 0.0

    def monotonic(self) -> float:
        with self._lock:
            return self._now

    def sleep_until(self, deadline: float) -> bool:
        with self._lock:
            if deadline > self._now:
                self.slept += deadline - self._now
                self._now = deadline
        return True

    def advance(self, seconds: float) -> None:
        """Time passing without anyone sleeping (idle time), not counted in ``slept``."""
        with self._lock:
            self._now += max(0.0, seconds)


class TokenBucket:
    """``rate`` bytes/s with ``burst`` bytes of credit; ``rate == 0`` means unlimited (never waits).

    Thread-safe: boto3 reports multipart progress from several threads, and they share one budget.
    """

    def __init__(self, rate: int, burst: int, clock: Clock) -> None:
        self.rate = rate
        self.burst = max(burst, 1)
        self.clock = clock
        self._tokens = float(self.burst)
        self._last = clock.monotonic()
        self._lock = threading.Lock()
        self.consumed = 0

    def consume(self, amount: int) -> None:
        """Pay for ``amount`` bytes, sleeping off any debt; ``UploadCancelled`` if asked to stop meanwhile."""
        if amount <= 0:
            return
        with self._lock:
            self.consumed += amount
            if self.rate <= 0:
                return
            now = self.clock.monotonic()
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= amount
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0 and not self.clock.sleep_until(now + wait):
            raise UploadCancelled("upload interrupted by shutdown", hint="it resumes on the next start")


class ThrottledProgress:
    """Turns a store's cumulative progress callback into token-bucket payments for one file."""

    def __init__(self, bucket: TokenBucket) -> None:
        self._bucket = bucket
        self._seen = 0
        self._lock = threading.Lock()

    def __call__(self, total: int) -> None:
        with self._lock:
            delta = total - self._seen
            self._seen = max(self._seen, total)
        self._bucket.consume(delta)
