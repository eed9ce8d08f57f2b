"""Video files through OpenCV (a generated MJPG .avi), URL parsing and credential redaction."""

from __future__ import annotations

from pathlib import Path

import pytest
from edgeinspect.core.errors import ConfigError
from edgeinspect.core.settings import redact_url
from edgeinspect_camera.sources.base import SourceError
from edgeinspect_camera.sources.opencv import OpenCVSource, Target, parse_target

from tests.unit.camera.helpers import write_video


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("file:///data/clip.mp4", Target("file", "/data/clip.mp4", "file:///data/clip.mp4")),
        ("usb:2", Target("device", 2, "usb:2")),
        ("/dev/video1", Target("device", "/dev/video1", "/dev/video1")),
        ("rtsp://cam.local:554/s", Target("stream", "rtsp://cam.local:554/s", "rtsp://cam.local:554/s")),
        ("rtsp://u:pw@cam:554/s", Target("stream", "rtsp://u:pw@cam:554/s", "rtsp://u:***@cam:554/s")),
    ],
)
def test_urls_become_targets(url: str, target: Target) -> None:
    assert parse_target(url) == target


def test_unknown_schemes_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="EI_SOURCE"):
        parse_target("ftp://example/clip.mp4")


def test_passwords_never_reach_events() -> None:
    assert redact_url("redis://:hunter2@redis:6379/0") == "redis://:***@redis:6379/0"
    assert redact_url("rtsp://cam/stream") == "rtsp://cam/stream"


def test_a_video_file_is_read_frame_by_frame_in_rgb(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    levels = write_video(path, 6)
    source = OpenCVSource(parse_target(f"file://{path}"), loop=False)
    source.open()
    grabs = [source.read() for _ in range(6)]
    assert source.read() is None and source.done
    assert [g.source for g in grabs if g] == [f"clip.avi#{i}" for i in range(6)]
    for grab, level in zip(grabs, levels, strict=True):
        assert grab is not None and grab.image.shape == (48, 64, 3)
        assert abs(float(grab.image.mean()) - level) < 6  # MJPG is lossy


def test_a_looping_video_starts_again(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    write_video(path, 3)
    source = OpenCVSource(parse_target(f"file://{path}"), loop=True)
    source.open()
    names = [g.source for g in (source.read() for _ in range(7)) if g]
    assert names == [
        "clip.avi#0",
        "clip.avi#1",
        "clip.avi#2",
        "clip.avi#0",
        "clip.avi#1",
        "clip.avi#2",
        "clip.avi#0",
    ]


def test_a_looping_video_that_vanished_is_a_lost_source(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    write_video(path, 2)
    source = OpenCVSource(parse_target(f"file://{path}"), loop=True)
    source.open()
    source.read()
    source.read()
    path.unlink()
    with pytest.raises(SourceError, match="does not exist"):
        source.read()


def test_missing_files_and_devices_cannot_be_opened(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        OpenCVSource(parse_target(f"file://{tmp_path}/none.avi")).open()
    (tmp_path / "junk.avi").write_bytes(b"not a video")
    with pytest.raises(SourceError, match="cannot open"):
        OpenCVSource(parse_target(f"file://{tmp_path}/junk.avi")).open()


def test_an_absent_usb_camera_cannot_be_opened() -> None:
    with pytest.raises(SourceError, match="cannot open /dev/video63"):
        OpenCVSource(parse_target("/dev/video63"), timeout_s=1.0).open()
