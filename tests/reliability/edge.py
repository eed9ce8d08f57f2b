"""An edge line of real processes for the fault tests: worker, uploader and camera as their own
processes (``python -m ...``), the agent from the ``agent_server`` fixture, Redis from ``own_redis``
(or a persistent one). The test kills, restarts and starves them; :meth:`EdgeLine.check` then says
whether any frame or capture was lost or doubled.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from edgeinspect.core import names
from edgeinspect.core.lifecycle import wait_until
from edgeinspect.core.messages import Result

from tests.fixtures.agent import AgentServer
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.servers import LOOPBACK, read_log, signal_and_wait
from tests.integration.worker.conftest import LineKit, frame_pixels

MODULES = {
    "worker": "edgeinspect_inference.worker",
    "uploader": "edgeinspect_uploader.main",
    "camera": "edgeinspect_camera.main",
}


@dataclass
class PersistentRedis(RedisServer):
    """A redis-server with an append-only file: a restart (SIGTERM, then start) keeps every stream."""

    def _launch(self) -> subprocess.Popen[bytes]:
        with open(self.log_file, "ab") as log:
            return subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", LOOPBACK, "--save", "",
                 "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.workdir)],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip


@dataclass
class EdgeLine:
    """The processes of one line and what they wrote."""

    kit: LineKit
    root: Path
    settings: dict[str, dict[str, str]] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def client(self) -> redis.Redis:
        return self.kit.client

    @property
    def store(self) -> Path:
        return self.root / "store"

    def env(self, service: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EI_")}
        values = {
            "redis_url": self.kit.redis_url, "line": self.kit.line, "http_host": LOOPBACK, "http_port": "0",
            "log_level": "INFO",
        }  # fmt: skip
        if service == "worker":
            values.update(
                agent_addr=self.kit.agent.addr, consumer="w1", block_ms="50", catalog_refresh_s="0.5",
                capture_good_fraction="1.0", model_wait_s="60", model_retry_s="0.1", agent_timeout_s="3",
            )  # fmt: skip
        elif service == "uploader":
            values.update(
                capture_url=f"file://{self.store}", spool_dir=str(self.root / "spool"), retry_initial_s="0.1",
                retry_max_s="0.5", stale_claim_ms="1000", telemetry_forward="false",
            )  # fmt: skip
        values.update(self.settings.get(service, {}))
        env.update({f"EI_{k.upper()}": v for k, v in values.items()})
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def start(self, service: str) -> None:
        log = open(self.root / f"{service}.log", "ab")  # noqa: SIM115 - the child owns it
        self.procs[service] = subprocess.Popen(
            [sys.executable, "-m", MODULES[service]], env=self.env(service), stdout=log, stderr=log
        )
        log.close()

    def kill(self, service: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(service)
        signal_and_wait(proc, sig, timeout=30)

    def stop_all(self) -> None:
        for service in list(self.procs):
            self.kill(service, signal.SIGTERM)

    def logs(self, service: str) -> str:
        return read_log(self.root / f"{service}.log")[-3000:]

    # --- what happened ------------------------------------------------------------------------
    def frame_ids(self) -> list[str]:
        raw: Any = self.client.xrange(names.frames_stream(self.kit.line))
        return [fields[b"frame_id"].decode() for _, fields in raw]

    def results(self) -> list[Result]:
        return self.kit.results()

    def uploaded(self) -> Counter[str]:
        return Counter(p.parent.name for p in self.store.rglob("image.*"))

    def wait_done(self, frames: set[str], timeout: float = 120.0, captures: set[str] | None = None) -> None:
        """Until every frame has a result and every captured frame (``captures``, else all) is stored."""
        stored = frames if captures is None else captures

        def done() -> bool:
            judged = {r.frame_id for r in self.results()}
            return frames <= judged and stored <= set(self.uploaded())

        if not wait_until(done, timeout, interval=0.2):
            judged = {r.frame_id for r in self.results()}
            pytest.fail(
                f"missing results {sorted(frames - judged)[:10]}, missing captures "
                f"{sorted(stored - set(self.uploaded()))[:10]}\nworker:\n{self.logs('worker')}\n"
                f"uploader:\n{self.logs('uploader')}"
            )

    def check(
        self, frames: set[str], expected: dict[str, str] | None = None, captures: set[str] | None = None
    ) -> None:
        """No frame lost or judged twice, no error verdict, every capture stored exactly once."""
        results = self.results()
        per_frame = Counter(r.frame_id for r in results)
        assert set(per_frame) >= frames, f"lost: {sorted(frames - set(per_frame))[:10]}"
        assert max(per_frame.values()) == 1, f"judged twice: {[f for f, n in per_frame.items() if n > 1]}"
        assert not [r for r in results if r.verdict in ("error", "no_model")], [
            (r.frame_id, r.error) for r in results if r.verdict in ("error", "no_model")
        ]
        if expected is not None:
            assert {r.frame_id: r.verdict for r in results if r.frame_id in expected} == expected
        stored = self.uploaded()
        assert (frames if captures is None else captures) <= set(stored)
        assert not stored or max(stored.values()) == 1
        # a capture is one folder per frame id: two uploads of one capture would rewrite, not add


def make_line(kit_line: str, redis: RedisServer, agent: AgentServer, root: Path) -> EdgeLine:
    client = redis_client(redis)
    return EdgeLine(LineKit(kit_line, redis.url, client, agent), root)


def redis_client(server: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(server.url, socket_timeout=10)


def send_frames(line: EdgeLine, prefix: str, count: int) -> dict[str, str]:
    """``count`` frames, alternately good and defective; returns frame id -> expected verdict."""
    expected = {}
    for i in range(count):
        frame_id = f"{prefix}-{i:03d}"
        line.kit.send(frame_id, frame_pixels("bright" if i % 2 else "dark"))
        expected[frame_id] = "defect" if i % 2 else "ok"
    return expected
