"""A test stand-in for the cloud side of the AWS IoT Jobs MQTT API (docs/jobs-protocol.md), on a real broker.

It plays exactly the part AWS IoT Jobs (or ``edgeinspect fleet serve``) plays for a device: it keeps job
executions per thing, publishes ``notify-next`` when a thing's next pending execution changes, answers
``start-next`` with the next QUEUED or IN_PROGRESS execution (moving it to IN_PROGRESS), and answers
``{jobId}/update`` with ``accepted``/``rejected`` under AWS's rules (``expectedVersion`` ->
``VersionMismatch``, terminal executions -> ``InvalidStateTransition``, statusDetails must be a
string-to-string map within AWS's limits), ``get`` with the pending executions' summaries and
``{jobId}/get`` with one execution. Every update is recorded, so tests can assert on the stages a
device reported. It is deliberately strict: a device that passes against it needs no change for AWS.

    with JobsCloud(mqtt_broker.url, prefix=mqtt_topic_root) as cloud:
        cloud.create_job("deploy-1", {"operation": "deploy_model", ...}, ["press-7"])
        execution = cloud.wait_terminal("press-7", "deploy-1")
        assert execution.status == "SUCCEEDED", execution.status_details
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from edgeinspect.core import topics
from edgeinspect.core.mqtt import MqttClient, TlsOptions

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "REJECTED", "CANCELED", "TIMED_OUT", "REMOVED"})
DEVICE_STATUSES = frozenset({"IN_PROGRESS", "SUCCEEDED", "FAILED", "REJECTED"})
_DETAIL_KEY = re.compile(r"^[a-zA-Z0-9:_-]{1,128}$")


@dataclass
class Update:
    """One ``update`` request as the device sent it, and whether it was accepted."""

    status: str
    status_details: dict[str, str]
    payload: dict[str, Any]
    accepted: bool
    code: str = ""


@dataclass
class JobExecution:
    """A job's execution on one thing, with AWS's fields and every update it received."""

    job_id: str
    thing: str
    document: Any
    execution_number: int
    status: str = "QUEUED"
    status_details: dict[str, str] = field(default_factory=dict)
    version_number: int = 1
    queued_at: int = field(default_factory=lambda: int(time.time()))
    started_at: int | None = None
    last_updated_at: int = field(default_factory=lambda: int(time.time()))
    updates: list[Update] = field(default_factory=list)

    def as_execution(self) -> dict[str, Any]:
        """The ``JobExecution`` object of AWS's MQTT API."""
        body: dict[str, Any] = {
            "jobId": self.job_id,
            "thingName": self.thing,
            "jobDocument": self.document,
            "status": self.status,
            "statusDetails": dict(self.status_details),
            "queuedAt": self.queued_at,
            "lastUpdatedAt": self.last_updated_at,
            "versionNumber": self.version_number,
            "executionNumber": self.execution_number,
        }
        if self.started_at is not None:
            body["startedAt"] = self.started_at
        return body

    def state(self) -> dict[str, Any]:
        """The ``JobExecutionState`` object."""
        return {
            "status": self.status,
            "statusDetails": dict(self.status_details),
            "versionNumber": self.version_number,
        }

    @property
    def stages(self) -> list[str]:
        """The ``stage`` of every accepted update, in order."""
        return [u.status_details.get("stage", "") for u in self.updates if u.accepted]


class JobsCloud:
    """Plays AWS IoT Jobs for any number of things under ``prefix``; see the module docstring."""

    def __init__(
        self, broker_url: str, prefix: str, client_id: str = "", tls: TlsOptions | None = None
    ) -> None:
        self.prefix = prefix
        self.mqtt = MqttClient(broker_url, client_id or f"jobs-cloud-{uuid.uuid4().hex[:8]}", tls=tls)
        self._cond = threading.Condition()
        self._executions: dict[tuple[str, str], JobExecution] = {}
        self._order: list[tuple[str, str]] = []
        self._numbers = 0
        self.start_next_requests: list[tuple[str, dict[str, Any]]] = []

    def __enter__(self) -> JobsCloud:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        self.mqtt.subscribe(topics.jobs_start_next(self.prefix, "+"), self._on_start_next)
        self.mqtt.subscribe(topics.jobs_update(self.prefix, "+", "+"), self._on_update)
        self.mqtt.subscribe(topics.jobs_get_pending(self.prefix, "+"), self._on_get_pending)
        self.mqtt.subscribe(topics.jobs_describe(self.prefix, "+", "+"), self._on_describe)
        self.mqtt.connect(timeout=10)

    def stop(self) -> None:
        self.mqtt.stop()

    # ---- what a test does ------------------------------------------------------------------------

    def create_job(self, job_id: str, document: Any, things: list[str]) -> None:
        """Queue an execution of ``document`` on each thing; notify those whose next job changed."""
        notify = []
        with self._cond:
            for thing in things:
                before = self._next(thing)
                self._numbers += 1
                key = (thing, job_id)
                self._executions[key] = JobExecution(job_id, thing, document, self._numbers)
                self._order.append(key)
                if before is None:
                    notify.append(thing)
        for thing in notify:
            self._notify_next(thing)

    def cancel_job(self, job_id: str) -> None:
        """Cancel every pending execution of the job (the device's later updates are then rejected)."""
        changed = []
        with self._cond:
            for (thing, jid), execution in self._executions.items():
                if jid == job_id and execution.status not in TERMINAL:
                    execution.status = "CANCELED"
                    execution.version_number += 1
                    changed.append(thing)
            self._cond.notify_all()
        for thing in changed:
            self._notify_next(thing)

    def execution(self, thing: str, job_id: str) -> JobExecution:
        with self._cond:
            return self._executions[(thing, job_id)]

    def wait_status(self, thing: str, job_id: str, statuses: set[str], timeout: float = 60.0) -> JobExecution:
        """Block until the execution reaches one of ``statuses``; AssertionError (with its updates) if not."""
        with self._cond:
            done = self._cond.wait_for(
                lambda: self._executions[(thing, job_id)].status in statuses, timeout=timeout
            )
            execution = self._executions[(thing, job_id)]
        assert done, f"job {job_id} on {thing} is {execution.status} after {timeout}s: {execution.updates}"
        return execution

    def wait_terminal(self, thing: str, job_id: str, timeout: float = 60.0) -> JobExecution:
        return self.wait_status(thing, job_id, set(TERMINAL), timeout)

    # ---- the protocol ----------------------------------------------------------------------------

    def _next(self, thing: str) -> JobExecution | None:
        """AWS's order: IN_PROGRESS executions before QUEUED ones, each by queue order."""
        pending = [self._executions[k] for k in self._order if k[0] == thing]
        for status in ("IN_PROGRESS", "QUEUED"):
            for execution in pending:
                if execution.status == status:
                    return execution
        return None

    def _notify_next(self, thing: str) -> None:
        with self._cond:
            nxt = self._next(thing)
            payload: dict[str, Any] = {"timestamp": int(time.time())}
            if nxt is not None:
                payload["execution"] = nxt.as_execution()
        self.mqtt.publish_json(topics.jobs_notify_next(self.prefix, thing), payload, qos=1)

    def _reply(self, request_topic: str, ok: bool, payload: dict[str, Any], token: object) -> None:
        body = {**payload, "timestamp": int(time.time())}
        if token is not None:
            body["clientToken"] = token
        reply = topics.accepted(request_topic) if ok else topics.rejected(request_topic)
        self.mqtt.publish_json(reply, body, qos=1)

    def _on_start_next(self, topic: str, payload: dict[str, Any]) -> None:
        parsed = topics.parse_jobs_topic(self.prefix, topic)
        if parsed is None:
            return
        with self._cond:
            self.start_next_requests.append((parsed.thing, payload))
            nxt = self._next(parsed.thing)
            body: dict[str, Any] = {}
            if nxt is not None:
                if nxt.status == "QUEUED":
                    nxt.status = "IN_PROGRESS"
                    nxt.started_at = int(time.time())
                    nxt.version_number += 1
                    if isinstance(payload.get("statusDetails"), dict):
                        nxt.status_details = dict(payload["statusDetails"])
                body["execution"] = nxt.as_execution()
            self._cond.notify_all()
        self._reply(topic, True, body, payload.get("clientToken"))

    def _on_get_pending(self, topic: str, payload: dict[str, Any]) -> None:
        parsed = topics.parse_jobs_topic(self.prefix, topic)
        if parsed is None or parsed.action != "get" or parsed.reply is not None:
            return
        with self._cond:
            mine = [self._executions[k] for k in self._order if k[0] == parsed.thing]
            body = {
                f"{key}Jobs": [
                    {
                        "jobId": e.job_id,
                        "queuedAt": e.queued_at,
                        "lastUpdatedAt": e.last_updated_at,
                        "versionNumber": e.version_number,
                        "executionNumber": e.execution_number,
                    }
                    for e in mine
                    if e.status == status
                ]
                for key, status in (("inProgress", "IN_PROGRESS"), ("queued", "QUEUED"))
            }
        self._reply(topic, True, body, payload.get("clientToken"))

    def _on_describe(self, topic: str, payload: dict[str, Any]) -> None:
        parsed = topics.parse_jobs_topic(self.prefix, topic)
        if parsed is None or parsed.action != "describe" or parsed.reply is not None or not parsed.job_id:
            return
        with self._cond:
            execution = self._executions.get((parsed.thing, parsed.job_id))
            body = {"execution": execution.as_execution()} if execution is not None else {}
        if execution is not None and payload.get("includeJobDocument") is False:
            body["execution"].pop("jobDocument")
        error = {"code": "ResourceNotFound", "message": f"no execution of {parsed.job_id}"}
        self._reply(topic, execution is not None, body or error, payload.get("clientToken"))

    def _on_update(self, topic: str, payload: dict[str, Any]) -> None:
        parsed = topics.parse_jobs_topic(self.prefix, topic)
        if parsed is None or parsed.action != "update" or parsed.reply is not None or parsed.job_id is None:
            return
        token = payload.get("clientToken")
        error: dict[str, str] | None
        with self._cond:
            execution = self._executions.get((parsed.thing, parsed.job_id))
            if execution is None:
                error = {"code": "ResourceNotFound", "message": f"no execution of {parsed.job_id}"}
                ok = False
            else:
                error = self._check_update(execution, payload)
                ok = error is None
                details = payload.get("statusDetails")
                execution.updates.append(
                    Update(
                        str(payload.get("status")),
                        dict(details) if isinstance(details, dict) else {},
                        payload,
                        ok,
                        error["code"] if error else "",
                    )
                )
                if ok:
                    self._apply(execution, payload)
            terminal = ok and execution is not None and execution.status in TERMINAL
            reply: dict[str, Any] = dict(error or {})
            if execution is not None and (not ok or payload.get("includeJobExecutionState")):
                reply["executionState"] = execution.state()
            self._cond.notify_all()
        self._reply(topic, ok, reply, token)
        if terminal:
            self._notify_next(parsed.thing)

    @staticmethod
    def _check_update(execution: JobExecution, payload: dict[str, Any]) -> dict[str, str] | None:
        status = payload.get("status")
        if status not in DEVICE_STATUSES:
            return {"code": "InvalidRequest", "message": f"status {status!r} is not one a device may set"}
        details = payload.get("statusDetails", {})
        if not isinstance(details, dict) or not all(
            isinstance(k, str) and _DETAIL_KEY.match(k) and isinstance(v, str) and 0 < len(v) <= 1024
            for k, v in details.items()
        ):
            return {
                "code": "InvalidRequest",
                "message": f"statusDetails must map keys to strings: {details!r}",
            }
        if execution.status in TERMINAL:
            return {"code": "InvalidStateTransition", "message": f"the execution is {execution.status}"}
        expected = payload.get("expectedVersion")
        if expected is not None and expected != execution.version_number:
            return {
                "code": "VersionMismatch",
                "message": f"expected version {expected}, the execution is at {execution.version_number}",
            }
        return None

    @staticmethod
    def _apply(execution: JobExecution, payload: dict[str, Any]) -> None:
        execution.status = str(payload["status"])
        if "statusDetails" in payload:
            execution.status_details = dict(payload["statusDetails"])
        execution.version_number += 1
        execution.last_updated_at = int(time.time())
