"""A video file written with OpenCV's VideoWriter, replayed through OpenCV into the frames stream."""

from __future__ import annotations

from pathlib import Path

import redis
from edgeinspect.core.images import decode
from edgeinspect.core.lifecycle import wait_until

from tests.integration.camera.conftest import StartCamera, events, frames
from tests.unit.camera.helpers import START_NS, FakeClock, write_video


def test_a_generated_video_file_is_read_through_opencv(
    start_camera: StartCamera, redis_client: redis.Redis, line_id: str, tmp_path: Path
) -> None:
    path = tmp_path / "line.avi"
    levels = write_video(path, 8, fps=10.0, size=(80, 60))
    camera = start_camera(source=f"file://{path}", fps=10.0, loop=False, clock=FakeClock(), background=False)
    camera.run()
    got = frames(redis_client, line_id)
    assert [f.source for f in got] == [f"line.avi#{i}" for i in range(8)]
    assert [f.ts_ns - START_NS for f in got] == [i * 100_000_000 for i in range(8)]
    for frame, level in zip(got, levels, strict=True):
        assert (frame.height, frame.width, frame.channels) == (60, 80, 3)
        assert abs(float(decode(frame.data, frame.encoding).mean()) - level) < 6  # MJPG is lossy
    assert events(redis_client, line_id, "source_finished")[0].detail["source"] == f"file://{path}"


def test_a_looping_video_keeps_going(
    start_camera: StartCamera, redis_client: redis.Redis, line_id: str, tmp_path: Path
) -> None:
    path = tmp_path / "short.avi"
    write_video(path, 3)
    camera = start_camera(source=f"file://{path}", fps=30.0, loop=True, encoding="jpeg", max_backlog=1000)
    assert wait_until(lambda: len(frames(redis_client, line_id)) >= 7, timeout=20)
    camera.stop()
    assert [f.source for f in frames(redis_client, line_id)[:7]] == [f"short.avi#{i % 3}" for i in range(7)]
