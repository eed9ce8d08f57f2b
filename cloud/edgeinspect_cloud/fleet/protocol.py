"""AWS IoT Jobs' side of the MQTT API, as a responder: a request topic and payload in, replies out.

Kept free of MQTT so every rule is testable without a broker; :mod:`edgeinspect_cloud.fleet.service`
wires it to ``MqttClient``. Requests handled (``{prefix}/things/{thing}/jobs/...``, see
docs/jobs-protocol.md):

- ``get``                  -> ``inProgressJobs`` and ``queuedJobs`` (JobExecutionSummary lists)
- ``start-next``           -> the next pending ``execution`` (claimed: QUEUED becomes IN_PROGRESS)
- ``$next/get``            -> the next pending ``execution``, not claimed
- ``{jobId}/get``          -> that ``execution`` (``includeJobDocument``, ``executionNumber``)
- ``{jobId}/update``       -> ``executionState`` / ``jobDocument`` when asked for

Each reply goes to the request topic + ``/accepted`` or ``/rejected``, echoes ``clientToken`` and
carries ``timestamp`` (epoch seconds). Rejections are AWS ErrorResponses: ``code``, ``message`` and,
where the execution exists, its ``executionState``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from edgeinspect.core import topics
from edgeinspect.core.topics import JobsTopic

from edgeinspect_cloud.fleet.errors import JobsRequestRejected
from edgeinspect_cloud.fleet.fleetdb import FleetStore
from edgeinspect_cloud.fleet.records import THING_PATTERN, Execution

_DETAIL_KEY = re.compile(r"^[a-zA-Z0-9:_-]{1,128}$")
MAX_DETAIL_VALUE = 1024
MAX_DETAIL_KEYS = 10
REQUEST_ACTIONS = frozenset({"get", "start-next", "$next/get", "describe", "update"})


@dataclass(frozen=True)
class Reply:
    """One message to publish in answer to a request."""

    topic: str
    payload: dict[str, Any]
    accepted: bool


def _ts(value: float | None) -> int | None:
    return None if value is None else int(value)


def execution_json(execution: Execution, document: Mapping[str, Any] | None) -> dict[str, Any]:
    """AWS's ``JobExecution`` object (``jobDocument`` only when given)."""
    body: dict[str, Any] = {
        "jobId": execution.job_id,
        "thingName": execution.thing,
        "status": execution.status,
        "statusDetails": dict(execution.status_details),
        "queuedAt": _ts(execution.queued_at),
        "lastUpdatedAt": _ts(execution.updated_at),
        "versionNumber": execution.version_number,
        "executionNumber": execution.execution_number,
    }
    if execution.started_at is not None:
        body["startedAt"] = _ts(execution.started_at)
    if document is not None:
        body["jobDocument"] = dict(document)
    return body


def summary_json(execution: Execution) -> dict[str, Any]:
    """AWS's ``JobExecutionSummary`` (what ``get`` lists)."""
    body = {
        "jobId": execution.job_id,
        "queuedAt": _ts(execution.queued_at),
        "lastUpdatedAt": _ts(execution.updated_at),
        "versionNumber": execution.version_number,
        "executionNumber": execution.execution_number,
    }
    if execution.started_at is not None:
        body["startedAt"] = _ts(execution.started_at)
    return body


def state_json(execution: Execution) -> dict[str, Any]:
    """AWS's ``JobExecutionState``."""
    return {
        "status": execution.status,
        "statusDetails": dict(execution.status_details),
        "versionNumber": execution.version_number,
    }


def notify_next_payload(execution: Execution | None, document: Mapping[str, Any] | None) -> dict[str, Any]:
    """What ``notify-next`` carries: the next pending execution, or only a timestamp when none is left."""
    body: dict[str, Any] = {"timestamp": int(time.time())}
    if execution is not None:
        body["execution"] = execution_json(execution, document)
    return body


def error_payload(
    code: str, message: str, token: object = None, state: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """An AWS ``ErrorResponse``."""
    body: dict[str, Any] = {"code": code, "message": message, "timestamp": int(time.time())}
    if isinstance(token, str):
        body["clientToken"] = token
    if state is not None:
        body["executionState"] = dict(state)
    return body


def check_status_details(value: object) -> dict[str, str] | None:
    """``statusDetails`` as AWS accepts it (a map of at most 10 keys to 1..1024-char strings), else raise."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or len(value) > MAX_DETAIL_KEYS:
        raise JobsRequestRejected(
            "InvalidRequest", f"statusDetails must be a map of at most 10 keys: {value!r}"[:300]
        )
    for key, detail in value.items():
        if not isinstance(key, str) or not _DETAIL_KEY.match(key):
            raise JobsRequestRejected("InvalidRequest", f"invalid statusDetails key {key!r}"[:300])
        if not isinstance(detail, str) or not 0 < len(detail) <= MAX_DETAIL_VALUE:
            raise JobsRequestRejected(
                "InvalidRequest", f"statusDetails[{key!r}] must be a string of 1 to 1024 characters"
            )
    return dict(value)


def _optional_int(payload: Mapping[str, Any], name: str) -> int | None:
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise JobsRequestRejected("InvalidRequest", f"{name} must be a non-negative integer, not {value!r}")
    return int(value)


class JobsResponder:
    """Answers one thing's jobs requests from the fleet store (see the module docstring)."""

    def __init__(self, store: FleetStore, prefix: str, on_seen: Callable[[str], None] | None = None) -> None:
        self.store = store
        self.prefix = prefix
        self.on_seen = on_seen or store.devices.seen
        """Told each thing that sent a request; the service buffers these and writes them in batches."""

    def parse(self, topic: str) -> JobsTopic | None:
        """The request a topic names; None for replies, notifications and foreign topics."""
        parsed = topics.parse_jobs_topic(self.prefix, topic)
        if parsed is None or parsed.reply is not None or parsed.action not in REQUEST_ACTIONS:
            return None
        return parsed

    def handle(self, topic: str, payload: Mapping[str, Any]) -> Reply | None:
        """The reply to a request; None when ``topic`` is no request of ours (a reply, a notification)."""
        request = self.parse(topic)
        if request is None:
            return None
        token = payload.get("clientToken")
        if not THING_PATTERN.match(request.thing):
            return self._rejected(
                topic, error_payload("InvalidTopic", f"invalid thing name {request.thing!r}", token)
            )
        try:
            self.on_seen(request.thing)
            body = self._dispatch(request, payload)
        except JobsRequestRejected as exc:
            return self._rejected(topic, error_payload(exc.code, exc.message, token, exc.execution_state))
        body["timestamp"] = int(time.time())
        if isinstance(token, str):
            body["clientToken"] = token
        return Reply(topics.accepted(topic), body, True)

    def rejected_json(self, topic: str, why: str) -> Reply | None:
        """The ``InvalidJson`` rejection for a request whose payload is not a JSON object."""
        if self.parse(topic) is None:
            return None
        return self._rejected(
            topic, error_payload("InvalidJson", f"the request is not a JSON object: {why}"[:300])
        )

    @staticmethod
    def _rejected(topic: str, body: dict[str, Any]) -> Reply:
        return Reply(topics.rejected(topic), body, False)

    def _dispatch(self, request: JobsTopic, payload: Mapping[str, Any]) -> dict[str, Any]:
        jobs = self.store.jobs
        thing = request.thing
        if request.action == "get":
            in_progress, queued = jobs.pending(thing)
            return {
                "inProgressJobs": [summary_json(e) for e in in_progress],
                "queuedJobs": [summary_json(e) for e in queued],
            }
        if request.action == "start-next":
            details = check_status_details(payload.get("statusDetails"))
            return self._with_execution(jobs.start_next(thing, details), True)
        if request.action == "$next/get":
            return self._with_execution(
                jobs.next_pending(thing), payload.get("includeJobDocument", True) is not False
            )
        assert request.job_id is not None
        if request.action == "describe":
            found = jobs.describe(thing, request.job_id, _optional_int(payload, "executionNumber"))
            return self._with_execution(found, payload.get("includeJobDocument", True) is not False)
        return self._update(thing, request.job_id, payload)

    def _with_execution(self, execution: Execution | None, include_document: bool) -> dict[str, Any]:
        if execution is None:
            return {}
        document = self.store.jobs.document(execution.job_id) if include_document else None
        return {"execution": execution_json(execution, document)}

    def _update(self, thing: str, job_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        status = payload.get("status")
        if not isinstance(status, str):
            raise JobsRequestRejected(
                "InvalidRequest", "an update needs a status (IN_PROGRESS, SUCCEEDED, FAILED...)"
            )
        updated = self.store.jobs.update(
            thing,
            job_id,
            status,
            check_status_details(payload.get("statusDetails")),
            expected_version=_optional_int(payload, "expectedVersion"),
            execution_number=_optional_int(payload, "executionNumber"),
        )
        body: dict[str, Any] = {}
        if payload.get("includeJobExecutionState") is True:
            body["executionState"] = state_json(updated)
        if payload.get("includeJobDocument") is True:
            body["jobDocument"] = self.store.jobs.document(job_id)
        return body
