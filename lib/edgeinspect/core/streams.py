"""A small layer over redis-py streams: bounded XADD, consumer groups, XACK after durable work,
and reclaiming a dead consumer's pending entries with XAUTOCLAIM.

A consumer's life: ``ensure_group`` once; ``read_group`` returns first its own pending entries (a
restart resumes exactly where it crashed), then stale entries of other consumers
(``claim_stale``), then new ones; it acks each entry only after the work is durable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import redis
from prometheus_client import Counter

from edgeinspect.core.budget import Budget
from edgeinspect.core.messages import FieldValue, StreamRecord
from edgeinspect.core.observability import get_logger
from edgeinspect.core.retention import StreamRetention, entry_size

R = TypeVar("R", bound=StreamRecord)
log = get_logger(__name__)


def is_nogroup(exc: BaseException) -> bool:
    """True for Redis's NOGROUP reply: the stream or its group is gone (Redis restarted empty)."""
    return isinstance(exc, redis.ResponseError) and str(exc).startswith("NOGROUP")


@dataclass(frozen=True, slots=True)
class Entry:
    """One stream entry as read: its stream key, id and raw fields (bytes keys and values)."""

    stream: str
    id: str
    fields: Mapping[bytes, bytes]

    def parse(self, record_type: type[R]) -> R:
        """The typed record; raises ``MessageError`` when the entry is malformed."""
        return record_type.from_fields(self.fields)


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _entries(stream: str, raw: Iterable[Any]) -> list[Entry]:
    # XAUTOCLAIM reports entries deleted by MAXLEN trimming as (id, None): there is nothing to redo.
    return [Entry(stream, _str(eid), fields) for eid, fields in raw if fields is not None]


SOCKET_TIMEOUT_S = 10.0
"""How long a Redis command may go unanswered before it fails (see :meth:`Streams.from_url`)."""


class Streams:
    """Stream operations on one Redis connection; ``maxlen`` bounds every stream approximately."""

    def __init__(self, client: redis.Redis, maxlen: int = 10_000) -> None:
        self.client = client
        self.maxlen = maxlen
        self._retention: dict[str, StreamRetention] = {}

    def retain(
        self, stream: str, budget: Budget, *, group: str = "", counter: Counter | None = None
    ) -> StreamRetention:
        """Bound ``stream`` by bytes and age on every :meth:`add` (see :mod:`edgeinspect.core.retention`)."""
        retention = StreamRetention(self.client, stream, budget, group=group, counter=counter)
        self._retention[stream] = retention
        return retention

    @classmethod
    def from_url(cls, url: str, maxlen: int = 10_000, *, block_ms: int = 0, **kwargs: Any) -> Streams:
        """Connect lazily (redis-py connects on first command), with bounded socket timeouts.

        A Redis that stops answering on an open connection (a frozen host, a cable pulled) sends
        no error, so without a read timeout a command waits forever, and so does whatever waits
        on it (a stop, a capture queue). Every command gets :data:`SOCKET_TIMEOUT_S` (plus
        ``block_ms``, the longest blocking read the caller makes) and then raises
        ``redis.TimeoutError``, which services handle as the outage it is. Set explicitly: redis-py
        5 has no read timeout by default, 8 reuses the 5 s connect timeout, under which a read
        blocking longer always failed.
        """
        options: dict[str, Any] = {
            "socket_connect_timeout": 5,
            "socket_timeout": SOCKET_TIMEOUT_S + block_ms / 1000,
            "health_check_interval": 30,
        }
        options.update(kwargs)
        return cls(redis.Redis.from_url(url, **options), maxlen)

    def add(
        self, stream: str, record: StreamRecord | Mapping[str, FieldValue], maxlen: int | None = None
    ) -> str:
        """XADD with ``MAXLEN ~``; returns the entry id."""
        fields = record.to_fields() if isinstance(record, StreamRecord) else dict(record)
        entry_id = self.client.xadd(stream, fields, maxlen=maxlen or self.maxlen, approximate=True)  # type: ignore[arg-type]
        retention = self._retention.get(stream)
        if retention is not None:
            try:
                retention.added(entry_size([*fields.keys(), *fields.values()]))
            except redis.RedisError as exc:  # the entry is in: a failed trim must not look like a failed add
                log.warning("retention_failed", stream=stream, error=str(exc))
        return _str(entry_id)

    def ensure_group(self, stream: str, group: str, start_id: str = "0") -> None:
        """Create the consumer group (and the stream) if missing; an existing group is left alone."""
        try:
            self.client.xgroup_create(stream, group, id=start_id, mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read_group(
        self,
        streams: Sequence[str],
        group: str,
        consumer: str,
        *,
        count: int = 10,
        block_ms: int | None = 1000,
        pending: bool = False,
    ) -> list[Entry]:
        """XREADGROUP: new entries (``>``), or with ``pending=True`` this consumer's unacked ones."""
        start = "0" if pending else ">"
        reply: Any = self.client.xreadgroup(
            group, consumer, {s: start for s in streams}, count=count, block=None if pending else block_ms
        )
        out: list[Entry] = []
        for stream, raw in reply or []:
            out.extend(_entries(_str(stream), raw))
        return out

    def ack(self, stream: str, group: str, *ids: str) -> int:
        """XACK after the work is durable; returns how many were acknowledged."""
        if not ids:
            return 0
        return int(self.client.xack(stream, group, *ids))  # type: ignore[arg-type]

    def claim_stale(
        self, stream: str, group: str, consumer: str, min_idle_ms: int, count: int = 100
    ) -> list[Entry]:
        """XAUTOCLAIM every entry pending longer than ``min_idle_ms`` (a dead consumer's) to ``consumer``."""
        claimed: list[Entry] = []
        cursor = "0-0"
        while True:
            reply: Any = self.client.xautoclaim(
                stream, group, consumer, min_idle_ms, start_id=cursor, count=count
            )
            cursor = _str(reply[0])
            claimed.extend(_entries(stream, reply[1]))
            if cursor == "0-0" or len(claimed) >= count:
                return claimed

    def pending_count(self, stream: str, group: str) -> int:
        """How many entries the group has delivered but not acknowledged."""
        info = self.client.xpending(stream, group)
        return int(info["pending"])  # type: ignore[index]

    def latest(self, stream: str, count: int = 1) -> list[Entry]:
        """The newest ``count`` entries, newest first (for UIs and status pages)."""
        return _entries(stream, self.client.xrevrange(stream, count=count))  # type: ignore[arg-type]

    def read(
        self, positions: Mapping[str, str], *, count: int = 100, block_ms: int | None = 1000
    ) -> list[Entry]:
        """Plain XREAD from the given ids (``$`` for only new entries); for readers without a group."""
        reply: Any = self.client.xread(dict(positions), count=count, block=block_ms)  # type: ignore[arg-type]
        out: list[Entry] = []
        for stream, raw in reply or []:
            out.extend(_entries(_str(stream), raw))
        return out

    def length(self, stream: str) -> int:
        return int(self.client.xlen(stream))  # type: ignore[arg-type]

    def ping(self) -> bool:
        """Readiness check: True when Redis answers."""
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False

    def close(self) -> None:
        self.client.close()


class GroupReader:
    """The loop a group consumer runs: own pending first, then stale ones of dead peers, then new.

    ``next_batch()`` never returns an entry twice to the same live consumer, and after a crash the
    successor (same name, or any peer after ``stale_ms``) gets every unacknowledged entry again.
    ``block_ms``: how long a read waits for new entries; ``None`` looks without waiting. A consumer
    that only wants to know whether more is there must say ``None``, not a few milliseconds: Redis
    ends a blocked read with nothing to return on its next timer tick (``hz``, 10 a second by
    default), so ``BLOCK 1`` on an idle stream returns after up to 100 ms.
    """

    def __init__(
        self,
        streams: Streams,
        stream: str,
        group: str,
        consumer: str,
        *,
        stale_ms: int = 30_000,
        batch: int = 10,
        block_ms: int | None = 1000,
    ) -> None:
        self.streams = streams
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.stale_ms = stale_ms
        self.batch = batch
        self.block_ms = block_ms
        self._recovered = False
        self._reads = 0
        self._consuming = True
        self.groups_recreated = 0

    @property
    def consuming(self) -> bool:
        """False from a failed read until the next one succeeds: what a consumer's ``/readyz`` reports,
        so a service that cannot read its stream (Redis down, group unrecoverable) is never ready."""
        return self._consuming

    def start(self) -> None:
        self.streams.ensure_group(self.stream, self.group)

    def rewind(self) -> None:
        """After work on a batch failed (disk full, store down): read this consumer's own pending
        entries again first, at once, instead of waiting for them to turn stale."""
        self._recovered = False

    def next_batch(self) -> list[Entry]:
        """The next entries to process (may be empty after ``block_ms`` with nothing to do).

        A NOGROUP reply (Redis restarted empty, or the stream was deleted) recreates the group and
        reads again at once: every consumer recovers here, none loops on the error. Any other Redis
        error propagates (the caller backs off) and marks the reader as not consuming.
        """
        try:
            try:
                batch = self._next_batch()
            except redis.ResponseError as exc:
                if not is_nogroup(exc):
                    raise
                self._recreate_group(exc)
                batch = self._next_batch()
        except redis.RedisError:
            self._consuming = False
            raise
        self._consuming = True
        return batch

    def _recreate_group(self, exc: redis.ResponseError) -> None:
        self.streams.ensure_group(self.stream, self.group)
        self.groups_recreated += 1
        self._recovered = False
        log.warning(
            "consumer_group_recreated", stream=self.stream, group=self.group, consumer=self.consumer,
            cause=str(exc),
        )  # fmt: skip

    def _next_batch(self) -> list[Entry]:
        if not self._recovered:
            own = self.streams.read_group(
                [self.stream], self.group, self.consumer, count=self.batch, pending=True
            )
            if own:
                return own  # still working through what this consumer held before a restart
            self._recovered = True
        self._reads += 1
        if self._reads % 20 == 1:
            stale = self.streams.claim_stale(
                self.stream, self.group, self.consumer, self.stale_ms, self.batch
            )
            if stale:
                return stale
        return self.streams.read_group(
            [self.stream], self.group, self.consumer, count=self.batch, block_ms=self.block_ms
        )

    def ack(self, *ids: str) -> int:
        return self.streams.ack(self.stream, self.group, *ids)
