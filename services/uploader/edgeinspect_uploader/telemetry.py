"""Telemetry summaries (``ei:events`` type ``telemetry``) → spool → ``{line}/{yyyy}/{mm}/{dd}/_telemetry/``.

The inference worker adds a summary of its rolling quality statistics to ``ei:events`` every
interval. This forwarder reads the events stream in the ``uploader`` group, keeps only telemetry,
writes each summary durably into ``spool/telemetry/`` *before* acknowledging it, and uploads the
spooled summaries as one-line JSONL parts beside the day's capture manifest::

    {line}/{yyyy}/{mm}/{dd}/_telemetry/part-{uploader}-{entry id}.jsonl

The day is the summary's window end (UTC); the key is fixed by the stream entry, so a summary read
twice (a crash between upload and acknowledgement) rewrites the same key with the same bytes. A
spooled summary is deleted only after the store accepted it; while the store is down they wait in
the spool (a few KB each, one per interval), and the captures' quota does not count them. Other
event types are acknowledged and ignored; a malformed telemetry event is logged, counted and skipped.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import redis
from edgeinspect.core.capture_manifest import telemetry_part_key
from edgeinspect.core.errors import MessageError, StorageError
from edgeinspect.core.lifecycle import Backoff
from edgeinspect.core.messages import Event
from edgeinspect.core.observability import get_logger
from edgeinspect.core.storage import ObjectStore
from edgeinspect.core.streams import Entry, GroupReader
from edgeinspect.core.telemetry import TelemetrySummary
from prometheus_client import CollectorRegistry, Counter

from edgeinspect_uploader.spoolfs import write_file_atomically

log = get_logger(__name__)
TELEMETRY_EVENT = "telemetry"


class TelemetryForwarder:
    """Moves telemetry events into the store; ``run(stop)`` until ``stop`` is set."""

    def __init__(
        self,
        reader: GroupReader,
        folder: Path,
        store: ObjectStore,
        uploader: str,
        registry: CollectorRegistry,
        max_files: int = 10_000,
    ) -> None:
        self.reader = reader
        self.max_files = max_files
        self.folder = folder
        self.store = store
        self.uploader = uploader
        self.outcomes = Counter(
            "ei_uploader_telemetry_total",
            "telemetry summaries by outcome (spooled, uploaded, malformed, failed, evicted)",
            ["outcome"],
            registry=registry,
        )

    def run(self, stop: threading.Event, backoff: Backoff | None = None) -> None:
        """Read, spool, acknowledge, upload; Redis, disk or store trouble waits with backoff."""
        backoff = backoff or Backoff(initial=1.0, maximum=60.0)
        self.folder.mkdir(parents=True, exist_ok=True)
        started = False
        while not stop.is_set():
            try:
                if not started:
                    self.reader.start()
                    started = True
                self.step()
                self.upload_pending()
                backoff.reset()
            except (redis.RedisError, OSError, StorageError) as exc:
                delay = backoff.next_delay()
                self.reader.rewind()
                self.outcomes.labels("failed").inc()
                log.warning("telemetry_forward_failed", error=str(exc), retry_in_s=round(delay, 2))
                stop.wait(delay)

    def step(self) -> int:
        """One read of the events stream; returns how many telemetry summaries were spooled."""
        entries = self.reader.next_batch()
        handled: list[str] = []
        spooled = 0
        try:
            for entry in entries:
                spooled += self.handle(entry)
                handled.append(entry.id)
        finally:
            self.reader.ack(*handled)
        return spooled

    def handle(self, entry: Entry) -> int:
        """Spool one entry if it is telemetry (1), else nothing (0); safe to acknowledge afterwards."""
        try:
            event = entry.parse(Event)
        except MessageError:
            return 0  # not ours to judge: every service posts events, the UI shows malformed ones
        if event.type != TELEMETRY_EVENT:
            return 0
        try:
            summary = TelemetrySummary.from_json(event.detail)
            line = summary.line or event.line
            key = telemetry_part_key(line, summary.end_ns or event.ts_ns, self.uploader, entry.id)
        except (MessageError, ValueError) as exc:
            self.outcomes.labels("malformed").inc()
            log.warning("telemetry_malformed", entry_id=entry.id, error=str(exc))
            return 0
        body = json.dumps({"key": key, "line": json.dumps(event.detail, sort_keys=True)})
        self._make_room()
        write_file_atomically(self.folder / f"{entry.id}.json", body.encode())
        self.outcomes.labels("spooled").inc()
        return 1

    def _make_room(self) -> None:
        """Keep the spool folder bounded while the store is down: the oldest summaries go, counted."""
        spooled = sorted(self.folder.glob("*.json"), key=_entry_order)
        excess = len(spooled) - self.max_files + 1
        for path in spooled[: max(0, excess)]:
            path.unlink(missing_ok=True)
            self.outcomes.labels("evicted").inc()
            log.warning("telemetry_evicted", path=path.name, kept=self.max_files)

    def upload_pending(self) -> int:
        """Upload every spooled summary (oldest entry first), deleting each once stored."""
        uploaded = 0
        for path in sorted(self.folder.glob("*.json"), key=_entry_order):
            try:
                spooled = json.loads(path.read_text())
                key, line = str(spooled["key"]), str(spooled["line"])
            except (ValueError, KeyError, TypeError) as exc:  # never written by us: keep it for a human
                path.rename(path.with_suffix(".bad"))
                self.outcomes.labels("malformed").inc()
                log.warning("telemetry_spool_file_bad", path=str(path), error=str(exc))
                continue
            self.store.put_bytes(key, (line + "\n").encode(), "application/x-ndjson")
            path.unlink()
            uploaded += 1
            self.outcomes.labels("uploaded").inc()
            log.info("telemetry_uploaded", key=key)
        return uploaded


def _entry_order(path: Path) -> tuple[int, int]:
    millis, _, seq = path.stem.partition("-")
    return (int(millis), int(seq or 0)) if millis.isdigit() and seq.isdigit() else (0, 0)
