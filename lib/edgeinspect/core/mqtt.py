"""One MQTT client for every service: JSON in and out, acknowledged publishes, self-healing subscriptions.

A wrapper over paho-mqtt 2.x, independent of any settings class: a URL (``mqtt://host:1883``,
``mqtts://host:8883``) and options. Why not paho directly: ``publish_json`` waits for the PUBACK and
raises ``MqttError`` instead of dropping a job status silently while the broker is down; subscriptions
are renewed after every reconnect; handlers run on their own thread (``mqtt_dispatch``), so they may
publish and wait, and a bad payload or a failing handler never stops the loop.

Example::

    client = MqttClient("mqtt://127.0.0.1:1883", "press-7", persistent_session=True)
    client.subscribe(topics.jobs_notify_next("ei", "press-7"), on_job)  # before connect: gets queued jobs
    client.connect(timeout=10)
    client.publish_json(topics.device_state("press-7"), {"ok": True}, retain=True)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Literal

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from edgeinspect.core.errors import MqttError
from edgeinspect.core.mqtt_connect import (
    BrokerAddress,
    SessionOptions,
    TlsOptions,
    Will,
    build_client,
    connect_args,
    connect_error,
    describe_url,
    parse_mqtt_url,
    refusal_hint,
    subscribe_request,
)
from edgeinspect.core.mqtt_dispatch import (
    BadPayloadHandler,
    ConnectionHandler,
    Dispatcher,
    JsonObject,
    MessageHandler,
    Subscription,
    SubscriptionTable,
    check_qos,
    encode_json,
)
from edgeinspect.core.observability import get_logger
from edgeinspect.core.topics import topic_matches, validate_filter, validate_topic

__all__ = [
    "BadPayloadHandler",
    "BrokerAddress",
    "ConnectionHandler",
    "JsonObject",
    "MessageHandler",
    "MqttClient",
    "TlsOptions",
    "Will",
    "parse_mqtt_url",
    "topic_matches",
]

log = get_logger(__name__)


class MqttClient:
    """A connection to one broker for one client id; see the module docstring for the guarantees.

    ``connect()`` fails fast (raises ``MqttError``) when the broker is unreachable or refuses us;
    ``start()`` instead connects in the background and keeps retrying, for services that must come up
    before the broker does. Either way, lost connections are re-established with exponential backoff
    between ``reconnect_min_delay_s`` and ``reconnect_max_delay_s``.

    ``persistent_session=True`` asks the broker to keep the session (subscriptions and QoS 1 messages
    queued while offline) for ``session_expiry_s`` after a disconnect: MQTT v5 clean-start false with a
    session expiry, or MQTT 3.1.1 clean-session false. Use a stable ``client_id`` with it.
    """

    def __init__(
        self,
        url: str,
        client_id: str,
        *,
        tls: TlsOptions | None = None,
        username: str | None = None,
        password: str | None = None,
        keepalive_s: int = 30,
        persistent_session: bool = False,
        session_expiry_s: int = 7 * 24 * 3600,
        protocol: Literal["5", "3.1.1"] = "5",
        will: Will | None = None,
        reconnect_min_delay_s: int = 1,
        reconnect_max_delay_s: int = 60,
        max_queued_messages: int = 1000,
        on_connection_change: ConnectionHandler | None = None,
        on_bad_payload: BadPayloadHandler | None = None,
    ) -> None:
        self.address = parse_mqtt_url(url, tls=tls, username=username, password=password)
        self.client_id = client_id
        self.url = describe_url(self.address)
        self._options = SessionOptions(
            client_id, v5=protocol == "5", keepalive_s=keepalive_s, persistent=persistent_session,
            session_expiry_s=session_expiry_s, will=will, reconnect_min_delay_s=reconnect_min_delay_s,
            reconnect_max_delay_s=reconnect_max_delay_s, max_queued_messages=max_queued_messages,
        )  # fmt: skip
        self._client = build_client(self.address, self._options)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._client.on_publish = self._on_publish
        self._client.on_log = self._on_log
        self._subs = SubscriptionTable()
        self._tag_ids = False  # whether the broker supports subscription identifiers (CONNACK)
        self._connected = threading.Event()
        self._stopping = threading.Event()
        self._attempt_done = threading.Event()
        self._attempt_error = ""
        self._last_error = ""
        self._acks = threading.Condition()
        self._suback: dict[int, list[str]] = {}
        self._resub_mids: set[int] = set()
        self._puback_failed: dict[int, str] = {}
        self._loop_running = False
        self._dispatcher = Dispatcher(
            client_id, self._subs.handlers_for, self._client.ack, on_connection_change, on_bad_payload
        )

    @property
    def dispatcher_alive(self) -> bool:
        """False if the thread that runs the handlers died: put it in ``/readyz`` (see ``mqtt_health``)."""
        return self._dispatcher.alive

    @property
    def dispatch_counts(self) -> dict[str, int]:
        """Bad payloads refused, handler calls that raised, messages whose delivery failed, so far."""
        return dict(self._dispatcher.counts)

    @property
    def is_connected(self) -> bool:
        """Whether the broker has accepted our CONNECT and the connection has not been lost since."""
        return self._connected.is_set()

    def connect(self, timeout: float = 10.0) -> None:
        """Connect, wait for the CONNACK and for every subscription to be renewed, then run the loop.

        Raises ``MqttError`` (with a hint) when the broker cannot be reached, the TLS handshake fails,
        the broker refuses us, or no CONNACK arrives within ``timeout`` seconds. Idempotent.
        """
        if self._loop_running:  # start() is already connecting in the background: just wait for it
            if not self._connected.wait(timeout):
                raise MqttError(
                    f"not connected to MQTT broker {self.url} within {timeout}s",
                    hint=f"still retrying in the background; last problem: {self._last_error or 'none'}",
                )
            return
        self._dispatcher.start()
        self._stopping.clear()
        self._attempt_done.clear()
        self._attempt_error = ""
        self._client.connect_timeout = timeout
        try:
            self._client.connect(self.address.host, self.address.port, **connect_args(self._options))
        except (OSError, ValueError) as exc:
            self._client.disconnect()  # back to a closed state, so that connect() may be called again
            raise connect_error(self.address, self.client_id, exc, timeout) from exc
        deadline = time.monotonic() + timeout
        while not self._attempt_done.is_set() and (remaining := deadline - time.monotonic()) > 0:
            self._client.loop(timeout=min(remaining, 0.2))
        if not self.is_connected:
            self._client.disconnect()
            reason = self._attempt_error or f"no CONNACK within {timeout}s"
            raise MqttError(
                f"cannot connect to MQTT broker {self.url} as {self.client_id!r}: {reason}",
                hint=refusal_hint(self.address, reason),
            )
        if not self._attempt_done.is_set():
            log.warning("mqtt_resubscribe_unconfirmed", client_id=self.client_id, url=self.url)
        self._client.loop_start()
        self._loop_running = True

    def start(self) -> None:
        """Connect in the background and keep retrying until ``stop()``; watch ``on_connection_change``."""
        if self._loop_running:
            return
        self._dispatcher.start()
        self._stopping.clear()
        self._client.connect_async(self.address.host, self.address.port, **connect_args(self._options))
        self._client.loop_start()
        self._loop_running = True

    def stop(self, timeout: float = 5.0) -> None:
        """Disconnect cleanly (a persistent session stays on the broker) and stop both threads.

        Messages received but not yet handled are dropped unacknowledged, so a persistent session gets
        them again on the next connect. A handler still running is given ``timeout`` seconds to finish.
        """
        self._stopping.set()
        self._client.disconnect()
        if self._loop_running:
            self._client.loop_stop()
            self._loop_running = False
        self._connected.clear()
        self._dispatcher.stop(timeout)

    def __enter__(self) -> MqttClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def publish_json(
        self,
        topic: str,
        payload: Mapping[str, Any],
        qos: int = 1,
        retain: bool = False,
        timeout: float = 10.0,
    ) -> None:
        """Publish ``payload`` as JSON and wait until the broker acknowledged it (QoS 1/2).

        Raises ``MqttError`` when not connected, when the connection drops or ``timeout`` passes before
        the acknowledgement, or when the broker rejects the message (MQTT v5 reason code). A message that
        was handed to the connection may still be delivered later (at least once): retrying is safe for
        idempotent messages such as job status updates.
        """
        validate_topic(topic)
        body = encode_json(topic, payload)
        if not self.is_connected:
            raise MqttError(
                f"cannot publish to {topic}: not connected to the MQTT broker {self.url}",
                hint="the client reconnects by itself; retry later (see is_connected / on_connection_change)",
            )
        info = self._client.publish(topic, body, qos=check_qos(qos), retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise MqttError(
                f"cannot publish to {topic}: {paho.error_string(info.rc)}",
                hint="the connection dropped or too many messages are waiting; retry once reconnected",
            )
        self._wait_published(topic, info, timeout)

    def subscribe(
        self, topic_filter: str, handler: MessageHandler, qos: int = 1, timeout: float = 10.0
    ) -> None:
        """Call ``handler(topic, payload)`` for every JSON object published on a matching topic.

        The subscription is remembered and renewed after every reconnect. Subscribing before
        ``connect()``/``start()`` is the way to receive messages queued for a persistent session. When
        connected, waits for the broker's SUBACK and raises ``MqttError`` if it refuses the filter. With
        overlapping filters each matching handler runs once per message where the broker supports
        subscription identifiers (Mosquitto, EMQX), but once per matching filter elsewhere (AWS IoT Core,
        MQTT 3.1.1; see ``SubscriptionTable``). Handlers must be idempotent anyway: QoS 1 is at least once.
        """
        validate_filter(topic_filter)
        sub = self._subs.add(topic_filter, handler, check_qos(qos))
        if not self.is_connected:
            log.info("mqtt_subscribe_deferred", client_id=self.client_id, topic_filter=topic_filter)
            return
        mids = self._send_subscribe([sub])
        if not mids:
            return  # connection just dropped: on_connect renews it
        failures = self._wait_suback(mids[0], timeout, topic_filter)
        if failures:
            self._subs.remove(topic_filter)
            raise MqttError(
                f"the MQTT broker refused the subscription to {topic_filter}: {', '.join(failures)}",
                hint="check the broker's ACL (or the AWS IoT policy) for this client id and topic",
            )
        log.info("mqtt_subscribed", client_id=self.client_id, topic_filter=topic_filter, qos=qos)

    def unsubscribe(self, topic_filter: str) -> None:
        """Forget a subscription; its handler is not called again."""
        known = self._subs.remove(topic_filter)
        if known is not None and self.is_connected:
            self._client.unsubscribe(topic_filter)

    def _wait_published(self, topic: str, info: paho.MQTTMessageInfo, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not info.is_published():
            remaining = deadline - time.monotonic()
            if not self.is_connected or remaining <= 0:
                why = "the connection was lost" if not self.is_connected else f"no PUBACK in {timeout}s"
                raise MqttError(
                    f"publish to {topic} not confirmed by the MQTT broker {self.url}: {why}",
                    hint="it may still be delivered after the reconnect (at least once); retry if it matters",
                )
            try:
                info.wait_for_publish(min(remaining, 0.1))
            except (RuntimeError, ValueError):
                break  # a QoS 0 message lost with the connection: reported below
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise MqttError(
                f"publish to {topic} was lost: {paho.error_string(info.rc)}",
                hint="QoS 0 messages are not retried after a reconnect; use qos=1 if it must arrive",
            )
        with self._acks:
            failure = self._puback_failed.pop(info.mid, None)
        if failure is not None:
            raise MqttError(
                f"the MQTT broker rejected the publish to {topic}: {failure}",
                hint="check the broker's ACL (or the AWS IoT policy) for this client id and topic",
            )

    def _wait_suback(self, mid: int, timeout: float, topic_filter: str) -> list[str]:
        with self._acks:
            self._acks.wait_for(lambda: mid in self._suback or not self.is_connected, timeout)
            if mid in self._suback:
                return self._suback.pop(mid)
        if not self.is_connected:
            return []  # renewed by on_connect
        raise MqttError(
            f"no SUBACK for {topic_filter} from the MQTT broker {self.url} within {timeout}s",
            hint="the subscription stays registered and is renewed on reconnect; check the broker's load",
        )

    def _on_connect(self, _c: paho.Client, _u: Any, flags: Any, reason: ReasonCode, props: Any) -> None:
        if reason.is_failure:
            self._attempt_error = f"the broker refused the connection: {reason}"
            self._attempt_done.set()
            log.warning("mqtt_connect_refused", client_id=self.client_id, url=self.url, reason=str(reason))
            return
        self._connected.set()
        self._tag_ids = self._options.v5 and getattr(props, "SubscriptionIdentifierAvailable", 1) != 0
        present = bool(flags.session_present)
        log.info("mqtt_connected", client_id=self.client_id, url=self.url, session_present=present)
        if not self._resubscribe():
            self._ready()

    def _ready(self) -> None:
        """Connected and every subscription renewed: only now is the connection reported up."""
        self._attempt_done.set()
        self._dispatcher.connection_changed(True)

    def _on_disconnect(self, _c: paho.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        with self._acks:
            self._resub_mids.clear()
            self._acks.notify_all()
        if not self._attempt_done.is_set():
            detail = self._last_error or str(reason)
            self._attempt_error = f"the broker closed the connection before accepting it ({detail})"
            self._attempt_done.set()
        if self._stopping.is_set():
            log.info("mqtt_stopped", client_id=self.client_id, url=self.url)
        elif was_connected:
            log.warning("mqtt_disconnected", client_id=self.client_id, url=self.url, reason=str(reason))
            self._dispatcher.connection_changed(False)

    def _resubscribe(self) -> bool:
        """Renew every subscription; False when there was nothing to renew."""
        mids = self._send_subscribe(self._subs.all())
        with self._acks:
            self._resub_mids.update(mids)
        return bool(mids)

    def _send_subscribe(self, subs: list[Subscription]) -> list[int]:
        """One SUBSCRIBE per subscription when each can carry its identifier, else one for all."""
        batches = [[sub] for sub in subs] if self._tag_ids else [subs] if subs else []
        mids = []
        for batch in batches:
            result, mid = self._client.subscribe(**subscribe_request(self._options, batch, self._tag_ids))
            if result == MQTTErrorCode.MQTT_ERR_SUCCESS and mid is not None:
                mids.append(mid)
        return mids

    def _on_subscribe(self, _c: paho.Client, _u: Any, mid: int, codes: list[ReasonCode], _p: Any) -> None:
        failures = [str(code) for code in codes if code.is_failure]
        with self._acks:
            if mid in self._resub_mids:
                self._resub_mids.discard(mid)
                if failures:
                    log.error("mqtt_resubscribe_refused", client_id=self.client_id, reasons=failures)
                if not self._resub_mids:
                    self._ready()
                return
            self._suback[mid] = failures
            self._acks.notify_all()

    def _on_publish(self, _c: paho.Client, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        with self._acks:
            if reason.is_failure:
                self._puback_failed[mid] = str(reason)
            else:
                self._puback_failed.pop(mid, None)

    def _on_message(self, _c: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
        topic = message._topic.decode("utf-8", errors="replace")  # .topic raises on invalid UTF-8
        ids = getattr(message.properties, "SubscriptionIdentifier", [])
        ids = ids if isinstance(ids, list) else [ids]
        self._dispatcher.message(topic, bytes(message.payload), message.mid, message.qos, ids)

    def _on_log(self, _c: paho.Client, _u: Any, level: int, text: str) -> None:
        if level in (paho.MQTT_LOG_ERR, paho.MQTT_LOG_WARNING):
            self._last_error = text
            log.warning("mqtt_client_problem", client_id=self.client_id, detail=text)
