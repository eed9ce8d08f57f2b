"""The fleet jobs service against a bracket bomb on ``start-next``: refused with a reason, and the
next device still gets its job (the dispatcher thread that answers every request used to die here)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from edgeinspect.core import topics
from edgeinspect.core.lifecycle import wait_until
from edgeinspect.core.mqtt import MqttClient

from tests.fixtures.mqtt_broker import MosquittoBroker
from tests.helpers.fleet import FleetThread
from tests.helpers.jobs_device import JobsDevice
from tests.reliability.hostile import BRACKET_BOMB, WAIT_S

DOC = {"operation": "remove_model", "model": {"name": "defect-cls", "version": "7"}}


@pytest.fixture
def fleet(tmp_path: Path, mqtt_broker: MosquittoBroker, mqtt_topic_root: str) -> Iterator[FleetThread]:
    with FleetThread(f"sqlite:///{tmp_path / 'fleet.db'}", mqtt_broker.url, mqtt_topic_root) as service:
        yield service


def test_a_bracket_bomb_request_is_rejected_and_the_service_keeps_answering(
    fleet: FleetThread, mqtt_broker: MosquittoBroker, mqtt_topic_root: str
) -> None:
    request = topics.jobs_start_next(mqtt_topic_root, "edge-1")
    rejected: list[dict[str, Any]] = []
    with MqttClient(mqtt_broker.url, "raw-sender") as raw:
        raw.subscribe(topics.rejected(request), lambda _t, p: rejected.append(p))
        raw.connect()
        raw._client.publish(request, BRACKET_BOMB, qos=1).wait_for_publish(5)
        assert wait_until(lambda: bool(rejected), WAIT_S)
    assert "nests deeper" in rejected[0]["message"] and len(rejected[0]["message"]) < 300

    fleet.store.jobs.create_job("j1", DOC, ["thing:edge-1"])
    with JobsDevice(mqtt_broker.url, mqtt_topic_root, "edge-1") as device:
        device.wait_for(lambda: [f.job_id for f in device.finished] == ["j1"])

    assert fleet.service.mqtt.dispatcher_alive
    assert fleet.metric("ei_fleet_mqtt_bad_payloads_total") == 1.0
