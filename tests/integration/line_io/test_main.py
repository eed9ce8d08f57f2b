"""The console script as a process: the config check, health/readiness/metrics/status over HTTP, the
vision system served, and a clean SIGTERM; a setting that could let nobody in is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from edgeinspect.core.lifecycle import wait_until

from tests.fixtures.redis_server import RedisServer
from tests.fixtures.servers import LOOPBACK, free_port

SCRIPT = str(Path(sys.executable).parent / "edgeinspect-line-io")


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EI_")}
    env.update({f"EI_{k.upper()}": v for k, v in values.items()})
    return env


@pytest.fixture
def line_io_process(
    redis_server: RedisServer, line_id: str, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], int, int]]:
    port, modbus = free_port(), free_port()
    env = _env(
        redis_url=redis_server.url,
        line=line_id,
        http_port=str(port),
        opcua_endpoint=f"opc.tcp://{LOOPBACK}:{free_port()}/edgeinspect/",
        opcua_users="op:secret",
        opcua_cert_dir=str(tmp_path / "pki"),
        outputs="modbus-server",
        modbus_server_port=str(modbus),
    )
    proc = subprocess.Popen([SCRIPT], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    yield proc, port, modbus
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def test_serves_health_metrics_status_and_stops_cleanly_on_sigterm(
    line_io_process: tuple[subprocess.Popen[bytes], int, int],
) -> None:
    proc, port, _ = line_io_process
    base = f"http://{LOOPBACK}:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{base}/readyz").status_code == 200
        except httpx.TransportError:
            return False

    assert wait_until(ready, timeout=120), "the line I/O never became ready"  # the OPC UA server is up
    assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{base}/status").json()["state"] == "ContinuousExecution"
    assert "ei_lineio_connected" in httpx.get(f"{base}/metrics").text
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    events = [json.loads(line)["event"] for line in (proc.stderr.read() if proc.stderr else b"").splitlines()]
    assert "shutdown_requested" in events and "line_io_stopped" in events


def test_check_config_masks_passwords_and_bad_settings_exit_2(redis_server: RedisServer) -> None:
    shown = subprocess.run(
        [SCRIPT, "--check-config"],
        env=_env(opcua_users="op:secret", redis_url="redis://:pw@127.0.0.1:1/0"),
        capture_output=True,
        timeout=60,
    )
    assert shown.returncode == 0 and b"secret" not in shown.stdout and b":pw@" not in shown.stdout
    refused = subprocess.run([SCRIPT], env=_env(outputs="profinet"), capture_output=True, timeout=60)
    assert refused.returncode == 2 and b"EI_OUTPUTS" in refused.stderr
    nobody = subprocess.run([SCRIPT], env=_env(redis_url=redis_server.url), capture_output=True, timeout=60)
    assert nobody.returncode == 2 and b"EI_OPCUA_USERS" in nobody.stderr
