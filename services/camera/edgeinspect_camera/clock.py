"""Time, injected: the capture loop asks a ``Clock`` for "now" and to sleep, never ``time`` directly.

That is what lets a test drive the loop with a clock that advances only when slept on and check the
exact frame count and ``ts_ns`` spacing, instead of asserting on wall time on a noisy machine.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Protocol


class Clock(Protocol):
    """Monotonic time for pacing, wall time for timestamps, and an interruptible sleep."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (pacing, outage durations)."""
        ...

    def time_ns(self) -> int:
        """Wall-clock ns since the epoch: a frame's capture timestamp."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``; may return early when the service is asked to stop."""
        ...


class SystemClock:
    """The real clock; ``sleep`` wakes at once when ``stop`` is set, so SIGTERM is never delayed."""

    def __init__(self, stop: threading.Event | None = None) -> None:
        self._stop = stop or threading.Event()

    def monotonic(self) -> float:
        return time.monotonic()

    def time_ns(self) -> int:
        return time.time_ns()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stop.wait(seconds)


class Pacer:
    """Deadline scheduling: frame ``i`` is due at ``start + i / fps``, so the average rate is exact.

    Sleeping a fixed period after each frame would drift slow by the capture and encode time; here a
    slow frame is made up by a shorter wait before the next. After a stall longer than
    ``max_lag_periods`` the schedule restarts from now instead of bursting to catch up.
    ``fps == 0`` never waits (the line's backpressure paces the camera instead).
    """

    def __init__(self, fps: float, clock: Clock, max_lag_periods: float = 2.0) -> None:
        self.period = 1.0 / fps if fps > 0 else 0.0
        self._clock = clock
        self._max_lag = max_lag_periods * self.period
        self._due: float | None = None

    def wait(self) -> None:
        """Block until the next frame is due."""
        if self.period == 0.0:
            return
        now = self._clock.monotonic()
        if self._due is None or now - self._due > self._max_lag:
            self._due = now
        elif self._due > now:
            self._clock.sleep(self._due - now)
        self._due += self.period

    def reset(self) -> None:
        """Start a fresh schedule (after a reconnect, so the outage is not "made up" in a burst)."""
        self._due = None


class RateMeter:
    """Frames per second over the last ``window`` events (the ``source_fps`` gauge)."""

    def __init__(self, window: int = 30) -> None:
        self._times: deque[float] = deque(maxlen=window)

    def tick(self, now: float) -> float:
        """Record one frame at ``now`` (monotonic s); returns the current rate (0 until two frames)."""
        self._times.append(now)
        if len(self._times) < 2:
            return 0.0
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else 0.0

    def reset(self) -> None:
        self._times.clear()
