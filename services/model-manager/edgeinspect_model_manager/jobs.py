"""The device side of the AWS IoT Jobs MQTT API: notify-next in, start-next and update as requests.

Every request carries a fresh ``clientToken`` and waits for the reply with the same token on the
request's ``accepted``/``rejected`` topic; replies arrive on the MQTT dispatcher thread and are handed
to the waiting job thread through one condition variable, so the job thread may block on them (never
the dispatcher). Updates send ``expectedVersion`` and keep the ``versionNumber`` each accepted reply
returns; one ``VersionMismatch`` is retried with the version the rejection reports.

A reply the MQTT client refuses to decode (over the size or depth limit, not JSON) never reaches a
reply handler, so its ``clientToken`` cannot be read: :meth:`JobsChannel.bad_payload` then answers the
request waiting on that reply topic at once with :class:`UnreadableReply`, instead of letting it time
out and be asked again forever. The job runner uses :meth:`JobsChannel.pending` and
:meth:`JobsChannel.describe` to find the job whose reply cannot be read, and fails it.

Subscribe before ``MqttClient.connect``/``start`` (see :meth:`JobsChannel.subscribe`) so that, with a
persistent session, replies and notifications queued while offline are delivered on connect.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgeinspect.core import topics
from edgeinspect.core.errors import EdgeInspectError, MessageError, MqttError
from edgeinspect.core.mqtt import MqttClient
from edgeinspect.core.observability import get_logger

from edgeinspect_model_manager import protocol
from edgeinspect_model_manager.protocol import Execution, PendingExecution, Rejection, Status

log = get_logger(__name__)


class JobGoneError(EdgeInspectError):
    """The cloud no longer accepts updates for this execution (canceled, removed, already terminal)."""

    def __init__(self, job_id: str, rejection: Rejection) -> None:
        super().__init__(
            f"job {job_id} was rejected by the jobs service: {rejection.code} {rejection.message}"
        )
        self.rejection = rejection


class UnreadableReply(MqttError):
    """The jobs service's reply to a request arrived but cannot be read (too large, too deep, no JSON,
    no usable execution): asking again gets the same reply, so the caller must not retry forever."""


@dataclass
class _Reply:
    accepted: bool
    payload: dict[str, Any]
    unreadable: str = ""


@dataclass
class Tracked:
    """What an update needs to know of its execution: the version last acknowledged, and its number."""

    job_id: str
    version_number: int | None
    execution_number: int | None

    @classmethod
    def of(cls, execution: Execution) -> Tracked:
        return cls(execution.job_id, execution.version_number, execution.execution_number)


class JobsChannel:
    """Jobs requests and replies for one thing under one topic prefix."""

    def __init__(self, mqtt: MqttClient, prefix: str, thing: str, reply_timeout_s: float) -> None:
        self.mqtt = mqtt
        self.prefix = prefix
        self.thing = thing
        self.reply_timeout_s = reply_timeout_s
        self._lock = threading.Condition()
        self._replies: dict[str, _Reply] = {}
        self._waiting: dict[str, str] = {}
        """clientToken -> the request topic whose reply it waits for."""
        self._on_notify: Callable[[Execution | None], None] | None = None

    def subscribe(self, on_notify: Callable[[Execution | None], None]) -> None:
        """Subscribe to notify-next and every reply topic; ``on_notify`` runs on the dispatcher thread."""
        self._on_notify = on_notify
        start_next = topics.jobs_start_next(self.prefix, self.thing)
        update_any = topics.jobs_update(self.prefix, self.thing, "+")
        pending = topics.jobs_get_pending(self.prefix, self.thing)
        describe_any = topics.jobs_describe(self.prefix, self.thing, "+")

        def notify(_topic: str, payload: dict[str, Any]) -> None:
            try:
                execution = protocol.parse_execution(payload)
            except MessageError as exc:
                log.warning("jobs_bad_notification", error=str(exc))
                execution = None
            on_notify(execution)

        self.mqtt.subscribe(topics.jobs_notify_next(self.prefix, self.thing), notify)
        for base in (start_next, update_any, pending, describe_any):
            self.mqtt.subscribe(topics.accepted(base), self._reply_handler(True))
            self.mqtt.subscribe(topics.rejected(base), self._reply_handler(False))

    def _reply_handler(self, accepted: bool) -> Callable[[str, dict[str, Any]], None]:
        def handle(topic: str, payload: dict[str, Any]) -> None:
            token = payload.get("clientToken")
            with self._lock:
                if not isinstance(token, str) or token not in self._waiting:
                    log.info(
                        "jobs_reply_ignored", topic=topic, reason="no request waits for this clientToken"
                    )
                    return
                self._replies[token] = _Reply(accepted, payload)
                self._lock.notify_all()

        return handle

    def bad_payload(self, topic: str, _payload: bytes, reason: str) -> None:
        """The MQTT client refused a message on ``topic``: if it is the reply topic of a waiting request,
        that request gets :class:`UnreadableReply` now (its token is unreadable, but requests come one
        at a time from the job thread, so the waiting request on that topic is the one it answers).
        An unreadable notify-next still says a job may be waiting: ``on_notify(None)`` wakes the runner."""
        if topic == topics.jobs_notify_next(self.prefix, self.thing):
            if self._on_notify is not None:
                self._on_notify(None)
            return
        base = topic.removesuffix("/accepted").removesuffix("/rejected")
        if base == topic:
            return
        with self._lock:
            for token, request_topic in self._waiting.items():
                if request_topic == base and token not in self._replies:
                    self._replies[token] = _Reply(False, {}, unreadable=reason)
                    log.warning("jobs_reply_unreadable", topic=topic, reason=reason)
            self._lock.notify_all()

    def _request(self, topic: str, payload: dict[str, Any], token: str) -> _Reply:
        with self._lock:
            self._waiting[token] = topic
        try:
            self.mqtt.publish_json(topic, payload, qos=1)
            with self._lock:
                got = self._lock.wait_for(lambda: token in self._replies, self.reply_timeout_s)
                if not got:
                    raise MqttError(
                        f"no accepted/rejected reply to {topic} within {self.reply_timeout_s}s",
                        hint="is the jobs service running and subscribed to this thing's jobs topics?",
                    )
                reply = self._replies.pop(token)
        finally:
            with self._lock:
                self._waiting.pop(token, None)
                self._replies.pop(token, None)
        if reply.unreadable:
            raise UnreadableReply(
                f"the reply to {topic} cannot be read: {reply.unreadable}",
                hint="the jobs service sent a reply this device refuses to parse; see its job document",
            )
        return reply

    def start_next(self, details: dict[str, str] | None = None) -> Execution | None:
        """Claim the next pending execution (QUEUED or IN_PROGRESS); None when nothing is pending."""
        token = protocol.new_client_token(self.thing)
        topic = topics.jobs_start_next(self.prefix, self.thing)
        reply = self._request(topic, protocol.start_next_request(token, details), token)
        if not reply.accepted:
            rejection = protocol.parse_rejection(reply.payload)
            raise MqttError(
                f"start-next was rejected: {rejection.code} {rejection.message}",
                hint="check the jobs service's log (or the AWS IoT policy) for this thing",
            )
        try:
            return protocol.parse_execution(reply.payload)
        except MessageError as exc:
            raise UnreadableReply(f"the start-next reply cannot be read: {exc.message}") from exc

    def pending(self) -> list[PendingExecution]:
        """The thing's pending executions (``get``): IN_PROGRESS ones first, then QUEUED ones."""
        token = protocol.new_client_token(self.thing)
        topic = topics.jobs_get_pending(self.prefix, self.thing)
        reply = self._request(topic, {"clientToken": token}, token)
        if not reply.accepted:
            rejection = protocol.parse_rejection(reply.payload)
            raise MqttError(f"get (pending jobs) was rejected: {rejection.code} {rejection.message}")
        return protocol.parse_pending(reply.payload)

    def describe(self, job_id: str, execution_number: int | None = None) -> Execution | None:
        """One execution with its document (``{jobId}/get``); ``UnreadableReply`` if it cannot be read."""
        token = protocol.new_client_token(self.thing)
        payload: dict[str, Any] = {"clientToken": token, "includeJobDocument": True}
        if execution_number is not None:
            payload["executionNumber"] = execution_number
        topic = topics.jobs_describe(self.prefix, self.thing, job_id)
        reply = self._request(topic, payload, token)
        if not reply.accepted:
            rejection = protocol.parse_rejection(reply.payload)
            raise MqttError(f"get of job {job_id} was rejected: {rejection.code} {rejection.message}")
        try:
            return protocol.parse_execution(reply.payload)
        except MessageError as exc:
            raise UnreadableReply(f"the reply describing job {job_id} cannot be read: {exc.message}") from exc

    def update(self, tracked: Tracked, status: Status, details: dict[str, str]) -> None:
        """Report ``status`` for the execution; raises ``JobGoneError`` when the cloud refuses for good."""
        for attempt in (1, 2):
            token = protocol.new_client_token(self.thing)
            payload = protocol.update_request(
                status,
                details,
                token,
                expected_version=tracked.version_number,
                execution_number=tracked.execution_number,
            )
            reply = self._request(topics.jobs_update(self.prefix, self.thing, tracked.job_id), payload, token)
            if reply.accepted:
                tracked.version_number = protocol.parse_update_accepted(reply.payload)
                return
            rejection = protocol.parse_rejection(reply.payload)
            if rejection.code == "VersionMismatch" and attempt == 1 and not rejection.job_gone:
                log.warning("jobs_version_mismatch", job_id=tracked.job_id, now=rejection.version_number)
                tracked.version_number = rejection.version_number
                continue
            if rejection.job_gone:
                raise JobGoneError(tracked.job_id, rejection)
            raise MqttError(
                f"update of job {tracked.job_id} to {status} was rejected: "
                f"{rejection.code} {rejection.message}",
                hint="check the jobs service's log for this request",
            )
