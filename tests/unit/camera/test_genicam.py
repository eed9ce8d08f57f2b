"""GenICam: URL and producer discovery, pixel-format conversion, and clean errors without a producer.

Grabbing from a real camera needs ``harvesters`` and a vendor's GenTL producer (``.cti``); that test
skips with the reason when either is missing (the usual case on a build machine).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
from edgeinspect_camera.sources.base import FrameUnreadable, SourceError
from edgeinspect_camera.sources.genicam import (
    GenICamSource,
    GenICamTarget,
    find_producers,
    parse_genicam_url,
    to_rgb,
)

from tests.unit.camera.helpers import make_image


def test_url_names_the_serial_and_may_name_the_producer(tmp_path: Path) -> None:
    target = parse_genicam_url("genicam://SN123?cti=/opt/x.cti", "", {})
    assert target == GenICamTarget(serial="SN123", producers=(Path("/opt/x.cti"),))
    assert parse_genicam_url("genicam://", "/opt/y.cti", {}).producers == (Path("/opt/y.cti"),)


def test_producers_are_found_through_the_standard_variable(tmp_path: Path) -> None:
    (tmp_path / "b.cti").write_bytes(b"")
    (tmp_path / "a.cti").write_bytes(b"")
    (tmp_path / "readme.txt").write_text("")
    found = find_producers("", {"GENICAM_GENTL64_PATH": f"/nonexistent{os.pathsep}{tmp_path}"})
    assert found == (tmp_path / "a.cti", tmp_path / "b.cti")
    assert find_producers("", {}) == ()


def test_mono_formats_become_one_channel_8_bit() -> None:
    mono8 = np.arange(12, dtype=np.uint8)
    assert to_rgb(mono8, 4, 3, "Mono8").shape == (3, 4, 1)
    mono12 = np.full(12, 4095, dtype=np.uint16)
    assert np.all(to_rgb(mono12, 4, 3, "Mono12") == 255)


def test_colour_formats_become_rgb() -> None:
    rgb = make_image(1, 6, 8)
    assert np.array_equal(to_rgb(rgb.reshape(-1), 8, 6, "RGB8"), rgb)
    assert np.array_equal(to_rgb(rgb[:, :, ::-1].reshape(-1), 8, 6, "BGR8"), rgb)


@pytest.mark.parametrize("pattern", ["BayerRG8", "BayerBG8", "BayerGR8", "BayerGB8"])
def test_bayer_mosaics_demosaic_to_the_right_colour(pattern: str) -> None:
    colour = np.array([200, 100, 30], dtype=np.uint8)  # a flat orange scene
    first_row = {"R": 0, "G": 1, "B": 2}
    letters = pattern[5:7]
    other = {"RG": "GB", "BG": "GR", "GR": "BG", "GB": "RG"}[letters]
    mosaic = np.zeros((8, 8), dtype=np.uint8)
    for (dy, dx), letter in zip(((0, 0), (0, 1), (1, 0), (1, 1)), letters + other, strict=True):
        mosaic[dy::2, dx::2] = colour[first_row[letter]]
    image = to_rgb(mosaic.reshape(-1), 8, 8, pattern)
    assert np.allclose(image[2:6, 2:6].reshape(-1, 3).mean(axis=0), colour, atol=2)


def test_unsupported_pixel_formats_are_one_bad_frame() -> None:
    with pytest.raises(FrameUnreadable, match="YUV422"):
        to_rgb(np.zeros(8, dtype=np.uint8), 2, 2, "YUV422_8")


@pytest.mark.skipif(importlib.util.find_spec("harvesters") is not None, reason="harvesters is installed here")
def test_without_harvesters_opening_says_how_to_install_it() -> None:
    source = GenICamSource(GenICamTarget(serial="", producers=(Path("/opt/x.cti"),)))
    with pytest.raises(SourceError, match="harvesters library is not installed") as caught:
        source.open()
    assert "pip install" in caught.value.hint and "GENICAM_GENTL64_PATH" in caught.value.hint
    source.close()


def _producers() -> tuple[Path, ...]:
    return find_producers(os.environ.get("EI_GENICAM_CTI", ""), os.environ)


@pytest.mark.skipif(importlib.util.find_spec("harvesters") is None, reason="harvesters is not installed")
def test_without_a_producer_opening_says_so() -> None:
    with pytest.raises(SourceError, match="no GenTL producer"):
        GenICamSource(GenICamTarget(serial="", producers=())).open()


@pytest.mark.skipif(
    importlib.util.find_spec("harvesters") is None or not _producers(),
    reason="no GenTL producer (.cti) is installed: set EI_GENICAM_CTI or GENICAM_GENTL64_PATH and "
    "pip install harvesters to grab from a real GenICam camera",
)
def test_grabs_a_frame_from_the_first_genicam_camera() -> None:
    source = GenICamSource(GenICamTarget(serial="", producers=_producers()))
    source.open()
    try:
        grab = source.read()
        assert grab is not None and grab.image.dtype == np.uint8 and grab.image.ndim == 3
    finally:
        source.close()
