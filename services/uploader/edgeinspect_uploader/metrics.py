"""The uploader's numbers, kept once and shown twice: Prometheus ``/metrics`` and JSON ``/status``.

Counters live in a plain dict too, so ``/status`` (and tests) read exact values without scraping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from edgeinspect_uploader.spool import SpoolStats


class UploaderMetrics:
    """Backlog, bytes and captures uploaded, failures, evictions, rejects, oldest pending age."""

    def __init__(self, registry: CollectorRegistry, wall_ns: Callable[[], int] = time.time_ns) -> None:
        r = registry
        self._wall_ns = wall_ns
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {
            "spooled": 0, "duplicates": 0, "rejected": 0, "uploaded_captures": 0, "uploaded_bytes": 0,
            "skipped_objects": 0, "failures": 0, "evictions": 0, "manifest_parts": 0,
        }  # fmt: skip
        self.evictions_by_class: dict[str, int] = {}
        self.last_error = ""
        self.last_upload_ns = 0
        self.online: bool | None = None
        self._spooled = Counter("ei_uploader_spooled_total", "captures written to the spool", registry=r)
        self._duplicates = Counter(
            "ei_uploader_duplicates_total", "re-delivered captures already spooled or uploaded", registry=r
        )
        self._rejected = Counter("ei_uploader_rejected_total", "malformed capture entries", registry=r)
        self._uploaded = Counter("ei_uploader_uploaded_captures_total", "captures confirmed", registry=r)
        self._bytes = Counter("ei_uploader_uploaded_bytes_total", "bytes confirmed by the store", registry=r)
        self._failures = Counter(
            "ei_uploader_failures_total", "failed upload or spool attempts", ["stage"], registry=r
        )
        self._evictions = Counter(
            "ei_uploader_evictions_total", "captures evicted at the quota", ["keep"], registry=r
        )
        self._backlog = Gauge("ei_uploader_backlog_captures", "captures waiting in the spool", registry=r)
        self._backlog_bytes = Gauge("ei_uploader_backlog_bytes", "capture bytes in the spool", registry=r)
        self._quota = Gauge("ei_uploader_spool_quota_bytes", "spool quota", registry=r)
        self._oldest = Gauge(
            "ei_uploader_oldest_pending_age_seconds", "age of the oldest capture not yet uploaded", registry=r
        )
        self._online = Gauge("ei_uploader_store_online", "1 when the last store call succeeded", registry=r)
        self.stats: SpoolStats | None = None

    def _bump(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self.counts[name] += amount

    def spooled(self) -> None:
        self._bump("spooled")
        self._spooled.inc()

    def duplicate(self) -> None:
        self._bump("duplicates")
        self._duplicates.inc()

    def rejected(self) -> None:
        self._bump("rejected")
        self._rejected.inc()

    def evicted(self, keep: str) -> None:
        self._bump("evictions")
        with self._lock:
            self.evictions_by_class[keep] = self.evictions_by_class.get(keep, 0) + 1
        self._evictions.labels(keep).inc()

    def uploaded(self, captures: int, nbytes: int) -> None:
        self._bump("uploaded_captures", captures)
        self._bump("uploaded_bytes", nbytes)
        self._uploaded.inc(captures)
        self._bytes.inc(nbytes)
        self.last_upload_ns = self._wall_ns()
        self.store_online(True)

    def skipped(self, objects: int) -> None:
        """Objects the store already had (a resumed batch), not sent again."""
        self._bump("skipped_objects", objects)

    def manifest_part(self) -> None:
        self._bump("manifest_parts")

    def failure(self, stage: str, error: str) -> None:
        self._bump("failures")
        self._failures.labels(stage).inc()
        self.last_error = error
        if stage == "upload":
            self.store_online(False)

    def store_online(self, online: bool) -> None:
        self.online = online
        self._online.set(1 if online else 0)

    def backlog(self, stats: SpoolStats) -> None:
        """Refresh the gauges from the spool's index."""
        self.stats = stats
        self._backlog.set(stats.captures)
        self._backlog_bytes.set(stats.bytes)
        self._quota.set(stats.quota_bytes)
        self._oldest.set(self.oldest_age_s(stats))

    def oldest_age_s(self, stats: SpoolStats) -> float:
        if stats.oldest_ts_ns is None:
            return 0.0
        return max(0.0, (self._wall_ns() - stats.oldest_ts_ns) / 1e9)

    def status(self) -> dict[str, Any]:
        """The ``/status`` body (see the README)."""
        stats = self.stats
        with self._lock:
            counts = dict(self.counts)
            evictions = dict(self.evictions_by_class)
        backlog: dict[str, Any] = {}
        if stats is not None:
            backlog = {
                "captures": stats.captures,
                "bytes": stats.bytes,
                "quota_bytes": stats.quota_bytes,
                "by_class": stats.by_class,
                "in_flight": stats.claimed,
                "oldest_pending_age_s": round(self.oldest_age_s(stats), 3),
            }
        return {
            "backlog": backlog,
            "counts": counts,
            "evictions_by_class": evictions,
            "store_online": self.online,
            "last_upload_ns": self.last_upload_ns or None,
            "last_error": self.last_error or None,
        }
