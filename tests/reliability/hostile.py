"""What an attacker (or a broken client) sends, built once for the reliability tests; and the one
hypothesis profile they share: short, derandomized runs with no deadline, so the folder stays fast and
gives the same result on every machine."""

from __future__ import annotations

import struct
import uuid
import zlib

import paho.mqtt.client as paho
from edgeinspect.core.mqtt import parse_mqtt_url
from hypothesis import HealthCheck, settings
from paho.mqtt.enums import CallbackAPIVersion

BRACKET_BOMB = b"[" * 100_000
"""The payload that once crashed the model manager and killed MQTT dispatcher threads."""
WAIT_S = 15.0

FUZZ = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def raw_publish(url: str, topic: str, payload: bytes) -> None:
    """Publish bytes our own client refuses to send (not JSON, too deep), with plain paho."""
    address = parse_mqtt_url(url)
    raw = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"raw-{uuid.uuid4().hex[:8]}")
    raw.connect(address.host, address.port)
    raw.loop_start()
    try:
        raw.publish(topic, payload, qos=1).wait_for_publish(WAIT_S)
    finally:
        raw.disconnect()
        raw.loop_stop()


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` but carries almost no pixel data: what a header check
    must refuse before anything tries to decompress (or allocate) the pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
