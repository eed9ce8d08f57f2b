"""Trigger mode end to end: a PLC posts an image (or asks for a capture) and the frame it was told
about is the frame that reaches the stream."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
import redis
from edgeinspect.core.images import decode, encode
from edgeinspect.core.lifecycle import wait_until
from edgeinspect_camera.service import CameraService
from edgeinspect_camera.sources.trigger import TriggerSource

from tests.fixtures.servers import free_port
from tests.integration.camera.conftest import StartCamera, frames
from tests.unit.camera.helpers import make_image, write_folder


def _trigger_camera(start_camera: StartCamera, **overrides: object) -> tuple[CameraService, str]:
    port = free_port()
    camera = start_camera(source=f"http://127.0.0.1:{port}", **overrides)
    assert wait_until(lambda: camera.source_up, timeout=10)
    assert isinstance(camera.source, TriggerSource) and camera.source.port == port
    return camera, f"http://127.0.0.1:{port}"


def test_a_posted_image_gets_an_id_at_once_and_lands_in_the_stream(
    start_camera: StartCamera, redis_client: redis.Redis, line_id: str
) -> None:
    _, url = _trigger_camera(start_camera, fps=2.0)  # fps does not slow triggers down
    images = [make_image(20 + i) for i in range(3)]
    replies = [
        httpx.post(f"{url}/frames?source=part-{i}", content=encode(im, "png")) for i, im in enumerate(images)
    ]
    assert [r.status_code for r in replies] == [202, 202, 202]
    assert wait_until(lambda: len(frames(redis_client, line_id)) == 3, timeout=10)
    got = frames(redis_client, line_id)
    assert [f.frame_id for f in got] == [r.json()["frame_id"] for r in replies]
    assert [f.ts_ns for f in got] == [r.json()["ts_ns"] for r in replies]
    assert [f.source for f in got] == ["part-0", "part-1", "part-2"]
    for frame, image in zip(got, images, strict=True):
        assert np.array_equal(decode(frame.data, frame.encoding), image)


def test_corrupt_bytes_are_refused_with_400_and_nothing_is_published(
    start_camera: StartCamera, redis_client: redis.Redis, line_id: str
) -> None:
    camera, url = _trigger_camera(start_camera)
    reply = httpx.post(f"{url}/frames", content=b"GIF89a? no, just garbage")
    assert reply.status_code == 400
    assert "cannot decode" in reply.json()["error"] and reply.json()["hint"]
    ok = httpx.post(f"{url}/frames", content=encode(make_image(1), "jpeg"))
    assert ok.status_code == 202
    assert wait_until(lambda: len(frames(redis_client, line_id)) == 1, timeout=10)
    assert frames(redis_client, line_id)[0].frame_id == ok.json()["frame_id"]
    assert camera.source_up


def test_capture_now_grabs_from_the_configured_source(
    start_camera: StartCamera, redis_client: redis.Redis, line_id: str, tmp_path: Path
) -> None:
    write_folder(tmp_path, 2, seed=40)
    _, url = _trigger_camera(start_camera, trigger_source=f"folder://{tmp_path}")
    ids = [httpx.post(f"{url}/capture").json()["frame_id"] for _ in range(3)]
    assert wait_until(lambda: len(frames(redis_client, line_id)) == 3, timeout=10)
    got = frames(redis_client, line_id)
    assert [f.frame_id for f in got] == ids
    assert [f.source for f in got] == ["img0.png", "img1.png", "img0.png"]
    assert np.array_equal(decode(got[0].data, "png"), make_image(40))


def test_frames_accepted_before_a_stop_are_still_published(
    start_camera: StartCamera, redis_client: redis.Redis, line_id: str
) -> None:
    port = free_port()
    camera = start_camera(source=f"http://127.0.0.1:{port}", background=False)
    camera.source.open()  # listening, but the capture loop has not started: everything stays queued
    body = encode(make_image(3), "png")
    ids = [httpx.post(f"http://127.0.0.1:{port}/frames", content=body).json()["frame_id"] for _ in range(3)]
    camera.stop_event.set()
    camera.run()  # stops at once; shutdown closes the port, then publishes the queue
    assert [f.frame_id for f in frames(redis_client, line_id)] == ids
    with pytest.raises(httpx.TransportError):
        httpx.post(f"http://127.0.0.1:{port}/frames", content=body)


def test_the_plc_part_id_travels_with_the_frame_and_a_bad_one_is_refused(
    start_camera: StartCamera, redis_client: redis.Redis, line_id: str, tmp_path: Path
) -> None:
    write_folder(tmp_path, 1, seed=3)
    _, url = _trigger_camera(start_camera, trigger_source=f"folder://{tmp_path}")
    posted = httpx.post(f"{url}/frames?source=cam&part_id=SN%204711", content=encode(make_image(2), "png"))
    captured = httpx.post(f"{url}/capture?part_id=4712")
    refused = httpx.post(f"{url}/capture?part_id=" + "x" * 65)
    assert (posted.status_code, captured.status_code, refused.status_code) == (202, 202, 400)
    assert posted.json()["part_id"] == "SN 4711"
    assert "is not a part id" in refused.json()["error"] and "64 printable" in refused.json()["hint"]
    assert wait_until(lambda: len(frames(redis_client, line_id)) == 2, timeout=10)
    assert [f.part_id for f in frames(redis_client, line_id)] == ["SN 4711", "4712"]
