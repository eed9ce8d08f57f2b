"""The worker's telemetry through the real stack: redis-server, the agent, the worker, Mosquitto.

Summaries must reach MQTT ``{root}/{thing}/telemetry`` and ``ei:events`` (type ``telemetry``) with
the frames' counts, scores, rates and image features, and the Prometheus gauges must say the same.
"""

from __future__ import annotations

from typing import Any

from edgeinspect.core import names, topics
from edgeinspect.core.lifecycle import wait_until
from edgeinspect.core.messages import Event
from edgeinspect.core.mqtt import MqttClient
from edgeinspect.core.telemetry import BRIGHTNESS, CLS_SCORE, MASK_AREA, TelemetrySummary

from tests.fixtures.mqtt_broker import MosquittoBroker
from tests.integration.worker.conftest import BRIGHT, DARK, LineKit, frame_pixels


def telemetry_events(line: LineKit) -> list[TelemetrySummary]:
    raw: Any = line.client.xrange(names.events_stream())
    events = [Event.from_fields(fields) for _, fields in raw]
    return [
        TelemetrySummary.from_json(e.detail) for e in events if e.type == "telemetry" and e.line == line.line
    ]


def test_summaries_reach_mqtt_and_the_events_stream_with_the_frames_statistics(
    line: LineKit, mqtt_broker: MosquittoBroker, mqtt_topic_root: str
) -> None:
    line.deploy()
    received: list[dict[str, Any]] = []
    topic = topics.device_telemetry("press-7", root=mqtt_topic_root)
    with MqttClient(mqtt_broker.url, f"listener-{line.line}") as listener:
        listener.subscribe(topic, lambda _topic, payload: received.append(payload))
        listener.connect(timeout=10)
        settings = {"mqtt_url": mqtt_broker.url, "mqtt_topic_root": mqtt_topic_root, "thing_name": "press-7"}
        with line.worker(telemetry_interval_s=3600, **settings) as service:
            for i in range(6):
                line.send(f"ok-{i}", frame_pixels("dark"))
            for i in range(3):
                line.send(f"bad-{i}", frame_pixels("bright"))
            line.wait_results(9)
            assert service.telemetry is not None
            assert wait_until(lambda: service.telemetry.windows.pending_frames() == 9, 10)
            (summary,) = service.telemetry.flush()  # what the timer does every interval
            gauge = service.metrics.registry.get_sample_value
            labels = {"line": line.line, "models": "classification=cls:1,segmentation=seg:1"}
            assert gauge("ei_telemetry_frames", labels) == 9
            assert gauge("ei_telemetry_rate", {**labels, "rate": "defect_rate"}) == 3 / 9
            mean_brightness = gauge("ei_telemetry_feature_mean", {**labels, "feature": BRIGHTNESS})
            assert mean_brightness is not None
            assert abs(mean_brightness - (6 * DARK + 3 * BRIGHT) / 9) < 1.0
            assert wait_until(lambda: len(received) >= 1, 30), "no telemetry reached the broker"
            assert gauge("ei_telemetry_summaries_total", {"sink": "mqtt", "outcome": "sent"}) == 1
    published = TelemetrySummary.from_json(received[0])
    assert published.to_json() == summary.to_json()
    assert (published.line, published.thing, published.frames) == (line.line, "press-7", 9)
    assert published.models == {"classification": "cls:1", "segmentation": "seg:1"}
    assert published.verdicts == {"ok": 6, "defect": 3}
    assert (published.rates["cls_defect_rate"].k, published.rates["seg_defect_rate"].k) == (3, 3)
    assert published.features[CLS_SCORE].n == 9 and published.features[MASK_AREA].n == 9
    assert published.features[MASK_AREA].counts[0] == 6  # good frames: empty masks
    assert published.features["latency_ms"].n == 9
    # the stop flushed nothing more (no frames since), and the same summary is on ei:events
    (event,) = telemetry_events(line)
    assert event.to_json() == summary.to_json()


def test_a_frame_after_the_last_flush_is_published_at_shutdown(line: LineKit) -> None:
    line.deploy(seg=False)
    with line.worker(telemetry_interval_s=3600) as service:
        line.send("late", frame_pixels("dark"))
        line.wait_results(1)
        assert service.telemetry is not None
        assert wait_until(lambda: service.telemetry.windows.pending_frames() == 1, 10)
    (event,) = telemetry_events(line)
    assert event.frames == 1 and event.models == {"classification": "cls:1"}
    assert MASK_AREA not in event.features


def test_telemetry_off_publishes_nothing(line: LineKit) -> None:
    line.deploy(seg=False)
    with line.worker(telemetry_interval_s=0) as service:
        line.send("one", frame_pixels("dark"))
        line.wait_results(1)
        assert service.telemetry is None
    assert telemetry_events(line) == []
