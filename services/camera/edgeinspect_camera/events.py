"""Events the camera reports on ``ei:events``, each also written as a log line.

Dropped frames are batched: at 30 fps a stalled line would otherwise add 30 events a second. A
batch (one ``frame_dropped`` event per reason) is sent at most every ``interval_s`` and always at
shutdown; its ``count`` is exact, so the events add up to the drop counter. A batch that cannot be
sent (Redis down) is kept and merged into the next one rather than lost.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import redis
from edgeinspect.core import names
from edgeinspect.core.messages import Event
from edgeinspect.core.observability import get_logger
from edgeinspect.core.streams import Streams

from edgeinspect_camera.clock import Clock

log = get_logger(__name__)
SERVICE = "camera"
MAX_IDS_PER_EVENT = 50


@dataclass
class _DropBatch:
    count: int = 0
    frame_ids: list[str] = field(default_factory=list)
    ids_seen: int = 0
    max_backlog_seen: int = 0


class EventReporter:
    """Sends the camera's events; never raises, because reporting must not stop the capture."""

    def __init__(
        self, streams: Streams, *, line: str, camera: str, clock: Clock, interval_s: float = 1.0
    ) -> None:
        self._streams = streams
        self._line = line
        self._camera = camera
        self._clock = clock
        self._interval = interval_s
        self._drops: dict[str, _DropBatch] = {}
        self._last_flush = clock.monotonic()
        self.sent: list[Event] = []  # the last few sent, for the service's own log and tests
        self.stream = names.events_stream()

    def emit(self, type_: str, level: str = "info", **detail: Any) -> bool:
        """Send one event now; returns False (after logging why) if Redis did not take it."""
        event = Event.new(type_, SERVICE, line=self._line, level=level, camera=self._camera, **detail)
        getattr(log, "error" if level == "error" else "warning" if level == "warning" else "info")(
            type_, line=self._line, camera=self._camera, **detail
        )
        try:
            self._streams.add(self.stream, event)
        except redis.RedisError as exc:
            log.error("event_not_sent", type=type_, error=str(exc))
            return False
        self.sent = [*self.sent[-99:], event]
        return True

    def dropped(self, reason: str, count: int, *, frame_ids: Iterable[str] = (), backlog: int = 0) -> None:
        """Count ``count`` dropped frames for the next ``frame_dropped`` batch."""
        batch = self._drops.setdefault(reason, _DropBatch())
        batch.count += count
        ids = list(frame_ids)
        batch.ids_seen += len(ids)
        batch.frame_ids = [*batch.frame_ids, *ids][-MAX_IDS_PER_EVENT:]  # bounded while Redis is down
        batch.max_backlog_seen = max(batch.max_backlog_seen, backlog)
        self.maybe_flush()

    def maybe_flush(self) -> None:
        """Send the pending drop batches if ``interval_s`` has passed since the last send."""
        if self._drops and self._clock.monotonic() - self._last_flush >= self._interval:
            self.flush()

    def flush(self) -> None:
        """Send every pending drop batch now (called at shutdown so no drop goes unreported)."""
        self._last_flush = self._clock.monotonic()
        for reason in list(self._drops):
            batch = self._drops[reason]
            sent = self.emit(
                "frame_dropped",
                "warning",
                reason=reason,
                count=batch.count,
                frame_ids=batch.frame_ids,
                frame_ids_truncated=batch.ids_seen > len(batch.frame_ids),
                backlog=batch.max_backlog_seen,
            )
            if sent:
                del self._drops[reason]

    @property
    def pending_drops(self) -> int:
        return sum(b.count for b in self._drops.values())
