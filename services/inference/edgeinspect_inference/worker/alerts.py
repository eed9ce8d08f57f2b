"""Defect alerts (MQTT ``edgeinspect/{line}/alerts``, optional webhook), kept off the hot path.

The inference loop only calls :meth:`Alerter.submit`, which puts the alert on a bounded queue and
returns at once; a background thread delivers it to every sink. A slow or unreachable broker or
webhook therefore never delays a verdict: when the queue is full the alert is dropped and counted
(``ei_worker_alerts_dropped_total``), and a failed delivery is logged and counted, never retried
forever (the result itself is in ``ei:results`` for anyone who needs every defect).
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Protocol

import httpx
from edgeinspect.core import topics
from edgeinspect.core.errors import EdgeInspectError
from edgeinspect.core.messages import Result
from edgeinspect.core.mqtt import MqttClient
from edgeinspect.core.observability import get_logger

from edgeinspect_inference.worker.metrics import WorkerMetrics

log = get_logger(__name__)


def alert_payload(result: Result) -> dict[str, Any]:
    """The JSON body of a defect alert: which frame, how sure, which models said so (no pixels)."""
    return {
        "type": "defect",
        "line": result.line,
        "frame_id": result.frame_id,
        "ts_ns": result.ts_ns,
        "score": result.score,
        "source": result.source,
        "e2e_ms": result.e2e_ms,
        "predictions": [p.to_json() for p in result.predictions],
    }


class AlertSink(Protocol):
    """Somewhere an alert goes; ``send`` may block (it runs on the alert thread) and raises on failure."""

    name: str

    def send(self, alert: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class MqttAlertSink:
    """Publishes alerts (QoS 1) on the line's alert topic; connects in the background and reconnects."""

    name = "mqtt"

    def __init__(self, url: str, client_id: str, line: str, *, root: str = topics.EDGEINSPECT_ROOT) -> None:
        self.topic = topics.line_alerts(line, root=root)
        self._client = MqttClient(url, client_id)
        self._client.start()

    def send(self, alert: dict[str, Any]) -> None:
        self._client.publish_json(self.topic, alert, qos=1, timeout=5.0)

    def close(self) -> None:
        self._client.stop()


class WebhookAlertSink:
    """POSTs each alert as JSON; any non-2xx answer counts as a failed delivery."""

    name = "webhook"

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        self.url = url
        self._http = httpx.Client(timeout=timeout_s)

    def send(self, alert: dict[str, Any]) -> None:
        self._http.post(self.url, json=alert).raise_for_status()

    def close(self) -> None:
        self._http.close()


_STOP = object()


class Alerter:
    """A bounded queue and one delivery thread in front of the sinks."""

    def __init__(self, sinks: list[AlertSink], metrics: WorkerMetrics, max_queued: int = 256) -> None:
        self.sinks = sinks
        self._metrics = metrics
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max_queued)
        self._thread = threading.Thread(target=self._run, name="alerts", daemon=True)
        self._started = False

    def start(self) -> Alerter:
        if self.sinks and not self._started:
            self._thread.start()
            self._started = True
        return self

    def submit(self, alert: dict[str, Any]) -> bool:
        """Queue an alert without ever blocking; False (and counted) when the queue is full."""
        if not self._started:
            return False
        try:
            self._queue.put_nowait(alert)
        except queue.Full:
            self._metrics.alerts_dropped.inc()
            log.warning("alert_dropped", frame_id=alert.get("frame_id"), reason="queue full")
            return False
        self._metrics.alert_queue.set(self._queue.qsize())
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (up to ``timeout``), then close the sinks."""
        if self._started:
            try:
                self._queue.put(_STOP, timeout=timeout)
            except queue.Full:
                log.warning("alerts_not_drained", queued=self._queue.qsize())
            self._thread.join(timeout)
            self._started = False
        for sink in self.sinks:
            sink.close()

    def _run(self) -> None:
        while True:
            alert = self._queue.get()
            self._metrics.alert_queue.set(self._queue.qsize())
            if alert is _STOP:
                return
            if isinstance(alert, dict):
                for sink in self.sinks:
                    self._deliver(sink, alert)

    def _deliver(self, sink: AlertSink, alert: dict[str, Any]) -> None:
        try:
            sink.send(alert)
        except (EdgeInspectError, httpx.HTTPError, OSError) as exc:
            self._metrics.alerts.labels(sink.name, "failed").inc()
            log.warning("alert_failed", sink=sink.name, frame_id=alert.get("frame_id"), error=str(exc))
            return
        self._metrics.alerts.labels(sink.name, "sent").inc()
