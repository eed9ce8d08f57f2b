"""Events the uploader posts on ``ei:events`` (rejects, evictions, outages), so the UI can show them.

Posting is best effort: with Redis down the event is logged instead and the work goes on, because an
eviction or a reject has already happened and must not be undone by a failing notification.
"""

from __future__ import annotations

from typing import Any

import redis
from edgeinspect.core import names
from edgeinspect.core.messages import Event
from edgeinspect.core.observability import get_logger
from edgeinspect.core.streams import Streams

log = get_logger(__name__)
SERVICE = "uploader"

CAPTURE_REJECTED = "capture_rejected"
CAPTURE_EVICTED = "capture_evicted"
UPLOAD_FAILED = "capture_upload_failed"
UPLOAD_RECOVERED = "capture_upload_recovered"


class EventSink:
    """Posts ``Event`` records to ``ei:events``."""

    def __init__(self, streams: Streams | None) -> None:
        self._streams = streams

    def post(self, type_: str, *, line: str = "", level: str = "info", **detail: Any) -> None:
        event = Event.new(type_, SERVICE, line=line, level=level, **detail)
        if self._streams is None:
            return
        try:
            self._streams.add(names.events_stream(), event)
        except redis.RedisError as exc:
            log.warning("event_not_posted", type=type_, error=str(exc), **detail)
