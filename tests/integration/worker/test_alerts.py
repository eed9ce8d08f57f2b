"""Defect alerts over MQTT (real Mosquitto) and a webhook, delivered off the hot path."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from edgeinspect.core import topics
from edgeinspect.core.lifecycle import wait_until
from edgeinspect.core.mqtt import MqttClient
from edgeinspect_inference.worker.alerts import Alerter, WebhookAlertSink
from edgeinspect_inference.worker.metrics import WorkerMetrics

from tests.fixtures.mqtt_broker import MosquittoBroker
from tests.integration.worker.conftest import LineKit, frame_pixels


class Receiver:
    """A plain HTTP endpoint on loopback that records JSON bodies POSTed to it (the webhook's target)."""

    def __init__(self, status: int = 200, delay: threading.Event | None = None) -> None:
        self.bodies: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if delay is not None:
                    delay.wait(10)
                length = int(self.headers.get("Content-Length", "0"))
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/alerts"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    rec.thread.start()
    yield rec
    rec.server.shutdown()
    rec.server.server_close()


def test_a_defect_is_posted_to_the_webhook_and_good_parts_are_not(line: LineKit, receiver: Receiver) -> None:
    line.deploy()
    with line.worker(webhook_url=receiver.url) as service:
        line.send("good", frame_pixels("dark"))
        line.send("bad", frame_pixels("bright"))
        line.wait_results(2)
        assert wait_until(lambda: len(receiver.bodies) >= 1, 30)
        sent = service.metrics.registry.get_sample_value(
            "ei_worker_alerts_total", {"sink": "webhook", "outcome": "sent"}
        )
    (alert,) = receiver.bodies
    assert (alert["type"], alert["frame_id"], alert["line"]) == ("defect", "bad", line.line)
    assert {p["model"] for p in alert["predictions"]} == {"cls", "seg"}
    assert sent == 1


def test_a_defect_is_published_on_the_lines_mqtt_alert_topic(
    line: LineKit, mqtt_broker: MosquittoBroker, mqtt_topic_root: str
) -> None:
    line.deploy()
    received: list[dict[str, Any]] = []
    topic = topics.line_alerts(line.line, root=mqtt_topic_root)
    with MqttClient(mqtt_broker.url, f"listener-{line.line}") as listener:
        listener.subscribe(topic, lambda _topic, payload: received.append(payload))
        listener.connect(timeout=10)
        with line.worker(mqtt_url=mqtt_broker.url, mqtt_topic_root=mqtt_topic_root):
            line.send("bad", frame_pixels("bright"))
            line.wait_results(1)
            assert wait_until(lambda: len(received) >= 1, 30), "no alert reached the broker"
    assert received[0]["frame_id"] == "bad"
    assert received[0]["type"] == "defect"


def test_a_stuck_webhook_never_blocks_submission_and_overflow_is_counted() -> None:
    release = threading.Event()
    stuck = Receiver(delay=release)
    stuck.thread.start()
    metrics = WorkerMetrics()
    alerter = Alerter([WebhookAlertSink(stuck.url, timeout_s=20)], metrics, max_queued=2).start()
    try:
        accepted = [alerter.submit({"frame_id": f"f{i}"}) for i in range(10)]
        # one alert is with the (stuck) webhook, two wait in the queue, the rest are dropped
        assert accepted.count(True) in (2, 3)
        dropped = metrics.registry.get_sample_value("ei_worker_alerts_dropped_total")
        assert dropped == accepted.count(False)
    finally:
        release.set()
        alerter.stop(timeout=20)
        stuck.server.shutdown()
        stuck.server.server_close()
    assert len(stuck.bodies) == accepted.count(True)
