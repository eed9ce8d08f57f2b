"""TLS on the agent's TCP port (issue 15: the token travelled in clear): the agent serves TLS with
EI_AGENT_TLS_CERT_FILE/KEY_FILE, demands client certificates with EI_AGENT_TLS_CLIENT_CA_FILE, and
refuses a TCP listener beyond loopback without TLS unless EI_AGENT_TCP_INSECURE=true; the clients
(AgentClient, so worker, model manager and UI) verify it against EI_AGENT_TLS_CA_FILE. Certificates
come from the test PKI (tests/fixtures/certs.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from edgeinspect.core.agent_client import AgentClient
from edgeinspect.core.agent_tls import ClientTls
from edgeinspect.core.errors import AgentError, ConfigError
from edgeinspect_model_manager.settings import ModelManagerSettings
from pydantic import ValidationError

from tests.fixtures.agent import AgentServer
from tests.fixtures.certs import Pki, make_pki
from tests.fixtures.servers import free_port

TOKEN = "agent-token-for-tests-0123456789"
Factory = Callable[..., AgentServer]


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


def _tls_agent(agent_factory: Factory, pki: Pki, **extra: object) -> AgentServer:
    return agent_factory(
        agent_token=TOKEN, agent_tls_cert_file=pki.server_cert, agent_tls_key_file=pki.server_key, **extra
    )


def _versions(addr: str, **options: object) -> int:
    with AgentClient(addr, timeout_s=5, token=TOKEN, **options) as client:  # type: ignore[arg-type]
        return len(client.list_versions())


def test_tls_clients_get_in_plain_ones_do_not(agent_factory: Factory, pki: Pki, tmp_path: Path) -> None:
    agent = _tls_agent(agent_factory, pki)

    assert _versions(agent.tcp_addr, tls=ClientTls(pki.ca_file)) == 0
    with pytest.raises(AgentError) as plain:  # a plain-text client cannot even start the handshake
        _versions(agent.tcp_addr)
    assert plain.value.code == "UNAVAILABLE"
    other = make_pki(tmp_path / "other-pki")  # a certificate from another CA is not trusted
    with pytest.raises(AgentError) as untrusted:
        _versions(agent.tcp_addr, tls=ClientTls(other.ca_file))
    assert untrusted.value.code == "UNAVAILABLE"
    assert _versions(agent.addr) == 0  # the unix socket stays plain (its file permissions guard it)


def test_the_name_checked_can_differ_from_the_address_dialled(agent_factory: Factory, pki: Pki) -> None:
    agent = _tls_agent(agent_factory, pki)  # the test certificate names localhost and 127.0.0.1

    assert _versions(agent.tcp_addr, tls=ClientTls(pki.ca_file, server_name="localhost")) == 0
    with pytest.raises(AgentError):
        _versions(agent.tcp_addr, tls=ClientTls(pki.ca_file, server_name="someone-else"))


def test_mtls_needs_a_client_certificate_from_the_ca(
    agent_factory: Factory, pki: Pki, tmp_path: Path
) -> None:
    agent = _tls_agent(agent_factory, pki, agent_tls_client_ca_file=pki.ca_file)

    mine = ClientTls(pki.ca_file, pki.client_cert, pki.client_key)
    assert _versions(agent.tcp_addr, tls=mine) == 0
    with pytest.raises(AgentError):
        _versions(agent.tcp_addr, tls=ClientTls(pki.ca_file))
    other = make_pki(tmp_path / "other-pki")
    with pytest.raises(AgentError):
        _versions(agent.tcp_addr, tls=ClientTls(pki.ca_file, other.client_cert, other.client_key))


def _check_config(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EI_")}
    return subprocess.run(
        [sys.executable, "-m", "edgeinspect_inference.agent", "--check-config"],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_beyond_loopback_without_tls_the_agent_refuses_to_start(tmp_path: Path, pki: Pki) -> None:
    env = {
        "EI_AGENT_ADDR": f"unix://{tmp_path}/a.sock",
        "EI_AGENT_TCP_ADDR": f"0.0.0.0:{free_port()}",
        "EI_AGENT_TOKEN": TOKEN,
    }
    refused = _check_config(**env)
    assert refused.returncode == 2
    for name in ("EI_AGENT_TCP_ADDR", "without TLS", "EI_AGENT_TLS_CERT_FILE", "EI_AGENT_TCP_INSECURE"):
        assert name in refused.stderr, refused.stderr
    tls = {"EI_AGENT_TLS_CERT_FILE": str(pki.server_cert), "EI_AGENT_TLS_KEY_FILE": str(pki.server_key)}
    assert _check_config(**env, **tls).returncode == 0
    assert _check_config(**env, EI_AGENT_TCP_INSECURE="true").returncode == 0
    lone = _check_config(**env, EI_AGENT_TLS_CERT_FILE=str(pki.server_cert))
    assert lone.returncode == 2 and "go together" in lone.stderr
    loopback = {**env, "EI_AGENT_TCP_ADDR": f"127.0.0.1:{free_port()}"}
    assert _check_config(**loopback).returncode == 0  # loopback may stay plain, as before


def test_a_certificate_file_that_is_not_pem_stops_the_start_with_its_variable(
    pki: Pki, tmp_path: Path
) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"not a certificate")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EI_")}
    env = {
        "EI_AGENT_ADDR": f"unix://{tmp_path}/a.sock",
        "EI_AGENT_TCP_ADDR": f"127.0.0.1:{free_port()}",
        "EI_AGENT_TLS_CERT_FILE": str(junk),
        "EI_AGENT_TLS_KEY_FILE": str(pki.server_key),
        "EI_MODEL_DIR": str(tmp_path / "models"),
        "EI_TRUSTED_KEYS_DIR": str(tmp_path),
        "EI_HTTP_PORT": "0",
        "EI_REDIS_URL": "",
    }
    started = subprocess.run(
        [sys.executable, "-m", "edgeinspect_inference.agent"],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert started.returncode != 0
    assert "EI_AGENT_TLS_CERT_FILE" in started.stderr and "not a PEM file" in started.stderr, started.stderr
    with pytest.raises(ConfigError, match="EI_AGENT_TLS_CA_FILE"):
        AgentClient("127.0.0.1:1", tls=ClientTls(tmp_path / "missing.pem"))


def test_client_settings_read_the_ca_bundle_and_client_certificate(pki: Pki) -> None:
    settings = ModelManagerSettings.load(
        thing_name="t1",
        agent_tls_ca_file=str(pki.ca_file),
        agent_tls_client_cert_file=str(pki.client_cert),
        agent_tls_client_key_file=str(pki.client_key),
        agent_tls_server_name="edgeinspect-agent",
    )
    assert settings.agent_tls() == ClientTls(
        pki.ca_file, pki.client_cert, pki.client_key, "edgeinspect-agent"
    )
    assert ModelManagerSettings.load(thing_name="t1").agent_tls() is None
    with pytest.raises((ValidationError, ConfigError), match="go together"):
        ModelManagerSettings.load(
            thing_name="t1",
            agent_tls_ca_file=str(pki.ca_file),
            agent_tls_client_cert_file=str(pki.client_cert),
        )
