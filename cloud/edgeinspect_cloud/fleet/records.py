"""What the fleet store keeps: jobs, per-device executions, devices, with AWS IoT Jobs' names and statuses.

Statuses are AWS's (``QUEUED``, ``IN_PROGRESS``, ``SUCCEEDED``, ``FAILED``, ``REJECTED``, ``TIMED_OUT``,
``REMOVED``, ``CANCELED`` for executions; ``IN_PROGRESS``, ``COMPLETED``, ``CANCELED`` for jobs), plus
one of ours: ``SCHEDULED``, an execution whose wave has not been released yet. A device never sees it.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any

from edgeinspect_cloud.fleet.errors import FleetError

JOB_IN_PROGRESS = "IN_PROGRESS"
JOB_COMPLETED = "COMPLETED"
JOB_CANCELED = "CANCELED"
JOB_STATUSES = (JOB_IN_PROGRESS, JOB_COMPLETED, JOB_CANCELED)

SCHEDULED = "SCHEDULED"
QUEUED = "QUEUED"
IN_PROGRESS = "IN_PROGRESS"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
REJECTED = "REJECTED"
TIMED_OUT = "TIMED_OUT"
REMOVED = "REMOVED"
CANCELED = "CANCELED"

PENDING = frozenset({QUEUED, IN_PROGRESS})
"""What a device may work on (and what start-next / get return)."""
TERMINAL = frozenset({SUCCEEDED, FAILED, REJECTED, TIMED_OUT, REMOVED, CANCELED})
FAILURES = frozenset({FAILED, REJECTED, TIMED_OUT})
"""Outcomes counted against a wave's abort threshold."""
DEVICE_SETTABLE = frozenset({IN_PROGRESS, SUCCEEDED, FAILED, REJECTED})
"""The statuses a device may report in an update (AWS's rule)."""

THING_PATTERN = re.compile(r"^[a-zA-Z0-9:_-]{1,128}$")
JOB_ID_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
GROUP_PATTERN = re.compile(r"^[a-zA-Z0-9:_-]{1,128}$")


def check_thing(name: str) -> str:
    """A valid AWS IoT thing name, or ``FleetError``."""
    if not THING_PATTERN.match(name):
        raise FleetError(f"invalid thing name {name!r}", hint="1-128 characters of a-z A-Z 0-9 : _ -")
    return name


def check_group(name: str) -> str:
    """A valid thing group name, or ``FleetError``."""
    if not GROUP_PATTERN.match(name):
        raise FleetError(f"invalid thing group name {name!r}", hint="1-128 characters of a-z A-Z 0-9 : _ -")
    return name


def check_job_id(job_id: str) -> str:
    """A valid AWS IoT job id, or ``FleetError``."""
    if not JOB_ID_PATTERN.match(job_id):
        raise FleetError(f"invalid job id {job_id!r}", hint="1-64 characters of a-z A-Z 0-9 _ -")
    return job_id


@dataclass(frozen=True)
class Rollout:
    """How a job reaches its things: ``waves`` batches, each released when the previous one finished.

    ``abort_threshold_pct``: stop the rollout (cancel every execution not yet started) as soon as more
    than this percentage of one wave's executions failed. None: never abort.

    ``wave_pct``: cumulative percentages of the things reached by the end of each wave, e.g.
    ``(1, 10, 50, 100)`` (a canary of 1%, then 10%, half, all); it sets ``waves`` to its length.
    Empty: ``waves`` near-equal batches.
    """

    waves: int = 1
    abort_threshold_pct: float | None = None
    wave_pct: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.wave_pct:
            _check_wave_pct(self.wave_pct)
            object.__setattr__(self, "waves", len(self.wave_pct))
        if self.waves < 1:
            raise FleetError(
                f"waves must be at least 1, not {self.waves}", hint="use --waves 1 for all at once"
            )
        pct = self.abort_threshold_pct
        if pct is not None and not 0 <= pct < 100:
            raise FleetError(
                f"abort threshold must be in [0, 100), not {pct}",
                hint="it is the failed percentage of a wave above which the rollout stops",
            )


def _check_wave_pct(pct: tuple[float, ...]) -> None:
    if any(b <= a for a, b in itertools.pairwise(pct)) or pct[0] <= 0 or pct[-1] != 100:
        raise FleetError(
            f"wave percentages must grow strictly from above 0 to 100, not {','.join(f'{p:g}' for p in pct)}",
            hint="give the share of the things reached by the end of each wave, e.g. 1,10,50,100",
        )


def parse_wave_pct(text: str) -> tuple[float, ...]:
    """``"1,10,50,100"`` -> ``(1.0, 10.0, 50.0, 100.0)``; ``FleetError`` for anything else."""
    try:
        pct = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise FleetError(
            f"wave percentages {text!r} are not numbers", hint="e.g. --wave-pct 1,10,50,100"
        ) from exc
    if not pct:
        raise FleetError("no wave percentages given", hint="e.g. --wave-pct 1,10,50,100")
    _check_wave_pct(pct)
    return pct


@dataclass(frozen=True)
class Job:
    """A job: its document, the targets as given, the rollout and how far it got."""

    job_id: str
    document: dict[str, Any]
    targets: list[str]
    status: str
    rollout: Rollout
    released_wave: int
    description: str = ""
    reason: str = ""
    created_by: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0
    completed_at: float | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Job:
        return cls(
            job_id=row["job_id"],
            document=json.loads(row["document"]),
            targets=json.loads(row["targets"]),
            status=row["status"],
            rollout=Rollout(int(row["waves"]), row["abort_threshold_pct"]),
            released_wave=int(row["released_wave"]),
            description=row["description"],
            reason=row["reason"],
            created_by=row["created_by"],
            created_at=float(row["created_at"]),
            updated_at=float(row["updated_at"]),
            completed_at=None if row["completed_at"] is None else float(row["completed_at"]),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "jobId": self.job_id,
            "status": self.status,
            "document": self.document,
            "targets": self.targets,
            "description": self.description,
            "waves": self.rollout.waves,
            "abortThresholdPercentage": self.rollout.abort_threshold_pct,
            "releasedWave": self.released_wave,
            "reason": self.reason,
            "createdBy": self.created_by,
            "createdAt": self.created_at,
            "lastUpdatedAt": self.updated_at,
            "completedAt": self.completed_at,
        }


@dataclass(frozen=True)
class Execution:
    """One thing's execution of one job (AWS's JobExecution), with the wave it belongs to."""

    job_id: str
    thing: str
    wave: int
    status: str
    status_details: dict[str, str]
    version_number: int
    execution_number: int
    queued_at: float | None
    started_at: float | None
    updated_at: float

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Execution:
        return cls(
            job_id=row["job_id"],
            thing=row["thing"],
            wave=int(row["wave"]),
            status=row["status"],
            status_details=json.loads(row["status_details"]),
            version_number=int(row["version_number"]),
            execution_number=int(row["execution_number"]),
            queued_at=None if row["queued_at"] is None else float(row["queued_at"]),
            started_at=None if row["started_at"] is None else float(row["started_at"]),
            updated_at=float(row["updated_at"]),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "jobId": self.job_id,
            "thingName": self.thing,
            "wave": self.wave,
            "status": self.status,
            "statusDetails": self.status_details,
            "versionNumber": self.version_number,
            "executionNumber": self.execution_number,
            "queuedAt": self.queued_at,
            "startedAt": self.started_at,
            "lastUpdatedAt": self.updated_at,
        }


@dataclass(frozen=True)
class Device:
    """A thing as the registry knows it: groups, when it was last heard of, its retained state."""

    thing: str
    groups: list[str] = field(default_factory=list)
    first_seen: float | None = None
    last_seen: float | None = None
    state: dict[str, Any] | None = None
    state_at: float | None = None

    def loaded_versions(self) -> list[str]:
        """``name:version (role)`` for each model the device serves or holds loaded, from its state.

        A version the device reports as on disk but not loaded (``loaded: false``, a standby) is left
        out; ``loaded: null`` (the agent did not answer) is kept, as the device believes it serves it.
        """
        models = (self.state or {}).get("models")
        if not isinstance(models, list):
            return []
        out = []
        for model in models:
            if (
                isinstance(model, dict)
                and "name" in model
                and "version" in model
                and model.get("loaded") is not False
            ):
                role = model.get("role")
                out.append(f"{model['name']}:{model['version']}" + (f" ({role})" if role else ""))
        return out

    def last_job(self) -> str:
        """``jobId STATUS`` of the last job the device reported in its state, or ``-``."""
        last = (self.state or {}).get("last_job")
        if not isinstance(last, dict) or "job_id" not in last:
            return "-"
        return f"{last['job_id']} {last.get('status', '?')}"

    def to_json(self) -> dict[str, Any]:
        return {
            "thingName": self.thing,
            "groups": self.groups,
            "firstSeen": self.first_seen,
            "lastSeen": self.last_seen,
            "models": self.loaded_versions(),
            "lastJob": self.last_job(),
            "state": self.state,
            "stateAt": self.state_at,
        }
