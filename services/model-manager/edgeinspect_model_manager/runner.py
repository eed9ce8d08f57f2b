"""The job thread: ask for the next job, run it, report it, repeat; never miss one.

When it asks (``start-next``): after every (re)connect, on every ``notify-next``, right after a job
ends, and every ``EI_JOBS_POLL_INTERVAL_S`` while idle. Between jobs it also checks, every
``EI_RECONCILE_INTERVAL_S``, that the agent still serves what state.json says (an agent that restarted
on its own comes back empty) and restores what is missing, and writes the threshold overrides to Redis
again (a Redis that restarted empty). ``start-next`` returns QUEUED *and*
IN_PROGRESS executions, so a job that arrived while the device was off, or one interrupted by a
reboot, comes back by itself. Jobs run one at a time.

A final status is first written to state.json, then sent; if the broker is unreachable it stays
"unreported" and is sent again before the next ``start-next`` (and whenever the cloud hands the same
job back), so the cloud always learns the outcome, and a finished job is never run twice.

A start-next reply that cannot be read (a job document over the MQTT size or depth limit) is asked
for again with backoff, ``EI_JOBS_UNREADABLE_ATTEMPTS`` times; then the job it carries is found with
``get`` (the pending executions, small summaries) and confirmed with ``{jobId}/get``: the IN_PROGRESS
execution whose description cannot be read either is failed at stage ``validating`` with the reason,
nothing is deployed, and the next job runs.
"""

from __future__ import annotations

import threading
import time

from edgeinspect.core.errors import EdgeInspectError
from edgeinspect.core.ids import IdentifierError, check_job_id, is_valid
from edgeinspect.core.lifecycle import Backoff
from edgeinspect.core.observability import get_logger

from edgeinspect_model_manager.deploy import Deployer
from edgeinspect_model_manager.device import Device
from edgeinspect_model_manager.errors import JobDocumentError, JobInterrupted
from edgeinspect_model_manager.jobdoc import DeployModel, JobOperation, SetThreshold, parse_job_document
from edgeinspect_model_manager.jobs import JobGoneError, JobsChannel, Tracked, UnreadableReply
from edgeinspect_model_manager.outcome import Outcome
from edgeinspect_model_manager.protocol import Execution, Status, status_details
from edgeinspect_model_manager.restore import reconcile
from edgeinspect_model_manager.retention import Retention
from edgeinspect_model_manager.state import JobRecord
from edgeinspect_model_manager.thresholds import apply_threshold, publish_thresholds

log = get_logger(__name__)


class JobRunner:
    """Owns the job thread's loop; the MQTT callbacks only wake it."""

    def __init__(
        self, device: Device, channel: JobsChannel, retention: Retention, stop: threading.Event
    ) -> None:
        self.device = device
        self.channel = channel
        self.retention = retention
        self.stop = stop
        self._wake = threading.Event()

    # ---- callbacks (MQTT dispatcher thread) ------------------------------------------------------

    def on_notify(self, execution: Execution | None) -> None:
        log.info("jobs_notified", job_id=execution.job_id if execution else None)
        self._wake.set()

    def on_connection(self, up: bool) -> None:
        self.device.metrics.mqtt_connected.set(1 if up else 0)
        if up:
            self.device.reporter.reconnected()
            self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    # ---- the loop (job thread) -------------------------------------------------------------------

    def run(self) -> None:
        settings = self.device.settings
        backoff = Backoff(initial=1.0, maximum=settings.jobs_poll_interval_s)
        next_poll = 0.0
        unreadable = 0
        self._wake.set()
        while not self.stop.is_set():
            woken = self._sleep(min(settings.jobs_poll_interval_s, settings.reconcile_interval_s))
            self._wake.clear()
            if self.stop.is_set():
                break
            reconcile(self.device)  # between jobs only: a job's own alias moves are never raced
            publish_thresholds(self.device)
            if not (woken or time.monotonic() >= next_poll) or not self.channel.mqtt.is_connected:
                continue
            next_poll = time.monotonic() + settings.jobs_poll_interval_s
            self.device.reporter.flush()
            try:
                self._flush_unreported()
                execution = self.channel.start_next()
            except UnreadableReply as exc:
                unreadable += 1
                log.warning("start_next_unreadable", error=str(exc), attempt=unreadable)
                if unreadable >= settings.jobs_unreadable_attempts:
                    unreadable = 0
                    if self._fail_unreadable(exc.message):
                        backoff.reset()
                        self._wake.set()
                        continue
                delay = backoff.next_delay()
                if not self.stop.wait(delay):
                    self._wake.set()
                continue
            except EdgeInspectError as exc:
                delay = backoff.next_delay()
                log.warning("start_next_failed", error=str(exc), retry_in_s=round(delay, 2))
                if not self.stop.wait(delay):
                    self._wake.set()
                continue
            backoff.reset()
            unreadable = 0
            if execution is None:
                log.info("jobs_none_pending")
                continue
            try:
                self.handle(execution)
            except JobInterrupted as exc:
                log.info("job_interrupted", job_id=execution.job_id, reason=str(exc))
                return
            self._wake.set()  # there may be another one queued

    def _sleep(self, seconds: float) -> bool:
        """Until woken (True), stopped or ``seconds`` pass; the stop event is checked twice a second."""
        deadline = time.monotonic() + seconds
        while not self.stop.is_set() and (remaining := deadline - time.monotonic()) > 0:
            if self._wake.wait(min(remaining, 0.5)):
                return True
        return False

    def handle(self, execution: Execution) -> None:
        """Run one execution (or re-report it, when this device already finished it)."""
        tracked = Tracked.of(execution)
        known = self.device.state.job(execution.job_id)
        if known is not None and known.status != "IN_PROGRESS":
            log.info("job_already_done", job_id=known.job_id, status=known.status)
            self._send_final(tracked, known)
            return
        op, failure = _parse(execution)
        record = _record(execution, op)
        self._save(record)
        log.info(
            "job_started",
            job_id=record.job_id,
            operation=record.operation,
            model=record.model,
            version=record.version,
        )
        outcome = failure or self._run(tracked, record, op)
        self._finish(tracked, record, outcome)

    def _run(self, tracked: Tracked, record: JobRecord, op: JobOperation | None) -> Outcome:
        self.device.publish_state("deploying")

        def progress(stage: str, details: dict[str, str]) -> None:
            self._progress(tracked, record, stage, details)

        if isinstance(op, DeployModel):
            return Deployer(self.device, self.retention, self.stop, progress).deploy(record.job_id, op)
        if isinstance(op, SetThreshold):
            progress("applying", {})
            try:
                return apply_threshold(self.device, record.job_id, op)
            except EdgeInspectError as exc:
                return Outcome.failed(exc.message, stage="applying")
        assert op is not None
        progress("removing", {})
        try:
            return self.retention.remove(op)
        except EdgeInspectError as exc:
            return Outcome.failed(exc.message, stage="removing")

    def _fail_unreadable(self, reason: str) -> bool:
        """Fail the IN_PROGRESS execution whose document cannot be read; True if one was failed.

        Only an execution this device has not finished, and whose own description is unreadable too,
        is failed: a stray bad message on a reply topic must never fail a healthy job.
        """
        try:
            pending = self.channel.pending()
        except EdgeInspectError as exc:
            log.warning("pending_jobs_unavailable", error=str(exc))
            return False
        failed = False
        for entry in pending:
            known = self.device.state.job(entry.job_id)
            if entry.status != "IN_PROGRESS" or (known is not None and known.status != "IN_PROGRESS"):
                continue
            try:
                self.channel.describe(entry.job_id, entry.execution_number)
                continue
            except UnreadableReply as exc:
                why = exc.message
            except EdgeInspectError as exc:
                log.warning("job_describe_failed", job_id=entry.job_id[:64], error=str(exc))
                continue
            execution = Execution(
                entry.job_id, entry.status, None, entry.version_number, entry.execution_number
            )
            record = _record(execution, None)
            self._save(record)
            log.error("job_unreadable", job_id=entry.job_id[:64], start_next=reason, describe=why)
            outcome = Outcome.failed(f"cannot read the job document: {why}", stage="validating")
            self._finish(Tracked.of(execution), record, outcome)
            failed = True
        return failed

    def _progress(self, tracked: Tracked, record: JobRecord, stage: str, details: dict[str, str]) -> None:
        """IN_PROGRESS with the stage; a lost update is only logged, a canceled job aborts the run."""
        self.device.reporter.job_status(record.job_id, "IN_PROGRESS", record.model, record.version, "", stage)
        payload = status_details(stage=stage, model=record.model, version=record.version, **details)
        try:
            self.channel.update(tracked, "IN_PROGRESS", payload)
        except JobGoneError:
            raise
        except EdgeInspectError as exc:
            log.warning("progress_not_reported", job_id=record.job_id, stage=stage, error=str(exc))

    def _finish(self, tracked: Tracked, record: JobRecord, outcome: Outcome) -> None:
        record = record.model_copy(
            update={
                "status": outcome.status,
                "reason": outcome.reason,
                "stage": outcome.details.get("stage", ""),
                "details": outcome.details,
                "updated_at": time.time(),
            }
        )
        self._save(record)
        self.device.metrics.jobs.labels(record.operation or "invalid", record.status).inc()
        self.device.reporter.job_status(
            record.job_id, record.status, record.model, record.version, record.reason, record.stage
        )
        log.info("job_finished", job_id=record.job_id, status=record.status, reason=record.reason)
        self._send_final(tracked, record)
        self.device.publish_state("idle")

    def _send_final(self, tracked: Tracked, record: JobRecord) -> None:
        details = status_details(
            reason=record.reason,
            model=record.model,
            version=record.version,
            **{k: v for k, v in record.details.items() if k not in ("reason", "model", "version")},
        )
        status: Status = "SUCCEEDED" if record.status == "SUCCEEDED" else "FAILED"
        try:
            self.channel.update(tracked, status, details)
        except JobGoneError as exc:
            log.warning("final_status_refused", job_id=record.job_id, error=str(exc))
        except EdgeInspectError as exc:
            if is_valid("job id", record.job_id):
                log.warning(
                    "final_status_not_sent", job_id=record.job_id, error=str(exc), retry="before next job"
                )
                return
            # an id no topic can carry (``#``, ``a/b``) is told once, never retried forever
            log.warning("final_status_not_sent", job_id=record.job_id, error=str(exc), retry="never")
        self._save(record.model_copy(update={"reported": True}))

    def _flush_unreported(self) -> None:
        for record in list(self.device.state.jobs):
            if not record.reported and record.status != "IN_PROGRESS":
                self._send_final(Tracked(record.job_id, None, record.execution_number), record)

    def _save(self, record: JobRecord) -> None:
        try:
            with self.device.change() as state:
                state.record_job(record, self.device.settings.jobs_history)
        except EdgeInspectError as exc:  # a full disk must not stop the report itself
            log.error("job_record_not_saved", job_id=record.job_id, error=str(exc))


def _parse(execution: Execution) -> tuple[JobOperation | None, Outcome | None]:
    """The job's operation, or the FAILED outcome that says why it cannot run.

    Nothing in a job (its id, its document) may raise out of here: an exception would end the job
    thread, and since the job stays IN_PROGRESS in the cloud, every restart would crash on it again.
    """
    try:
        check_job_id(execution.job_id)
        return parse_job_document(execution.document), None
    except IdentifierError as exc:
        return None, Outcome.failed(f"{exc.message} ({exc.hint})", stage="validating")
    except JobDocumentError as exc:
        return None, Outcome.failed(exc.message, stage="validating")
    except Exception as exc:  # a parser bug must still fail this job, not crash-loop the device
        log.exception("job_document_crashed", job_id=execution.job_id[:64])
        return None, Outcome.failed(f"cannot read the job document: {type(exc).__name__}", stage="validating")


def _record(execution: Execution, op: JobOperation | None) -> JobRecord:
    if isinstance(op, DeployModel):
        operation, model, version = "deploy_model", op.name, op.version
    elif isinstance(op, SetThreshold):
        operation, model, version = "set_threshold", op.name, op.version or ""
    elif op is not None:
        operation, model, version = "remove_model", op.name, op.version or ""
    else:
        operation, model, version = "", "", ""
    return JobRecord(
        job_id=execution.job_id,
        operation=operation,
        model=model,
        version=version,
        execution_number=execution.execution_number,
    )
