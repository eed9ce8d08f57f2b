"""state.json: atomic writes, round trips, corrupt files set aside, bounded job history."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from edgeinspect.core.errors import StorageError
from edgeinspect_model_manager.state import (
    AliasState,
    DeviceState,
    InstalledVersion,
    JobRecord,
    PreviousTarget,
    StateFile,
    Watch,
)


def sample_state(tmp_path: Path) -> DeviceState:
    state = DeviceState()
    for version in ("9", "10", "2"):
        state.versions[f"cls:{version}"] = InstalledVersion(
            name="cls", version=version, path=str(tmp_path / "cls" / version), task="classification",
            package_sha256="ab" * 32, installed_at=1.0, job_id=f"job-{version}",
        )  # fmt: skip
    state.aliases["defect-cls"] = AliasState(name="cls", version="10", shadow="9")
    state.watch = Watch(job_id="job-10", alias="defect-cls", name="cls", version="10",
                        previous=PreviousTarget(name="cls", version="9"), started_at=5.0)  # fmt: skip
    state.record_job(JobRecord(job_id="job-10", status="SUCCEEDED", model="cls", version="10"), keep=5)
    return state


def test_state_round_trips_through_the_file(tmp_path: Path) -> None:
    file = StateFile(tmp_path / "state.json")
    state = sample_state(tmp_path)
    file.save(state)
    assert file.load() == state


def test_a_missing_file_is_an_empty_state(tmp_path: Path) -> None:
    assert StateFile(tmp_path / "state.json").load() == DeviceState()


def test_saving_leaves_no_temp_files_and_replaces_the_old_state(tmp_path: Path) -> None:
    file = StateFile(tmp_path / "state.json")
    file.save(DeviceState())
    file.save(sample_state(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
    assert json.loads((tmp_path / "state.json").read_text())["aliases"]["defect-cls"]["version"] == "10"


def test_a_corrupt_file_is_kept_aside_and_the_device_starts_empty(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"schema_version": 1, "versions": ')
    assert StateFile(path).load() == DeviceState()
    kept = [p.name for p in tmp_path.iterdir()]
    assert not path.exists() and len(kept) == 1 and kept[0].startswith("state.json.corrupt-")


def test_an_unknown_schema_version_is_not_guessed_at(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"schema_version": 99}')
    assert StateFile(path).load() == DeviceState()


def test_a_failed_save_raises_and_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = StateFile(tmp_path / "state.json")
    file.save(sample_state(tmp_path))
    before = file.path.read_bytes()

    def disk_full(*_args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)  # the write fails where a full disk makes it fail
    with pytest.raises(StorageError, match="previous state file is unchanged"):
        file.save(DeviceState())
    monkeypatch.undo()
    assert file.path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_versions_of_a_model_are_ordered_as_versions(tmp_path: Path) -> None:
    assert [v.version for v in sample_state(tmp_path).versions_of("cls")] == ["2", "9", "10"]


def test_aliases_using_counts_primaries_and_shadows(tmp_path: Path) -> None:
    state = sample_state(tmp_path)
    assert state.aliases_using("cls", "10") == ["defect-cls"]
    assert state.aliases_using("cls", "9") == ["defect-cls"]
    assert state.aliases_using("cls", "2") == []


def test_job_history_keeps_unreported_jobs_and_the_newest_reported_ones() -> None:
    state = DeviceState()
    for i in range(6):
        state.record_job(JobRecord(job_id=f"j{i}", status="SUCCEEDED", reported=True, updated_at=float(i)), 3)
    state.record_job(JobRecord(job_id="pending", status="FAILED", reported=False, updated_at=0.5), keep=3)
    assert [r.job_id for r in state.jobs] == ["pending", "j3", "j4", "j5"]
    state.record_job(JobRecord(job_id="pending", status="FAILED", reported=True, updated_at=9.0), keep=3)
    assert [r.job_id for r in state.jobs] == ["j4", "j5", "pending"]
    last = state.last_job()
    assert last is not None and last.job_id == "pending"
