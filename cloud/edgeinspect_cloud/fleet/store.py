"""Jobs and their per-device executions: what the CLI creates and cancels, and what devices claim and update.

Every change happens in one transaction that first locks the job's row, so the device updates, the
rollout's wave decisions and a cancel from the CLI never interleave on one job, whichever process runs
them. Each change that may alter a thing's next pending execution also writes an outbox row
(:mod:`edgeinspect_cloud.fleet.outbox`), from which the service publishes ``notify-next``.

Execution rules follow AWS IoT Jobs: ``versionNumber`` starts at 1 and grows with every accepted
update; ``expectedVersion`` must match it; a terminal execution accepts no update; the next pending
execution is the oldest ``IN_PROGRESS`` one, else the oldest ``QUEUED`` one.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from edgeinspect.core.observability import get_logger

from edgeinspect_cloud.fleet import outbox
from edgeinspect_cloud.fleet.db import Database, Transaction
from edgeinspect_cloud.fleet.devices import DeviceRegistry
from edgeinspect_cloud.fleet.errors import FleetError, JobNotFoundError, JobsRequestRejected
from edgeinspect_cloud.fleet.records import (
    CANCELED,
    DEVICE_SETTABLE,
    IN_PROGRESS,
    JOB_CANCELED,
    JOB_COMPLETED,
    JOB_IN_PROGRESS,
    JOB_STATUSES,
    QUEUED,
    SCHEDULED,
    TERMINAL,
    Execution,
    Job,
    Rollout,
    check_job_id,
)
from edgeinspect_cloud.fleet.rollout import judge_wave, plan_waves
from edgeinspect_cloud.fleet.targets import resolve_targets

log = get_logger(__name__)

_CLAIM_ATTEMPTS = 20
_NEXT_ORDER = "ORDER BY CASE WHEN status = 'IN_PROGRESS' THEN 0 ELSE 1 END, queued_at, job_id"


class JobStore:
    """Jobs and executions over the fleet database (see the module docstring)."""

    def __init__(self, db: Database, devices: DeviceRegistry) -> None:
        self.db = db
        self.devices = devices
        self._documents: dict[str, dict[str, Any]] = {}

    # ---- jobs (the CLI's side) ---------------------------------------------------------------

    def create_job(
        self,
        job_id: str,
        document: Mapping[str, Any],
        targets: Sequence[str],
        rollout: Rollout | None = None,
        *,
        description: str = "",
        created_by: str = "",
    ) -> Job:
        """Create a job for every thing the targets name; the first wave is queued at once.

        Raises ``FleetError`` for a job id already used, a target that names nothing, or no things.
        """
        check_job_id(job_id)
        rollout = rollout or Rollout()
        now = time.time()
        with self.db.transaction() as tx:
            things = resolve_targets(tx, self.devices, targets)
            waves = plan_waves(things, rollout.waves, rollout.wave_pct)
            inserted = tx.execute(
                "INSERT INTO fleet_jobs (job_id, document, description, targets, status, waves,"
                " abort_threshold_pct, released_wave, created_by, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?) ON CONFLICT (job_id) DO NOTHING",
                (job_id, json.dumps(dict(document)), description, json.dumps(list(targets)), JOB_IN_PROGRESS,
                 len(waves), rollout.abort_threshold_pct, created_by, now, now),
            )  # fmt: skip
            if not inserted:
                raise FleetError(f"a job with id {job_id!r} exists already", hint="choose another --job-id")
            for wave, batch in enumerate(waves):
                for thing in batch:
                    tx.execute(
                        "INSERT INTO fleet_executions (job_id, thing, wave, status, version_number,"
                        " execution_number, queued_at, updated_at) VALUES (?, ?, ?, ?, 1, 1, ?, ?)",
                        (
                            job_id,
                            thing,
                            wave,
                            QUEUED if wave == 0 else SCHEDULED,
                            now if wave == 0 else None,
                            now,
                        ),
                    )
                    if wave == 0:
                        outbox.notify(tx, thing)
            log.info("job_created", job_id=job_id, things=len(things), waves=len(waves))
            return self._job(tx, job_id)

    def get_job(self, job_id: str) -> Job:
        """One job; ``JobNotFoundError`` when there is none."""
        with self.db.transaction() as tx:
            return self._job(tx, job_id)

    def list_jobs(self, status: str | None = None, limit: int = 100) -> list[Job]:
        """Jobs, newest first, optionally only those with ``status``."""
        if status is not None and status not in JOB_STATUSES:
            raise FleetError(f"unknown job status {status!r}", hint=f"one of {', '.join(JOB_STATUSES)}")
        where, params = ("WHERE status = ?", [status]) if status else ("", [])
        with self.db.transaction() as tx:
            rows = tx.query(f"SELECT * FROM fleet_jobs {where} ORDER BY created_at DESC, job_id DESC LIMIT ?",
                            [*params, limit])  # fmt: skip
        return [Job.from_row(row) for row in rows]

    def executions(self, job_id: str | None = None, thing: str | None = None) -> list[Execution]:
        """Executions of a job (by wave, then thing) or of a thing (oldest first)."""
        clauses, params = [], []
        if job_id is not None:
            clauses.append("job_id = ?")
            params.append(job_id)
        if thing is not None:
            clauses.append("thing = ?")
            params.append(thing)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self.db.transaction() as tx:
            rows = tx.query(
                f"SELECT * FROM fleet_executions {where} ORDER BY wave, thing, updated_at", params
            )
        return [Execution.from_row(row) for row in rows]

    def cancel_job(self, job_id: str, reason: str = "", *, force: bool = False) -> Job:
        """Cancel a job: executions not started are canceled; with ``force`` the running ones too.

        A device working on a force-canceled execution learns it from the rejection of its next update.
        Canceling a finished job changes nothing (and says so in the log).
        """
        with self.db.transaction() as tx:
            job = self._lock_job(tx, job_id)
            if job.status != JOB_IN_PROGRESS:
                log.info("job_cancel_ignored", job_id=job_id, status=job.status)
                return job
            statuses = [SCHEDULED, QUEUED, IN_PROGRESS] if force else [SCHEDULED, QUEUED]
            self._cancel(tx, job_id, statuses, reason or "canceled by request", JOB_CANCELED)
            return self._job(tx, job_id)

    def counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """Jobs by status and executions by status (for the service's gauges)."""
        with self.db.transaction() as tx:
            jobs = tx.query("SELECT status, COUNT(*) AS n FROM fleet_jobs GROUP BY status")
            executions = tx.query("SELECT status, COUNT(*) AS n FROM fleet_executions GROUP BY status")
        return {r["status"]: int(r["n"]) for r in jobs}, {r["status"]: int(r["n"]) for r in executions}

    # ---- executions (the device's side) ------------------------------------------------------

    def pending(self, thing: str) -> tuple[list[Execution], list[Execution]]:
        """The thing's IN_PROGRESS and QUEUED executions, oldest first (GetPendingJobExecutions)."""
        with self.db.transaction() as tx:
            rows = tx.query(
                f"SELECT * FROM fleet_executions WHERE thing = ? AND status IN (?, ?) {_NEXT_ORDER}",
                (thing, IN_PROGRESS, QUEUED),
            )
        found = [Execution.from_row(row) for row in rows]
        return [e for e in found if e.status == IN_PROGRESS], [e for e in found if e.status == QUEUED]

    def next_pending(self, thing: str) -> Execution | None:
        """What ``notify-next`` and ``$next/get`` describe: the oldest IN_PROGRESS, else oldest QUEUED."""
        with self.db.transaction() as tx:
            return self._next(tx, thing)

    def document(self, job_id: str) -> dict[str, Any]:
        """The job document sent with an execution (kept once read: a job's document never changes)."""
        cached = self._documents.get(job_id)
        if cached is None:
            cached = self._documents[job_id] = self.get_job(job_id).document
        return dict(cached)

    def start_next(self, thing: str, details: Mapping[str, str] | None = None) -> Execution | None:
        """Claim the next pending execution (StartNextPendingJobExecution); None when nothing is pending.

        An IN_PROGRESS one is returned as it is (the device restarted mid-job and resumes it); a QUEUED
        one moves to IN_PROGRESS with a new ``versionNumber`` and ``statusDetails``.
        """
        with self.db.transaction() as tx:
            for _ in range(_CLAIM_ATTEMPTS):
                found = self._next(tx, thing)
                if found is None or found.status == IN_PROGRESS:
                    return found
                now = time.time()  # no job lock: the claim below is conditional on QUEUED, atomically
                claimed = tx.execute(
                    "UPDATE fleet_executions SET status = ?, status_details = ?, started_at = ?,"
                    " updated_at = ?, version_number = version_number + 1"
                    " WHERE job_id = ? AND thing = ? AND status = ?",
                    (IN_PROGRESS, json.dumps(dict(details or {})), now, now, found.job_id, thing, QUEUED),
                )
                if claimed:  # else canceled (or claimed) in between: take the next one
                    log.info("execution_started", job_id=found.job_id, thing=thing)
                    return self._execution(tx, found.job_id, thing)
            return None

    def describe(self, thing: str, job_id: str, execution_number: int | None = None) -> Execution:
        """One execution (DescribeJobExecution); rejected ``ResourceNotFound`` when there is none."""
        with self.db.transaction() as tx:
            found = self._execution(tx, job_id, thing)
        if (
            found is None
            or found.status == SCHEDULED
            or (execution_number is not None and execution_number != found.execution_number)
        ):
            raise JobsRequestRejected("ResourceNotFound", f"no execution of job {job_id} for {thing}")
        return found

    def update(
        self,
        thing: str,
        job_id: str,
        status: str,
        details: Mapping[str, str] | None = None,
        *,
        expected_version: int | None = None,
        execution_number: int | None = None,
    ) -> Execution:
        """Apply a device's status update (UpdateJobExecution) and advance the rollout.

        Rejections (``JobsRequestRejected``) use AWS's codes: ``InvalidRequest`` for a status a device
        may not set, ``ResourceNotFound``, ``VersionMismatch`` (with the current state), and
        ``InvalidStateTransition`` when the execution already ended (done, failed or canceled).
        """
        if status not in DEVICE_SETTABLE:
            raise JobsRequestRejected(
                "InvalidRequest",
                f"status {status!r} cannot be reported; use one of {sorted(DEVICE_SETTABLE)}",
            )
        if status not in TERMINAL:
            return self._progress(thing, job_id, status, details, expected_version, execution_number)
        with self.db.transaction() as tx:
            self._lock_job(tx, job_id, rejecting=True)  # a terminal update may decide the rollout
            current = self._execution(tx, job_id, thing)
            if current is None or current.status == SCHEDULED:
                raise JobsRequestRejected("ResourceNotFound", f"no execution of job {job_id} for {thing}")
            _check_update(current, expected_version, execution_number)
            now = time.time()
            kept = current.status_details if details is None else dict(details)
            tx.execute(
                "UPDATE fleet_executions SET status = ?, status_details = ?, version_number = ?,"
                " updated_at = ?, started_at = COALESCE(started_at, ?) WHERE job_id = ? AND thing = ?",
                (status, json.dumps(kept), current.version_number + 1, now, now, job_id, thing),
            )
            log.info("execution_finished", job_id=job_id, thing=thing, status=status)
            outbox.notify(tx, thing)
            self._advance(tx, job_id)
            return _replace(current, status, kept, now)

    def _progress(
        self,
        thing: str,
        job_id: str,
        status: str,
        details: Mapping[str, str] | None,
        expected_version: int | None,
        execution_number: int | None,
    ) -> Execution:
        """An IN_PROGRESS update: no rollout decision hangs on it, so it does not take the job's lock.

        The write is conditional on the version and status just read; if a cancel (or another update)
        got in between, the execution is read again and judged again, so the outcome is the same as
        under the lock, without making every device's progress report wait for every other's.
        """
        for _ in range(_CLAIM_ATTEMPTS):
            with self.db.transaction() as tx:
                current = self._execution(tx, job_id, thing)
                if current is None or current.status == SCHEDULED:
                    raise JobsRequestRejected("ResourceNotFound", f"no execution of job {job_id} for {thing}")
                _check_update(current, expected_version, execution_number)
                now = time.time()
                kept = current.status_details if details is None else dict(details)
                changed = tx.execute(
                    "UPDATE fleet_executions SET status = ?, status_details = ?, version_number = ?,"
                    " updated_at = ?, started_at = COALESCE(started_at, ?)"
                    " WHERE job_id = ? AND thing = ? AND version_number = ? AND status = ?",
                    (status, json.dumps(kept), current.version_number + 1, now, now, job_id, thing,
                     current.version_number, current.status),
                )  # fmt: skip
                if changed:
                    return _replace(current, status, kept, now)
        raise JobsRequestRejected("RequestThrottled", f"execution of job {job_id} for {thing} keeps changing")

    # ---- rollout -----------------------------------------------------------------------------

    def _advance(self, tx: Transaction, job_id: str) -> None:
        """Judge the released wave: abort, release the next wave, complete the job, or wait."""
        job = self._job(tx, job_id)
        if job.status != JOB_IN_PROGRESS:
            self._maybe_finish_canceled(tx, job)
            return
        wave = job.released_wave
        rows = tx.query(
            "SELECT status, COUNT(*) AS n FROM fleet_executions WHERE job_id = ? AND wave = ?"
            " GROUP BY status",
            (job_id, wave),
        )
        statuses = [row["status"] for row in rows for _ in range(int(row["n"]))]
        outcome = judge_wave(statuses, wave, job.rollout.waves - 1, job.rollout)
        if outcome.decision == "abort":
            log.warning("rollout_aborted", job_id=job_id, wave=wave + 1, reason=outcome.reason)
            self._cancel(tx, job_id, [SCHEDULED, QUEUED], outcome.reason, JOB_CANCELED)
        elif outcome.decision == "next_wave":
            self._release(tx, job_id, wave + 1)
        elif outcome.decision == "complete":
            self._finish_if_done(tx, job_id, JOB_COMPLETED)

    def _release(self, tx: Transaction, job_id: str, wave: int) -> None:
        now = time.time()
        things = tx.query(
            "SELECT thing FROM fleet_executions WHERE job_id = ? AND wave = ? AND status = ?",
            (job_id, wave, SCHEDULED),
        )
        tx.execute(
            "UPDATE fleet_executions SET status = ?, queued_at = ?, updated_at = ?"
            " WHERE job_id = ? AND wave = ? AND status = ?",
            (QUEUED, now, now, job_id, wave, SCHEDULED),
        )
        tx.execute(
            "UPDATE fleet_jobs SET released_wave = ?, updated_at = ? WHERE job_id = ?", (wave, now, job_id)
        )
        for row in things:
            outbox.notify(tx, row["thing"])
        log.info("wave_released", job_id=job_id, wave=wave + 1, things=len(things))

    def _cancel(
        self, tx: Transaction, job_id: str, statuses: list[str], reason: str, job_status: str
    ) -> None:
        now = time.time()
        marks = ", ".join("?" for _ in statuses)
        things = tx.query(
            f"SELECT thing, status FROM fleet_executions WHERE job_id = ? AND status IN ({marks})",
            [job_id, *statuses],
        )
        tx.execute(
            f"UPDATE fleet_executions SET status = ?, version_number = version_number + 1, updated_at = ?"
            f" WHERE job_id = ? AND status IN ({marks})",
            [CANCELED, now, job_id, *statuses],
        )
        tx.execute(
            "UPDATE fleet_jobs SET status = ?, reason = ?, updated_at = ? WHERE job_id = ?",
            (job_status, reason, now, job_id),
        )
        for row in things:
            if row["status"] != SCHEDULED:
                outbox.notify(tx, row["thing"])
        log.info("job_canceled", job_id=job_id, executions=len(things), reason=reason)
        self._finish_if_done(tx, job_id, job_status)

    def _maybe_finish_canceled(self, tx: Transaction, job: Job) -> None:
        if job.status == JOB_CANCELED and job.completed_at is None:
            self._finish_if_done(tx, job.job_id, JOB_CANCELED)

    def _finish_if_done(self, tx: Transaction, job_id: str, job_status: str) -> None:
        open_ = tx.one(
            "SELECT COUNT(*) AS n FROM fleet_executions WHERE job_id = ? AND status IN (?, ?, ?)",
            (job_id, SCHEDULED, QUEUED, IN_PROGRESS),
        )
        if open_ is not None and int(open_["n"]) == 0:
            now = time.time()
            tx.execute(
                "UPDATE fleet_jobs SET status = ?, completed_at = ?, updated_at = ? WHERE job_id = ?",
                (job_status, now, now, job_id),
            )
            log.info("job_finished", job_id=job_id, status=job_status)

    # ---- reading helpers ---------------------------------------------------------------------

    def _job(self, tx: Transaction, job_id: str) -> Job:
        row = tx.one("SELECT * FROM fleet_jobs WHERE job_id = ?", (job_id,))
        if row is None:
            raise JobNotFoundError(f"no job {job_id!r}", hint="list the jobs with `edgeinspect jobs list`")
        return Job.from_row(row)

    def _lock_job(self, tx: Transaction, job_id: str, *, rejecting: bool = False) -> Job:
        row = tx.lock("fleet_jobs", "job_id", job_id)
        if row is None:
            if rejecting:
                raise JobsRequestRejected("ResourceNotFound", f"no job {job_id!r}")
            raise JobNotFoundError(f"no job {job_id!r}", hint="list the jobs with `edgeinspect jobs list`")
        return Job.from_row(row)

    @staticmethod
    def _execution(tx: Transaction, job_id: str, thing: str) -> Execution | None:
        row = tx.one("SELECT * FROM fleet_executions WHERE job_id = ? AND thing = ?", (job_id, thing))
        return None if row is None else Execution.from_row(row)

    @staticmethod
    def _next(tx: Transaction, thing: str) -> Execution | None:
        row = tx.one(
            f"SELECT * FROM fleet_executions WHERE thing = ? AND status IN (?, ?) {_NEXT_ORDER} LIMIT 1",
            (thing, IN_PROGRESS, QUEUED),
        )
        return None if row is None else Execution.from_row(row)


def _replace(current: Execution, status: str, details: dict[str, str], now: float) -> Execution:
    """The execution as the update just wrote it (no read-back query)."""
    return dataclasses.replace(
        current,
        status=status,
        status_details=details,
        version_number=current.version_number + 1,
        updated_at=now,
        started_at=current.started_at if current.started_at is not None else now,
    )


def _check_update(current: Execution, expected_version: int | None, execution_number: int | None) -> None:
    """AWS's checks before an update is applied, in its order: terminal, execution number, version."""
    state = {
        "status": current.status,
        "statusDetails": current.status_details,
        "versionNumber": current.version_number,
    }
    if current.status in TERMINAL:
        raise JobsRequestRejected(
            "InvalidStateTransition", f"job execution {current.job_id} is already {current.status}", state
        )
    if execution_number is not None and execution_number != current.execution_number:
        raise JobsRequestRejected(
            "ResourceNotFound", f"no execution number {execution_number} of job {current.job_id}", state
        )
    if expected_version is not None and expected_version != current.version_number:
        raise JobsRequestRejected(
            "VersionMismatch",
            f"expected version {expected_version} but the execution is at version {current.version_number}",
            state,
        )
