"""The HTTP trigger on its own (no Redis): posted images and "capture now" are queued with an id at
once, and every refusal says why with the right status code."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from edgeinspect.core.images import encode
from edgeinspect_camera.sources.folder import FolderSource
from edgeinspect_camera.sources.trigger import TriggerSource

from tests.unit.camera.helpers import START_NS, FakeClock, make_image, write_folder


@pytest.fixture
def trigger() -> Iterator[TriggerSource]:
    source = TriggerSource("127.0.0.1", 0, clock=FakeClock(), queue_size=2, max_bytes=100_000)
    source.open()
    yield source
    source.close()


def _url(source: TriggerSource, route: str) -> str:
    return f"http://127.0.0.1:{source.port}{route}"


def test_a_posted_image_is_queued_and_its_id_returned_at_once(trigger: TriggerSource) -> None:
    image = make_image(5)
    reply = httpx.post(_url(trigger, "/frames?source=part-17"), content=encode(image, "png"))
    assert reply.status_code == 202
    body = reply.json()
    assert len(body["frame_id"]) == 32 and body["ts_ns"] == START_NS and body["source"] == "part-17"
    grab = trigger.read()
    assert grab is not None and grab.frame_id == body["frame_id"] and grab.ts_ns == START_NS
    assert np.array_equal(grab.image, image)
    assert trigger.read() is None


def test_jpeg_is_accepted_too(trigger: TriggerSource) -> None:
    reply = httpx.post(_url(trigger, "/frames"), content=encode(make_image(1), "jpeg"))
    assert reply.status_code == 202 and reply.json()["source"] == "http-post"


def test_corrupt_bytes_are_refused_with_a_reason(trigger: TriggerSource) -> None:
    reply = httpx.post(_url(trigger, "/frames"), content=b"\x89PNG\r\n\x1a\nnot really")
    assert reply.status_code == 400
    assert "cannot decode" in reply.json()["error"] and "PNG, JPEG" in reply.json()["hint"]
    assert trigger.read() is None


@pytest.mark.parametrize(
    ("method", "route", "content", "status"),
    [
        ("POST", "/frames", b"", 400),
        ("POST", "/frames", b"x" * 100_001, 413),
        ("POST", "/nowhere", b"x", 404),
        ("GET", "/frames", b"", 405),
        ("POST", "/capture", b"", 409),
    ],
)
def test_refusals_carry_a_status_and_a_message(
    trigger: TriggerSource, method: str, route: str, content: bytes, status: int
) -> None:
    reply = httpx.request(method, _url(trigger, route), content=content)
    assert reply.status_code == status and reply.json()["error"]


def test_a_full_queue_answers_503_with_retry_after(trigger: TriggerSource) -> None:
    body = encode(make_image(1), "png")
    assert [httpx.post(_url(trigger, "/frames"), content=body).status_code for _ in range(2)] == [202, 202]
    reply = httpx.post(_url(trigger, "/frames"), content=body)
    assert reply.status_code == 503 and reply.headers["Retry-After"] == "1"
    assert "EI_TRIGGER_QUEUE" in reply.json()["hint"]


def test_capture_now_grabs_from_the_capture_source(tmp_path: Path) -> None:
    write_folder(tmp_path, 2, seed=3)
    source = TriggerSource(
        "127.0.0.1", 0, clock=FakeClock(), capture_source=FolderSource(tmp_path, loop=False)
    )
    source.open()
    try:
        ids = [httpx.post(_url(source, "/capture")).json()["frame_id"] for _ in range(2)]
        grabs = [source.read(), source.read()]
        assert [g.frame_id for g in grabs if g] == ids
        assert [g.source for g in grabs if g] == ["img0.png", "img1.png"]
        reply = httpx.post(_url(source, "/capture"))
        assert reply.status_code == 503 and "no frame" in reply.json()["error"]
    finally:
        source.close()


def test_capture_source_that_is_missing_answers_503(tmp_path: Path) -> None:
    source = TriggerSource("127.0.0.1", 0, clock=FakeClock(), capture_source=FolderSource(tmp_path / "gone"))
    source.open()
    try:
        reply = httpx.post(_url(source, "/capture"))
        assert reply.status_code == 503 and "cannot list" in reply.json()["error"]
    finally:
        source.close()


def test_a_busy_port_is_a_source_error_the_loop_retries(trigger: TriggerSource) -> None:
    from edgeinspect_camera.sources.base import SourceError

    with pytest.raises(SourceError, match="cannot listen"):
        TriggerSource("127.0.0.1", trigger.port, clock=FakeClock()).open()
