"""Shift counters for one line: parts inspected, defects, rate, fps and end-to-end latency.

Counted in memory as results arrive, because a shift holds far more results than the capped
``ei:results`` stream keeps; on start the UI replays what the stream still holds since the shift began.
"""

from __future__ import annotations

import time as _time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime, time, timedelta

from edgeinspect.core.messages import Result
from edgeinspect.core.observability import percentile

from edgeinspect_ui.api.schemas import StatsOut

FPS_WINDOW_S = 10.0
LATENCY_KEPT = 500


def shift_start(now: datetime, starts: Sequence[time]) -> datetime:
    """The latest shift start at or before ``now`` (local, timezone-aware ``now`` keeps its zone)."""
    if not starts:
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    candidates = [
        datetime.combine(now.date() + timedelta(days=day), start, tzinfo=now.tzinfo)
        for day in (-1, 0)
        for start in starts
    ]
    return max(c for c in candidates if c <= now)


def _local_now() -> datetime:
    return datetime.now().astimezone()


class ShiftCounter:
    """Counters since the current shift began; a result after the next shift start resets them."""

    def __init__(
        self,
        line: str,
        starts: Sequence[time],
        *,
        now: Callable[[], datetime] = _local_now,
        monotonic: Callable[[], float] = _time.monotonic,
    ) -> None:
        self.line = line
        self._starts = list(starts)
        self._now = now
        self._monotonic = monotonic
        self._arrivals: deque[float] = deque()
        self._latency: deque[float] = deque(maxlen=LATENCY_KEPT)
        self._reset(shift_start(now(), self._starts))

    def _reset(self, start: datetime) -> None:
        self.start = start
        self.start_ns = int(start.timestamp() * 1e9)
        self.inspected = 0
        self.defects = 0
        self.errors = 0
        self.waiting = 0
        self.last_ts_ns = 0
        self._arrivals.clear()
        self._latency.clear()

    def roll(self) -> bool:
        """Start a new shift when its start time has passed; True when the counters were reset."""
        current = shift_start(self._now(), self._starts)
        if current > self.start:
            self._reset(current)
            return True
        return False

    def add(self, result: Result, *, live: bool = True) -> None:
        """Count one result; ``live=False`` for replayed history (counted, but not in the fps window)."""
        if result.ts_ns and result.ts_ns < self.start_ns and not live:
            return
        self.last_ts_ns = max(self.last_ts_ns, result.ts_ns)
        if result.verdict == "no_model":  # not inspected (no model yet): neither a part nor an error
            self.waiting += 1
            return
        self.inspected += 1
        self.defects += result.verdict == "defect"
        self.errors += result.verdict == "error"
        if result.verdict != "error":
            self._latency.append(result.e2e_ms)
        if live:
            self._arrivals.append(self._monotonic())

    def fps(self) -> float:
        """Results received per second over the last ``FPS_WINDOW_S`` (0 once the line stops)."""
        now = self._monotonic()
        while self._arrivals and self._arrivals[0] < now - FPS_WINDOW_S:
            self._arrivals.popleft()
        if not self._arrivals:
            return 0.0
        # over a shorter span while the window fills up, so a line that just started reads right
        span = min(FPS_WINDOW_S, max(1.0, now - self._arrivals[0]))
        return len(self._arrivals) / span

    def snapshot(self) -> StatsOut:
        latency = list(self._latency)
        return StatsOut(
            line=self.line,
            shift_start_ns=self.start_ns,
            inspected=self.inspected,
            defects=self.defects,
            errors=self.errors,
            waiting=self.waiting,
            defect_rate=self.defects / self.inspected if self.inspected else 0.0,
            fps=round(self.fps(), 2),
            e2e_p50_ms=round(percentile(latency, 50), 2),
            e2e_p99_ms=round(percentile(latency, 99), 2),
            last_ts_ns=self.last_ts_ns,
        )
