"""The console script as a process: health, readiness and metrics over HTTP, and a clean SIGTERM."""

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
import redis
from edgeinspect.core.lifecycle import wait_until

from tests.fixtures.redis_server import RedisServer
from tests.fixtures.servers import free_port
from tests.integration.camera.conftest import events, frames
from tests.unit.camera.helpers import write_folder

SCRIPT = str(Path(sys.executable).parent / "edgeinspect-camera")


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EI_")}
    env.update({f"EI_{k.upper()}": v for k, v in values.items()})
    return env


@pytest.fixture
def camera_process(
    redis_server: RedisServer, line_id: str, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    write_folder(tmp_path, 3)
    port = free_port()
    env = _env(
        source=f"folder://{tmp_path}", redis_url=redis_server.url, line=line_id, http_port=str(port), fps="20"
    )
    proc = subprocess.Popen([SCRIPT], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    yield proc, port
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def test_serves_health_and_metrics_and_stops_cleanly_on_sigterm(
    camera_process: tuple[subprocess.Popen[bytes], int], redis_client: redis.Redis, line_id: str
) -> None:
    proc, port = camera_process
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{base}/readyz").status_code == 200
        except httpx.TransportError:
            return False

    assert wait_until(ready, timeout=30), "the camera never became ready"
    assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
    assert wait_until(lambda: len(frames(redis_client, line_id)) >= 5, timeout=20)
    metrics = httpx.get(f"{base}/metrics").text
    for name in ("frames_captured_total", "encode_seconds_bucket", "source_fps", "frames_published_total"):
        assert f"edgeinspect_camera_{name}" in metrics
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    (stopped,) = events(redis_client, line_id, "camera_stopped")
    assert stopped.detail["published"] == len(frames(redis_client, line_id))
    log_lines = [
        json.loads(line) for line in (proc.stderr.read() if proc.stderr else b"").splitlines() if line
    ]
    assert any(entry["event"] == "shutdown_requested" for entry in log_lines)


def test_invalid_settings_exit_2_naming_the_variable(redis_server: RedisServer) -> None:
    result = subprocess.run([SCRIPT], env=_env(source="usb:0", fps="fast"), capture_output=True, timeout=60)
    assert result.returncode == 2 and b"EI_FPS" in result.stderr


def test_unknown_source_scheme_exits_2(redis_server: RedisServer) -> None:
    env = _env(source="gopher://x", redis_url=redis_server.url)
    result = subprocess.run([SCRIPT], env=env, capture_output=True, timeout=60)
    assert result.returncode == 2 and b"EI_SOURCE" in result.stderr


def test_check_config_prints_settings_without_passwords() -> None:
    env = _env(source="rtsp://op:secret@cam/s", redis_url="redis://:hunter2@redis:6379/0")
    result = subprocess.run([SCRIPT, "--check-config"], env=env, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["source"] == "rtsp://op:***@cam/s" and shown["redis_url"] == "redis://:***@redis:6379/0"
    assert b"secret" not in result.stdout and b"hunter2" not in result.stdout


def test_malformed_redis_url_exits_2() -> None:
    result = subprocess.run(
        [SCRIPT], env=_env(source="usb:0", redis_url="not-a-url"), capture_output=True, timeout=60
    )
    assert result.returncode == 2 and b"redis" in result.stderr.lower()
