"""Where and how ``MqttClient`` connects: the broker URL, TLS material, the last will, and the errors.

Kept apart from the client so the rules a factory engineer meets first (a wrong URL, a missing
certificate, a refused connection) read in one short file, each failure with a hint saying what to do.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from edgeinspect.core.errors import ConfigError, MqttError
from edgeinspect.core.mqtt_dispatch import Subscription, check_qos, encode_json
from edgeinspect.core.topics import validate_topic

_DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True)
class TlsOptions:
    """TLS material for an ``mqtts://`` broker.

    ``ca_file`` is the CA that signed the broker's certificate (None: the system trust store, right for
    AWS IoT Core). ``cert_file``/``key_file`` are this device's client certificate and key, for brokers
    that authenticate clients by certificate (AWS IoT Core always does); give both or neither.
    """

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


@dataclass(frozen=True)
class Will:
    """The message the broker publishes for us if we vanish without a clean disconnect."""

    topic: str
    payload: Mapping[str, Any]
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True)
class BrokerAddress:
    """A parsed broker URL plus credentials; ``tls`` is set exactly when the scheme is ``mqtts``."""

    host: str
    port: int
    tls: TlsOptions | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def parse_mqtt_url(
    url: str, *, tls: TlsOptions | None = None, username: str | None = None, password: str | None = None
) -> BrokerAddress:
    """Parse ``mqtt://[user[:pass]@]host[:port]`` or ``mqtts://...``; explicit credentials win."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = -1
    if scheme not in _DEFAULT_PORTS or not parts.hostname or port == -1 or parts.path not in ("", "/"):
        raise ConfigError(
            f"invalid MQTT broker URL {url!r}",
            hint="use mqtt://host:1883 or mqtts://host:8883 (EI_MQTT_URL), with no path",
        )
    if scheme == "mqtt" and tls is not None:
        raise ConfigError(
            f"TLS options were given for the plain-text broker URL {url!r}",
            hint="use an mqtts:// URL to connect with TLS, or drop the certificate settings",
        )
    if scheme == "mqtts":
        tls = _checked_tls(tls or TlsOptions())
    user = username if username is not None else (unquote(parts.username) if parts.username else None)
    secret = password if password is not None else (unquote(parts.password) if parts.password else None)
    return BrokerAddress(parts.hostname, port or _DEFAULT_PORTS[scheme], tls, user, secret)


def describe_url(address: BrokerAddress) -> str:
    """The URL to show in logs and errors: never the password."""
    scheme = "mqtts" if address.tls is not None else "mqtt"
    host = f"[{address.host}]" if ":" in address.host else address.host
    return f"{scheme}://{host}:{address.port}"


def _checked_tls(tls: TlsOptions) -> TlsOptions:
    if (tls.cert_file is None) != (tls.key_file is None):
        raise ConfigError(
            "a client certificate needs both cert_file and key_file",
            hint="set both paths (the device certificate and its private key), or neither",
        )
    for name in ("ca_file", "cert_file", "key_file"):
        path: Path | None = getattr(tls, name)
        if path is not None and not Path(path).is_file():
            raise ConfigError(
                f"the MQTT TLS {name} {str(path)!r} does not exist or is not a file",
                hint="check the path (mounted secrets live under /run/secrets)",
            )
    return tls


def ssl_context(tls: TlsOptions) -> ssl.SSLContext:
    """A client TLS context that verifies the broker's certificate and host name, with our certificate."""
    try:
        context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
        if tls.cert_file is not None and tls.key_file is not None:
            context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot load the MQTT TLS files: {exc}",
            hint="ca_file, cert_file and key_file must be PEM; the key must match the certificate",
        ) from exc
    return context


@dataclass(frozen=True)
class SessionOptions:
    """How the paho client is built and connects; everything ``MqttClient`` takes besides callbacks."""

    client_id: str
    v5: bool = True
    keepalive_s: int = 30
    persistent: bool = False
    session_expiry_s: int = 7 * 24 * 3600
    will: Will | None = None
    reconnect_min_delay_s: int = 1
    reconnect_max_delay_s: int = 60
    max_queued_messages: int = 1000


def build_client(address: BrokerAddress, options: SessionOptions) -> paho.Client:
    """A paho client with our settings: callbacks v2, manual acks, backoff, credentials, TLS, last will."""
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=options.client_id,
        clean_session=None if options.v5 else not options.persistent,
        protocol=MQTTProtocolVersion.MQTTv5 if options.v5 else MQTTProtocolVersion.MQTTv311,
        manual_ack=True,
    )
    client.suppress_exceptions = True  # our callbacks catch everything; this is the safety net
    client.reconnect_delay_set(options.reconnect_min_delay_s, options.reconnect_max_delay_s)
    client.max_queued_messages_set(options.max_queued_messages)
    if address.username is not None:
        client.username_pw_set(address.username, address.password)
    if address.tls is not None:
        client.tls_set_context(ssl_context(address.tls))
    if options.will is not None:
        will = options.will
        body = encode_json(will.topic, will.payload)
        client.will_set(validate_topic(will.topic), body, check_qos(will.qos), will.retain)
    return client


def connect_args(options: SessionOptions) -> dict[str, Any]:
    """Keyword arguments of paho's ``connect``: keepalive, and for v5 clean start plus session expiry."""
    if not options.v5:
        return {"keepalive": options.keepalive_s}
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = options.session_expiry_s if options.persistent else 0
    return {"keepalive": options.keepalive_s, "clean_start": not options.persistent, "properties": props}


def subscribe_request(options: SessionOptions, subs: Sequence[Subscription], tag: bool) -> dict[str, Any]:
    """Keyword arguments of paho's ``subscribe`` for ``subs``; ``tag`` adds the (single) identifier.

    Retained messages are sent only for a new subscription, so renewing after a reconnect whose
    session the broker kept does not replay them.
    """
    if not options.v5:
        return {"topic": [(s.topic_filter, s.qos) for s in subs]}
    wanted = [
        (s.topic_filter, SubscribeOptions(qos=s.qos, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB))
        for s in subs
    ]
    if not tag:
        return {"topic": wanted}
    props = Properties(PacketTypes.SUBSCRIBE)  # type: ignore[no-untyped-call]
    props.SubscriptionIdentifier = subs[0].sub_id
    return {"topic": wanted, "properties": props}


def connect_error(address: BrokerAddress, client_id: str, exc: Exception, timeout: float) -> MqttError:
    """Turn a socket or TLS failure while connecting into an ``MqttError`` that says what to check."""
    where = f"{describe_url(address)} as {client_id!r}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        hint = "the broker's certificate is not signed by ca_file, or its name does not match the URL's host"
    elif isinstance(exc, ssl.SSLError):
        hint = "TLS failed: check that the port speaks TLS, and ca_file / cert_file / key_file"
    elif isinstance(exc, ConnectionResetError) and address.tls is not None:
        hint = "the broker hung up during the TLS handshake: does this port speak TLS? (mqtt:// vs mqtts://)"
    elif isinstance(exc, ConnectionRefusedError):
        hint = f"nothing listens on {address.host}:{address.port}: is the broker running? check EI_MQTT_URL"
    elif isinstance(exc, socket.gaierror):
        hint = f"the host name {address.host!r} does not resolve: check EI_MQTT_URL"
    elif isinstance(exc, TimeoutError):
        hint = f"no answer within {timeout}s: check the host, port, firewall and network"
    else:
        hint = "check EI_MQTT_URL and that the broker is reachable from this machine"
    return MqttError(f"cannot connect to MQTT broker {where}: {exc}", hint=hint)


def refusal_hint(address: BrokerAddress, reason: str) -> str:
    """What to check when the broker answered but did not accept us (or dropped us before CONNACK)."""
    lowered = reason.lower()
    if "user name or password" in lowered or "not authori" in lowered:
        return "check the username/password or client certificate, and the broker's ACL for this client id"
    if "closed the connection" in lowered and address.tls is not None:
        return (
            "the broker dropped the TLS session: it may require a client certificate (cert_file/key_file) "
            "or not trust this one; see the broker's log"
        )
    if "closed the connection" in lowered:
        return (
            "the broker hung up: does this port expect TLS (mqtts://)? does it accept this protocol "
            "version and client id? see the broker's log"
        )
    if "no connack" in lowered:
        return "the port answered but no MQTT broker replied: check the port and scheme (mqtt/mqtts)"
    return "see the broker's log for why it refused this client id"
