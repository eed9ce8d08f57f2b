"""The camera's settings: EI_ variables, ROI/resize syntax, and errors that name the variable."""

from __future__ import annotations

import pytest
from edgeinspect.core.errors import ConfigError
from edgeinspect_camera.settings import CameraSettings, parse_roi, parse_size


def test_reads_its_variables_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EI_SOURCE", "usb:0")
    monkeypatch.setenv("EI_FPS", "12.5")
    monkeypatch.setenv("EI_ENCODING", "jpeg")
    monkeypatch.setenv("EI_ROI", "10,20,300,200")
    monkeypatch.setenv("EI_RESIZE", "224x224")
    monkeypatch.setenv("EI_DROP_POLICY", "drop_newest")
    monkeypatch.setenv("EI_LOOP", "false")
    settings = CameraSettings.load()
    assert settings.source == "usb:0" and settings.fps == 12.5 and settings.encoding == "jpeg"
    assert settings.roi_box == (10, 20, 300, 200) and settings.resize_to == (224, 224)
    assert settings.drop_policy == "drop_newest" and settings.loop is False


def test_source_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EI_SOURCE", raising=False)
    with pytest.raises(ConfigError, match="EI_SOURCE"):
        CameraSettings.load()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("roi", "10,20,300"),
        ("roi", "a,b,c,d"),
        ("roi", "0,0,0,10"),
        ("resize", "224"),
        ("resize", "0x10"),
        ("encoding", "gif"),
        ("drop_policy", "drop_random"),
        ("jpeg_quality", 0),
        ("fps", -1),
    ],
)
def test_bad_values_name_their_variable(variable: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"EI_{variable.upper()}"):
        CameraSettings.load(source="usb:0", **{variable: value})


def test_backlog_must_fit_inside_the_stream_cap() -> None:
    with pytest.raises(ConfigError, match="EI_MAX_BACKLOG"):
        CameraSettings.load(source="usb:0", max_backlog=100, stream_maxlen=100)


def test_roi_and_size_parsers() -> None:
    assert parse_roi("") is None and parse_size(" ") is None
    assert parse_roi(" 1, 2, 3, 4 ") == (1, 2, 3, 4)
    assert parse_size("640X480") == (640, 480)
