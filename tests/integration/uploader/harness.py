"""Helpers for the uploader's integration tests: run the service, publish captures, read events."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from edgeinspect.core import names
from edgeinspect.core.messages import Capture, Event
from edgeinspect.core.streams import Streams
from edgeinspect_uploader.service import UploaderService
from edgeinspect_uploader.settings import UploaderSettings


@contextmanager
def running(settings: UploaderSettings, **build: Any) -> Iterator[UploaderService]:
    """An uploader running in this process (its two threads) until the block ends."""
    stop = threading.Event()
    service = UploaderService.build(settings, stop, **build).start()
    try:
        yield service
    finally:
        stop.set()
        service.join(timeout=30)


def publish(streams: Streams, captures: list[Capture]) -> None:
    for capture in captures:
        streams.add(names.capture_stream(), capture)


def pending(streams: Streams) -> int:
    return streams.pending_count(names.capture_stream(), names.UPLOADER_GROUP)


def events_of(streams: Streams, type_: str) -> list[dict[str, Any]]:
    found = [e.parse(Event) for e in streams.read({names.events_stream(): "0"}, count=10_000, block_ms=None)]
    return [dict(e.detail, line=e.line) for e in found if e.type == type_]
