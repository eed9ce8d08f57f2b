"""Per-model counters: Prometheus series for dashboards and an in-memory window for ``GetModelStats``.

Label children are resolved once per loaded version, so the hot path pays a few attribute bumps,
not a label lookup, per request.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque

from edgeinspect.core.agent_client import ModelStats
from edgeinspect.core.observability import percentile
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from edgeinspect_inference.agent.tuning import ProviderChoice

LATENCY_BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.5)
UNKNOWN_MODEL = "unknown"
"""Model label for errors that name no loaded model, so a flood of bad names cannot grow the series."""


class AgentMetrics:
    """The agent's Prometheus series, in a registry of its own (one table, one registry)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "ei_agent_requests",
            "predictions served, by model version",
            ["model", "version"],
            registry=registry,
        )
        self.errors = Counter(
            "ei_agent_errors",
            "failed requests, by model and gRPC status code",
            ["model", "code"],
            registry=registry,
        )
        self.latency = Histogram(
            "ei_agent_latency_seconds",
            "model run time (ONNX Runtime), by model version",
            ["model", "version"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.in_flight = Gauge(
            "ei_agent_in_flight",
            "predictions running now, by model version",
            ["model", "version"],
            registry=registry,
        )
        self.shadow_compared = Counter(
            "ei_agent_shadow_compared",
            "samples compared with a shadow version",
            ["alias", "version"],
            registry=registry,
        )
        self.shadow_agreed = Counter(
            "ei_agent_shadow_agreed",
            "samples whose shadow verdict agreed",
            ["alias", "version"],
            registry=registry,
        )
        self.shadow_skipped = Counter(
            "ei_agent_shadow_skipped",
            "shadow runs skipped because too many were pending",
            ["alias"],
            registry=registry,
        )
        self.models_loaded = Gauge("ei_agent_models_loaded", "model versions loaded", registry=registry)
        self.provider_latency = Gauge(
            "ei_agent_provider_latency_ms",
            "p50 ms of the golden input per execution provider and thread layout, measured at load",
            ["model", "version", "provider", "threads"],
            registry=registry,
        )
        self.provider_selected = Gauge(
            "ei_agent_provider_selected",
            "1 for the provider and threads a version runs on, 0 for the other candidates measured",
            ["model", "version", "provider", "threads"],
            registry=registry,
        )
        self.model_variant = Gauge(
            "ei_agent_model_variant",
            "1 per loaded version: the model file it runs (variant) and the one it asked for (requested); "
            "variant fp32 with requested int8 is a fallback",
            ["model", "version", "variant", "requested"],
            registry=registry,
        )
        self._tuning_labels: dict[tuple[str, str], list[tuple[str, str, str, str]]] = {}

    def record_tuning(self, model: str, version: str, choice: ProviderChoice | None) -> None:
        """Publish a version's provider measurements (nothing when tuning is off)."""
        if choice is None:
            return
        labels: list[tuple[str, str, str, str]] = []
        for m in choice.measurements:
            key = (model, version, m.provider, m.threads.label)
            selected = m.provider == choice.provider and m.threads == choice.threads
            self.provider_selected.labels(*key).set(1.0 if selected else 0.0)
            if not m.rejected:
                self.provider_latency.labels(*key).set(m.p50_ms)
            labels.append(key)
        self._tuning_labels[(model, version)] = labels

    def forget_tuning(self, model: str, version: str) -> None:
        """Drop an unloaded version's series, so dashboards do not show a provider nothing runs on."""
        for key in self._tuning_labels.pop((model, version), []):
            for gauge in (self.provider_selected, self.provider_latency):
                with contextlib.suppress(KeyError):  # never set: a rejected candidate has no latency
                    gauge.remove(*key)

    def error(self, model: str, code: str) -> None:
        """Count one failed request; ``model`` is empty when the request named nothing loaded."""
        self.errors.labels(model or UNKNOWN_MODEL, code).inc()


class VersionStats:
    """Counters of one loaded version: requests, errors, a latency window, in-flight, shadow agreement."""

    WINDOW = 2048

    def __init__(self, metrics: AgentMetrics, name: str, version: str) -> None:
        self._metrics = metrics
        self._name = name
        self._version = version
        self._lock = threading.Lock()
        self._latencies: deque[float] = deque(maxlen=self.WINDOW)
        self._requests = self._errors = self._in_flight = 0
        self._shadow_compared = self._shadow_agreed = 0
        self._shadow_delta_sum = 0.0
        self._prom_requests = metrics.requests.labels(name, version)
        self._prom_latency = metrics.latency.labels(name, version)
        self._prom_in_flight = metrics.in_flight.labels(name, version)

    def begin(self) -> None:
        with self._lock:
            self._in_flight += 1
        self._prom_in_flight.inc()

    def end(self, latency_ms: float | None, code: str = "") -> None:
        """Close a request started by :meth:`begin`; ``latency_ms`` is None and ``code`` set on failure."""
        with self._lock:
            self._in_flight -= 1
            self._requests += 1
            if latency_ms is not None:
                self._latencies.append(latency_ms)
            else:
                self._errors += 1
        self._prom_in_flight.dec()
        self._prom_requests.inc()
        if latency_ms is not None:
            self._prom_latency.observe(latency_ms / 1000.0)
        else:
            self._metrics.error(self._name, code)

    def record_error(self, code: str) -> None:
        """A request that failed before it ran (bad input): counted, with no latency."""
        with self._lock:
            self._requests += 1
            self._errors += 1
        self._prom_requests.inc()
        self._metrics.error(self._name, code)

    def record_shadow(self, compared: int, agreed: int, abs_delta_sum: float) -> None:
        with self._lock:
            self._shadow_compared += compared
            self._shadow_agreed += agreed
            self._shadow_delta_sum += abs_delta_sum

    def snapshot(self) -> ModelStats:
        """The version's counters now, as ``GetModelStats`` sends them."""
        with self._lock:
            latencies = list(self._latencies)
            compared = self._shadow_compared
            return ModelStats(
                name=self._name,
                version=self._version,
                requests=self._requests,
                errors=self._errors,
                p50_ms=percentile(latencies, 50),
                p99_ms=percentile(latencies, 99),
                in_flight=self._in_flight,
                shadow_compared=compared,
                shadow_agreed=self._shadow_agreed,
                shadow_mean_abs_score_delta=self._shadow_delta_sum / compared if compared else 0.0,
            )
