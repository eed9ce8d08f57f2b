"""Settings: EI_ variables, per-service subclasses, and errors that name the variable."""

from __future__ import annotations

from typing import ClassVar

import pytest
from edgeinspect.core.errors import ConfigError
from edgeinspect.core.settings import ServiceSettings


class CameraLike(ServiceSettings):
    service_name: ClassVar[str] = "camera"
    fps: float = 10.0


def test_reads_ei_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EI_LINE", "line-7")
    monkeypatch.setenv("EI_FPS", "25")
    settings = CameraLike.load()
    assert settings.line == "line-7" and settings.fps == 25.0


def test_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EI_FPS", "fast")
    with pytest.raises(ConfigError, match="EI_FPS"):
        CameraLike.load()


def test_bad_line_id_is_refused() -> None:
    with pytest.raises(ConfigError, match="EI_LINE"):
        CameraLike.load(line="no spaces allowed")


def test_settings_are_frozen() -> None:
    settings = CameraLike.load()
    with pytest.raises(Exception):  # noqa: B017 - pydantic raises ValidationError for frozen models
        settings.fps = 1.0  # type: ignore[misc]
