"""A line goes darker and grows a new defect kind; the monitor says so, and only about what moved.

The real stack: redis-server, the agent with the tiny test models (``tests.helpers.models``: scores
follow brightness), one inference worker per line publishing telemetry every second to Mosquitto and
``ei:events``, the real uploader putting captures and telemetry in a ``file://`` store. The baseline
is computed the pipeline's way (``baseline_for_samples``) from the normal line's synthetic images.

Two lines run side by side: a control line (same generator, another seed) and a shifted line
(``brightness_shift=-40``, defects of the new ``blister`` kind only). Then ``edgeinspect monitor``
must report drift for the shifted line on brightness and on what the models compute from brightness
(scores, mask area, the segmenter's defect rate), never on contrast or sharpness, which the shift
leaves alone; and nothing at all for the control line. A drift alert reaches MQTT, exit status 3.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from edgeinspect.core import names, topics
from edgeinspect.core.lifecycle import wait_until
from edgeinspect.core.mqtt import MqttClient
from edgeinspect_cloud.cli import main
from edgeinspect_cloud.data.dataset import list_split
from edgeinspect_cloud.data.synth import render_sample, write_dataset
from edgeinspect_cloud.evaluation.spec import ModelSpec
from edgeinspect_cloud.monitor.baseline import baseline_for_samples

from tests.fixtures.agent import AgentServer
from tests.fixtures.mqtt_broker import MosquittoBroker
from tests.fixtures.redis_server import RedisServer
from tests.helpers.captures import uploader, wait_drained
from tests.helpers.models import classifier_onnx, manifest_for, segmenter_onnx
from tests.integration.worker.conftest import LineKit

pytestmark = pytest.mark.slow

HEIGHT, WIDTH = 160, 64
MODEL = 64
FRAMES = 200
THRESHOLD = 0.9  # image and pixel threshold of both test models
SHIFT: dict[str, Any] = {"brightness_shift": -40.0, "defect_kinds": ("blister",)}
MOVED = {"brightness", "cls_score", "seg_score", "mask_area", "seg_defect_rate"}
"""Brightness, and what the brightness-driven test models compute from it."""
UNMOVED = {"contrast", "sharpness"}


def deploy(agent: AgentServer) -> None:
    client = agent.client()
    for name, task, alias in (("cls", "classification", "defect-cls"), ("seg", "segmentation", "defect-seg")):
        package = agent.package(name, "1", task, height=MODEL, width=MODEL, threshold=THRESHOLD)  # type: ignore[arg-type]
        client.load_version(str(package))
        client.set_alias(alias, name, "1")


def baselines(tmp_path: Path) -> list[Path]:
    """The validation baseline of each model on the normal line, computed as the pipeline does."""
    write_dataset(tmp_path / "normal", count=240, defect_ratio=0.2, seed=0, height=HEIGHT, width=WIDTH,
                  test_fraction=0.0)  # fmt: skip
    samples = list_split(tmp_path / "normal", "train")
    out = []
    for name, task, onnx_bytes in (("cls", "classification", classifier_onnx(MODEL, MODEL)),
                                   ("seg", "segmentation", segmenter_onnx(MODEL, MODEL))):  # fmt: skip
        model = tmp_path / f"{name}.onnx"
        model.write_bytes(onnx_bytes)
        spec = ModelSpec.from_manifest(manifest_for(name, "1", task, MODEL, MODEL, THRESHOLD))  # type: ignore[arg-type]
        path = tmp_path / f"{name}-baseline.json"
        path.write_text(json.dumps(baseline_for_samples(model, spec, samples, model_ref=f"{name}:1")))
        out.append(path)
    return out


def send_line(kit: LineKit, seed: int, **shift: Any) -> None:
    for index in range(FRAMES):
        pixels, _ = render_sample(
            np.random.default_rng([seed, index]), HEIGHT, WIDTH, index % 5 == 0, **shift
        )
        kit.send(f"f{index:04d}", pixels)


def drifted(metrics: dict[str, Any]) -> dict[str, set[str]]:
    return {f"{g['line']}/{g['device']}": set(g["drifted"]) for g in metrics["groups"]}


def test_the_monitor_flags_exactly_the_shifted_features_of_the_shifted_line(
    redis_server: RedisServer, redis_client: redis.Redis, line_id: str, agent_server: AgentServer,
    mqtt_broker: MosquittoBroker, mqtt_topic_root: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    redis_client.delete(names.capture_stream(), names.events_stream())
    deploy(agent_server)
    control = LineKit(f"{line_id}c", redis_server.url, redis_client, agent_server)
    shifted = LineKit(f"{line_id}s", redis_server.url, redis_client, agent_server)
    store_url = f"file://{tmp_path / 'captures'}"
    received: dict[str, list[dict[str, Any]]] = {"telemetry": [], "alerts": []}
    with MqttClient(mqtt_broker.url, f"listener-{line_id}") as listener:
        for kind in received:
            listener.subscribe(
                f"{mqtt_topic_root}/+/{kind}", lambda _t, body, k=kind: received[k].append(body)
            )
        listener.connect(timeout=10)
        common = {"telemetry_interval_s": 1.0, "capture_good_fraction": 1.0, "mqtt_url": mqtt_broker.url,
                  "mqtt_topic_root": mqtt_topic_root}  # fmt: skip
        with uploader(redis_server.url, control.line, store_url, tmp_path / "spool") as service:
            with (
                control.worker(thing_name="press-c", consumer="wc", **common),
                shifted.worker(thing_name="press-s", consumer="ws", **common),
            ):
                send_line(control, seed=1)
                send_line(shifted, seed=2, **SHIFT)
                control.wait_results(FRAMES, timeout=300)
                shifted.wait_results(FRAMES, timeout=300)
            wait_drained(redis_client, service)  # the workers' last summaries too
        frames_published = lambda: sum(b["frames"] for b in received["telemetry"])  # noqa: E731
        assert wait_until(lambda: frames_published() == 2 * FRAMES, 30), frames_published()

        base = ["monitor", *(arg for p in baselines(tmp_path) for arg in ("--baseline", str(p)))]
        lines = ["--line", control.line, "--line", shifted.line]
        alerting = ["--mqtt-url", mqtt_broker.url, "--topic-root", mqtt_topic_root]
        every = ["--capture-reasons", "all"]  # every frame was captured: an unbiased sample of the line
        code = main(
            [*base, "--captures", store_url, *lines, *every, "--out", str(tmp_path / "report"), *alerting]
        )
        assert code == 3, capsys.readouterr().err
        assert wait_until(lambda: any(a.get("type") == "drift" for a in received["alerts"]), 30)

    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    found = drifted(metrics)
    print(json.dumps({k: sorted(v) for k, v in found.items()}))
    assert found[f"{control.line}/press-c"] == set()
    assert found[f"{shifted.line}/press-s"] == MOVED
    assert found[f"{control.line}/captures"] == set()
    assert found[f"{shifted.line}/captures"] == {"brightness"}
    for group in metrics["groups"]:
        assert group["plots"], group["line"]
        tested = {f["feature"] for f in group["features"]}
        assert tested >= UNMOVED, group["line"]
        assert all(f["enough_data"] for f in group["features"] if f["feature"] in UNMOVED)
    (alert,) = [a for a in received["alerts"] if a.get("type") == "drift" and a["source"] == "telemetry"]
    assert alert["line"] == shifted.line and {f["feature"] for f in alert["features"]} == MOVED
    assert any(a["source"] == "captures" for a in received["alerts"] if a.get("type") == "drift")

    # the same verdicts from the telemetry as recorded off MQTT (no capture store at all)
    recorded = tmp_path / "mqtt-telemetry.jsonl"
    recorded.write_text("".join(json.dumps(body) + "\n" for body in received["telemetry"]))
    code = main([*base, "--telemetry", str(recorded), "--out", str(tmp_path / "from-mqtt")])
    assert code == 3
    again = drifted(json.loads((tmp_path / "from-mqtt" / "metrics.json").read_text()))
    assert again == {key: value for key, value in found.items() if not key.endswith("/captures")}
    assert topics.device_telemetry("press-s", root=mqtt_topic_root).endswith("/press-s/telemetry")
