"""The uploader assembled from its parts: receiver (stream → spool) and syncer (spool → store) threads.

``UploaderService.build(settings, stop)`` is the app factory ``main()`` and the tests both use: it
takes the settings and a stop event and returns a service to ``start()``, ``status()`` and ``join()``.
Shutdown order: stop reading the stream, let the syncer stop at the next file boundary (an
interrupted batch resumes from its journal), then close Redis and the HTTP server.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from edgeinspect.core import names
from edgeinspect.core.lifecycle import Backoff
from edgeinspect.core.observability import Health, JsonRoute, get_logger
from edgeinspect.core.storage import ObjectStore, open_store
from edgeinspect.core.streams import GroupReader, Streams
from prometheus_client import CollectorRegistry

from edgeinspect_uploader.events import EventSink
from edgeinspect_uploader.journal import Journal
from edgeinspect_uploader.metrics import UploaderMetrics
from edgeinspect_uploader.receiver import Receiver
from edgeinspect_uploader.settings import UploaderSettings
from edgeinspect_uploader.spool import Spool
from edgeinspect_uploader.sync import Syncer
from edgeinspect_uploader.telemetry import TelemetryForwarder
from edgeinspect_uploader.throttle import Clock, RealClock, TokenBucket

log = get_logger(__name__)
SINGLE_PUT_CAP = 16 << 20
"""Largest file read into memory for one PutObject (times the upload concurrency, a memory bound)."""


@dataclass
class UploaderService:
    """Every part of a running uploader; build with :meth:`build`."""

    settings: UploaderSettings
    stop: threading.Event
    streams: Streams
    store: ObjectStore
    spool: Spool
    journal: Journal
    metrics: UploaderMetrics
    registry: CollectorRegistry
    receiver: Receiver
    syncer: Syncer
    uploader_id: str
    wake: threading.Event
    _threads: list[threading.Thread]
    telemetry: TelemetryForwarder | None = None

    @classmethod
    def build(
        cls,
        settings: UploaderSettings,
        stop: threading.Event,
        *,
        clock: Clock | None = None,
        registry: CollectorRegistry | None = None,
    ) -> UploaderService:
        """Open the spool (rebuilding its index) and wire the parts; connects to nothing yet."""
        spool = Spool(
            settings.spool_dir,
            settings.spool_quota_bytes,
            tombstone_ttl_s=settings.tombstone_ttl_s,
            rejected_keep=settings.rejected_keep,
            reserve_bytes=settings.spool_reserve_bytes,
        )
        found = spool.open()
        journal = Journal(spool.state)
        journal.open()
        uploader_id = journal.uploader_id(settings.uploader_id)
        for batch in journal.open_batches():  # an interrupted batch's captures must not be evicted
            spool.claim([item.name for item in batch.items])
        registry = registry or CollectorRegistry()
        metrics = UploaderMetrics(registry)
        metrics.backlog(spool.stats())
        streams = Streams.from_url(settings.redis_url, maxlen=settings.stream_maxlen)
        streams.retain(names.events_stream(), settings.stream_budget("events"))
        events = EventSink(streams)
        store = open_store(settings.capture_url, **settings.store_options())
        bucket = TokenBucket(settings.bandwidth_bytes_per_s, settings.burst_bytes(), clock or RealClock(stop))
        wake = threading.Event()
        reader = GroupReader(
            streams, names.capture_stream(), names.UPLOADER_GROUP, uploader_id,
            stale_ms=settings.stale_claim_ms, batch=settings.read_batch, block_ms=1000,
        )  # fmt: skip
        receiver = Receiver(reader, spool, metrics, events, on_spooled=wake.set)
        syncer = Syncer(
            spool, journal, store, metrics, events, bucket, uploader=uploader_id, stop=stop,
            batch_max_captures=settings.batch_max_captures, batch_max_bytes=settings.batch_max_bytes,
            concurrency=settings.upload_concurrency,
            single_put_max=min(settings.s3_multipart_threshold_bytes, SINGLE_PUT_CAP),
        )  # fmt: skip
        log.info("uploader_built", uploader=uploader_id, store=store.url, spool=str(settings.spool_dir),
                 spooled=found, quota_bytes=settings.spool_quota_bytes,
                 bandwidth_bytes_per_s=settings.bandwidth_bytes_per_s)  # fmt: skip
        telemetry = None
        if settings.telemetry_forward:
            event_reader = GroupReader(
                streams, names.events_stream(), names.UPLOADER_GROUP, uploader_id,
                stale_ms=settings.stale_claim_ms, batch=settings.read_batch, block_ms=1000,
            )  # fmt: skip
            telemetry = TelemetryForwarder(
                event_reader,
                settings.spool_dir / "telemetry",
                store,
                uploader_id,
                registry,
                max_files=settings.telemetry_spool_max,
            )
        return cls(settings, stop, streams, store, spool, journal, metrics, registry, receiver, syncer,
                   uploader_id, wake, [], telemetry)  # fmt: skip

    def start(self) -> UploaderService:
        """Start the syncer and the receiver threads."""
        retry = Backoff(initial=self.settings.retry_initial_s, maximum=self.settings.retry_max_s)
        self._threads = [
            threading.Thread(target=self.syncer.run, args=(self.wake, retry), name="uploader-sync"),
            threading.Thread(target=self.receiver.run, args=(self.stop,), name="uploader-receive"),
        ]
        if self.telemetry is not None:
            self._threads.append(
                threading.Thread(target=self.telemetry.run, args=(self.stop,), name="uploader-telemetry")
            )
        for thread in self._threads:
            thread.start()
        return self

    def join(self, timeout: float | None = None) -> None:
        """Wait for both threads (after ``stop`` is set), then close Redis."""
        self.wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in reversed(self._threads):  # the receiver first: no new captures while draining
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(remaining)
        self.syncer.close()
        self.streams.close()

    def add_health_checks(self, health: Health) -> None:
        """Ready while Redis answers and the spool can be written (the store may be down: we spool)."""
        health.add_check("redis", self.streams.ping)
        health.add_check("spool", lambda: self.spool.ready.is_dir())
        health.add_check("capture_stream", lambda: self.receiver.reader.consuming)
        if self.telemetry is not None:
            telemetry = self.telemetry
            health.add_check("events_stream", lambda: telemetry.reader.consuming)

    def status(self) -> dict[str, Any]:
        """The ``/status`` body."""
        self.metrics.backlog(self.spool.stats())
        body = self.metrics.status()
        body.update(
            uploader=self.uploader_id,
            store=self.store.url,
            spool_dir=str(self.settings.spool_dir),
            bandwidth_bytes_per_s=self.settings.bandwidth_bytes_per_s,
            stopping=self.stop.is_set(),
        )
        return body

    def routes(self) -> dict[str, JsonRoute]:
        """The uploader's own endpoint on the health server: ``/status`` (backlog and counters)."""
        return {"/status": lambda: (200, self.status())}
