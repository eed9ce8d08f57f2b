"""The UI's Prometheus metrics, on a registry of its own (one per app, so tests can build many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class UiMetrics:
    """Counters and gauges served at ``/metrics``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.results = Counter(
            "edgeinspect_ui_results_total", "results read from Redis", ["verdict"], registry=self.registry
        )
        self.sse_clients = Gauge(
            "edgeinspect_ui_sse_clients", "open live-update streams", registry=self.registry
        )
        self.sse_skipped = Counter(
            "edgeinspect_ui_sse_results_skipped_total",
            "live results a slow page skipped (it got a newer one instead)",
            registry=self.registry,
        )
        self.redis_up = Gauge("edgeinspect_ui_redis_up", "1 while Redis answers", registry=self.registry)
        self.agent_up = Gauge(
            "edgeinspect_ui_agent_up", "1 while the edge agent answers", registry=self.registry
        )
        self.feed_errors = Counter(
            "edgeinspect_ui_feed_errors_total",
            "problems reading the streams",
            ["kind"],
            registry=self.registry,
        )
        self.redis_up.set(1)
