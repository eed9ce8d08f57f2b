"""The jobs service against a real Mosquitto: AWS IoT Jobs replies, notify-next, waves, cancel, registry.

Devices here are :class:`tests.helpers.jobs_device.JobsDevice` (the protocol and nothing else), so each
test can make a device succeed or fail at will; test_model_manager.py runs the real model manager.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from edgeinspect.core import topics
from edgeinspect.core.lifecycle import wait_until
from edgeinspect.core.mqtt import MqttClient
from edgeinspect_cloud.fleet import Rollout

from tests.fixtures.mqtt_broker import MosquittoBroker
from tests.helpers.fleet import FleetThread
from tests.helpers.jobs_device import JobsDevice, fail, succeed

DOC = {"operation": "deploy_model", "model": {"name": "defect-cls", "version": "7", "url": "file:///x.tar.gz",
       "sha256": "0" * 64, "size": 10}, "role": "primary", "rollback_on_failure": True}  # fmt: skip


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fleet.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'fleet.db'}"


@pytest.fixture
def fleet(sqlite_url: str, mqtt_broker: MosquittoBroker, mqtt_topic_root: str) -> Iterator[FleetThread]:
    with FleetThread(sqlite_url, mqtt_broker.url, mqtt_topic_root) as service:
        yield service


def _device(broker: MosquittoBroker, root: str, thing: str, **options: Any) -> JobsDevice:
    return JobsDevice(broker.url, root, thing, **options)


def _statuses(fleet: FleetThread, job_id: str) -> dict[str, str]:
    return {e.thing: e.status for e in fleet.store.jobs.executions(job_id)}


def test_group_deployment_ends_succeeded_on_both_devices(
    db_url: str, mqtt_broker: MosquittoBroker, mqtt_topic_root: str
) -> None:
    with FleetThread(
        db_url, mqtt_broker.url, mqtt_topic_root, fleet_groups={"line-3": ["edge-1", "edge-2"]}
    ) as fleet:
        with (
            _device(mqtt_broker, mqtt_topic_root, "edge-1") as one,
            _device(mqtt_broker, mqtt_topic_root, "edge-2") as two,
        ):
            fleet.store.jobs.create_job("deploy-1", DOC, ["line-3"])
            for device in (one, two):
                device.wait_for(lambda d=device: len(d.finished) == 1)  # type: ignore[misc]
                assert device.finished[0].document == DOC
        assert wait_until(lambda: fleet.store.jobs.get_job("deploy-1").status == "COMPLETED", 10)
        assert _statuses(fleet, "deploy-1") == {"edge-1": "SUCCEEDED", "edge-2": "SUCCEEDED"}
        assert fleet.metric("ei_fleet_jobs_requests_total", action="start-next", outcome="accepted") >= 2


def test_a_job_created_while_the_device_is_offline_runs_when_it_comes_back(
    fleet: FleetThread, mqtt_broker: MosquittoBroker, mqtt_topic_root: str
) -> None:
    fleet.store.devices.add_to_group("line-3", ["edge-1"])
    fleet.store.jobs.create_job("deploy-1", DOC, ["line-3"])
    assert wait_until(lambda: not fleet.store.outbox.pending().ids, 10)  # notify-next went nowhere
    assert _statuses(fleet, "deploy-1") == {"edge-1": "QUEUED"}
    with _device(mqtt_broker, mqtt_topic_root, "edge-1") as device:  # start-next on connect
        device.wait_for(lambda: [f.job_id for f in device.finished] == ["deploy-1"])
    assert _statuses(fleet, "deploy-1") == {"edge-1": "SUCCEEDED"}
    assert fleet.store.devices.device("edge-1").last_seen is not None  # type: ignore[union-attr]


def test_a_wave_rollout_aborts_when_the_first_wave_fails(
    fleet: FleetThread, mqtt_broker: MosquittoBroker, mqtt_topic_root: str
) -> None:
    things = ["edge-1", "edge-2", "edge-3", "edge-4"]
    fleet.store.devices.add_to_group("line-3", things)
    devices = [_device(mqtt_broker, mqtt_topic_root, t, decide=fail if t in ("edge-1", "edge-2") else succeed)
               for t in things]  # fmt: skip
    for device in devices:
        device.start()
    try:
        fleet.store.jobs.create_job("deploy-1", DOC, ["line-3"], Rollout(waves=2, abort_threshold_pct=50))
        assert wait_until(lambda: fleet.store.jobs.get_job("deploy-1").status == "CANCELED", 20)
        job = fleet.store.jobs.get_job("deploy-1")
        assert "2 of 2 executions of wave 1 failed" in job.reason
        assert _statuses(fleet, "deploy-1") == {"edge-1": "FAILED", "edge-2": "FAILED", "edge-3": "CANCELED",
                                                "edge-4": "CANCELED"}  # fmt: skip
        for device in devices[:2]:
            device.wait_for(lambda d=device: len(d.finished) == 1)  # type: ignore[misc]
        assert [len(d.finished) for d in devices] == [1, 1, 0, 0]  # the second wave never got the job
    finally:
        for device in devices:
            device.stop()


def test_a_wave_rollout_releases_the_next_wave_when_the_first_succeeds(
    fleet: FleetThread, mqtt_broker: MosquittoBroker, mqtt_topic_root: str
) -> None:
    things = ["edge-1", "edge-2", "edge-3"]
    fleet.store.devices.add_to_group("line-3", things)
    devices = [_device(mqtt_broker, mqtt_topic_root, t) for t in things]
    for device in devices:
        device.start()
    try:
        fleet.store.jobs.create_job("deploy-1", DOC, ["line-3"], Rollout(waves=3, abort_threshold_pct=0))
        assert wait_until(lambda: fleet.store.jobs.get_job("deploy-1").status == "COMPLETED", 20)
        executions = fleet.store.jobs.executions("deploy-1")
        assert [(e.thing, e.wave, e.status) for e in executions] == [
            ("edge-1", 0, "SUCCEEDED"), ("edge-2", 1, "SUCCEEDED"), ("edge-3", 2, "SUCCEEDED"),
        ]  # fmt: skip
        started = [e.started_at or 0 for e in executions]
        assert started == sorted(started)
    finally:
        for device in devices:
            device.stop()


def test_cancel_notifies_the_device_and_rejects_its_late_update(
    fleet: FleetThread, mqtt_broker: MosquittoBroker, mqtt_topic_root: str
) -> None:
    fleet.store.devices.add_thing("edge-1")
    with _device(mqtt_broker, mqtt_topic_root, "edge-1", auto=False) as device:
        fleet.store.jobs.create_job("deploy-1", DOC, ["edge-1"])
        device.wait_for(lambda: any("execution" in n for n in device.notifications))
        ok, started = device.request(topics.jobs_start_next(mqtt_topic_root, "edge-1"), {})
        assert ok and started["execution"]["status"] == "IN_PROGRESS"
        fleet.store.jobs.cancel_job("deploy-1", "wrong version", force=True)
        device.wait_for(
            lambda: bool(device.notifications) and device.notifications[-1].keys() == {"timestamp"}
        )  # nothing pending any more
        update = topics.jobs_update(mqtt_topic_root, "edge-1", "deploy-1")
        ok, reply = device.request(update, {"status": "SUCCEEDED", "expectedVersion": 2})
    assert not ok
    assert reply["code"] == "InvalidStateTransition"
    assert reply["executionState"]["status"] == "CANCELED"
    assert fleet.store.jobs.get_job("deploy-1").reason == "wrong version"


def test_jobs_requests_get_aws_shaped_replies(
    fleet: FleetThread, mqtt_broker: MosquittoBroker, mqtt_topic_root: str
) -> None:
    root, thing = mqtt_topic_root, "edge-1"
    fleet.store.devices.add_thing(thing)
    fleet.store.jobs.create_job("j1", DOC, [thing])
    fleet.store.jobs.create_job("j2", {"operation": "remove_model", "model": {"name": "m"}}, [thing])
    with _device(mqtt_broker, root, thing, auto=False) as device:
        for request in (topics.jobs_get_pending(root, thing), topics.jobs_get_next(root, thing),
                        topics.jobs_describe(root, thing, "j2")):  # fmt: skip
            for suffix in (topics.accepted, topics.rejected):
                device.mqtt.subscribe(suffix(request), device._on_reply(suffix is topics.accepted))
        ok, pending = device.request(topics.jobs_get_pending(root, thing), {})
        assert (
            ok
            and [j["jobId"] for j in pending["queuedJobs"]] == ["j1", "j2"]
            and pending["inProgressJobs"] == []
        )
        ok, nxt = device.request(topics.jobs_get_next(root, thing), {})
        assert ok and nxt["execution"]["jobId"] == "j1" and nxt["execution"]["status"] == "QUEUED"
        ok, described = device.request(topics.jobs_describe(root, thing, "j2"), {"includeJobDocument": False})
        assert ok and "jobDocument" not in described["execution"]

        ok, started = device.request(
            topics.jobs_start_next(root, thing), {"statusDetails": {"stage": "download"}}
        )
        execution = started["execution"]
        assert ok and execution["jobDocument"] == DOC
        assert (execution["versionNumber"], execution["executionNumber"], execution["statusDetails"]) == (
            2, 1, {"stage": "download"},
        )  # fmt: skip
        update = topics.jobs_update(root, thing, "j1")
        ok, stale = device.request(update, {"status": "IN_PROGRESS", "expectedVersion": 1})
        assert not ok and stale["code"] == "VersionMismatch" and stale["executionState"]["versionNumber"] == 2
        ok, bad = device.request(update, {"status": "SUCCEEDED", "statusDetails": {"reason": 5}})
        assert not ok and bad["code"] == "InvalidRequest"
        final = {"status": "SUCCEEDED", "expectedVersion": 2, "includeJobExecutionState": True,
                 "includeJobDocument": True}  # fmt: skip
        ok, done = device.request(update, final)
        assert (
            ok
            and done["executionState"]["status"] == "SUCCEEDED"
            and done["executionState"]["versionNumber"] == 3
        )
        assert done["executionState"]["statusDetails"] == {"stage": "download"}  # not sent: kept
        assert done["jobDocument"] == DOC and isinstance(done["timestamp"], int)
        # notify-next follows the reply (from the service's poll loop): wait for it, not on an empty list
        device.wait_for(
            lambda: (
                bool(device.notifications)
                and device.notifications[-1].get("execution", {}).get("jobId") == "j2"
            )
        )


def test_a_request_that_is_not_json_is_rejected_as_invalid_json(
    fleet: FleetThread, mqtt_broker: MosquittoBroker, mqtt_topic_root: str
) -> None:
    request = topics.jobs_start_next(mqtt_topic_root, "edge-1")
    got: list[dict[str, Any]] = []
    with MqttClient(mqtt_broker.url, "raw-sender") as raw:
        raw.subscribe(topics.rejected(request), lambda _t, p: got.append(p))
        raw.connect()
        raw._client.publish(request, b"not json", qos=1).wait_for_publish(5)
        assert wait_until(lambda: bool(got), 10)
    assert got[0]["code"] == "InvalidJson"


def test_retained_device_state_fills_the_registry(
    fleet: FleetThread, mqtt_broker: MosquittoBroker, mqtt_topic_root: str
) -> None:
    state = {"thing": "edge-5", "groups": ["line-4"], "state": "idle",
             "models": [{"name": "defect-cls", "version": "7", "role": "primary"}]}  # fmt: skip
    with MqttClient(mqtt_broker.url, "state-publisher") as publisher:
        publisher.connect()
        publisher.publish_json(topics.device_state("edge-5", root=mqtt_topic_root), state, retain=True)
    assert wait_until(lambda: fleet.store.devices.device("edge-5") is not None, 10)
    device = fleet.store.devices.device("edge-5")
    assert device is not None and device.loaded_versions() == ["defect-cls:7 (primary)"]
    assert device.groups == ["line-4"] and device.last_seen is not None
