"""The uploader stores the worker's telemetry summaries beside the day's capture manifest."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import redis
from edgeinspect.core import names
from edgeinspect.core.capture_manifest import read_telemetry_day, telemetry_dir
from edgeinspect.core.lifecycle import wait_until
from edgeinspect.core.messages import Event
from edgeinspect.core.storage import open_store
from edgeinspect.core.streams import Streams
from edgeinspect.core.telemetry import BRIGHTNESS, TelemetrySummary
from edgeinspect_uploader.settings import UploaderSettings

from tests.fixtures.redis_server import RedisServer
from tests.integration.uploader.harness import running

DAY_NS = int(datetime(2026, 3, 4, 12, tzinfo=UTC).timestamp()) * 1_000_000_000


def summary(line: str, frames: int, end_ns: int) -> TelemetrySummary:
    body = TelemetrySummary(line=line, thing="press-7", frames=frames, start_ns=end_ns - 1, end_ns=end_ns)
    body.histogram(BRIGHTNESS).add([100.0] * frames)
    return body


def test_telemetry_events_become_parts_under_the_day_and_other_events_are_ignored(
    redis_server: RedisServer, redis_client: redis.Redis, line_id: str, tmp_path: Path
) -> None:
    redis_client.delete(names.events_stream())
    streams = Streams(redis_client)
    settings = UploaderSettings.load(
        redis_url=redis_server.url, line=line_id, capture_url=f"file://{tmp_path / 'store'}",
        spool_dir=tmp_path / "spool", retry_initial_s=0.1, retry_max_s=0.5, stale_claim_ms=1000,
    )  # fmt: skip
    sent = [summary(line_id, 5, DAY_NS), summary(line_id, 7, DAY_NS + 300_000_000_000)]
    streams.add(names.events_stream(), Event.new("model_loaded", "agent", line=line_id, name="cls"))
    for body in sent:
        event = Event(type="telemetry", ts_ns=body.end_ns, detail=body.to_json(), service="inference")
        streams.add(names.events_stream(), event)
    streams.add(names.events_stream(), Event(type="telemetry", ts_ns=1, detail={"schema": "x"}))
    store = open_store(settings.capture_url)
    day = datetime(2026, 3, 4, tzinfo=UTC).date()
    with running(settings) as service:
        assert wait_until(lambda: len(list(store.list(telemetry_dir(line_id, day)))) == 2, 30)
        assert wait_until(lambda: streams.pending_count(names.events_stream(), names.UPLOADER_GROUP) == 0, 10)
        assert wait_until(lambda: not list((tmp_path / "spool" / "telemetry").glob("*.json")), 10)
        count = service.registry.get_sample_value
        assert count("ei_uploader_telemetry_total", {"outcome": "uploaded"}) == 2
        assert count("ei_uploader_telemetry_total", {"outcome": "malformed"}) == 1
    stored = list(read_telemetry_day(store, line_id, day))
    assert [s.to_json() for s in stored] == [s.to_json() for s in sent]
    redis_client.delete(names.events_stream())


def test_summaries_wait_in_the_spool_while_the_store_is_unwritable(
    redis_server: RedisServer, redis_client: redis.Redis, line_id: str, tmp_path: Path
) -> None:
    redis_client.delete(names.events_stream())
    streams = Streams(redis_client)
    blocked = tmp_path / "store"
    blocked.write_text("a file where the store's folder should be")
    settings = UploaderSettings.load(
        redis_url=redis_server.url, line=line_id, capture_url=f"file://{blocked}",
        spool_dir=tmp_path / "spool", retry_initial_s=0.1, retry_max_s=0.2,
    )  # fmt: skip
    body = summary(line_id, 3, DAY_NS)
    streams.add(names.events_stream(), Event(type="telemetry", ts_ns=1, detail=body.to_json()))
    spooled = tmp_path / "spool" / "telemetry"
    with running(settings):
        assert wait_until(lambda: len(list(spooled.glob("*.json"))) == 1, 30)
        assert wait_until(lambda: streams.pending_count(names.events_stream(), names.UPLOADER_GROUP) == 0, 10)
        blocked.unlink()  # the store comes back
        assert wait_until(lambda: not list(spooled.glob("*.json")), 30)
    day = datetime(2026, 3, 4, tzinfo=UTC).date()
    (stored,) = read_telemetry_day(open_store(f"file://{blocked}"), line_id, day)
    assert stored.frames == 3
    redis_client.delete(names.events_stream())
