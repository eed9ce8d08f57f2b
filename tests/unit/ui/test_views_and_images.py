"""What the page sees of a result, and the images it draws (frames and the mask overlay)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from edgeinspect.core.errors import ImageError
from edgeinspect.core.messages import Encoding, Event, Frame, Prediction, Result
from edgeinspect_ui.api.images import frame_image, mask_overlay
from edgeinspect_ui.feed.views import entry_ms, job_out, result_out
from PIL import Image


def png(pixels: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def make_result(mask: bytes | None, ts_ns: int = 5_000_000_000, e2e_ms: float = 40.0) -> Result:
    pred = Prediction(
        model="defect-cls", version="7", task="classification", label="defect", score=0.8, threshold=0.5,
        latency_ms=3.0, bbox=(1, 2, 3, 4),
    )  # fmt: skip
    return Result(
        frame_id="cam0/17", line="l1", ts_ns=ts_ns, verdict="defect", score=0.8, predictions=[pred],
        e2e_ms=e2e_ms, mask=mask,
    )  # fmt: skip


def test_the_frame_link_names_a_window_that_holds_the_frame() -> None:
    out = result_out("l1", "5100-0", make_result(b"m"))
    assert out.frame_url.startswith("/api/frames/l1/cam0%2F17.png?"), "the id is escaped"
    after = int(out.frame_url.split("after=")[1].split("&")[0])
    before = int(out.frame_url.split("before=")[1])
    assert after <= 5000 - 40 and before >= 5100  # capture time .. the result's own entry time
    assert out.mask_url == "/api/masks/l1/5100-0.png"
    assert out.predictions[0].bbox == [1, 2, 3, 4]


def test_no_mask_no_mask_link() -> None:
    assert result_out("l1", "1-0", make_result(None)).mask_url is None
    assert entry_ms("1700000000123-4") == 1700000000123


def test_a_job_event_without_a_job_id_is_not_a_job() -> None:
    assert job_out(Event.new("job_status", "mm", status="FAILED")) is None
    job = job_out(Event.new("job_status", "mm", job_id="j1", status="FAILED", model="cls", version=None))
    assert job is not None and job.version == "" and job.status == "FAILED"


def test_mask_overlay_is_red_where_the_mask_is_and_clear_elsewhere() -> None:
    mask = np.zeros((10, 20), dtype=np.uint8)
    mask[2:5, 3:9] = 255
    mask[8, 18] = 10  # a faint probability still shows, at least half opaque
    rgba = np.asarray(Image.open(io.BytesIO(mask_overlay(png(mask)))))
    assert rgba.shape == (10, 20, 4)
    assert tuple(rgba[3, 4]) == (255, 32, 32, 255)
    assert rgba[0, 0, 3] == 0 and rgba[8, 18, 3] == 128


def test_a_corrupt_mask_is_an_image_error() -> None:
    with pytest.raises(ImageError):
        mask_overlay(b"not a png")


def frame(encoding: Encoding, data: bytes, channels: int = 3) -> Frame:
    return Frame(
        frame_id="f", line="l", camera="c", ts_ns=1, encoding=encoding, height=4, width=6,
        channels=channels, data=data,
    )  # fmt: skip


def test_encoded_frames_are_served_as_stored_and_raw_ones_as_png() -> None:
    pixels = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    stored = png(pixels)
    assert frame_image(frame("png", stored)) == (stored, "image/png")
    jpeg = png(pixels, "JPEG")
    assert frame_image(frame("jpeg", jpeg)) == (jpeg, "image/jpeg")
    body, media = frame_image(frame("raw", pixels.tobytes()))
    assert media == "image/png" and np.array_equal(np.asarray(Image.open(io.BytesIO(body))), pixels)
    grey, _ = frame_image(frame("raw", pixels[:, :, 0].tobytes(), channels=1))
    assert np.asarray(Image.open(io.BytesIO(grey))).shape == (4, 6)
