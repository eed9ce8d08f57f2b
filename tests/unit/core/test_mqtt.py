"""MqttClient against a real Mosquitto: round trips, TLS, persistent sessions, outages, bad payloads."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import paho.mqtt.client as paho
import pytest
from edgeinspect.core import topics
from edgeinspect.core.errors import ConfigError, MessageError, MqttError
from edgeinspect.core.mqtt import MqttClient, TlsOptions, parse_mqtt_url
from paho.mqtt.enums import CallbackAPIVersion

from tests.fixtures.mqtt_broker import MosquittoBroker
from tests.fixtures.servers import LOOPBACK, free_port

WAIT_S = 15.0  # generous: how long to wait for something that must happen, never a timing assertion

ClientFactory = Callable[..., MqttClient]


class Inbox:
    """Collects what handlers and callbacks receive, and waits for it without sleeping blindly."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._cond = threading.Condition()

    def add(self, *item: Any) -> None:
        with self._cond:
            self.items.append(item if len(item) != 1 else item[0])
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[list[Any]], bool], what: str) -> list[Any]:
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self.items), WAIT_S):
                pytest.fail(f"never got {what}; got {self.items!r}")
            return list(self.items)

    def wait_count(self, n: int) -> list[Any]:
        return self.wait_for(lambda items: len(items) >= n, f"{n} item(s)")


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    event = threading.Event()
    for _ in range(int(WAIT_S / 0.05)):
        if predicate():
            return
        event.wait(0.05)
    pytest.fail(f"timed out waiting until {what}")


@pytest.fixture
def make_client(mqtt_broker: MosquittoBroker) -> Iterator[ClientFactory]:
    """Build clients on the session broker (unique ids unless given); all are stopped afterwards."""
    made: list[MqttClient] = []

    def build(client_id: str | None = None, url: str | None = None, **options: Any) -> MqttClient:
        options.setdefault("reconnect_min_delay_s", 1)
        options.setdefault("reconnect_max_delay_s", 2)
        client = MqttClient(url or mqtt_broker.url, client_id or f"test-{uuid.uuid4().hex[:10]}", **options)
        made.append(client)
        return client

    yield build
    for client in made:
        client.stop()


@pytest.fixture
def restartable(mqtt_broker: MosquittoBroker) -> Iterator[MosquittoBroker]:
    """The session broker, started again after the test whatever happened (other tests need it)."""
    if mqtt_broker.external:
        pytest.skip("EI_TEST_MQTT_URL points at an external broker, which tests cannot stop or restart")
    yield mqtt_broker
    mqtt_broker.start()


def raw_publish(url: str, topic: str, payload: bytes) -> None:
    """Publish bytes our client would refuse to send (malformed JSON), with plain paho."""
    address = parse_mqtt_url(url)
    raw = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"raw-{uuid.uuid4().hex[:8]}")
    raw.connect(address.host, address.port)
    raw.loop_start()
    try:
        raw.publish(topic, payload, qos=1).wait_for_publish(WAIT_S)
    finally:
        raw.disconnect()
        raw.loop_stop()


# ------------------------------------------------------------------------------------------ round trips


def test_publish_subscribe_json_roundtrip_at_qos1(make_client: ClientFactory, mqtt_topic_root: str) -> None:
    inbox = Inbox()
    sub, pub = make_client(), make_client()
    sub.connect(WAIT_S)
    sub.subscribe(f"{mqtt_topic_root}/+/result", inbox.add, qos=1)
    pub.connect(WAIT_S)
    payload = {"frame_id": "f-1", "score": 0.25, "labels": ["scratch"], "meta": {"ok": False, "n": None}}

    pub.publish_json(f"{mqtt_topic_root}/cam-1/result", payload, qos=1)

    assert inbox.wait_count(1) == [(f"{mqtt_topic_root}/cam-1/result", payload)]


def test_retained_device_state_reaches_a_later_subscriber(
    make_client: ClientFactory, mqtt_topic_root: str
) -> None:
    topic = topics.device_state("press-7", root=mqtt_topic_root)
    pub = make_client()
    pub.connect(WAIT_S)
    pub.publish_json(topic, {"models": ["defect-cls:7"]}, retain=True)
    inbox = Inbox()
    late = make_client()
    late.connect(WAIT_S)

    late.subscribe(topic, inbox.add)

    assert inbox.wait_count(1) == [(topic, {"models": ["defect-cls:7"]})]
    pub.publish_json(topic, {}, retain=True)  # leave no retained state behind on the shared broker


def test_handler_can_publish_and_wait_for_its_puback(
    make_client: ClientFactory, mqtt_topic_root: str
) -> None:
    """The jobs protocol replies from inside a handler; that must not deadlock the network loop."""
    device, replies = make_client(), Inbox()
    request, reply = f"{mqtt_topic_root}/start-next", f"{mqtt_topic_root}/start-next/accepted"

    def answer(_topic: str, payload: dict[str, Any]) -> None:
        device.publish_json(reply, {"echo": payload["n"]})

    device.connect(WAIT_S)
    device.subscribe(request, answer)
    device.subscribe(reply, replies.add)

    device.publish_json(request, {"n": 3})

    assert replies.wait_count(1) == [(reply, {"echo": 3})]


def test_overlapping_filters_call_each_handler_once(make_client: ClientFactory, mqtt_topic_root: str) -> None:
    """Mosquitto sends one copy per matching subscription; identifiers route each copy to its own."""
    wide, narrow = Inbox(), Inbox()
    client = make_client()
    client.connect(WAIT_S)
    client.subscribe(f"{mqtt_topic_root}/#", wide.add)
    client.subscribe(f"{mqtt_topic_root}/a", narrow.add)

    client.publish_json(f"{mqtt_topic_root}/a", {"n": 1})
    client.publish_json(f"{mqtt_topic_root}/b", {"n": 2})  # the marker: only the wide filter matches

    assert [p for _, p in wide.wait_count(2)] == [{"n": 1}, {"n": 2}]
    assert narrow.items == [(f"{mqtt_topic_root}/a", {"n": 1})]


def test_mqtt_311_roundtrip(make_client: ClientFactory, mqtt_topic_root: str) -> None:
    inbox = Inbox()
    client = make_client(protocol="3.1.1")
    client.connect(WAIT_S)
    client.subscribe(f"{mqtt_topic_root}/#", inbox.add)

    client.publish_json(f"{mqtt_topic_root}/a/b", {"v": 1})

    assert inbox.wait_count(1) == [(f"{mqtt_topic_root}/a/b", {"v": 1})]


# ------------------------------------------------------------------------------------------ bad input


def test_malformed_payload_does_not_stop_the_loop(
    make_client: ClientFactory, mqtt_broker: MosquittoBroker, mqtt_topic_root: str
) -> None:
    good, bad = Inbox(), Inbox()
    client = make_client(on_bad_payload=bad.add)
    client.connect(WAIT_S)
    client.subscribe(f"{mqtt_topic_root}/#", good.add)

    raw_publish(mqtt_broker.url, f"{mqtt_topic_root}/x", b"{not json")
    raw_publish(mqtt_broker.url, f"{mqtt_topic_root}/x", b"[1, 2]")
    raw_publish(mqtt_broker.url, f"{mqtt_topic_root}/x", b"\xff\xfe")
    client.publish_json(f"{mqtt_topic_root}/x", {"after": "garbage"})

    assert good.wait_count(1) == [(f"{mqtt_topic_root}/x", {"after": "garbage"})]
    reports = bad.wait_count(3)
    assert [r[1] for r in reports] == [b"{not json", b"[1, 2]", b"\xff\xfe"]
    assert "not valid JSON" in reports[0][2]
    assert "expected a JSON object, got list" in reports[1][2]


def test_failing_handler_does_not_stop_the_loop(make_client: ClientFactory, mqtt_topic_root: str) -> None:
    inbox = Inbox()

    def fragile(topic: str, payload: dict[str, Any]) -> None:
        if payload["n"] == 1:
            raise RuntimeError("handler bug")
        inbox.add(topic, payload)

    client = make_client()
    client.connect(WAIT_S)
    client.subscribe(f"{mqtt_topic_root}/n", fragile)
    client.publish_json(f"{mqtt_topic_root}/n", {"n": 1})
    client.publish_json(f"{mqtt_topic_root}/n", {"n": 2})

    assert inbox.wait_count(1) == [(f"{mqtt_topic_root}/n", {"n": 2})]


def test_unencodable_payload_is_a_message_error(make_client: ClientFactory, mqtt_topic_root: str) -> None:
    client = make_client()
    client.connect(WAIT_S)
    with pytest.raises(MessageError, match="cannot encode"):
        client.publish_json(f"{mqtt_topic_root}/x", {"score": float("nan")})
    with pytest.raises(ConfigError, match="invalid MQTT topic"):
        client.publish_json(f"{mqtt_topic_root}/+", {"a": 1})
    with pytest.raises(ConfigError, match="invalid MQTT topic filter"):
        client.subscribe(f"{mqtt_topic_root}/#/x", lambda _t, _p: None)
    with pytest.raises(MqttError, match="invalid MQTT QoS"):
        client.publish_json(f"{mqtt_topic_root}/x", {}, qos=3)


# ------------------------------------------------------------------------------------------ connection errors


def test_unreachable_broker_raises_with_a_hint(make_client: ClientFactory) -> None:
    client = make_client(url=f"mqtt://{LOOPBACK}:{free_port()}")
    with pytest.raises(MqttError, match="cannot connect to MQTT broker") as caught:
        client.connect(timeout=5)
    assert "is the broker running" in caught.value.hint
    assert not client.is_connected


def test_publish_before_connect_raises(make_client: ClientFactory, mqtt_topic_root: str) -> None:
    with pytest.raises(MqttError, match="not connected"):
        make_client().publish_json(f"{mqtt_topic_root}/x", {"a": 1})


# ------------------------------------------------------------------------------------------ TLS


def test_tls_with_client_certificate_roundtrips(
    make_client: ClientFactory, mqtt_broker_tls: MosquittoBroker, mqtt_topic_root: str
) -> None:
    inbox = Inbox()
    client = make_client(url=mqtt_broker_tls.url, tls=mqtt_broker_tls.client_tls())
    client.connect(WAIT_S)
    client.subscribe(f"{mqtt_topic_root}/secure", inbox.add)

    client.publish_json(f"{mqtt_topic_root}/secure", {"tls": True})

    assert inbox.wait_count(1) == [(f"{mqtt_topic_root}/secure", {"tls": True})]


def test_tls_without_client_certificate_is_refused(
    make_client: ClientFactory, mqtt_broker_tls: MosquittoBroker
) -> None:
    client = make_client(url=mqtt_broker_tls.url, tls=mqtt_broker_tls.client_tls(with_client_cert=False))
    with pytest.raises(MqttError, match="cannot connect to MQTT broker") as caught:
        client.connect(timeout=5)
    assert "certificate" in str(caught.value)
    assert not client.is_connected


def test_tls_broker_not_signed_by_a_trusted_ca_is_refused(
    make_client: ClientFactory, mqtt_broker_tls: MosquittoBroker
) -> None:
    client = make_client(url=mqtt_broker_tls.url, tls=TlsOptions())  # system CAs do not know the test CA
    with pytest.raises(MqttError, match="certificate verify failed") as caught:
        client.connect(timeout=5)
    assert "ca_file" in caught.value.hint


# ------------------------------------------------------------------------------------------ sessions


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_persistent_session_gets_qos1_messages_published_while_offline(
    make_client: ClientFactory, mqtt_topic_root: str, protocol: str
) -> None:
    device_id, topic = f"dev-{uuid.uuid4().hex[:8]}", f"{mqtt_topic_root}/jobs/notify-next"
    first = make_client(device_id, persistent_session=True, session_expiry_s=300, protocol=protocol)
    first.subscribe(topic, lambda _t, _p: None)
    first.connect(WAIT_S)
    first.stop()  # the device goes offline; the broker keeps its session
    cloud = make_client()
    cloud.connect(WAIT_S)
    cloud.publish_json(topic, {"job": "deploy-1"}, qos=1)

    inbox = Inbox()
    again = make_client(device_id, persistent_session=True, session_expiry_s=300, protocol=protocol)
    again.subscribe(topic, inbox.add)  # before connect, so the queued message finds its handler
    again.connect(WAIT_S)

    assert inbox.wait_count(1) == [(topic, {"job": "deploy-1"})]


def test_clean_session_does_not_get_messages_published_while_offline(
    make_client: ClientFactory, mqtt_topic_root: str
) -> None:
    """The contrast to the persistent case: proves the session, not luck, delivered the message."""
    device_id, topic = f"dev-{uuid.uuid4().hex[:8]}", f"{mqtt_topic_root}/jobs/notify-next"
    first = make_client(device_id)
    first.subscribe(topic, lambda _t, _p: None)
    first.connect(WAIT_S)
    first.stop()
    cloud = make_client()
    cloud.connect(WAIT_S)
    cloud.publish_json(topic, {"job": "missed"})

    inbox = Inbox()
    again = make_client(device_id)
    again.subscribe(topic, inbox.add)
    again.connect(WAIT_S)
    cloud.publish_json(topic, {"job": "marker"})  # messages on one topic arrive in order

    assert inbox.wait_count(1) == [(topic, {"job": "marker"})]


# ------------------------------------------------------------------------------------------ outages


def test_publish_while_broker_down_raises(make_client: ClientFactory, restartable: MosquittoBroker) -> None:
    client = make_client()
    client.connect(WAIT_S)
    restartable.stop()
    wait_until(lambda: not client.is_connected, "the client noticed the broker is gone")

    with pytest.raises(MqttError, match="not connected"):
        client.publish_json("t/down", {"lost": False})


def test_client_reconnects_and_resubscribes_after_broker_restart(
    make_client: ClientFactory, restartable: MosquittoBroker, mqtt_topic_root: str
) -> None:
    inbox, changes = Inbox(), Inbox()
    client = make_client(on_connection_change=changes.add)
    client.connect(WAIT_S)
    client.subscribe(f"{mqtt_topic_root}/after", inbox.add)
    changes.wait_count(1)

    restartable.restart()  # persistence is off: the broker forgot the subscription
    changes.wait_for(lambda c: c[-2:] == [False, True], "a disconnect then a reconnect")
    other = make_client()
    other.connect(WAIT_S)
    other.publish_json(f"{mqtt_topic_root}/after", {"back": True})

    assert inbox.wait_count(1) == [(f"{mqtt_topic_root}/after", {"back": True})]
    assert client.is_connected


def test_start_connects_once_the_broker_comes_up(
    make_client: ClientFactory, restartable: MosquittoBroker, mqtt_topic_root: str
) -> None:
    changes = Inbox()
    restartable.stop()
    client = make_client(on_connection_change=changes.add)
    client.start()  # does not raise although nothing listens yet

    restartable.start()

    assert changes.wait_count(1) == [True]
    client.publish_json(f"{mqtt_topic_root}/hello", {"up": True})


def test_connect_can_be_retried_once_the_broker_is_back(
    make_client: ClientFactory, restartable: MosquittoBroker, mqtt_topic_root: str
) -> None:
    restartable.stop()
    client = make_client()
    with pytest.raises(MqttError, match="is the broker running"):
        client.connect(timeout=5)

    restartable.start()
    client.connect(WAIT_S)

    client.publish_json(f"{mqtt_topic_root}/retry", {"ok": True})


CHILD = """
import sys
from edgeinspect.core.mqtt import MqttClient, Will
url, topic, client_id = sys.argv[1:4]
client = MqttClient(url, client_id, will=Will(topic, {"online": False}, retain=False))
client.connect(10)
print("connected", flush=True)
sys.stdin.read()
"""


def test_last_will_is_published_when_the_device_process_dies(
    make_client: ClientFactory, mqtt_broker: MosquittoBroker, mqtt_topic_root: str
) -> None:
    inbox, topic = Inbox(), topics.device_state("dying-device", root=mqtt_topic_root)
    watcher = make_client()
    watcher.connect(WAIT_S)
    watcher.subscribe(topic, inbox.add)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, mqtt_broker.url, topic, f"dying-{uuid.uuid4().hex[:8]}"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"connected"
        child.kill()  # no DISCONNECT: the broker must publish the will
    finally:
        child.wait(WAIT_S)

    assert inbox.wait_count(1) == [(topic, {"online": False})]
