"""JSON payloads, and the thread on which ``MqttClient`` runs every handler (never paho's network thread).

Why a thread of its own: a handler that publishes and waits for the PUBACK (the jobs protocol does)
would deadlock paho's loop, and a slow handler would starve keepalives. Messages are handled one at a
time in arrival order; a QoS 1/2 message is acknowledged only after its handlers returned, so with a
persistent session a message that was never handled is delivered again. Nothing a handler or a payload
does can stop this thread: failures are logged (one JSON line each) and the next message is handled.
"""

from __future__ import annotations

import itertools
import json
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edgeinspect.core import safejson
from edgeinspect.core.errors import MessageError, MqttError
from edgeinspect.core.observability import get_logger
from edgeinspect.core.topics import topic_matches

JsonObject = dict[str, Any]
MessageHandler = Callable[[str, JsonObject], None]
"""Called with the topic and the decoded JSON object, on the dispatcher thread."""
BadPayloadHandler = Callable[[str, bytes, str], None]
"""Called with the topic, the raw payload and why it was refused, on the dispatcher thread."""
ConnectionHandler = Callable[[bool], None]
"""Called with True after every (re)connect and False after every lost connection."""

log = get_logger(__name__)


@dataclass(frozen=True)
class Subscription:
    """A subscribed filter, its handler and QoS, and its MQTT v5 subscription identifier."""

    topic_filter: str
    handler: MessageHandler
    qos: int
    sub_id: int


class SubscriptionTable:
    """The filters a client wants, remembered so they can be renewed after every reconnect.

    Why identifiers: a broker sends one copy of a message per matching subscription, so with
    overlapping filters (``a/#`` and ``a/b``) matching by topic alone would run every handler once per
    copy. MQTT v5 brokers that support subscription identifiers (Mosquitto, EMQX) tag each copy with
    the subscription it belongs to, and each handler runs exactly once. Without them (MQTT 3.1.1, AWS
    IoT Core) handlers are found by topic: avoid overlapping filters in one client there.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: dict[str, Subscription] = {}
        self._ids = itertools.count(1)

    def add(self, topic_filter: str, handler: MessageHandler, qos: int) -> Subscription:
        """Remember (or replace) the subscription for ``topic_filter``; it gets a fresh identifier."""
        with self._lock:
            sub = Subscription(topic_filter, handler, qos, next(self._ids))
            self._subs[topic_filter] = sub
            return sub

    def remove(self, topic_filter: str) -> Subscription | None:
        """Forget a filter; returns what was there."""
        with self._lock:
            return self._subs.pop(topic_filter, None)

    def all(self) -> list[Subscription]:
        """Every subscription, in the order they were first made."""
        with self._lock:
            return list(self._subs.values())

    def handlers_for(self, topic: str, sub_ids: Sequence[int]) -> list[MessageHandler]:
        """The handlers a message copy belongs to: by its known identifiers, else by its topic."""
        with self._lock:
            tagged = [s.handler for s in self._subs.values() if s.sub_id in sub_ids]
            if tagged:
                return tagged
            return [s.handler for s in self._subs.values() if topic_matches(s.topic_filter, topic)]


@dataclass(frozen=True)
class Inbound:
    """A message as paho handed it over, waiting for its handlers."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    sub_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class ConnectionChanged:
    """The connection came up (True) or went down (False)."""

    connected: bool


_Item = Inbound | ConnectionChanged | None


def check_qos(qos: int) -> int:
    """``qos`` if it is 0, 1 or 2."""
    if qos not in (0, 1, 2):
        raise MqttError(f"invalid MQTT QoS {qos}", hint="use 0, 1 or 2 (1 is the default: at least once)")
    return qos


def encode_json(topic: str, payload: Mapping[str, Any]) -> bytes:
    """Compact JSON bytes; a value JSON cannot carry is a ``MessageError`` naming the topic."""
    try:
        return json.dumps(dict(payload), separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise MessageError(
            f"cannot encode the payload for {topic} as JSON: {exc}",
            hint="publish only str/int/float/bool/None/list/dict values, no NaN or infinity",
        ) from exc


MAX_PAYLOAD_BYTES = 256 * 1024
"""Above AWS IoT Core's 128 KB message limit, so nothing valid there is refused here."""
MAX_PAYLOAD_DEPTH = 512
"""Far below where ``json.loads`` would overflow the stack (~1000), yet deep enough that a hostile job
document nested inside a jobs reply still reaches the handler, whose own checks fail that one job
(a refused reply would leave the device asking for the same job again and again)."""


def decode_json_object(payload: bytes) -> tuple[JsonObject | None, str]:
    """The payload as a JSON object, or None and why not (over the size/depth limits, invalid
    UTF-8/JSON, or not an object). Never raises: a hostile payload is one refused message."""
    try:
        value = safejson.loads(
            payload, what="MQTT payload", max_bytes=MAX_PAYLOAD_BYTES, max_depth=MAX_PAYLOAD_DEPTH
        )
    except safejson.JsonInputError as exc:
        return None, str(exc)
    if not isinstance(value, dict):
        return None, f"expected a JSON object, got {type(value).__name__}"
    return value, ""


class Dispatcher:
    """One worker thread draining a queue of inbound messages and connection changes.

    ``handlers_for(topic, sub_ids)`` returns the handlers a message belongs to; ``ack(mid, qos)``
    acknowledges a message to the broker once handled. ``stop()`` drops what is still queued.
    """

    def __init__(
        self,
        client_id: str,
        handlers_for: Callable[[str, Sequence[int]], list[MessageHandler]],
        ack: Callable[[int, int], object],
        on_connection_change: ConnectionHandler | None,
        on_bad_payload: BadPayloadHandler | None,
    ) -> None:
        self.client_id = client_id
        self._handlers_for = handlers_for
        self._ack = ack
        self._on_connection_change = on_connection_change
        self._on_bad_payload = on_bad_payload
        self._inbox: queue.Queue[_Item] = queue.Queue()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._counts_lock = threading.Lock()
        self.counts: dict[str, int] = {"bad_payloads": 0, "handler_failures": 0, "message_failures": 0}
        """Messages refused as bad payloads, handler calls that raised, messages whose delivery failed."""

    @property
    def alive(self) -> bool:
        """False only when the worker was started and has died since (``stop()`` is not a death)."""
        thread = self._thread
        return thread is None or thread.is_alive()

    def _count(self, what: str) -> None:
        with self._counts_lock:
            self.counts[what] += 1

    def start(self) -> None:
        """Start the worker if it is not running (after ``stop()`` a fresh queue is used)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._inbox = queue.Queue()
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._run,
            args=(self._inbox, self._stopped),
            name=f"mqtt-dispatch-{self.client_id}",
            daemon=True,
        )
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stop after the handler now running (if any) returns; queued messages are not acknowledged."""
        thread, self._thread = self._thread, None
        self._stopped.set()
        self._inbox.put(None)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def message(self, topic: str, payload: bytes, mid: int, qos: int, sub_ids: Sequence[int] = ()) -> None:
        """Queue a message for its handlers (called from paho's thread; never blocks)."""
        self._inbox.put(Inbound(topic, payload, mid, qos, tuple(sub_ids)))

    def connection_changed(self, connected: bool) -> None:
        """Queue a call of ``on_connection_change`` (called from paho's thread; never blocks)."""
        if self._on_connection_change is not None:
            self._inbox.put(ConnectionChanged(connected))

    def _run(self, inbox: queue.Queue[_Item], stopped: threading.Event) -> None:
        while True:
            item = inbox.get()
            if item is None or stopped.is_set():
                return
            if isinstance(item, ConnectionChanged):
                if self._on_connection_change is not None:
                    self._call("on_connection_change", self._on_connection_change, item.connected)
                continue
            try:
                self._deliver(item)
            except Exception as exc:  # one message must never end the thread that serves all of them
                self._count("message_failures")
                log.error(
                    "mqtt_message_failed",
                    client_id=self.client_id,
                    topic=item.topic,
                    size=len(item.payload),
                    error=safejson.clip(f"{type(exc).__name__}: {exc}", 300),
                )
            finally:
                if item.qos > 0 and not stopped.is_set():
                    self._call("ack", self._ack, item.mid, item.qos)

    def _deliver(self, item: Inbound) -> None:
        handlers = self._handlers_for(item.topic, item.sub_ids)
        if not handlers:
            log.warning("mqtt_unhandled_message", client_id=self.client_id, topic=item.topic)
            return
        payload, reason = decode_json_object(item.payload)
        if payload is None:
            self._count("bad_payloads")
            log.warning(
                "mqtt_bad_payload",
                client_id=self.client_id,
                topic=item.topic,
                size=len(item.payload),
                reason=reason,
            )
            if self._on_bad_payload is not None:
                self._call("on_bad_payload", self._on_bad_payload, item.topic, item.payload, reason)
            return
        for handler in handlers:
            self._call(f"handler for {item.topic}", handler, item.topic, payload)

    def _call(self, what: str, fn: Callable[..., object], *args: Any) -> None:
        """Run user code; an exception is logged with its traceback and never ends the thread."""
        try:
            fn(*args)
        except Exception:
            self._count("handler_failures")
            log.exception("mqtt_callback_failed", client_id=self.client_id, callback=what)
