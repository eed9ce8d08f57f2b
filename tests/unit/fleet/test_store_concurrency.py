"""What the service's scaling relies on, on SQLite and PostgreSQL: progress updates from several
connections at once without the job lock, a forced cancel racing them, batched state writes, and the
page's overview read in a few queries."""

from __future__ import annotations

import threading

import pytest
from edgeinspect_cloud.fleet import FleetStore, JobsRequestRejected, Rollout
from edgeinspect_cloud.fleet.overview import fleet_overview

DOC = {"operation": "deploy_model", "model": {"name": "defect-cls", "version": "7"}}
THINGS = tuple(f"edge-{i}" for i in range(6))
UPDATES = 15


def _state(thing: str, version: str) -> dict[str, object]:
    return {"thing": thing, "groups": ["line-3", "plant-1"], "state": "idle",
            "aliases": {"defect-cls": {"name": "cls", "version": version, "shadow": ""}},
            "models": [{"name": "cls", "version": version, "role": "primary", "loaded": True}]}  # fmt: skip


def test_progress_updates_from_several_connections_keep_every_version(store: FleetStore) -> None:
    store.devices.add_to_group("line-3", THINGS)
    store.jobs.create_job("j1", DOC, ["line-3"])
    for thing in THINGS:
        assert store.jobs.start_next(thing) is not None
    others = [FleetStore.open(store.db.url) for _ in range(3)]
    errors: list[BaseException] = []

    def device(thing: str, worker: FleetStore) -> None:
        version = 2
        try:
            for step in range(UPDATES):
                updated = worker.jobs.update(
                    thing, "j1", "IN_PROGRESS", {"stage": f"s{step}"}, expected_version=version
                )
                version = updated.version_number
            worker.jobs.update(thing, "j1", "SUCCEEDED", {"stage": "done"}, expected_version=version)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=device, args=(t, others[i % 3])) for i, t in enumerate(THINGS)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        for other in others:
            other.close()
    assert not errors, errors
    executions = store.jobs.executions("j1")
    assert {(e.status, e.version_number) for e in executions} == {("SUCCEEDED", 2 + UPDATES + 1)}
    assert store.jobs.get_job("j1").status == "COMPLETED"


def test_a_progress_update_after_a_forced_cancel_is_refused_as_gone(store: FleetStore) -> None:
    store.devices.add_to_group("line-3", THINGS[:1])
    store.jobs.create_job("j1", DOC, ["line-3"])
    store.jobs.start_next(THINGS[0])
    store.jobs.update(THINGS[0], "j1", "IN_PROGRESS", {"stage": "downloading"}, expected_version=2)
    store.jobs.cancel_job("j1", "bad model", force=True)
    with pytest.raises(JobsRequestRejected) as refused:
        store.jobs.update(THINGS[0], "j1", "IN_PROGRESS", {"stage": "verifying"}, expected_version=3)
    assert refused.value.code == "InvalidStateTransition"
    assert refused.value.execution_state is not None and refused.value.execution_state["status"] == "CANCELED"


def test_states_and_last_seen_are_written_in_batches(store: FleetStore) -> None:
    store.devices.record_states({t: (_state(t, "7"), 100.0) for t in THINGS})
    store.devices.seen_many(dict.fromkeys(THINGS[:2], 200.0))
    devices = {d.thing: d for d in store.devices.devices()}
    assert set(devices) == set(THINGS)
    assert devices[THINGS[0]].last_seen == 200.0 and devices[THINGS[5]].last_seen == 100.0
    assert store.devices.groups() == {"line-3": sorted(THINGS), "plant-1": sorted(THINGS)}


def test_the_overview_counts_versions_groups_and_each_waves_progress(store: FleetStore) -> None:
    store.devices.record_states({t: (_state(t, "7" if i else "6"), 100.0) for i, t in enumerate(THINGS)})
    store.jobs.create_job("j1", DOC, ["line-3"], Rollout(wave_pct=(20, 100)))
    first = [e.thing for e in store.jobs.executions("j1") if e.wave == 0]
    store.jobs.start_next(first[0])
    body = fleet_overview(store, group="plant-1", limit=2)
    assert body["counts"]["devices"] == 6 and body["counts"]["rolloutsInProgress"] == 1
    assert body["versions"] == {"cls:7": 5, "cls:6": 1}
    assert [g["name"] for g in body["groups"]] == ["line-3", "plant-1"]
    waves = body["rollouts"][0]["waves"]
    assert [(w["wave"], w["size"], w["IN_PROGRESS"], w["QUEUED"], w["SCHEDULED"]) for w in waves] == [
        (1, 2, 1, 1, 0),
        (2, 4, 0, 0, 4),
    ]
    assert (body["devicesShown"], body["devicesMatching"]) == (2, 6)
