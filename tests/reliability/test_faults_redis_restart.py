"""Redis restarts empty under running consumers: every consumer group comes back by itself.

The uploader used to log NOGROUP forever after an empty restart, report ready, and never spool a
capture again. ``GroupReader`` now recreates a lost group in the shared core, and ``/readyz`` says
false while a consumer cannot read its stream.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
import redis
from edgeinspect.core import names
from edgeinspect.core.lifecycle import wait_until
from edgeinspect.core.messages import Capture
from edgeinspect.core.observability import Health
from edgeinspect.core.streams import GroupReader, Streams
from edgeinspect_uploader.service import UploaderService
from edgeinspect_uploader.settings import UploaderSettings

from tests.fixtures.redis_server import RedisServer
from tests.unit.uploader.captures import make_captures

pytestmark = pytest.mark.timeout(120)


def _settings(url: str, tmp_path: Path) -> UploaderSettings:
    return UploaderSettings.load(
        redis_url=url, line="l1", capture_url=f"file://{tmp_path / 'store'}", spool_dir=tmp_path / "spool",
        retry_initial_s=0.05, retry_max_s=0.3, stale_claim_ms=1000,
    )  # fmt: skip


def test_the_uploader_recreates_its_group_and_loses_no_capture(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    streams = Streams.from_url(own_redis.url)
    stop = threading.Event()
    service = UploaderService.build(_settings(own_redis.url, tmp_path), stop).start()
    health = Health()
    service.add_health_checks(health)
    try:
        first = make_captures(1, "l1", ["defect"] * 3)
        for capture in first:
            streams.add(names.capture_stream(), capture)
        assert wait_until(lambda: service.metrics.counts["uploaded_captures"] == 3, timeout=30)

        own_redis.restart()  # empty: no stream, no group
        later = [
            dataclasses.replace(c, frame_id=f"after-{i}")
            for i, c in enumerate(make_captures(2, "l1", ["defect"] * 4, start_ns=first[-1].ts_ns + 10**9))
        ]
        assert wait_until(lambda: _add_all(streams, later), timeout=30)
        assert wait_until(lambda: service.metrics.counts["uploaded_captures"] == 7, timeout=30), (
            service.status()
        )
        assert service.receiver.reader.groups_recreated >= 1
        assert wait_until(lambda: health.readiness()[0], timeout=10), health.readiness()
        stored = sorted(p.parent.name for p in (tmp_path / "store").rglob("image.png"))
        assert stored == sorted(c.frame_id for c in first + later)
    finally:
        stop.set()
        service.join(timeout=30)
        streams.close()


def _add_all(streams: Streams, captures: Sequence[Capture]) -> bool:
    try:
        for capture in captures:
            streams.add(names.capture_stream(), capture)
    except redis.RedisError:
        return False
    return True


def test_a_reader_that_cannot_read_is_not_consuming(own_redis: RedisServer) -> None:
    streams = Streams.from_url(own_redis.url, socket_timeout=2)
    reader = GroupReader(streams, "s", "g", "c", block_ms=10)
    reader.start()
    assert reader.next_batch() == [] and reader.consuming
    streams.client.delete("s")
    streams.client.set("s", "not a stream")  # WRONGTYPE: no group can be made
    with pytest.raises(redis.ResponseError):
        reader.next_batch()
    assert not reader.consuming
    streams.client.delete("s")  # a missing stream is a lost group: the reader recreates it
    assert reader.next_batch() == [] and reader.consuming
    assert reader.groups_recreated == 1
    streams.close()
