"""Streams bounded by bytes and age (``edgeinspect.core.retention``) against a real redis-server.

What must hold: the stream shrinks to its budget; an entry a consumer holds (delivered, not acked)
is never trimmed; an entry not yet delivered is dropped only with its id returned and counted, and
the group's ``lag`` stays exact.
"""

from __future__ import annotations

import time

import redis
from edgeinspect.core.budget import Budget
from edgeinspect.core.retention import StreamRetention, trimmed_counter
from edgeinspect.core.streams import Streams
from prometheus_client import CollectorRegistry

PAYLOAD = b"x" * 10_000


def _fill(client: redis.Redis, stream: str, count: int, *, start_ms: int | None = None) -> list[str]:
    ids = []
    for i in range(count):
        entry_id = f"{start_ms + i}-0" if start_ms is not None else "*"
        ids.append(client.xadd(stream, {"frame_id": f"f{i:03d}", "data": PAYLOAD}, id=entry_id).decode())
    return ids


def _trim_all(retention: StreamRetention) -> list[str]:
    dropped: list[str] = []
    for _ in range(20):
        outcome = retention.trim()
        dropped.extend(outcome.dropped)
    return dropped


def test_the_bytes_budget_keeps_the_newest_entries(redis_client: redis.Redis, line_id: str) -> None:
    stream = f"{line_id}:s"
    ids = _fill(redis_client, stream, 100)
    retention = StreamRetention(redis_client, stream, Budget(max_bytes=200_000, max_age_s=0))
    for _ in range(100):
        retention.added(len(PAYLOAD) + 20)
    _trim_all(retention)
    kept = [e[0].decode() for e in redis_client.xrange(stream)]
    assert kept == ids[-retention.keep_entries() :]
    assert 15 <= len(kept) <= 20


def test_the_age_budget_drops_old_entries(redis_client: redis.Redis, line_id: str) -> None:
    stream = f"{line_id}:s"
    old_ms = int(time.time() * 1000) - 3_600_000
    _fill(redis_client, stream, 5, start_ms=old_ms)
    fresh = redis_client.xadd(stream, {"frame_id": "new"}).decode()
    retention = StreamRetention(redis_client, stream, Budget(max_bytes=10**9, max_age_s=60))
    assert retention.trim().dropped == ()  # no group: nobody to protect
    assert [e[0].decode() for e in redis_client.xrange(stream)] == [fresh]


def test_entries_a_consumer_holds_are_never_trimmed(redis_client: redis.Redis, line_id: str) -> None:
    stream, group = f"{line_id}:s", "g"
    streams = Streams(redis_client)
    streams.ensure_group(stream, group)
    ids = _fill(redis_client, stream, 30)
    held = streams.read_group([stream], group, "dead", count=3, block_ms=None)  # never acked
    done = streams.read_group([stream], group, "live", count=27, block_ms=None)
    streams.ack(stream, group, *(e.id for e in done))
    retention = StreamRetention(redis_client, stream, Budget(max_bytes=50_000, max_age_s=0), group=group)
    retention.added(len(PAYLOAD))
    outcome = retention.trim()
    assert outcome.held_back and outcome.dropped == ()
    kept = [e[0].decode() for e in redis_client.xrange(stream)]
    assert kept == ids  # the oldest entry is held by a (dead) consumer: nothing before it may go
    claimed = streams.claim_stale(stream, group, "heir", 0)
    assert [e.id for e in claimed] == [e.id for e in held] and all(e.fields for e in claimed)

    streams.ack(stream, group, *(e.id for e in claimed))  # the heir finished them: now they may go
    _trim_all(retention)
    assert len(redis_client.xrange(stream)) == retention.keep_entries()


def test_undelivered_entries_are_dropped_counted_and_skipped(redis_client: redis.Redis, line_id: str) -> None:
    stream, group = f"{line_id}:s", "g"
    streams = Streams(redis_client)
    streams.ensure_group(stream, group)
    old_ms = int(time.time() * 1000) - 3_600_000
    _fill(redis_client, stream, 4, start_ms=old_ms)  # a worker was down for an hour
    fresh = redis_client.xadd(stream, {"frame_id": "new"}).decode()
    registry = CollectorRegistry()
    retention = StreamRetention(
        redis_client, stream, Budget(max_bytes=10**9, max_age_s=60), group=group,
        counter=trimmed_counter(registry),
    )  # fmt: skip
    outcome = retention.trim()
    assert outcome.dropped == ("f000", "f001", "f002", "f003")
    assert registry.get_sample_value("ei_stream_trimmed_unconsumed_total", {"stream": stream}) == 4
    info = next(g for g in redis_client.xinfo_groups(stream) if g["name"] == group.encode())
    assert info["lag"] == 1  # exact: only the fresh entry is left to deliver
    assert [e.id for e in streams.read_group([stream], group, "c", count=10, block_ms=None)] == [fresh]


def test_streams_add_applies_the_budget(redis_client: redis.Redis, line_id: str) -> None:
    stream = f"{line_id}:events"
    streams = Streams(redis_client)
    retention = streams.retain(stream, Budget(max_bytes=100_000, max_age_s=0))
    for i in range(300):
        streams.add(stream, {"frame_id": f"e{i}", "data": PAYLOAD})
        retention._last = float("-inf")  # trim on every add, as if a second had passed
    assert redis_client.xlen(stream) <= retention.keep_entries() + 1
