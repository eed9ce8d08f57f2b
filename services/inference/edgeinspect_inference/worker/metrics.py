"""The worker's Prometheus metrics, on a registry of its own (several workers may share a test process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from edgeinspect_inference.worker.frame_shape import STRETCH_LIMIT

_LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10)


class WorkerMetrics:
    """Frames, verdicts, errors by reason, latencies, backlog, captures and alert delivery."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.frames = Counter(
            "ei_worker_frames_total", "frames judged, by verdict", ["line", "verdict"], registry=r
        )
        self.errors = Counter(
            "ei_worker_errors_total",
            "problems met while judging frames, by reason (decode, message, agent, ...)",
            ["line", "reason"],
            registry=r,
        )
        self.duplicates = Counter(
            "ei_worker_duplicates_total", "frames that already had a result (acked, not re-added)",
            ["line"], registry=r,
        )  # fmt: skip
        self.e2e = Histogram(
            "ei_worker_e2e_seconds", "capture time to result written", ["line"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.model_latency = Histogram(
            "ei_worker_model_latency_seconds",
            "one model's inference as the agent measured it, by alias and role",
            ["alias", "role"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.round_trip = Histogram(
            "ei_worker_agent_round_trip_seconds", "Predict call as the worker saw it, by alias",
            ["alias"], buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.agent_calls = Counter(
            "ei_worker_agent_calls_total", "model calls by transport (fast: the fast path; grpc)",
            ["path"], registry=r,
        )  # fmt: skip
        self.shape_mismatch = Counter(
            "ei_worker_frame_shape_mismatch_total",
            f"frames shown to a model stretched more than {STRETCH_LIMIT}x out of the shape it learnt "
            "from, by alias",
            ["line", "alias"], registry=r,
        )  # fmt: skip
        self.in_flight = Gauge("ei_worker_in_flight", "frames being judged now", ["line"], registry=r)
        self.backlog = Gauge(
            "ei_worker_backlog", "frames waiting for the group (lag) plus delivered but unacked",
            ["line"], registry=r,
        )  # fmt: skip
        self.captures = Counter(
            "ei_worker_captures_total", "frames sent to ei:capture, by reason", ["line", "reason"], registry=r
        )
        self.alerts = Counter(
            "ei_worker_alerts_total", "alerts by sink and outcome (sent, failed)", ["sink", "outcome"],
            registry=r,
        )  # fmt: skip
        self.alerts_dropped = Counter(
            "ei_worker_alerts_dropped_total", "alerts dropped because the alert queue was full", registry=r
        )
        self.alert_queue = Gauge("ei_worker_alert_queue_depth", "alerts waiting to be sent", registry=r)
