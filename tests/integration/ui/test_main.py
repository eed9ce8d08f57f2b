"""``edgeinspect-ui`` as a process: settings from the environment, JSON logs, a graceful SIGTERM that
ends open live streams instead of waiting for them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import httpx
import pytest
from edgeinspect_ui.main import main

from tests.fixtures.redis_server import RedisServer
from tests.fixtures.servers import LOOPBACK, free_port, wait_for_port


def test_check_config_validates_and_exits(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check-config"]) == 0
    assert "configuration ok" in capsys.readouterr().out


def test_a_bad_setting_exits_2_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EI_UI_AUTH", "basic")
    assert main(["--check-config"]) == 2
    assert "EI_UI_PASSWORD" in capsys.readouterr().err


def test_sigterm_closes_live_streams_and_exits_cleanly(redis_server: RedisServer, line_id: str) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EI_")}
    env.update(
        EI_REDIS_URL=redis_server.url,
        EI_UI_PORT=str(port),
        EI_HTTP_HOST=LOOPBACK,
        EI_UI_AUTH="none",
        EI_UI_LINES=line_id,
        EI_LINE=line_id,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeinspect_ui.main"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        wait_for_port(port, proc)
        with httpx.stream("GET", f"http://{LOOPBACK}:{port}/api/stream", timeout=20) as response:
            lines = response.iter_lines()
            assert next(lines).startswith("retry:")
            proc.send_signal(signal.SIGTERM)
            for _ in lines:  # the server ends the stream itself
                pass
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stderr is not None
    events = [
        json.loads(line)["event"] for line in proc.stderr.read().decode().splitlines() if line.startswith("{")
    ]
    assert events.index("ui_started") < events.index("shutdown_requested") < events.index("ui_stopped")
