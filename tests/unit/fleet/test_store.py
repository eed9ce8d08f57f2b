"""The fleet store's rules (AWS IoT Jobs execution semantics, waves, cancel), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from edgeinspect_cloud.fleet import FleetError, FleetStore, JobNotFoundError, JobsRequestRejected, Rollout

DOC = {"operation": "deploy_model", "model": {"name": "defect-cls", "version": "7"}}


def _line(store: FleetStore, group: str = "line-3", things: tuple[str, ...] = ("edge-1", "edge-2")) -> None:
    store.devices.add_to_group(group, things)


def test_job_for_a_group_queues_one_execution_per_thing_and_notifies_each(store: FleetStore) -> None:
    _line(store)
    job = store.jobs.create_job("j1", DOC, ["line-3"])
    assert job.status == "IN_PROGRESS"
    executions = store.jobs.executions("j1")
    assert [(e.thing, e.status, e.version_number, e.execution_number) for e in executions] == [
        ("edge-1", "QUEUED", 1, 1),
        ("edge-2", "QUEUED", 1, 1),
    ]
    assert store.outbox.pending().things == ["edge-1", "edge-2"]


def test_start_next_claims_the_oldest_queued_job_and_returns_an_in_progress_one_again(
    store: FleetStore,
) -> None:
    _line(store)
    store.jobs.create_job("j1", DOC, ["line-3"])
    store.jobs.create_job("j2", DOC, ["thing:edge-1"])
    started = store.jobs.start_next("edge-1", {"stage": "download"})
    assert started is not None
    assert (started.job_id, started.status, started.version_number) == ("j1", "IN_PROGRESS", 2)
    assert started.status_details == {"stage": "download"}
    again = store.jobs.start_next("edge-1")
    assert again is not None and (again.job_id, again.version_number) == ("j1", 2)
    in_progress, queued = store.jobs.pending("edge-1")
    assert [e.job_id for e in in_progress] == ["j1"]
    assert [e.job_id for e in queued] == ["j2"]


def test_start_next_with_nothing_pending_returns_none(store: FleetStore) -> None:
    assert store.jobs.start_next("edge-9") is None


def test_update_checks_the_expected_version_and_increments_it(store: FleetStore) -> None:
    _line(store)
    store.jobs.create_job("j1", DOC, ["line-3"])
    store.jobs.start_next("edge-1")
    with pytest.raises(JobsRequestRejected) as stale:
        store.jobs.update("edge-1", "j1", "IN_PROGRESS", {"stage": "verify"}, expected_version=1)
    assert stale.value.code == "VersionMismatch"
    assert stale.value.execution_state == {"status": "IN_PROGRESS", "statusDetails": {}, "versionNumber": 2}
    updated = store.jobs.update("edge-1", "j1", "IN_PROGRESS", {"stage": "verify"}, expected_version=2)
    assert (updated.version_number, updated.status_details) == (3, {"stage": "verify"})
    kept = store.jobs.update("edge-1", "j1", "IN_PROGRESS")
    assert kept.status_details == {"stage": "verify"}  # no statusDetails: unchanged (AWS)


def test_a_terminal_execution_accepts_no_further_update(store: FleetStore) -> None:
    _line(store)
    store.jobs.create_job("j1", DOC, ["line-3"])
    store.jobs.update("edge-1", "j1", "SUCCEEDED", {"detail": "done"})
    with pytest.raises(JobsRequestRejected) as again:
        store.jobs.update("edge-1", "j1", "FAILED")
    assert again.value.code == "InvalidStateTransition"
    assert again.value.execution_state is not None and again.value.execution_state["status"] == "SUCCEEDED"


@pytest.mark.parametrize("status", ["QUEUED", "CANCELED", "TIMED_OUT", "bogus"])
def test_a_device_cannot_set_statuses_reserved_to_the_service(store: FleetStore, status: str) -> None:
    _line(store)
    store.jobs.create_job("j1", DOC, ["line-3"])
    with pytest.raises(JobsRequestRejected) as refused:
        store.jobs.update("edge-1", "j1", status)
    assert refused.value.code == "InvalidRequest"


def test_unknown_job_or_execution_is_resource_not_found(store: FleetStore) -> None:
    _line(store)
    store.jobs.create_job("j1", DOC, ["thing:edge-1"])
    for thing, job in (("edge-1", "nope"), ("edge-2", "j1")):
        with pytest.raises(JobsRequestRejected) as missing:
            store.jobs.update(thing, job, "IN_PROGRESS")
        assert missing.value.code == "ResourceNotFound"
    with pytest.raises(JobsRequestRejected):
        store.jobs.describe("edge-1", "j1", execution_number=2)
    with pytest.raises(JobNotFoundError):
        store.jobs.get_job("nope")


def test_job_completes_when_every_execution_ended(store: FleetStore) -> None:
    _line(store)
    store.jobs.create_job("j1", DOC, ["line-3"])
    store.jobs.update("edge-1", "j1", "SUCCEEDED")
    assert store.jobs.get_job("j1").status == "IN_PROGRESS"
    store.jobs.update("edge-2", "j1", "FAILED", {"reason": "sha256 mismatch"})
    job = store.jobs.get_job("j1")
    assert job.status == "COMPLETED"
    assert job.completed_at is not None


def test_waves_release_the_next_batch_only_after_the_previous_one_ended(store: FleetStore) -> None:
    _line(store, things=("edge-1", "edge-2", "edge-3", "edge-4"))
    store.jobs.create_job("j1", DOC, ["line-3"], Rollout(waves=2, abort_threshold_pct=50))
    waves = {e.thing: (e.wave, e.status) for e in store.jobs.executions("j1")}
    assert waves == {"edge-1": (0, "QUEUED"), "edge-2": (0, "QUEUED"), "edge-3": (1, "SCHEDULED"),
                     "edge-4": (1, "SCHEDULED")}  # fmt: skip
    assert store.jobs.start_next("edge-3") is None  # a scheduled execution is invisible to the device
    store.outbox.ack(store.outbox.pending().ids)
    store.jobs.update("edge-1", "j1", "SUCCEEDED")
    store.jobs.update("edge-2", "j1", "FAILED")  # 50% failed: not more than the threshold
    assert {e.thing: e.status for e in store.jobs.executions("j1")}["edge-3"] == "QUEUED"
    assert store.jobs.get_job("j1").released_wave == 1
    assert set(store.outbox.pending().things) == {"edge-1", "edge-2", "edge-3", "edge-4"}


def test_a_wave_with_too_many_failures_aborts_the_rollout(store: FleetStore) -> None:
    _line(store, things=("edge-1", "edge-2", "edge-3", "edge-4"))
    store.jobs.create_job("j1", DOC, ["line-3"], Rollout(waves=2, abort_threshold_pct=50))
    store.jobs.update("edge-1", "j1", "FAILED")
    assert store.jobs.get_job("j1").status == "IN_PROGRESS"
    store.jobs.update("edge-2", "j1", "REJECTED")
    job = store.jobs.get_job("j1")
    assert job.status == "CANCELED"
    assert "2 of 2 executions of wave 1 failed" in job.reason
    assert {e.thing: e.status for e in store.jobs.executions("j1")} == {
        "edge-1": "FAILED", "edge-2": "REJECTED", "edge-3": "CANCELED", "edge-4": "CANCELED",
    }  # fmt: skip


def test_abort_does_not_wait_for_the_rest_of_the_wave(store: FleetStore) -> None:
    _line(store, things=("a", "b", "c", "d", "e"))
    store.jobs.create_job("j1", DOC, ["line-3"], Rollout(waves=2, abort_threshold_pct=0))
    store.jobs.start_next("b")
    store.jobs.update("a", "j1", "FAILED")
    statuses = {e.thing: e.status for e in store.jobs.executions("j1")}
    assert statuses == {"a": "FAILED", "b": "IN_PROGRESS", "c": "CANCELED", "d": "CANCELED", "e": "CANCELED"}
    assert store.jobs.get_job("j1").status == "CANCELED"
    store.jobs.update("b", "j1", "SUCCEEDED")  # a running device may still finish
    assert store.jobs.get_job("j1").completed_at is not None


def test_cancel_cancels_queued_executions_and_with_force_running_ones(store: FleetStore) -> None:
    _line(store)
    store.jobs.create_job("j1", DOC, ["line-3"])
    store.jobs.start_next("edge-1")
    job = store.jobs.cancel_job("j1", "wrong model")
    assert (job.status, job.reason) == ("CANCELED", "wrong model")
    assert {e.thing: e.status for e in store.jobs.executions("j1")} == {"edge-1": "IN_PROGRESS",
                                                                       "edge-2": "CANCELED"}  # fmt: skip
    store.jobs.create_job("j2", DOC, ["line-3"])
    store.jobs.start_next("edge-2")
    store.jobs.cancel_job("j2", force=True)
    with pytest.raises(JobsRequestRejected) as gone:
        store.jobs.update("edge-2", "j2", "SUCCEEDED")
    assert gone.value.code == "InvalidStateTransition"


def test_job_ids_are_unique_and_targets_must_name_something(store: FleetStore) -> None:
    _line(store)
    store.jobs.create_job("j1", DOC, ["line-3"])
    with pytest.raises(FleetError, match="exists already"):
        store.jobs.create_job("j1", DOC, ["line-3"])
    with pytest.raises(FleetError, match="neither a thing group"):
        store.jobs.create_job("j2", DOC, ["line-9"])
    with pytest.raises(FleetError, match="invalid job id"):
        store.jobs.create_job("bad id", DOC, ["line-3"])
    assert store.jobs.create_job("j3", DOC, ["thing:edge-7"]).targets == ["thing:edge-7"]


def test_outbox_rows_are_deleted_only_once_acknowledged(store: FleetStore) -> None:
    _line(store)
    store.jobs.create_job("j1", DOC, ["line-3"])
    batch = store.outbox.pending()
    assert store.outbox.pending() == batch
    store.outbox.ack(batch.ids)
    assert store.outbox.pending().ids == []


def test_device_state_registers_the_thing_and_its_reported_groups(store: FleetStore) -> None:
    state = {"thing": "edge-5", "groups": ["line-4"], "models": [{"name": "defect-cls", "version": "7",
             "role": "primary"}]}  # fmt: skip
    store.devices.record_state("edge-5", state, at=1000.0)
    store.devices.seen("edge-5", at=1005.0)
    device = store.devices.device("edge-5")
    assert device is not None
    assert (device.groups, device.last_seen, device.state_at) == (["line-4"], 1005.0, 1000.0)
    assert device.loaded_versions() == ["defect-cls:7 (primary)"]
    assert store.devices.groups() == {"line-4": ["edge-5"]}
    assert store.devices.remove_from_group("line-4", ["edge-5"]) == ["edge-5"]


def test_list_jobs_newest_first_and_by_status(store: FleetStore) -> None:
    _line(store)
    store.jobs.create_job("j1", DOC, ["line-3"])
    store.jobs.create_job("j2", DOC, ["line-3"])
    store.jobs.cancel_job("j1")
    assert [j.job_id for j in store.jobs.list_jobs()] == ["j2", "j1"]
    assert [j.job_id for j in store.jobs.list_jobs(status="CANCELED")] == ["j1"]
