"""Camera services against the session's real redis-server, each test on its own line id."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from edgeinspect.core import names
from edgeinspect.core.messages import Event, Frame
from edgeinspect.core.streams import Entry, Streams
from edgeinspect_camera.clock import Clock
from edgeinspect_camera.service import CameraService
from edgeinspect_camera.sources import FrameSource

from tests.fixtures.redis_server import RedisServer
from tests.unit.camera.helpers import settings

StartCamera = Callable[..., CameraService]


@pytest.fixture
def start_camera(redis_server: RedisServer, line_id: str) -> Iterator[StartCamera]:
    """Build a camera from settings (``background=True`` runs it in a thread); stops them all after."""
    started: list[CameraService] = []

    def start(
        *,
        clock: Clock | None = None,
        frame_source: FrameSource | None = None,
        background: bool = True,
        **overrides: Any,
    ) -> CameraService:
        """``overrides`` are settings (``source`` is the URL); ``frame_source`` replaces the source object."""
        config = settings(redis_url=redis_server.url, line=line_id, **overrides)
        service = CameraService(config, clock=clock, source=frame_source)
        started.append(service)
        if background:
            service.start_in_thread()
        return service

    yield start
    for service in started:
        service.stop()


def _all(client: redis.Redis, stream: str) -> list[Entry]:
    return Streams(client).read({stream: "0-0"}, count=1_000_000, block_ms=None)


def frames(client: redis.Redis, line: str) -> list[Frame]:
    """Every frame in the line's stream, oldest first."""
    return [entry.parse(Frame) for entry in _all(client, names.frames_stream(line))]


def events(client: redis.Redis, line: str, type_: str | None = None) -> list[Event]:
    """The camera events of ``line`` (the events stream is shared by every test), oldest first."""
    found = [entry.parse(Event) for entry in _all(client, names.events_stream())]
    return [e for e in found if e.line == line and (type_ is None or e.type == type_)]


def dropped_in_events(client: redis.Redis, line: str, reason: str) -> int:
    """The sum of ``count`` over the line's ``frame_dropped`` events for ``reason``."""
    return sum(
        int(e.detail["count"]) for e in events(client, line, "frame_dropped") if e.detail["reason"] == reason
    )
