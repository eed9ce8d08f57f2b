"""The AWS IoT Jobs MQTT payloads the device sends and reads, as pure functions (docs/jobs-protocol.md).

Field names are AWS's (``jobId``, ``status``, ``statusDetails``, ``expectedVersion``,
``executionNumber``, ``clientToken``...), so the same device code runs against AWS IoT Core and against
our own jobs service on a plain broker. ``statusDetails`` is a string-to-string map with AWS's limits
(keys ``[a-zA-Z0-9:_-]{1,128}``, values 1..1024 printable characters); :func:`status_details` enforces
them, so a long error message is cut instead of getting the whole update rejected.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from edgeinspect.core.errors import MessageError

Status = Literal["IN_PROGRESS", "SUCCEEDED", "FAILED", "REJECTED"]
TERMINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED", "REJECTED", "CANCELED", "TIMED_OUT", "REMOVED"})
MAX_DETAIL_KEYS = 10
MAX_DETAIL_VALUE = 1024
_KEY_RE = re.compile(r"^[a-zA-Z0-9:_-]{1,128}$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


@dataclass(frozen=True)
class Execution:
    """A job execution as ``start-next/accepted`` (or ``notify-next``) describes it."""

    job_id: str
    status: str
    document: Any
    version_number: int | None = None
    execution_number: int | None = None
    status_details: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PendingExecution:
    """One entry of ``get``'s ``inProgressJobs``/``queuedJobs`` (AWS's ``JobExecutionSummary``)."""

    job_id: str
    status: str
    version_number: int | None
    execution_number: int | None


@dataclass(frozen=True)
class Rejection:
    """An ``ErrorResponse`` on a ``.../rejected`` topic: ``code`` such as ``VersionMismatch``."""

    code: str
    message: str
    version_number: int | None = None
    status: str | None = None

    @property
    def job_gone(self) -> bool:
        """The execution was canceled, removed or already finished in the cloud: stop working on it."""
        return self.code in ("TerminalStateReached", "InvalidStateTransition", "ResourceNotFound") or (
            self.status is not None and self.status in TERMINAL_STATUSES
        )


def new_client_token(thing: str) -> str:
    """A token that correlates one request with its reply (AWS allows at most 64 characters)."""
    return f"{thing[:31]}-{uuid.uuid4().hex}"[:64]


def status_details(**values: object) -> dict[str, str]:
    """``statusDetails`` within AWS's limits: str values, empty ones dropped, long ones cut."""
    out: dict[str, str] = {}
    for key, value in values.items():
        if value is None or len(out) >= MAX_DETAIL_KEYS:
            continue
        if not _KEY_RE.match(key):
            raise MessageError(f"invalid statusDetails key {key!r}", hint="use [a-zA-Z0-9:_-], at most 128")
        text = _CONTROL_RE.sub(" ", str(value)).strip()
        if not text:
            continue
        if len(text) > MAX_DETAIL_VALUE:
            text = text[: MAX_DETAIL_VALUE - 3] + "..."
        out[key] = text
    return out


def start_next_request(client_token: str, details: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The payload published to ``.../jobs/start-next``."""
    payload: dict[str, Any] = {"clientToken": client_token}
    if details:
        payload["statusDetails"] = dict(details)
    return payload


def update_request(
    status: Status,
    details: Mapping[str, str],
    client_token: str,
    *,
    expected_version: int | None = None,
    execution_number: int | None = None,
) -> dict[str, Any]:
    """The payload published to ``.../jobs/{jobId}/update`` (asks for the new state in the reply)."""
    payload: dict[str, Any] = {
        "status": status,
        "statusDetails": dict(details),
        "includeJobExecutionState": True,
        "clientToken": client_token,
    }
    if expected_version is not None:
        payload["expectedVersion"] = expected_version
    if execution_number is not None:
        payload["executionNumber"] = execution_number
    return payload


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def parse_execution(payload: Mapping[str, Any]) -> Execution | None:
    """The ``execution`` of a notify-next or start-next/accepted payload; None when nothing is pending.

    Raises ``MessageError`` for an execution without a ``jobId`` (it cannot even be reported on).
    """
    raw = payload.get("execution")
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or not isinstance(raw.get("jobId"), str) or not raw["jobId"]:
        raise MessageError(f"job execution without a jobId: {str(raw)[:200]}")
    details = raw.get("statusDetails")
    return Execution(
        job_id=raw["jobId"],
        status=str(raw.get("status", "")),
        document=raw.get("jobDocument"),
        version_number=_int(raw.get("versionNumber")),
        execution_number=_int(raw.get("executionNumber")),
        status_details={str(k): str(v) for k, v in details.items()} if isinstance(details, Mapping) else {},
    )


def parse_pending(payload: Mapping[str, Any]) -> list[PendingExecution]:
    """``get``'s ``inProgressJobs`` then ``queuedJobs``; entries without a string ``jobId`` are skipped."""
    found = []
    for key, status in (("inProgressJobs", "IN_PROGRESS"), ("queuedJobs", "QUEUED")):
        entries = payload.get(key)
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, Mapping) and isinstance(entry.get("jobId"), str) and entry["jobId"]:
                found.append(
                    PendingExecution(
                        entry["jobId"],
                        status,
                        _int(entry.get("versionNumber")),
                        _int(entry.get("executionNumber")),
                    )
                )
    return found


def parse_update_accepted(payload: Mapping[str, Any]) -> int | None:
    """The execution's new ``versionNumber`` from an ``update/accepted`` reply (None if not included)."""
    state = payload.get("executionState")
    return _int(state.get("versionNumber")) if isinstance(state, Mapping) else None


def parse_rejection(payload: Mapping[str, Any]) -> Rejection:
    """An ``ErrorResponse``; the execution's current version and status when the service includes them."""
    state = payload.get("executionState")
    version = _int(state.get("versionNumber")) if isinstance(state, Mapping) else None
    status = str(state["status"]) if isinstance(state, Mapping) and "status" in state else None
    return Rejection(
        code=str(payload.get("code", "Unknown")),
        message=str(payload.get("message", "")),
        version_number=version,
        status=status,
    )
