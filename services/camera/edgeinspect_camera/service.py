"""The capture loop: read a frame, stamp it, crop/resize/encode it, publish it under backpressure.

    service = CameraService(CameraSettings.load(source="folder:///data"), stop=stop_event)
    service.run()          # or service.start_in_thread(); ...; service.stop()

Everything the loop touches is injectable (clock, Redis streams, source, metrics registry), so a test
builds the real service from settings and drives it with a clock that only moves when slept on.
A lost source is reported once per outage (``source_down``, then ``source_up`` with its duration)
and reopened with backoff; a bad frame is reported (``frame_error``) and skipped.
"""

from __future__ import annotations

import threading

import redis
from edgeinspect.core import names
from edgeinspect.core.errors import ImageError
from edgeinspect.core.lifecycle import Backoff, retry_until
from edgeinspect.core.observability import Health, get_logger
from edgeinspect.core.retention import StreamRetention
from edgeinspect.core.streams import Streams
from prometheus_client import CollectorRegistry

from edgeinspect_camera.clock import Clock, Pacer, RateMeter, SystemClock
from edgeinspect_camera.events import EventReporter
from edgeinspect_camera.frames import FrameBuilder, new_frame_id
from edgeinspect_camera.metrics import CameraMetrics
from edgeinspect_camera.publisher import BackpressurePublisher
from edgeinspect_camera.settings import CameraSettings
from edgeinspect_camera.sources import FrameSource, FrameUnreadable, Grab, SourceError, make_source

log = get_logger(__name__)
ROOM_POLL_S = 0.01
DROP_REASONS = ("drop_oldest", "drop_newest", "redis_error", "encode_error", "retention")


class CameraService:
    """One camera feeding one line's frames stream."""

    def __init__(
        self,
        settings: CameraSettings,
        *,
        stop: threading.Event | None = None,
        clock: Clock | None = None,
        streams: Streams | None = None,
        source: FrameSource | None = None,
        registry: CollectorRegistry | None = None,
        health: Health | None = None,
    ) -> None:
        self.settings = settings
        self.stop_event = stop or threading.Event()
        self.clock = clock or SystemClock(self.stop_event)
        self.metrics = CameraMetrics(registry or CollectorRegistry())
        self._owns_streams = streams is None
        self.streams = streams or Streams.from_url(settings.redis_url, settings.stream_maxlen)
        self.source = source or make_source(settings.source, settings, self.clock)
        self.frames_stream = names.frames_stream(settings.line)
        self.builder = FrameBuilder(
            line=settings.line,
            camera=settings.camera,
            encoding=settings.encoding,
            jpeg_quality=settings.jpeg_quality,
            png_compression=settings.png_compression,
            roi=settings.roi_box,
            size=settings.resize_to,
        )
        self.publisher = BackpressurePublisher(
            self.streams.client,
            self.frames_stream,
            group=settings.backlog_group,
            max_backlog=settings.max_backlog,
            policy=settings.drop_policy,
            maxlen=settings.stream_maxlen,
        )
        # Bytes and age bound the stream; frames the worker has not read are dropped only on purpose
        # (counted as reason "retention"), frames it is working on never (edgeinspect.core.retention).
        self.retention = StreamRetention(
            self.streams.client, self.frames_stream, settings.stream_budget("frames"),
            group=settings.backlog_group,
        )  # fmt: skip
        self.streams.retain(names.events_stream(), settings.stream_budget("events"))
        self.events = EventReporter(
            self.streams,
            line=settings.line,
            camera=settings.camera,
            clock=self.clock,
            interval_s=settings.drop_event_interval_s,
        )
        self.pacer = Pacer(0.0 if self.source.triggered else settings.fps, self.clock)
        self.health = health or Health()
        self.health.add_check("redis", self.streams.ping)
        self.health.add_check("source", lambda: self.source_up)
        self.source_up = False
        self._rate = RateMeter()
        self._down_since: float | None = None
        self._source_backoff = Backoff(
            settings.reconnect_initial_s, settings.reconnect_max_s, seed=settings.seed
        )
        self._redis_backoff = Backoff(0.1, 5.0, seed=settings.seed)
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def run(self) -> None:
        """Capture until stopped (SIGTERM, ``stop()``) or a finite source ends; then shut down cleanly."""
        try:
            if self._announce():
                self._loop()
        finally:
            self._shutdown()

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            if not self.source_up and not self._connect():
                continue
            if not self._ready_for_next():
                continue
            grab = self._read()
            if grab is not None:
                self._process(grab)
            elif self.source.done:
                self.events.emit("source_finished", source=self.source.name)
                return

    def start_in_thread(self) -> threading.Thread:
        """Run in a background thread (tests, embedding); ``stop()`` ends it."""
        self._thread = threading.Thread(target=self.run, name=f"camera-{self.settings.camera}", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the loop to stop and wait for its shutdown to finish."""
        self.health.mark_stopping()
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _announce(self) -> bool:
        """Wait for Redis (with backoff), register the line, say we started."""
        line = self.settings.line

        def register() -> bool:
            self.streams.client.sadd(names.lines_key(), line)
            return True

        if retry_until(register, self.stop_event, what="redis", errors=(redis.RedisError,)) is None:
            return False
        self.events.emit(
            "camera_started",
            source=self.source.name,
            fps=self.settings.fps,
            encoding=self.settings.encoding,
            drop_policy=self.settings.drop_policy,
            max_backlog=self.settings.max_backlog,
        )
        return True

    def _shutdown(self) -> None:
        self.source.close()
        if self.source.triggered:
            self._drain()
        self.source_up = False
        self.metrics.source_up.set(0)
        self.events.flush()
        self.events.emit(
            "camera_stopped",
            captured=int(self.metrics.value("edgeinspect_camera_frames_captured_total")),
            published=int(self.metrics.value("edgeinspect_camera_frames_published_total")),
            dropped=int(sum(self.metrics.dropped_total(r) for r in DROP_REASONS)),
        )
        if self._owns_streams:
            self.streams.close()

    def _drain(self) -> None:
        """Publish what a trigger already accepted: its caller holds those frame ids (read after close)."""
        grab = self.source.read()
        while grab is not None:
            self._process(grab)
            grab = self.source.read()

    # -- source ----------------------------------------------------------------------------------

    def _connect(self) -> bool:
        """Open the source; on failure report the outage (once) and wait with backoff."""
        try:
            self.source.open()
        except SourceError as exc:
            self._mark_down(exc)
            self.clock.sleep(self._source_backoff.next_delay())
            return False
        self._source_backoff.reset()
        self.source_up = True
        self.metrics.source_up.set(1)
        self.pacer.reset()
        self._rate.reset()
        if self._down_since is not None:
            down_s = self.clock.monotonic() - self._down_since
            self._down_since = None
            self.events.emit("source_up", source=self.source.name, down_s=round(down_s, 3))
        else:
            log.info("source_open", source=self.source.name)
        return True

    def _mark_down(self, exc: SourceError) -> None:
        self.source_up = False
        self.metrics.source_up.set(0)
        if self._down_since is not None:
            log.warning("source_still_down", source=self.source.name, error=exc.message)
            return
        self._down_since = self.clock.monotonic()
        self.metrics.outages.inc()
        self.events.emit("source_down", "error", source=self.source.name, error=exc.message, hint=exc.hint)

    def _read(self) -> Grab | None:
        try:
            return self.source.read()
        except FrameUnreadable as exc:
            self.metrics.frame_errors.inc()
            self.events.emit(
                "frame_error", "error", file=exc.name, reason=exc.reason, source=self.source.name
            )
        except SourceError as exc:
            self.source.close()
            self._mark_down(exc)
        return None

    def _ready_for_next(self) -> bool:
        """Pace to ``fps``; with ``fps=0`` wait until the line has room (no frame is dropped)."""
        if self.source.triggered:
            return True
        if self.settings.fps > 0:
            self.pacer.wait()
            return not self.stop_event.is_set()
        try:
            if self.publisher.backlog() < self.settings.max_backlog:
                return True
        except redis.RedisError as exc:
            log.error("redis_unavailable", error=str(exc))
            self.clock.sleep(self._redis_backoff.next_delay())
            return False
        self.events.maybe_flush()
        self.clock.sleep(ROOM_POLL_S)
        return False

    # -- frames ----------------------------------------------------------------------------------

    def _process(self, grab: Grab) -> None:
        """Stamp, encode and publish one grabbed image, counting whatever happens to it."""
        self.metrics.captured.inc()
        self.metrics.source_fps.set(self._rate.tick(self.clock.monotonic()))
        ts_ns = grab.ts_ns if grab.ts_ns is not None else self.clock.time_ns()
        frame_id = grab.frame_id or new_frame_id()
        try:
            frame, took = self.builder.build(
                grab.image, frame_id=frame_id, ts_ns=ts_ns, source=grab.source, part_id=grab.part_id
            )
        except ImageError as exc:
            self.metrics.dropped.labels("encode_error").inc()
            self.events.emit("frame_error", "error", file=grab.source, reason=exc.message, frame_id=frame_id)
            return
        self.metrics.encode_seconds.observe(took)
        try:
            outcome = self.publisher.publish(frame)
        except redis.RedisError as exc:
            log.error("redis_unavailable", error=str(exc), frame_id=frame_id)
            self._count_drop("redis_error", 1, (frame_id,), 0)
            self.clock.sleep(self._redis_backoff.next_delay())
            return
        self._redis_backoff.reset()
        added = outcome.entry_id is not None
        self.metrics.backlog.set(outcome.backlog - outcome.dropped + (1 if added else 0))
        if added:
            self.metrics.published.inc()
            self._retain(len(frame.data))
        if outcome.dropped:
            ids = outcome.dropped_frame_ids if added else (frame_id,)
            self._count_drop(self.settings.drop_policy, outcome.dropped, ids, outcome.backlog)
        else:
            self.events.maybe_flush()

    def _retain(self, size: int) -> None:
        """Keep the frames stream within its budget; a trim failure waits for the next frame."""
        try:
            trimmed = self.retention.added(size)
        except redis.RedisError as exc:
            log.warning("retention_failed", stream=self.frames_stream, error=str(exc))
            return
        if trimmed is not None and trimmed.dropped:
            self._count_drop("retention", len(trimmed.dropped), trimmed.dropped, 0)

    def _count_drop(self, reason: str, count: int, frame_ids: tuple[str, ...], backlog: int) -> None:
        self.metrics.dropped.labels(reason).inc(count)
        self.events.dropped(reason, count, frame_ids=frame_ids, backlog=backlog)
