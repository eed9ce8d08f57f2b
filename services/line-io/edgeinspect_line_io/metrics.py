"""The line I/O numbers, kept once and shown three ways: Prometheus ``/metrics``, JSON ``/status`` and
the Redis key ``ei:line-io:{line}:status`` the UI reads (connected, last trigger, last reject, missed).

Counters live in a plain dict too, so the status (and tests) read exact values without scraping.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
TIMING_BUCKETS = (0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05)


class LineIoMetrics:
    """Results by action, triggers, missed rejects, connections, write latency and pulse timing."""

    def __init__(self, registry: CollectorRegistry, line: str, keep_samples: int = 10_000) -> None:
        r = registry
        self.line = line
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {
            "results": 0, "rejects": 0, "passes": 0, "fail_safe": 0, "missed_rejects": 0,
            "late_results": 0, "triggers": 0, "trigger_failures": 0, "triggers_ignored": 0,
            "expired_writes": 0, "no_verdict": 0, "malformed": 0,
        }  # fmt: skip
        self.connections: dict[str, bool] = {}
        self.last_trigger: dict[str, Any] | None = None
        self.last_reject: dict[str, Any] | None = None
        self.last_missed: dict[str, Any] | None = None
        self.write_ms: deque[float] = deque(maxlen=keep_samples)  # result received -> write done
        self.timing_error_ms: deque[float] = deque(maxlen=keep_samples)  # pulse start - scheduled
        self._results = Counter(
            "ei_lineio_results_total", "results acted on", ["line", "action", "reason"], registry=r
        )
        self._missed = Counter(
            "ei_lineio_missed_rejects_total", "rejects not actuated in time", ["line", "cause"], registry=r
        )
        self._triggers = Counter(
            "ei_lineio_triggers_total", "PLC triggers", ["line", "input", "outcome"], registry=r
        )
        self._expired = Counter(
            "ei_lineio_expired_writes_total",
            "writes given up after the part's window",
            ["output"],
            registry=r,
        )
        self._connected = Gauge("ei_lineio_connected", "1 while the PLC connection works", ["io"], registry=r)
        self._write = Histogram(
            "ei_lineio_write_seconds",
            "result read -> written to the output",
            ["output"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._timing = Histogram(
            "ei_lineio_reject_timing_error_seconds",
            "reject pulse start minus its scheduled time",
            ["output"],
            buckets=TIMING_BUCKETS,
            registry=r,
        )

    def bump(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self.counts[name] += amount

    def result(self, action: str, reason: str) -> None:
        self.bump("results")
        self.bump("rejects" if action == "reject" else "passes")
        if reason.startswith("fail_safe"):
            self.bump("fail_safe")
        self._results.labels(self.line, action, reason).inc()

    def missed(self, cause: str, detail: dict[str, Any]) -> None:
        self.bump("missed_rejects")
        self._missed.labels(self.line, cause).inc()
        with self._lock:
            self.last_missed = detail

    def trigger(self, origin: str, outcome: str, detail: dict[str, Any] | None = None) -> None:
        if outcome == "ok":
            self.bump("triggers")
            with self._lock:
                self.last_trigger = detail
        elif outcome == "ignored":
            self.bump("triggers_ignored")
        else:
            self.bump("trigger_failures")
        self._triggers.labels(self.line, origin, outcome).inc()

    def expired(self, output: str) -> None:
        self.bump("expired_writes")
        self._expired.labels(output).inc()

    def connection(self, io: str, connected: bool) -> None:
        with self._lock:
            self.connections[io] = connected
        self._connected.labels(io).set(1 if connected else 0)

    def written(self, output: str, seconds: float) -> None:
        self._write.labels(output).observe(seconds)
        self.write_ms.append(seconds * 1000)

    def pulsed(self, output: str, error_s: float, detail: dict[str, Any]) -> None:
        self._timing.labels(output).observe(max(error_s, 0.0))
        self.timing_error_ms.append(error_s * 1000)
        with self._lock:
            self.last_reject = detail

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "counts": dict(self.counts),
                "connections": dict(self.connections),
                "last_trigger": self.last_trigger,
                "last_reject": self.last_reject,
                "last_missed": self.last_missed,
            }
