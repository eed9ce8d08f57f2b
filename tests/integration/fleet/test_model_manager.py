"""The whole over-the-air path with real parts: registry on S3, ``edgeinspect deploy``, the fleet service,
Mosquitto, the real model manager (``python -m edgeinspect_model_manager``) and the real agent per device.

The model manager processes come from the model manager's own test harness (``ManagerProcess``,
``base_env``), so both sides are tested against the same way of running a device.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from edgeinspect.core.lifecycle import wait_until
from edgeinspect_cloud import cli
from edgeinspect_cloud.registry import ModelRegistry

from tests.fixtures.agent import AgentServer
from tests.fixtures.mqtt_broker import MosquittoBroker
from tests.fixtures.redis_server import RedisServer
from tests.helpers.fleet import FleetThread
from tests.helpers.models import image
from tests.integration.model_manager.harness import ManagerProcess, base_env

MODEL = "surface-cls"  # not "defect-cls": the agent refuses an alias named like a loaded model
ALIAS = "defect-cls"  # the model manager's default alias for a classifier


@dataclass
class Device:
    """One edge box: a thing name, its agent and its model manager process."""

    thing: str
    agent: AgentServer
    manager: ManagerProcess

    def serving(self) -> tuple[str, float]:
        """``name:version`` behind the alias, and its score on a mid-grey image (where versions differ)."""
        with self.agent.client() as client:
            result = client.predict(ALIAS, {"image": image(level=128)})
        return f"{result.name}:{result.version}", float(
            np.asarray(result.outputs["defect_probability"]).ravel()[0]
        )


@dataclass
class Stack:
    fleet: FleetThread
    db_url: str
    registry_url: str
    endpoint: str
    devices: list[Device]

    def deploy(self, version: int, job_id: str, *extra: str) -> int:
        """``edgeinspect deploy`` (the real command, in this process) to line-3."""
        registry = ["--registry", self.registry_url, "--endpoint-url", self.endpoint]
        return cli.main([
            "deploy", "--model", MODEL, "--version", str(version), "--target", "line-3", "--job-id", job_id,
            *registry, "--fleet-db", self.db_url, *extra,
        ])  # fmt: skip

    def wait_job(self, job_id: str, status: str = "COMPLETED", timeout: float = 120.0) -> dict[str, str]:
        jobs = self.fleet.store.jobs
        assert wait_until(lambda: jobs.get_job(job_id).status == status, timeout, interval=0.2), (
            f"{job_id}: {[(e.thing, e.status, e.status_details) for e in jobs.executions(job_id)]}\n"
            + "\n".join(d.manager.logs()[-3000:] for d in self.devices)
        )
        executions = jobs.executions(job_id)
        failed = [(e.thing, e.status_details) for e in executions if e.status != "SUCCEEDED"]
        print(f"{job_id}: not succeeded: {failed}")  # shown when the test fails
        return {e.thing: e.status for e in executions}


@pytest.fixture
def stack_factory(
    tmp_path: Path,
    agent_factory: Callable[..., AgentServer],
    mqtt_broker: MosquittoBroker,
    mqtt_topic_root: str,
    s3_bucket: tuple[str, str],
    redis_server: RedisServer,
    line_id: str,
) -> Iterator[Callable[[int], Stack]]:
    """Devices of thing group line-3 (each its own agent and manager), a registry on S3 with two
    Approved versions of defect-cls and a third still pending, and the fleet service on SQLite."""
    endpoint, bucket = s3_bucket
    db_url = f"sqlite:///{tmp_path / 'fleet.db'}"
    started: list[Device] = []
    fleets: list[FleetThread] = []

    def build(count: int) -> Stack:
        signer = agent_factory()
        agents = [signer] + [agent_factory(trusted_keys_dir=signer.keys.public_dir) for _ in range(count - 1)]
        registry_url = f"s3://{bucket}/registry"
        registry = ModelRegistry.open(registry_url, endpoint_url=endpoint)
        for knob in (0, 3, 6):
            registry.register(MODEL, lambda n, k=knob: signer.package(MODEL, str(n), knob=k))  # type: ignore[misc]
        registry.approve(MODEL, 1, comment="first")
        registry.approve(MODEL, 2, comment="second")
        things = [f"edge-{i}-{uuid.uuid4().hex[:6]}" for i in range(count)]
        fleet = FleetThread(db_url, mqtt_broker.url, mqtt_topic_root, fleet_groups={"line-3": things})
        fleets.append(fleet.__enter__())
        for thing, agent in zip(things, agents, strict=True):
            workdir = tmp_path / thing
            workdir.mkdir()
            env = base_env(
                workdir, thing, agent, mqtt_broker.url, mqtt_topic_root, redis_server.url, line_id, endpoint
            )
            env["EI_TRUSTED_KEYS_DIR"] = str(signer.keys.public_dir)
            manager = ManagerProcess(env, workdir / "manager.log", int(env["EI_HTTP_PORT"]))
            started.append(Device(thing, agent, manager))
            manager.start()
        return Stack(fleet, db_url, registry_url, endpoint, started[-count:])

    yield build
    for device in started:
        device.manager.stop()
    for fleet in fleets:
        fleet.__exit__(None, None, None)


def test_a_deployment_to_a_thing_group_succeeds_on_both_devices_and_changes_their_model(
    stack_factory: Callable[[int], Stack], capsys: pytest.CaptureFixture[str]
) -> None:
    stack = stack_factory(2)
    assert stack.deploy(1, "deploy-v1") == 0
    assert set(stack.wait_job("deploy-v1").values()) == {"SUCCEEDED"}
    before = [device.serving() for device in stack.devices]
    assert [name for name, _ in before] == [f"{MODEL}:1", f"{MODEL}:1"]

    assert stack.deploy(2, "deploy-v2") == 0
    assert set(stack.wait_job("deploy-v2").values()) == {"SUCCEEDED"}
    for device, (_, old_score) in zip(stack.devices, before, strict=True):
        name, score = device.serving()
        assert name == f"{MODEL}:2"
        assert score != old_score  # the new version's scores, not only its name
    details = stack.fleet.store.jobs.executions("deploy-v2")[0].status_details
    assert details.get("previous") == f"{MODEL}:1"

    capsys.readouterr()
    thing = stack.devices[0].thing
    assert wait_until(lambda: _reported(stack, thing) == [f"{MODEL}:2 (primary)"], 20), _reported(
        stack, thing
    )
    assert cli.main(["devices", "list", "--group", "line-3", "--fleet-db", stack.db_url, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {d["thingName"] for d in listed} == {d.thing for d in stack.devices}
    assert cli.main(["jobs", "show", "deploy-v2", "--fleet-db", stack.db_url]) == 0
    assert "SUCCEEDED" in capsys.readouterr().out


def _reported(stack: Stack, thing: str) -> list[str]:
    device = stack.fleet.store.devices.device(thing)
    return [] if device is None else [m for m in device.loaded_versions() if "(primary)" in m]


def test_a_job_deployed_while_a_device_is_offline_runs_when_it_comes_back(
    stack_factory: Callable[[int], Stack],
) -> None:
    stack = stack_factory(1)
    device = stack.devices[0]
    assert device.manager.stop() == 0
    assert stack.deploy(1, "deploy-offline") == 0
    assert wait_until(lambda: not stack.fleet.store.outbox.pending().ids, 10)  # notify-next sent meanwhile
    assert stack.wait_job("deploy-offline", "IN_PROGRESS", 5) == {device.thing: "QUEUED"}

    device.manager.start()
    assert stack.wait_job("deploy-offline") == {device.thing: "SUCCEEDED"}
    assert device.serving()[0] == f"{MODEL}:1"


def test_deploy_refuses_a_version_that_is_not_approved(stack_factory: Callable[[int], Stack]) -> None:
    stack = stack_factory(1)
    assert stack.deploy(3, "deploy-pending") == 1
    assert stack.fleet.store.jobs.list_jobs() == []
