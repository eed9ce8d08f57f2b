"""``ei:capture`` → spool: each entry is written durably (or rejected, or evicted, on purpose) *before*
it is acknowledged, so a crash at any moment leaves it either in the spool or still pending.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import redis
from edgeinspect.core.errors import ImageError, MessageError
from edgeinspect.core.lifecycle import Backoff
from edgeinspect.core.messages import Capture
from edgeinspect.core.observability import get_logger
from edgeinspect.core.streams import Entry, GroupReader

from edgeinspect_uploader.events import CAPTURE_EVICTED, CAPTURE_REJECTED, EventSink
from edgeinspect_uploader.metrics import UploaderMetrics
from edgeinspect_uploader.record import capture_files
from edgeinspect_uploader.spool import PutStatus, Spool, SpoolEntry, SpoolWriteError, describe

log = get_logger(__name__)
SPOOL_RETRY_MAX_S = 2.0
"""Longest wait after a failed spool write (disk full): each retry is one local write, and waiting
longer only leaves captures pending in Redis after the uploads have already made room."""


class Receiver:
    """Moves capture entries from the stream into the spool; ``on_spooled`` wakes the uploader."""

    def __init__(
        self,
        reader: GroupReader,
        spool: Spool,
        metrics: UploaderMetrics,
        events: EventSink,
        on_spooled: Callable[[], None] = lambda: None,
    ) -> None:
        self.reader = reader
        self.spool = spool
        self.metrics = metrics
        self.events = events
        self.on_spooled = on_spooled

    def run(self, stop: threading.Event, backoff: Backoff | None = None) -> None:
        """Until ``stop``: read, spool, ack; Redis or disk trouble waits with backoff, never skips."""
        backoff = backoff or Backoff(initial=0.5, maximum=30.0)
        started = False
        while not stop.is_set():
            try:
                if not started:
                    self.reader.start()
                    started = True
                self.step()
                backoff.reset()
            except (redis.RedisError, OSError) as exc:
                delay = backoff.next_delay()
                stage = "redis" if isinstance(exc, redis.RedisError) else "spool"
                if stage == "spool":  # a full disk empties as uploads finish: look again soon
                    delay = min(delay, SPOOL_RETRY_MAX_S)
                self.reader.rewind()  # what this batch left pending comes first next time
                self.metrics.failure(stage, str(exc))
                log.warning("receive_failed", stage=stage, error=str(exc), retry_in_s=round(delay, 2))
                stop.wait(delay)

    def step(self) -> int:
        """One read of up to a batch of entries; returns how many were handled (and acknowledged).

        Entries are acknowledged together once handled; if one fails (disk trouble), those before it
        are still acknowledged and the rest stay pending, to be read again.
        """
        entries = self.reader.next_batch()
        handled: list[str] = []
        try:
            for entry in entries:
                self.handle(entry)
                handled.append(entry.id)
        finally:
            self.reader.ack(*handled)
            if handled:
                self.on_spooled()
                self.metrics.backlog(self.spool.stats())
        return len(handled)

    def handle(self, entry: Entry) -> None:
        """Spool, reject or drop one entry; after this returns it is safe to acknowledge it."""
        try:
            files = capture_files(entry.parse(Capture))
        except (MessageError, ImageError) as exc:
            self._reject(entry, str(exc))
            return
        try:
            outcome = self.spool.put(files)
        except SpoolWriteError as exc:
            for victim in exc.evicted:  # gone even though the newcomer could not be written
                self._evicted(victim, "quota")
            raise
        for victim in outcome.evicted:
            self._evicted(victim, "quota")
        if outcome.status is PutStatus.DROPPED:
            too_big = outcome.entry.size > self.spool.quota_bytes
            self._evicted(outcome.entry, "larger_than_quota" if too_big else "newest_least_valuable")
        elif outcome.status is PutStatus.DUPLICATE:
            self.metrics.duplicate()
            log.info("capture_duplicate", frame_id=files.frame_id, line=files.line, entry_id=entry.id)
        else:
            self.metrics.spooled()
            log.debug("capture_spooled", frame_id=files.frame_id, line=files.line, bytes=files.size)

    def _reject(self, entry: Entry, reason: str) -> None:
        kept = self.spool.reject(entry.id, entry.fields, reason)
        self.metrics.rejected()
        frame = entry.fields.get(b"frame_id", b"").decode("utf-8", errors="replace")
        line = entry.fields.get(b"line", b"").decode("utf-8", errors="replace")
        log.warning("capture_rejected", entry_id=entry.id, frame_id=frame, reason=reason, kept_as=str(kept))
        self.events.post(
            CAPTURE_REJECTED, line=line, level="warning", entry_id=entry.id, frame_id=frame,
            reason=reason, kept_as=kept.name,
        )  # fmt: skip

    def _evicted(self, victim: SpoolEntry, why: str) -> None:
        keep = victim.keep.name.lower()
        self.metrics.evicted(keep)
        log.warning("capture_evicted", why=why, line=victim.line, **describe(victim))
        self.events.post(CAPTURE_EVICTED, line=victim.line, level="warning", why=why, **describe(victim))
