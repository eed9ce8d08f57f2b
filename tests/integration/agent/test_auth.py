"""The agent's TCP listener is not open to whoever reaches it: beyond loopback it needs a token or the
agent refuses to start; with a token, every TCP call must carry it, while the unix socket (guarded by
its file permissions) and gRPC health checks (kubelet's probes) need none."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import grpc
import httpx
import pytest
from edgeinspect.core.agent_client import AgentClient
from edgeinspect.core.errors import AgentError
from edgeinspect.core.lifecycle import wait_until
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from tests.fixtures.agent import AgentServer
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.servers import free_port
from tests.integration.ui.support import serve_ui

TOKEN = "agent-token-for-tests-0123456789"


def _agent(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EI_")}
    return subprocess.run(
        [sys.executable, "-m", "edgeinspect_inference.agent", *args],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("variable", ["EI_AGENT_TCP_ADDR", "EI_AGENT_ADDR"])
def test_a_tcp_listener_beyond_loopback_without_a_token_refuses_to_start(
    variable: str, tmp_path: Path
) -> None:
    env = {"EI_AGENT_ADDR": f"unix://{tmp_path}/a.sock", variable: f"0.0.0.0:{free_port()}"}
    checked = _agent("--check-config", **env)
    assert checked.returncode == 2, "an open TCP port beyond loopback is a configuration error"
    started = _agent(**env)  # settings are checked before anything is bound
    assert started.returncode == 2
    assert variable in started.stderr and "EI_AGENT_TOKEN" in started.stderr
    assert "without authentication" in started.stderr
    insecure = {"EI_AGENT_TCP_INSECURE": "true"}  # TLS is the other requirement (test_tls.py)
    assert _agent("--check-config", **env, **insecure, EI_AGENT_TOKEN=TOKEN).returncode == 0
    short = _agent("--check-config", **env, EI_AGENT_TOKEN="short")
    assert short.returncode == 2 and "shorter than 16" in short.stderr and "short'" not in short.stderr


def test_with_a_token_tcp_calls_need_it_and_the_unix_socket_does_not(
    agent_factory: Callable[..., AgentServer],
) -> None:
    agent = agent_factory(agent_token=TOKEN)  # TCP on loopback here; the rule is the same on 0.0.0.0
    with pytest.raises(AgentError) as refused:
        agent.client(tcp=True).list_versions()
    assert refused.value.code == "UNAUTHENTICATED" and "EI_AGENT_TOKEN" in refused.value.message
    with pytest.raises(AgentError, match="EI_AGENT_TOKEN"):
        agent.client(tcp=True, token="not-the-token-0123456789").load_version(str(agent.package("m", "1")))
    assert not (agent.model_dir / "m").exists() or not any((agent.model_dir / "m").iterdir())

    info = agent.client(tcp=True, token=TOKEN).load_version(str(agent.package("m", "1")))
    assert info.ref == "m:1"
    assert [v.ref for v in agent.client().list_versions()] == ["m:1"], "the unix socket needs no token"

    with grpc.insecure_channel(agent.tcp_addr) as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest()).status
        assert status == health_pb2.HealthCheckResponse.SERVING, "probes need no token"
        with pytest.raises(grpc.RpcError) as reflected:
            ProtoReflectionDescriptorDatabase(channel).get_services()
        assert reflected.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "agent_call_refused" in agent.logs()
    assert TOKEN not in agent.logs()


def test_the_ui_sends_the_token_to_a_tcp_agent(
    agent_factory: Callable[..., AgentServer], redis_server: RedisServer, line_id: str
) -> None:
    agent = agent_factory(agent_token=TOKEN)
    agent.client().load_version(str(agent.package("m", "1")))
    common = {"redis_url": redis_server.url, "ui_lines": line_id, "agent_addr": agent.tcp_addr}
    with serve_ui(**common) as ui:
        assert wait_until(lambda: httpx.get(ui.url + "/api/models").json()["agent"] == "unreachable", 20)
        assert "EI_AGENT_TOKEN" in httpx.get(ui.url + "/api/models").json()["message"]
    with serve_ui(**common, agent_token=TOKEN) as ui:
        assert wait_until(lambda: httpx.get(ui.url + "/api/models").json()["agent"] == "ok", 20)
        assert [row["version"] for row in httpx.get(ui.url + "/api/models").json()["models"]] == ["1"]


def test_without_a_token_loopback_tcp_stays_as_it_was(agent_server: AgentServer) -> None:
    with AgentClient(agent_server.tcp_addr) as client:
        assert client.list_versions() == []
