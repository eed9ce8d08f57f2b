"""Readiness and metrics of an ``MqttClient``'s dispatcher thread, the same way in every service.

Why: the dispatcher survives any one message (each is handled inside its own ``try``), but if it ever
died for another reason every later job notification would be silently ignored while the service kept
answering 200 on ``/readyz``. ``watch_mqtt`` makes that death visible (``/readyz`` 503) and exports the
counts of refused payloads and failed handlers as ``{prefix}_mqtt_*_total`` counters.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from edgeinspect.core.mqtt import MqttClient
from edgeinspect.core.observability import Health

_HELP = {
    "bad_payloads": "MQTT messages refused before any handler ran (too large, too deep, not a JSON object)",
    "handler_failures": "MQTT handler calls that raised (logged with their traceback)",
    "message_failures": "MQTT messages whose delivery failed outside a handler (logged)",
}


class _DispatchCollector(Collector):
    def __init__(self, client: MqttClient, prefix: str) -> None:
        self._client = client
        self._prefix = prefix

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        counts = self._client.dispatch_counts
        for key, text in _HELP.items():
            yield CounterMetricFamily(f"{self._prefix}_mqtt_{key}", text, value=counts.get(key, 0))
        yield GaugeMetricFamily(
            f"{self._prefix}_mqtt_dispatcher_alive",
            "1 while the thread that runs MQTT handlers is alive",
            value=1 if self._client.dispatcher_alive else 0,
        )


def watch_mqtt(client: MqttClient, health: Health | None, registry: CollectorRegistry, prefix: str) -> None:
    """Add the ``mqtt_dispatcher`` readiness check to ``health`` and the counters to ``registry``."""
    if health is not None:
        health.add_check("mqtt_dispatcher", lambda: client.dispatcher_alive)
    registry.register(_DispatchCollector(client, prefix))
