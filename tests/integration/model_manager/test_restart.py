"""A device that was off: it catches up on jobs queued meanwhile, and restores its models without network."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.mqtt_broker import MosquittoBroker
from tests.integration.model_manager.harness import CLS, DeviceKit, wait_for


@pytest.fixture
def restartable(mqtt_broker: MosquittoBroker) -> Iterator[MosquittoBroker]:
    """The session broker, started again after the test even if it fails while the broker is down."""
    try:
        yield mqtt_broker
    finally:
        if mqtt_broker.proc is None:
            mqtt_broker.start()


@pytest.mark.parametrize("broker_restarted", [False, True], ids=["session_kept", "session_lost"])
def test_a_job_queued_while_the_device_was_off_runs_when_it_comes_back(
    kit: DeviceKit, restartable: MosquittoBroker, broker_restarted: bool
) -> None:
    """With its session lost too, the notify-next went nowhere: only the start-next on connect finds it."""
    manager = kit.start_manager()
    assert kit.deploy("job-1", kit.publish(kit.package("cls", "1"))).status == "SUCCEEDED"
    assert manager.stop() == 0
    if broker_restarted:
        restartable.restart()  # no persistence: every session and queued message is gone
        wait_for(lambda: kit.cloud.mqtt.is_connected, "the jobs cloud to reconnect")

    published = kit.publish(kit.package("cls", "2", knob=3))
    kit.cloud.create_job("job-offline", kit.deploy_doc(published), [kit.thing])
    assert kit.cloud.execution(kit.thing, "job-offline").status == "QUEUED"
    kit.start_manager()

    job = kit.cloud.wait_terminal(kit.thing, "job-offline")
    assert job.status == "SUCCEEDED", job.status_details
    assert kit.serving() == "cls:2"


def test_a_restart_during_the_rollback_watch_finishes_the_same_job(kit: DeviceKit) -> None:
    """A job interrupted by SIGTERM stays IN_PROGRESS; start-next hands it back and only the watch reruns."""
    manager = kit.start_manager(rollback_window_s=30, rollback_min_requests=1000)
    first = kit.deploy("job-1", kit.publish(kit.package("cls", "1")), rollback_on_failure=False)  # no watch
    assert first.status == "SUCCEEDED"
    kit.cloud.create_job("job-2", kit.deploy_doc(kit.publish(kit.package("cls", "2", knob=3))), [kit.thing])
    kit.cloud.wait_status(kit.thing, "job-2", {"IN_PROGRESS"})
    wait_for(lambda: "watching" in kit.cloud.execution(kit.thing, "job-2").stages, "the rollback watch")
    assert manager.stop() == 0  # in the middle of the 30 s watch
    assert kit.cloud.execution(kit.thing, "job-2").status == "IN_PROGRESS"
    assert kit.state["watch"]["job_id"] == "job-2"

    kit.start_manager(rollback_window_s=0.5)

    job = kit.cloud.wait_terminal(kit.thing, "job-2")
    assert job.status == "SUCCEEDED", job.status_details
    assert job.status_details["previous"] == "cls:1"
    assert job.stages.count("downloading") == 1 and job.stages.count("watching") == 2
    assert kit.serving() == "cls:2" and kit.state["watch"] is None


def test_a_restart_restores_the_same_models_and_aliases_without_the_network(
    kit: DeviceKit, restartable: MosquittoBroker
) -> None:
    manager = kit.start_manager()
    assert kit.deploy("job-1", kit.publish(kit.package("cls", "1"))).status == "SUCCEEDED"
    assert (
        kit.deploy("job-2", kit.publish(kit.package("cls", "2", knob=2)), role="shadow").status == "SUCCEEDED"
    )
    seg = kit.publish(kit.package("seg", "5", task="segmentation"))
    assert kit.deploy("job-3", seg).status == "SUCCEEDED"
    score_before = kit.score()

    assert manager.stop() == 0  # the box reboots: manager and agent go down...
    kit.agent_server.stop()
    kit.cloud.stop()
    restartable.stop()  # ...and the factory network is down when they come back
    kit.agent_server.start()
    assert kit.loaded() == set()

    kit.start_manager()  # ready means restored: /readyz waits for it

    assert kit.loaded() == {"cls:1", "cls:2", "seg:5"}
    aliases = {a.alias: (a.name, a.version, a.shadow_version) for a in kit.agent().list_aliases()}
    assert aliases == {CLS: ("cls", "1", "2"), "defect-seg": ("seg", "5", "")}
    assert kit.serving() == "cls:1" and kit.score() == score_before
    restored = kit.manager.logs()
    assert '"event":"restored"' in restored and '"problems":0' in restored


def test_an_agent_that_restarts_on_its_own_gets_its_models_back(kit: DeviceKit) -> None:
    kit.start_manager(reconcile_interval_s=0.5)
    assert kit.deploy("job-1", kit.publish(kit.package("cls", "1"))).status == "SUCCEEDED"
    kit.agent_server.stop()
    kit.agent_server.start()  # the agent container restarted; the manager did not

    wait_for(lambda: kit.alias() is not None, "the manager to restore the alias")
    assert kit.serving() == "cls:1"
    (event,) = kit.events("alias_restored")
    assert event.detail["alias"] == CLS and event.level == "warning"
