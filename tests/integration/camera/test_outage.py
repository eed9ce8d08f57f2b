"""A source that disappears and comes back: reported once as ``source_down``, then ``source_up``
with the outage's duration, readiness follows it, and frames flow again afterwards."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import redis
from edgeinspect.core.lifecycle import wait_until
from edgeinspect_camera.service import CameraService

from tests.fixtures.redis_server import RedisServer
from tests.integration.camera.conftest import StartCamera, events, frames
from tests.unit.camera.helpers import write_folder, write_video


def _outage(camera: CameraService, client: redis.Redis, line: str, remove: object, restore: object) -> None:
    """Remove the source, see it reported and readiness drop, restore it, see it come back."""
    assert wait_until(lambda: len(frames(client, line)) >= 3, timeout=20)
    remove()  # type: ignore[operator]
    assert wait_until(lambda: bool(events(client, line, "source_down")), timeout=20)
    assert wait_until(lambda: not camera.health.readiness()[1]["source"], timeout=5)
    before = len(frames(client, line))
    camera.stop_event.wait(0.5)  # several reconnect attempts fail while it is gone
    restore()  # type: ignore[operator]
    assert wait_until(lambda: bool(events(client, line, "source_up")), timeout=20)
    assert wait_until(lambda: len(frames(client, line)) >= before + 3, timeout=20)
    (down,) = events(client, line, "source_down")
    (up,) = events(client, line, "source_up")
    assert down.level == "error" and down.detail["error"] and down.detail["source"] == up.detail["source"]
    assert up.detail["down_s"] >= 0.4
    assert camera.metrics.value("edgeinspect_camera_source_outages_total") == 1
    assert camera.health.readiness() == (True, {"redis": True, "source": True})


def test_a_replay_folder_that_vanishes_and_returns(
    start_camera: StartCamera, redis_client: redis.Redis, line_id: str, tmp_path: Path
) -> None:
    root = tmp_path / "frames"
    write_folder(root, 4)
    camera = start_camera(source=f"folder://{root}", fps=40.0, loop=True, max_backlog=1000)
    _outage(
        camera,
        redis_client,
        line_id,
        lambda: shutil.move(root, tmp_path / "unmounted"),
        lambda: shutil.move(tmp_path / "unmounted", root),
    )


def test_a_video_file_that_vanishes_and_returns(
    start_camera: StartCamera, redis_client: redis.Redis, line_id: str, tmp_path: Path
) -> None:
    path = tmp_path / "cam.avi"
    write_video(path, 4)
    camera = start_camera(source=f"file://{path}", fps=40.0, loop=True, max_backlog=1000)
    _outage(
        camera,
        redis_client,
        line_id,
        lambda: path.rename(tmp_path / "gone.avi"),
        lambda: (tmp_path / "gone.avi").rename(path),
    )


def test_a_source_missing_at_start_is_reported_and_picked_up_when_it_appears(
    start_camera: StartCamera, redis_client: redis.Redis, line_id: str, tmp_path: Path
) -> None:
    root = tmp_path / "later"
    camera = start_camera(source=f"folder://{root}", fps=40.0, loop=False)
    assert wait_until(lambda: bool(events(redis_client, line_id, "source_down")), timeout=20)
    assert camera.health.readiness()[0] is False
    write_folder(root, 2)
    assert wait_until(lambda: len(frames(redis_client, line_id)) == 2, timeout=20)
    assert len(events(redis_client, line_id, "source_up")) == 1


def test_the_camera_rides_out_a_redis_restart(
    start_camera: StartCamera,
    redis_server: RedisServer,
    redis_client: redis.Redis,
    line_id: str,
    tmp_path: Path,
) -> None:
    if redis_server.proc is None:
        pytest.skip("an external Redis (EI_TEST_REDIS_URL) cannot be restarted by the test")
    write_folder(tmp_path, 3)
    camera = start_camera(source=f"folder://{tmp_path}", fps=40.0, loop=True, max_backlog=1000)
    assert wait_until(lambda: len(frames(redis_client, line_id)) >= 3, timeout=20)
    redis_server.restart()  # every stream is gone; the camera must reconnect and carry on

    def published_again() -> bool:
        try:
            return len(frames(redis_client, line_id)) >= 3
        except redis.ConnectionError:
            return False

    assert wait_until(published_again, timeout=30)
    camera.stop()
    metrics = camera.metrics
    captured = metrics.value("edgeinspect_camera_frames_captured_total")
    published = metrics.value("edgeinspect_camera_frames_published_total")
    assert captured == published + metrics.dropped_total("redis_error")  # no frame unaccounted for
