"""A minimal device that speaks the AWS IoT Jobs MQTT API (docs/jobs-protocol.md) on a real broker.

It does what every device must and nothing else: subscribe to ``notify-next`` and the reply topics,
ask ``start-next`` when it connects and whenever notified, report ``IN_PROGRESS`` then the outcome
``decide(document)`` returns, with ``expectedVersion``. Tests use it where the model itself does not
matter (a wave of devices that fail, many devices at once); the real model manager covers the rest.

    with JobsDevice(broker.url, prefix, "edge-1", decide=lambda doc: ("FAILED", {"reason": "disk"})) as d:
        d.wait_for(lambda: len(d.finished) == 1)
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from edgeinspect.core import topics
from edgeinspect.core.mqtt import MqttClient

Outcome = tuple[str, dict[str, str]]
Decide = Callable[[dict[str, Any]], Outcome]


def succeed(_document: dict[str, Any]) -> Outcome:
    return "SUCCEEDED", {"stage": "done"}


def fail(_document: dict[str, Any]) -> Outcome:
    return "FAILED", {"stage": "download", "reason": "unreachable package URL"}


@dataclass
class Finished:
    """A job this device ended, how, and the document it was given."""

    job_id: str
    status: str
    document: dict[str, Any]


@dataclass
class JobsDevice:
    """See the module docstring. ``replies`` keeps every accepted/rejected payload, by request kind."""

    broker_url: str
    prefix: str
    thing: str
    decide: Decide = succeed
    auto: bool = True
    """False: only subscribe and connect; the test sends the requests itself (``request``)."""
    finished: list[Finished] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    rejections: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # A stable client id and a persistent session: notify-next sent while offline is delivered later.
        self.mqtt = MqttClient(
            self.broker_url, f"dev-{self.thing}-{uuid.uuid4().hex[:6]}", persistent_session=True
        )
        self._cond = threading.Condition()
        self._replies: dict[str, tuple[bool, dict[str, Any]]] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._loop, name=f"device-{self.thing}", daemon=True)

    def __enter__(self) -> JobsDevice:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        self.mqtt.subscribe(topics.jobs_notify_next(self.prefix, self.thing), self._on_notify)
        for request in (
            topics.jobs_start_next(self.prefix, self.thing),
            topics.jobs_update(self.prefix, self.thing, "+"),
        ):
            self.mqtt.subscribe(topics.accepted(request), self._on_reply(True))
            self.mqtt.subscribe(topics.rejected(request), self._on_reply(False))
        self.mqtt.connect(timeout=10)
        if self.auto:
            self._wake.set()  # catch up on connect: ask start-next at once
            self._worker.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._worker.is_alive():
            self._worker.join(timeout=20)
        self.mqtt.stop()

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                remaining = deadline - time.monotonic()
                assert remaining > 0, (
                    f"{self.thing}: condition not met within {timeout}s; finished={self.finished}"
                )
                self._cond.wait(min(remaining, 0.2))

    # ---- protocol ----------------------------------------------------------------------------

    def request(
        self, topic: str, payload: dict[str, Any], timeout: float = 10.0
    ) -> tuple[bool, dict[str, Any]]:
        """Publish a request with a fresh clientToken and wait for its accepted/rejected reply."""
        token = uuid.uuid4().hex
        self.mqtt.publish_json(topic, {**payload, "clientToken": token})
        with self._cond:
            assert self._cond.wait_for(lambda: token in self._replies, timeout), f"no reply to {topic}"
            return self._replies.pop(token)

    def _on_reply(self, accepted: bool) -> Callable[[str, dict[str, Any]], None]:
        def handle(_topic: str, payload: dict[str, Any]) -> None:
            with self._cond:
                if not accepted:
                    self.rejections.append(payload)
                self._replies[str(payload.get("clientToken"))] = (accepted, payload)
                self._cond.notify_all()

        return handle

    def _on_notify(self, _topic: str, payload: dict[str, Any]) -> None:
        with self._cond:
            self.notifications.append(payload)
            self._cond.notify_all()
        if "execution" in payload:
            self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            while not self._stop.is_set() and self._run_next():
                pass

    def _run_next(self) -> bool:
        """Claim and finish one job; False when nothing is pending."""
        ok, reply = self.request(topics.jobs_start_next(self.prefix, self.thing), {})
        execution = reply.get("execution") if ok else None
        if not execution:
            return False
        job_id, document = execution["jobId"], execution.get("jobDocument") or {}
        status, details = self.decide(document)
        update = topics.jobs_update(self.prefix, self.thing, job_id)
        body = {"status": status, "statusDetails": details, "expectedVersion": execution["versionNumber"]}
        ok, reply = self.request(update, body)
        with self._cond:
            self.finished.append(
                Finished(job_id, status if ok else f"rejected:{reply.get('code')}", document)
            )
            self._cond.notify_all()
        return True
