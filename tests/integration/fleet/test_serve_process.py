"""``edgeinspect fleet serve`` as a process: health endpoints, a job end to end, graceful SIGTERM."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from edgeinspect.core.lifecycle import wait_until
from edgeinspect_cloud.fleet import FleetStore

from tests.fixtures.mqtt_broker import MosquittoBroker
from tests.fixtures.servers import LOOPBACK, free_port
from tests.helpers.fleet import fleet_env, start_fleet_process
from tests.helpers.jobs_device import JobsDevice

DOC = {"operation": "remove_model", "model": {"name": "surface-cls", "version": "1"}}


def _get(port: int, path: str) -> httpx.Response | None:
    try:
        return httpx.get(f"http://{LOOPBACK}:{port}{path}", timeout=2)
    except httpx.HTTPError:
        return None


def _ready(port: int) -> bool:
    response = _get(port, "/readyz")
    return response is not None and response.status_code == 200


def test_serve_answers_health_runs_a_job_and_stops_on_sigterm(
    tmp_path: Path, mqtt_broker: MosquittoBroker, mqtt_topic_root: str
) -> None:
    db_url = f"sqlite:///{tmp_path / 'fleet.db'}"
    port = free_port()
    env = fleet_env(db_url, mqtt_broker.url, mqtt_topic_root, port, EI_FLEET_GROUPS="line-3=edge-1")
    proc = start_fleet_process(env, tmp_path / "fleet.log")
    try:
        assert wait_until(lambda: _ready(port), 30, interval=0.1), (tmp_path / "fleet.log").read_text()
        ready = _get(port, "/readyz")
        assert ready is not None and ready.json() == {
            "ready": True,
            "checks": {"database": True, "mqtt": True, "mqtt_dispatcher": True},
        }
        with (
            FleetStore.open(db_url) as store,
            JobsDevice(mqtt_broker.url, mqtt_topic_root, "edge-1") as device,
        ):
            assert store.devices.groups() == {"line-3": ["edge-1"]}  # from EI_FLEET_GROUPS
            store.jobs.create_job("remove-1", DOC, ["line-3"])  # the CLI's write; the process notices it
            device.wait_for(lambda: [f.status for f in device.finished] == ["SUCCEEDED"])
            assert wait_until(lambda: store.jobs.get_job("remove-1").status == "COMPLETED", 10)
        metrics = _get(port, "/metrics")
        assert metrics is not None and 'ei_fleet_jobs_requests_total{action="update",outcome="accepted"}' in (
            metrics.text
        )
        healthz = _get(port, "/healthz")
        assert healthz is not None and healthz.status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert "fleet_stopped" in (tmp_path / "fleet.log").read_text()


def test_serve_exits_2_when_the_database_cannot_be_opened(
    tmp_path: Path, mqtt_broker: MosquittoBroker
) -> None:
    env = fleet_env(f"postgresql://nobody@{LOOPBACK}:{free_port()}/x", mqtt_broker.url, "t/none", free_port())
    proc = start_fleet_process(env, tmp_path / "fleet.log")
    try:
        assert proc.wait(timeout=60) == 2
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("fleet serve kept running without a database")
    assert "cannot connect to the PostgreSQL fleet database" in (tmp_path / "fleet.log").read_text()
