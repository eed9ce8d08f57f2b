"""The pixel path: region of interest, resize and encoding produce exactly the frame described."""

from __future__ import annotations

import numpy as np
import pytest
from edgeinspect.core.errors import ImageError
from edgeinspect.core.images import decode
from edgeinspect_camera.frames import FrameBuilder, crop, new_frame_id

from tests.unit.camera.helpers import make_image


def _build(builder: FrameBuilder, image: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:  # type: ignore[type-arg]
    frame, took = builder.build(image, frame_id="f1", ts_ns=123, source="img.png")
    assert took >= 0.0 and frame.ts_ns == 123 and frame.source == "img.png"
    pixels = decode(
        frame.data, frame.encoding, height=frame.height, width=frame.width, channels=frame.channels
    )
    return pixels, {"h": frame.height, "w": frame.width, "c": frame.channels}


def test_roi_crops_exactly_the_requested_pixels() -> None:
    image = make_image(1, 100, 120)
    pixels, dims = _build(FrameBuilder("l", "c", encoding="raw", roi=(10, 20, 30, 40)), image)
    assert dims == {"h": 40, "w": 30, "c": 3}
    assert np.array_equal(pixels, image[20:60, 10:40])


def test_roi_is_clipped_to_the_image() -> None:
    assert crop(make_image(1, 50, 50), (40, 40, 100, 100)).shape == (10, 10, 3)


def test_roi_outside_the_image_is_an_error_naming_the_setting() -> None:
    with pytest.raises(ImageError, match="EI_ROI"):
        crop(make_image(1, 50, 50), (60, 0, 10, 10))


def test_resize_after_crop() -> None:
    _, dims = _build(FrameBuilder("l", "c", encoding="png", roi=(0, 0, 40, 40), size=(20, 10)), make_image(2))
    assert dims == {"h": 10, "w": 20, "c": 3}


def test_png_is_lossless_and_grey_stays_one_channel() -> None:
    grey = make_image(3, channels=1)
    pixels, dims = _build(FrameBuilder("l", "c", encoding="png"), grey)
    assert dims["c"] == 1 and np.array_equal(pixels, grey)


def test_jpeg_quality_trades_size_for_fidelity() -> None:
    image = make_image(4, 96, 128)
    low, _ = FrameBuilder("l", "c", encoding="jpeg", jpeg_quality=10).build(
        image, frame_id="a", ts_ns=1, source=""
    )
    high, _ = FrameBuilder("l", "c", encoding="jpeg", jpeg_quality=95).build(
        image, frame_id="a", ts_ns=1, source=""
    )
    assert len(low.data) < len(high.data)


def test_frame_ids_are_unique() -> None:
    assert len({new_frame_id() for _ in range(1000)}) == 1000
