"""Prometheus metrics of the fleet service, in a registry of its own (tests run several in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


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
            "ei_fleet_failures", "Failures, by kind (mqtt publish, database)", ["kind"], registry=registry
        )
        self.executions = Gauge(
            "ei_fleet_executions", "Job executions by status", ["status"], registry=registry
        )
        self.jobs = Gauge("ei_fleet_jobs", "Jobs by status", ["status"], registry=registry)
