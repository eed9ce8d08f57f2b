"""Prometheus metrics of the fleet service, in a registry of its own (tests run several in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class FleetMetrics:
    """Requests answered, notifications sent, failures, and executions by status (refreshed each poll)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "ei_fleet_jobs_requests", "Jobs requests answered, by action and outcome", ["action", "outcome"],
            registry=registry,
        )  # fmt: skip
        self.notifications = Counter(
            "ei_fleet_notify_next", "notify-next messages published", registry=registry
        )
        self.failures = Counter(
            "ei_fleet_failures",
            "Failures, by kind (mqtt publish, database, internal)",
            ["kind"],
            registry=registry,
        )
        self.executions = Gauge(
            "ei_fleet_executions", "Job executions by status", ["status"], registry=registry
        )
        self.jobs = Gauge("ei_fleet_jobs", "Jobs by status", ["status"], registry=registry)
        self.request_seconds = Histogram(
            "ei_fleet_request_seconds", "Time to answer a jobs request (database and publish), by action",
            ["action"], buckets=LATENCY_BUCKETS, registry=registry,
        )  # fmt: skip
        self.statement_seconds = Histogram(
            "ei_fleet_db_statement_seconds", "Time of one database statement", buckets=LATENCY_BUCKETS,
            registry=registry,
        )  # fmt: skip
