"""Streams against a real redis-server: round trips, MAXLEN, groups and redelivery after a crash."""

from __future__ import annotations

import time

import pytest
import redis
from edgeinspect.core import names
from edgeinspect.core.messages import Capture, Event, Frame
from edgeinspect.core.streams import GroupReader, Streams

from tests.fixtures.redis_server import RedisServer
from tests.unit.core.test_messages import make_frame, make_result


def test_every_message_type_round_trips_through_a_real_stream(
    redis_client: redis.Redis, line_id: str
) -> None:
    streams = Streams(redis_client)
    frame, result = make_frame(line=line_id), make_result(line=line_id)
    records = {
        names.frames_stream(line_id): frame,
        names.results_stream(line_id): result,
        f"{names.capture_stream()}:{line_id}": Capture.from_frame_and_result(frame, result, ["defect"]),
        f"{names.events_stream()}:{line_id}": Event.new("model_loaded", "test", version="3"),
    }
    for stream, record in records.items():
        streams.add(stream, record)
        (entry,) = streams.latest(stream)
        assert entry.parse(type(record)) == record


def test_binary_frame_data_survives_redis(redis_client: redis.Redis, line_id: str) -> None:
    streams = Streams(redis_client)
    payload = bytes(range(256)) * 100
    streams.add(names.frames_stream(line_id), make_frame(data=payload))
    assert streams.latest(names.frames_stream(line_id))[0].parse(Frame).data == payload


def test_maxlen_bounds_the_stream(redis_client: redis.Redis, line_id: str) -> None:
    streams = Streams(redis_client, maxlen=100)
    stream = names.results_stream(line_id)
    for i in range(1000):
        streams.add(stream, make_result(frame_id=str(i)))
    assert streams.length(stream) < 300


def test_ensure_group_is_idempotent(redis_client: redis.Redis, line_id: str) -> None:
    streams = Streams(redis_client)
    stream = names.frames_stream(line_id)
    streams.ensure_group(stream, "inference")
    streams.ensure_group(stream, "inference")
    assert redis_client.xinfo_groups(stream)[0]["name"] == b"inference"


def test_consumer_killed_before_xack_is_redelivered_to_its_successor(
    redis_url_streams: Streams, line_id: str
) -> None:
    stream = names.frames_stream(line_id)
    for i in range(5):
        redis_url_streams.add(stream, make_frame(frame_id=f"f{i}"))

    first = GroupReader(redis_url_streams, stream, "inference", "worker-a", stale_ms=0)
    first.start()
    taken = first.next_batch()
    assert [e.parse(Frame).frame_id for e in taken] == [f"f{i}" for i in range(5)]
    first.ack(taken[0].id)  # worker-a finishes one frame, then dies holding four

    successor = GroupReader(Streams(redis_url_streams.client), stream, "inference", "worker-b", stale_ms=0)
    successor.start()
    reclaimed = successor.next_batch()
    assert sorted(e.parse(Frame).frame_id for e in reclaimed) == ["f1", "f2", "f3", "f4"]
    successor.ack(*(e.id for e in reclaimed))
    assert redis_url_streams.pending_count(stream, "inference") == 0


def test_restarted_consumer_resumes_its_own_pending_first(redis_url_streams: Streams, line_id: str) -> None:
    stream = names.frames_stream(line_id)
    redis_url_streams.add(stream, make_frame(frame_id="held"))
    crashed = GroupReader(redis_url_streams, stream, "inference", "worker-a")
    crashed.start()
    assert len(crashed.next_batch()) == 1
    redis_url_streams.add(stream, make_frame(frame_id="new"))

    restarted = GroupReader(redis_url_streams, stream, "inference", "worker-a")
    restarted.start()
    assert [e.parse(Frame).frame_id for e in restarted.next_batch()] == ["held"]


def test_ping_reports_a_dead_server() -> None:
    from tests.fixtures.servers import free_port

    dead = Streams.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    assert dead.ping() is False


def test_a_read_blocking_longer_than_redis_pys_own_timeout_waits_its_time(
    redis_server: RedisServer, line_id: str
) -> None:
    streams = Streams.from_url(redis_server.url, block_ms=6000)  # the worker's EI_BLOCK_MS, say
    stream = f"blocking:{line_id}"
    streams.ensure_group(stream, "inference")
    try:  # an idle line: the read waits its 6 s and comes back empty, it does not time out
        assert streams.read_group([stream], "inference", "worker-a", block_ms=6000) == []
    finally:
        streams.client.delete(stream)
        streams.close()


def test_a_server_that_stops_answering_is_a_timeout_not_a_hang(own_redis: RedisServer, line_id: str) -> None:
    streams = Streams.from_url(own_redis.url)
    streams.add(f"s:{line_id}", make_frame(frame_id="before"))  # the connection is open and in use
    with own_redis.frozen(), pytest.raises(redis.TimeoutError, match="Timeout reading"):
        streams.add(f"s:{line_id}", make_frame(frame_id="unanswered"))
    streams.close()


def test_a_reader_that_only_looks_returns_without_waiting_for_redis_s_timer_tick(
    own_redis: RedisServer, line_id: str
) -> None:
    """The worker looks for the next frame while one is in flight; a blocked read (even ``BLOCK 1``)
    on an idle stream returns only on Redis's next timer tick, which would delay the frame's result."""
    streams = Streams.from_url(own_redis.url)
    streams.client.config_set("hz", 1)  # one tick a second: each blocked read would wait up to 1 s
    reader = GroupReader(streams, names.frames_stream(line_id), names.INFERENCE_GROUP, "w", block_ms=None)
    reader.start()
    started = time.monotonic()
    for _ in range(5):
        assert reader.next_batch() == []
    assert time.monotonic() - started < 0.5  # five blocked reads: about 2.5 s
    streams.close()
