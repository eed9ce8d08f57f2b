"""Image codecs: lossless round trips, and clear errors for corrupt, truncated or oversized input."""

from __future__ import annotations

import numpy as np
import pytest
from edgeinspect.core import images
from edgeinspect.core.errors import ImageError


@pytest.fixture
def rgb() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(64, 24, 3), dtype=np.uint8)


@pytest.mark.parametrize("encoding", ["png", "raw"])
def test_lossless_round_trip(rgb: np.ndarray, encoding: str) -> None:
    data = images.encode(rgb, encoding)
    back = images.decode(data, encoding, height=64, width=24, channels=3)
    assert np.array_equal(back, rgb)


def test_jpeg_round_trip_is_close(rgb: np.ndarray) -> None:
    smooth = np.full((64, 24, 3), 120, dtype=np.uint8)
    back = images.decode(images.encode(smooth, "jpeg", quality=95), "jpeg")
    assert back.shape == (64, 24, 3) and np.abs(back.astype(int) - 120).max() <= 3


def test_grey_png_decodes_to_one_channel() -> None:
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8)
    assert images.decode(images.encode(grey, "png"), "png").shape == (8, 8, 1)


def test_mask_round_trip() -> None:
    mask = np.zeros((10, 5), dtype=bool)
    mask[2:4, 1:3] = True
    assert np.array_equal(images.decode_mask(images.encode_mask(mask)), mask)


def test_corrupt_bytes_raise_image_error() -> None:
    with pytest.raises(ImageError, match="cannot decode png"):
        images.decode(b"definitely not a png", "png")


def test_truncated_png_raises_image_error(rgb: np.ndarray) -> None:
    data = images.encode(rgb, "png")
    with pytest.raises(ImageError, match="corrupt or truncated"):
        images.decode(data[: len(data) // 2], "png")


def test_oversized_image_is_refused_before_decoding(rgb: np.ndarray) -> None:
    with pytest.raises(ImageError, match="over the limit"):
        images.decode(images.encode(rgb, "png"), "png", max_pixels=100)


def test_raw_with_wrong_length_says_what_was_expected() -> None:
    with pytest.raises(ImageError, match="needs 12"):
        images.decode(b"\x00" * 10, "raw", height=2, width=2, channels=3)


def test_empty_and_unknown_encodings_are_refused() -> None:
    with pytest.raises(ImageError, match="empty"):
        images.decode(b"", "png")
    with pytest.raises(ImageError, match="unknown image encoding"):
        images.decode(b"x", "gif")
