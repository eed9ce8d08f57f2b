"""The model manager's Prometheus metrics, on a registry the service owns (several per test process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

STAGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)


class ManagerMetrics:
    """Series named ``edgeinspect_model_manager_*``; the README lists them."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.jobs = Counter(
            "edgeinspect_model_manager_jobs",
            "Jobs finished, by operation and final status (SUCCEEDED/FAILED)",
            ["operation", "status"],
            registry=registry,
        )
        self.stage_seconds = Histogram(
            "edgeinspect_model_manager_stage_seconds",
            "Time spent in each deployment stage",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=registry,
        )
        self.rollbacks = Counter(
            "edgeinspect_model_manager_rollbacks", "Swaps undone by the rollback watch", registry=registry
        )
        self.download_bytes = Counter(
            "edgeinspect_model_manager_download_bytes", "Package bytes downloaded", registry=registry
        )
        self.mqtt_connected = Gauge(
            "edgeinspect_model_manager_mqtt_connected",
            "1 while connected to the MQTT broker",
            registry=registry,
        )
        self.versions_on_disk = Gauge(
            "edgeinspect_model_manager_versions_on_disk",
            "Model versions installed on disk",
            registry=registry,
        )
        self.publish_failures = Counter(
            "edgeinspect_model_manager_publish_failures",
            "Events or state messages that could not be published, by transport",
            ["transport"],
            registry=registry,
        )
        self.restore_problems = Counter(
            "edgeinspect_model_manager_restore_problems",
            "Aliases that could not be restored at start-up",
            registry=registry,
        )
