"""Unbounded parsing: ``[`` x 100,000 (and megabytes) from MQTT or Redis is one refused message.

Before core ``safejson`` this payload raised ``RecursionError`` out of ``json.loads``: it killed the
MQTT dispatcher thread (later jobs stayed QUEUED while ``/readyz`` said 200) and the model manager.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator

import httpx
import pytest
from edgeinspect.core import safejson
from edgeinspect.core.errors import MessageError
from edgeinspect.core.lifecycle import wait_until
from edgeinspect.core.messages import Event, Result
from edgeinspect.core.mqtt import MqttClient
from edgeinspect.core.mqtt_dispatch import decode_json_object
from edgeinspect.core.mqtt_health import watch_mqtt
from edgeinspect.core.observability import Health, HealthServer
from prometheus_client import CollectorRegistry, generate_latest

from tests.fixtures.mqtt_broker import MosquittoBroker
from tests.reliability.hostile import BRACKET_BOMB, WAIT_S, raw_publish


def test_a_bracket_bomb_is_a_depth_error_not_a_recursion_error() -> None:
    with pytest.raises(safejson.JsonLimitError) as caught:
        safejson.loads(BRACKET_BOMB, what="job document")
    assert caught.value.limit == "depth"
    assert "job document nests deeper than 64 levels" in str(caught.value)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, MessageError)


def test_size_is_refused_before_parsing_and_the_error_stays_short() -> None:
    big = b'{"a": "' + b"x" * (2 << 20) + b'"}'
    with pytest.raises(safejson.JsonLimitError) as caught:
        safejson.loads(big)
    assert caught.value.limit == "bytes"
    assert len(str(caught.value)) < 300


def test_valid_documents_parse_exactly_as_json_does() -> None:
    doc = {"a": [1, 2.5, None, True, {"b": '[[[\\"]]'}], "c": "é"}
    assert safejson.loads(json.dumps(doc).encode()) == doc
    assert safejson.loads(json.dumps(doc)) == doc
    assert safejson.nesting_depth(json.dumps(doc).encode()) == 3


def test_clip_quotes_at_most_about_a_hundred_characters() -> None:
    assert safejson.clip("short") == "'short'"
    clipped = safejson.clip("x" * (1 << 20))
    assert len(clipped) < 130 and clipped.endswith("chars)")


def test_an_mqtt_bracket_bomb_is_refused_with_a_reason() -> None:
    payload, reason = decode_json_object(BRACKET_BOMB)
    assert payload is None and "nests deeper" in reason


@pytest.mark.parametrize("record", [Result, Event])
def test_a_stream_record_with_a_bracket_bomb_field_is_a_message_error(record: type[Result]) -> None:
    fields = {
        "v": b"1",
        "kind": record.KIND.encode(),
        "frame_id": b"f1",
        "line": b"l1",
        "ts_ns": b"1",
        "verdict": b"ok",
        "score": b"0.5",
        "predictions": BRACKET_BOMB,
        "e2e_ms": b"1",
        "type": b"x",
        "detail": BRACKET_BOMB,
    }
    with pytest.raises(MessageError, match="nests deeper"):
        record.from_fields(fields)


@pytest.fixture
def client(mqtt_broker: MosquittoBroker) -> Iterator[MqttClient]:
    mqtt = MqttClient(mqtt_broker.url, f"rel-{uuid.uuid4().hex[:8]}")
    try:
        yield mqtt
    finally:
        mqtt.stop()


def test_the_dispatcher_survives_a_bracket_bomb_and_counts_it(
    client: MqttClient, mqtt_broker: MosquittoBroker, mqtt_topic_root: str
) -> None:
    got: list[dict[str, object]] = []
    refused: list[str] = []
    client._dispatcher._on_bad_payload = lambda _t, _p, why: refused.append(why)
    client.subscribe(f"{mqtt_topic_root}/jobs/#", lambda _t, payload: got.append(payload))
    registry = CollectorRegistry()
    watch_mqtt(client, None, registry, "t")
    client.connect(timeout=10)

    raw_publish(mqtt_broker.url, f"{mqtt_topic_root}/jobs/notify-next", BRACKET_BOMB)
    raw_publish(mqtt_broker.url, f"{mqtt_topic_root}/jobs/notify-next", b'{"ok": 1}')

    assert wait_until(lambda: got == [{"ok": 1}], timeout=WAIT_S), got
    assert client.dispatcher_alive
    assert client.dispatch_counts["bad_payloads"] == 1
    assert refused and "nests deeper" in refused[0]
    assert b"t_mqtt_bad_payloads_total 1.0" in generate_latest(registry)


def test_a_handler_that_fails_on_every_message_never_ends_the_thread(
    client: MqttClient, mqtt_broker: MosquittoBroker, mqtt_topic_root: str
) -> None:
    calls: list[int] = []

    def explode(_topic: str, _payload: dict[str, object]) -> None:
        calls.append(1)
        raise RecursionError("what json.loads used to raise")

    client.subscribe(f"{mqtt_topic_root}/x", explode)
    client.connect(timeout=10)
    for _ in range(3):
        raw_publish(mqtt_broker.url, f"{mqtt_topic_root}/x", b"{}")
    assert wait_until(lambda: len(calls) == 3, timeout=WAIT_S)
    assert client.dispatcher_alive and client.dispatch_counts["handler_failures"] == 3


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_readyz_goes_503_when_the_dispatcher_thread_dies(
    client: MqttClient, mqtt_broker: MosquittoBroker, mqtt_topic_root: str
) -> None:
    """Nothing a message does can end the thread any more; ``SystemExit`` from a handler stands in for
    whatever else might, and readiness must show it."""
    died = threading.Event()

    def fatal(_topic: str, _payload: dict[str, object]) -> None:
        died.set()
        raise SystemExit("stand-in for a dispatcher death")

    client.subscribe(f"{mqtt_topic_root}/x", fatal)
    health = Health()
    watch_mqtt(client, health, CollectorRegistry(), "t")
    server = HealthServer(health, "127.0.0.1", 0, CollectorRegistry()).start()
    try:
        client.connect(timeout=10)
        assert httpx.get(f"http://127.0.0.1:{server.port}/readyz").status_code == 200
        raw_publish(mqtt_broker.url, f"{mqtt_topic_root}/x", b"{}")
        assert died.wait(WAIT_S)
        assert wait_until(lambda: not client.dispatcher_alive, timeout=WAIT_S)
        reply = httpx.get(f"http://127.0.0.1:{server.port}/readyz")
        assert reply.status_code == 503
        assert reply.json()["checks"]["mqtt_dispatcher"] is False
    finally:
        server.stop()
