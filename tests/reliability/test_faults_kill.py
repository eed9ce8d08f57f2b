"""kill -9 of each edge service mid-stream, and Redis restarted (persistent and empty), with real
processes: no frame and no capture lost, none judged or stored twice, no error verdict.

Frames go straight into ``ei:frames:{line}`` (except for the camera's own test), so the test knows
every frame that must come out; the worker captures every frame (``EI_CAPTURE_GOOD_FRACTION=1``),
so every frame must also reach the uploader's store.
"""

from __future__ import annotations

import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from edgeinspect.core import images
from edgeinspect.core.lifecycle import wait_until

from tests.fixtures.agent import AgentServer
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.servers import LOOPBACK, free_port
from tests.integration.worker.conftest import frame_pixels
from tests.reliability.edge import EdgeLine, PersistentRedis, make_line, send_frames

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def persistent_redis() -> Iterator[PersistentRedis]:
    with tempfile.TemporaryDirectory() as workdir:
        port = free_port()
        server = PersistentRedis(url=f"redis://{LOOPBACK}:{port}/0", port=port, workdir=Path(workdir))
        server.start()
        yield server
        server.stop()


def _started(line: EdgeLine, *services: str) -> None:
    for service in services:
        line.start(service)


@pytest.mark.parametrize("victim", ["worker", "uploader", "agent"])
def test_kill_9_mid_stream_loses_nothing(edge: EdgeLine, victim: str) -> None:
    edge.kit.deploy()
    _started(edge, "worker", "uploader")
    expected = send_frames(edge, "a", 12)
    assert wait_until(lambda: len(edge.results()) >= 4, 60), edge.logs("worker")
    if victim == "agent":
        edge.kit.agent.stop(signal.SIGKILL)
        expected |= send_frames(edge, "b", 8)
        edge.kit.agent.start()
        edge.kit.deploy()  # the model manager's restore
    else:
        edge.kill(victim)
        expected |= send_frames(edge, "b", 8)
        edge.start(victim)
    expected |= send_frames(edge, "c", 6)
    edge.wait_done(set(expected))
    edge.check(set(expected), expected)


def test_kill_9_of_the_camera_loses_no_published_frame(edge: EdgeLine, tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(30):
        (folder / f"p{i:03d}.png").write_bytes(images.encode(frame_pixels("dark"), "png"))
    edge.settings["camera"] = {"source": f"folder://{folder}", "fps": "10", "loop": "false"}
    edge.kit.deploy()
    _started(edge, "worker", "uploader", "camera")
    assert wait_until(lambda: len(edge.frame_ids()) >= 8, 60), edge.logs("camera")
    edge.kill("camera")
    edge.start("camera")  # replays the folder from the start, with new frame ids
    assert wait_until(lambda: len(edge.frame_ids()) >= 38, 60), edge.logs("camera")
    assert wait_until(lambda: edge.procs["camera"].poll() is not None, 60)  # the folder ran out
    frames = set(edge.frame_ids())
    edge.wait_done(frames)
    edge.check(frames)


@pytest.mark.parametrize("persistent", [True, False], ids=["persistent", "empty"])
def test_redis_restart_mid_stream(
    persistent: bool,
    persistent_redis: PersistentRedis,
    own_redis: RedisServer,
    agent_server: AgentServer,
    line_id: str,
    tmp_path: Path,
) -> None:
    server: RedisServer = persistent_redis if persistent else own_redis
    line = make_line(line_id, server, agent_server, tmp_path)
    try:
        line.kit.deploy()
        _started(line, "worker", "uploader")
        before = send_frames(line, "a", 10)
        if not persistent:  # an empty restart loses what Redis held: let the line finish it first
            line.wait_done(set(before))
        else:
            assert wait_until(lambda: len(line.results()) >= 3, 60), line.logs("worker")
        results_before = {r.frame_id for r in line.results()}
        server.restart()
        line.client.connection_pool.disconnect()
        after = send_frames(line, "b", 10)
        expected = before | after if persistent else after
        line.wait_done(set(expected))
        line.check(set(expected), expected)
        if not persistent:
            assert results_before == set(before)  # finished before the restart (the stream is gone)
    finally:
        line.stop_all()
