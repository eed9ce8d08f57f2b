"""Broker URLs, TLS settings and connection hints (pure logic, no broker)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from edgeinspect.core.errors import ConfigError
from edgeinspect.core.mqtt import TlsOptions, parse_mqtt_url
from edgeinspect.core.mqtt_connect import connect_error, describe_url, refusal_hint


def test_url_parsing() -> None:
    plain = parse_mqtt_url("mqtt://broker.local")
    assert (plain.host, plain.port, plain.tls) == ("broker.local", 1883, None)
    secure = parse_mqtt_url("mqtts://user:p%40ss@10.0.0.5")
    assert (secure.port, secure.username, secure.password) == (8883, "user", "p@ss")
    assert secure.tls == TlsOptions()
    assert describe_url(secure) == "mqtts://10.0.0.5:8883"  # never the password
    assert parse_mqtt_url("mqtt://h:1", username="u").username == "u"


@pytest.mark.parametrize(
    "url", ["http://h:1883", "mqtt://:1883", "mqtt://h:99999", "mqtt://h:1/path", "h:1883"]
)
def test_bad_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match="invalid MQTT broker URL"):
        parse_mqtt_url(url)


def test_tls_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="plain-text"):
        parse_mqtt_url("mqtt://h", tls=TlsOptions())
    with pytest.raises(ConfigError, match="does not exist"):
        parse_mqtt_url("mqtts://h", tls=TlsOptions(ca_file=tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match="both cert_file and key_file"):
        parse_mqtt_url("mqtts://h", tls=TlsOptions(cert_file=tmp_path / "c.pem"))


def test_connect_errors_say_what_to_check() -> None:
    plain, secure = parse_mqtt_url("mqtt://h"), parse_mqtt_url("mqtts://h")
    assert "is the broker running" in connect_error(plain, "d", ConnectionRefusedError(), 5).hint
    assert "ca_file" in connect_error(secure, "d", ssl.SSLCertVerificationError("bad"), 5).hint
    assert "speak TLS" in connect_error(secure, "d", ConnectionResetError(), 5).hint
    assert "5s" in connect_error(plain, "d", TimeoutError(), 5).hint
    assert "client certificate" in refusal_hint(
        secure, "the broker closed the connection before accepting it"
    )
    assert "password" in refusal_hint(plain, "the broker refused the connection: Bad user name or password")
