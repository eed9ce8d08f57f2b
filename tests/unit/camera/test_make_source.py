"""``EI_SOURCE`` picks the source by scheme; a URL nobody handles fails at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest
from edgeinspect.core.errors import ConfigError
from edgeinspect_camera.sources import make_source
from edgeinspect_camera.sources.folder import FolderSource
from edgeinspect_camera.sources.genicam import GenICamSource
from edgeinspect_camera.sources.opencv import OpenCVSource
from edgeinspect_camera.sources.trigger import TriggerSource

from tests.unit.camera.helpers import FakeClock, settings


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("folder:///data/frames", FolderSource),
        ("file:///data/clip.mp4", OpenCVSource),
        ("rtsp://cam/stream", OpenCVSource),
        ("usb:0", OpenCVSource),
        ("/dev/video0", OpenCVSource),
        ("http://127.0.0.1:0", TriggerSource),
        ("genicam://SN1", GenICamSource),
    ],
)
def test_scheme_picks_the_source(url: str, kind: type) -> None:
    source = make_source(url, settings(source=url), FakeClock(), {})
    assert isinstance(source, kind) and source.triggered == (kind is TriggerSource)


def test_folder_source_takes_order_loop_and_seed() -> None:
    source = make_source("folder:///x", settings(order="shuffle", loop=False, seed=9), FakeClock(), {})
    assert isinstance(source, FolderSource)
    assert (source.root, source.order, source.loop) == (Path("/x"), "shuffle", False)


@pytest.mark.parametrize(
    ("url", "trigger_source", "message"),
    [
        ("gopher://x", "", "not a source"),
        ("http://127.0.0.1:8090/frames", "", "no path"),
        ("http://127.0.0.1:8090", "http://127.0.0.1:8091", "cannot itself be a trigger"),
    ],
)
def test_bad_urls_are_config_errors(url: str, trigger_source: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_source(url, settings(source=url, trigger_source=trigger_source), FakeClock(), {})


def test_relative_paths_are_allowed() -> None:
    source = make_source("folder://data/frames", settings(), FakeClock(), {})
    assert isinstance(source, FolderSource) and source.root == Path("data/frames")
    video = make_source("file://clips/a.mp4", settings(), FakeClock(), {})
    assert isinstance(video, OpenCVSource) and video.target.location == "clips/a.mp4"
