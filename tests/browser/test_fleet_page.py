"""The fleet page in headless Chromium: a few hundred devices, a rollout in its second wave.

The store is filled through the same calls the fleet service makes (retained state documents, a
job created in waves, devices claiming and finishing executions), then the page is served by the
fleet service's own app and read like a person would: summary, per-wave progress, groups, devices.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from edgeinspect.core.observability import Health
from edgeinspect_cloud.fleet import FleetStore, Rollout
from edgeinspect_cloud.fleet.web import WebServer, create_fleet_app
from prometheus_client import CollectorRegistry

from tests.fixtures.servers import LOOPBACK, free_port

DEVICES = 300
DOC = {"operation": "deploy_model", "model": {"name": "defect-cls", "version": "8", "url": "s3://m/8.tar.gz",
       "sha256": "ab" * 32}}  # fmt: skip


def state(thing: str, groups: list[str], version: str) -> dict[str, Any]:
    return {
        "thing": thing, "groups": groups, "state": "idle", "agent": "ok",
        "models": [{"name": "defect-cls", "version": version, "aliases": ["defect-cls"], "role": "primary",
                    "loaded": True}],
        "aliases": {"defect-cls": {"name": "defect-cls", "version": version, "shadow": ""}},
    }  # fmt: skip


def populate(store: FleetStore) -> None:
    """300 devices in 3 plants; a rollout to all in 1/10/50/100% waves, the first wave done, the second
    half-way (one failure), the rest scheduled."""
    things = [f"box-{i:03d}" for i in range(DEVICES)]
    store.devices.record_states(
        {
            t: (state(t, [f"plant-{i % 3}", f"plant-{i % 3}-line-{i % 5}"], "7"), 1.0)
            for i, t in enumerate(things)
        }
    )
    store.devices.seen_many(dict.fromkeys(things, 9e9))
    store.jobs.create_job(
        "deploy-defect-cls-8", DOC, ["plant-0", "plant-1", "plant-2"],
        Rollout(abort_threshold_pct=20, wave_pct=(1, 10, 50, 100)),
    )  # fmt: skip
    waves = {e.thing: e.wave for e in store.jobs.executions("deploy-defect-cls-8")}
    first = [t for t, w in waves.items() if w == 0]
    second = sorted(t for t, w in waves.items() if w == 1)
    for thing in first + second[:15]:
        execution = store.jobs.start_next(thing)
        assert execution is not None
        status = "FAILED" if thing == second[3] else "SUCCEEDED"
        store.jobs.update(thing, execution.job_id, status, {"stage": "done"}, expected_version=2)
        if status == "SUCCEEDED":
            store.devices.record_state(thing, state(thing, store.devices.device(thing).groups, "8"))  # type: ignore[union-attr]
    for thing in second[15:20]:
        store.jobs.start_next(thing)


@pytest.fixture
def fleet_page(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    with FleetStore.open(url) as store:
        populate(store)
    page_store = FleetStore.open(url)
    health = Health()
    server = WebServer(
        create_fleet_app(page_store, health, CollectorRegistry()), LOOPBACK, free_port()
    ).start()
    try:
        yield f"http://{LOOPBACK}:{server.port}"
    finally:
        server.stop()
        page_store.close()


def test_the_fleet_page_shows_devices_groups_versions_and_the_rollouts_waves(
    fleet_page: str, page: Any
) -> None:
    page.goto(fleet_page)
    page.wait_for_selector("body[data-loaded='1']")
    summary = page.locator("#summary").inner_text()
    assert "300" in summary and "Rollouts in progress" in summary
    rollout = page.locator("article[data-job='deploy-defect-cls-8']")
    assert "IN_PROGRESS" in rollout.inner_text() and "wave 2/4" in rollout.inner_text()
    waves = rollout.locator(".wave")
    assert waves.count() == 4
    assert "3 · succeeded 3" in waves.nth(0).inner_text()
    second = waves.nth(1).inner_text()
    assert (
        "27 ·" in second and "succeeded 14" in second and "failed 1" in second and "in_progress 5" in second
    )
    assert "scheduled 120" in waves.nth(2).inner_text()
    assert rollout.locator(".wave >> nth=1 >> .seg-SUCCEEDED").count() == 1
    versions = page.locator("#versions tbody").inner_text()
    assert "defect-cls:7" in versions and "defect-cls:8" in versions
    assert page.locator("#groups tbody tr").count() == 3 + 15
    assert page.locator("#devices tbody tr").count() == DEVICES

    page.select_option("#group-filter", "plant-1")
    page.wait_for_selector("#devices-msg:has-text('100 of 100 shown')")  # no eval: the CSP forbids it
    assert page.locator("#devices tbody tr").count() == 100


def test_the_page_is_served_with_a_strict_content_security_policy(fleet_page: str, page: Any) -> None:
    response = page.goto(fleet_page)
    assert "script-src 'self'" in response.headers["content-security-policy"]
    api = page.request.get(f"{fleet_page}/api/fleet?group=plant-2&limit=10")
    assert api.ok and api.headers["cache-control"] == "no-store"
    body = api.json()
    assert body["devicesShown"] == 10 and body["devicesMatching"] == 100
    assert page.request.get(f"{fleet_page}/api/fleet?limit=0").status == 422
