"""Deployments that succeed: the agent then predicts with the new version; the device reports it."""

from __future__ import annotations

import signal

import httpx

from tests.integration.model_manager.harness import CLS, DeviceKit, wait_for


def test_a_deployment_succeeds_and_changes_what_the_agent_predicts_with(kit: DeviceKit) -> None:
    kit.start_manager()
    first = kit.deploy("job-1", kit.publish(kit.package("cls", "1")))
    assert first.status == "SUCCEEDED", first.status_details
    assert kit.serving() == "cls:1"
    before = kit.score()

    second = kit.deploy("job-2", kit.publish(kit.package("cls", "2", knob=3)))

    assert second.status == "SUCCEEDED", second.status_details
    assert kit.serving() == "cls:2"
    assert kit.score() != before  # the new version's scores, not only its name
    assert second.stages == [
        "downloading",
        "verifying",
        "loading",
        "smoke_testing",
        "swapping",
        "watching",
        "done",
    ]
    assert second.status_details["alias"] == CLS and second.status_details["previous"] == "cls:1"
    assert all(u.accepted for u in second.updates), second.updates
    wait_for(lambda: "cls:1" not in kit.loaded(), "the replaced version to be unloaded after the grace")
    assert kit.version_dirs("cls") == ["1", "2"]  # kept on disk (EI_MAX_VERSIONS=3) for a quick way back
    assert kit.staging() == []
    state = kit.state
    assert state["aliases"][CLS] == {"name": "cls", "version": "2", "shadow": ""}
    assert sorted(state["versions"]) == ["cls:1", "cls:2"] and state["watch"] is None


def test_the_device_reports_jobs_and_its_state_on_events_and_mqtt(kit: DeviceKit) -> None:
    kit.start_manager()
    job = kit.deploy("job-events", kit.publish(kit.package("cls", "4")))
    assert job.status == "SUCCEEDED", job.status_details

    statuses = [(e.detail["status"], e.detail["stage"]) for e in kit.events("job_status")]
    assert statuses[0] == ("IN_PROGRESS", "downloading") and statuses[-1] == ("SUCCEEDED", "done")
    final = kit.events("job_status")[-1].detail
    assert (final["job_id"], final["model"], final["version"], final["reason"]) == (
        "job-events",
        "cls",
        "4",
        "",
    )
    assert any(e.type == "swap" for e in kit.events())

    def idle_state() -> bool:
        states = kit.events("device_state")
        return bool(states) and states[-1].detail["state"] == "idle"

    wait_for(idle_state, "an idle device_state event")
    retained = kit.retained_state()
    assert retained["thing"] == kit.thing and retained["groups"] == ["line-test"]
    assert retained["aliases"] == {CLS: {"name": "cls", "version": "4", "shadow": ""}}
    assert [(m["name"], m["version"], m["role"], m["loaded"]) for m in retained["models"]] == [
        ("cls", "4", "primary", True)
    ]
    assert retained["last_job"]["job_id"] == "job-events" and retained["last_job"]["status"] == "SUCCEEDED"


def test_health_readiness_and_metrics_are_served_and_sigterm_exits_cleanly(kit: DeviceKit) -> None:
    manager = kit.start_manager()
    assert kit.deploy("job-m", kit.publish(kit.package("cls", "1"))).status == "SUCCEEDED"
    assert httpx.get(f"{manager.http_url}/healthz").status_code == 200
    ready = httpx.get(f"{manager.http_url}/readyz").json()
    assert ready == {
        "ready": True,
        "checks": {"state_restored": True, "agent": True, "mqtt_dispatcher": True},
    }
    metrics = httpx.get(f"{manager.http_url}/metrics").text
    assert 'edgeinspect_model_manager_jobs_total{operation="deploy_model",status="SUCCEEDED"} 1.0' in metrics
    assert "edgeinspect_model_manager_mqtt_connected 1.0" in metrics
    assert manager.stop(signal.SIGTERM) == 0
    assert '"event":"model_manager_stopped"' in manager.logs()


def test_a_shadow_deployment_attaches_to_the_alias_without_moving_it(kit: DeviceKit) -> None:
    kit.start_manager()
    assert kit.deploy("job-p", kit.publish(kit.package("cls", "1"))).status == "SUCCEEDED"
    shadow = kit.deploy("job-s", kit.publish(kit.package("cls", "2", knob=2)), role="shadow")
    assert shadow.status == "SUCCEEDED", shadow.status_details
    alias = kit.alias()
    assert alias is not None and (alias.version, alias.shadow_version) == ("1", "2")
    assert kit.serving() == "cls:1"
    assert kit.state["aliases"][CLS] == {"name": "cls", "version": "1", "shadow": "2"}
