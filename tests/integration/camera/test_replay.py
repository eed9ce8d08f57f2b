"""Folder replay into a real Redis stream: rate, order, masks, a corrupt file, the pixel path."""

from __future__ import annotations

import itertools
import statistics
from pathlib import Path

import numpy as np
import redis
from edgeinspect.core.images import decode
from edgeinspect.core.lifecycle import wait_until

from tests.integration.camera.conftest import StartCamera, events, frames
from tests.unit.camera.helpers import START_NS, FakeClock, make_image, write_folder


def test_replay_at_the_requested_rate_spaces_timestamps_by_the_period(
    start_camera: StartCamera, redis_client: redis.Redis, line_id: str, tmp_path: Path
) -> None:
    names = write_folder(tmp_path, 20)
    camera = start_camera(
        source=f"folder://{tmp_path}", fps=25.0, loop=False, clock=FakeClock(), background=False
    )
    camera.run()
    got = frames(redis_client, line_id)
    assert [f.source for f in got] == names  # name order, *_GT.png masks skipped
    assert [f.ts_ns - START_NS for f in got] == [i * 40_000_000 for i in range(20)]
    assert {f.line for f in got} == {line_id} and len({f.frame_id for f in got}) == 20
    assert [e.type for e in events(redis_client, line_id)] == [
        "camera_started",
        "source_finished",
        "camera_stopped",
    ]
    assert redis_client.sismember("ei:lines", line_id)


def test_replay_rate_on_the_real_clock_is_right_on_average(
    start_camera: StartCamera, redis_client: redis.Redis, line_id: str, tmp_path: Path
) -> None:
    write_folder(tmp_path, 15, masks=False)
    camera = start_camera(source=f"folder://{tmp_path}", fps=20.0, loop=False)
    assert wait_until(lambda: len(frames(redis_client, line_id)) == 15 and not camera.source_up, timeout=30)
    stamps = [f.ts_ns for f in frames(redis_client, line_id)]
    gaps_ms = [(b - a) / 1e6 for a, b in itertools.pairwise(stamps)]
    # Deadlines never run ahead of schedule, so the span has a firm floor; the rest is generous.
    assert (stamps[-1] - stamps[0]) / 1e6 >= 14 * 50 * 0.9
    assert 25 <= statistics.median(gaps_ms) <= 100


def test_a_corrupt_file_is_reported_and_replay_goes_on(
    start_camera: StartCamera, redis_client: redis.Redis, line_id: str, tmp_path: Path
) -> None:
    write_folder(tmp_path, 4)
    (tmp_path / "img2.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR truncated")
    camera = start_camera(
        source=f"folder://{tmp_path}", fps=10.0, loop=False, clock=FakeClock(), background=False
    )
    camera.run()
    assert [f.source for f in frames(redis_client, line_id)] == ["img0.png", "img1.png", "img3.png"]
    (error,) = events(redis_client, line_id, "frame_error")
    assert error.level == "error" and error.detail["file"] == "img2.png"
    assert "cannot decode" in error.detail["reason"]
    assert camera.metrics.value("edgeinspect_camera_frame_errors_total") == 1


def test_roi_resize_and_encoding_reach_the_stream(
    start_camera: StartCamera, redis_client: redis.Redis, line_id: str, tmp_path: Path
) -> None:
    write_folder(tmp_path, 1, seed=11, masks=False)
    camera = start_camera(
        source=f"folder://{tmp_path}",
        loop=False,
        roi="8,4,32,16",
        encoding="raw",
        clock=FakeClock(),
        background=False,
    )
    camera.run()
    (frame,) = frames(redis_client, line_id)
    assert (frame.height, frame.width, frame.channels, frame.encoding) == (16, 32, 3, "raw")
    pixels = decode(frame.data, "raw", height=16, width=32, channels=3)
    assert np.array_equal(pixels, make_image(11)[4:20, 8:40])
    assert camera.metrics.value("edgeinspect_camera_encode_seconds_count") == 1


def test_shuffled_replay_is_reproducible_with_a_seed(
    start_camera: StartCamera, redis_client: redis.Redis, line_id: str, tmp_path: Path
) -> None:
    names = write_folder(tmp_path, 8, masks=False)
    for _ in range(2):
        start_camera(
            source=f"folder://{tmp_path}",
            order="shuffle",
            seed=5,
            loop=False,
            clock=FakeClock(),
            background=False,
        ).run()
    order = [f.source for f in frames(redis_client, line_id)]
    assert order[:8] == order[8:] and order[:8] != names and sorted(order[:8]) == sorted(names)
