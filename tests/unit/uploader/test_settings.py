"""The uploader's settings come from EI_ variables; a wrong one fails at start-up naming itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from edgeinspect.core.errors import ConfigError
from edgeinspect.core.storage import s3_option_names
from edgeinspect_uploader.main import main
from edgeinspect_uploader.settings import UploaderSettings


def test_settings_are_read_from_ei_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EI_CAPTURE_URL", "s3://bucket/captures")
    monkeypatch.setenv("EI_S3_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("EI_SPOOL_DIR", str(tmp_path))
    monkeypatch.setenv("EI_SPOOL_QUOTA_BYTES", "1000000")
    monkeypatch.setenv("EI_BANDWIDTH_BYTES_PER_S", "400000")
    settings = UploaderSettings.load()
    assert settings.capture_url == "s3://bucket/captures"
    assert settings.spool_dir == tmp_path and settings.spool_quota_bytes == 1_000_000
    assert settings.burst_bytes() == 100_000
    assert set(settings.store_options()) <= s3_option_names()


def test_a_negative_quota_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EI_SPOOL_QUOTA_BYTES", "-1")
    with pytest.raises(ConfigError, match="EI_SPOOL_QUOTA_BYTES"):
        UploaderSettings.load()


def test_check_config_prints_the_settings_and_exits_zero(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EI_BANDWIDTH_BYTES_PER_S", "0")
    assert main(["--check-config"]) == 0
    assert json.loads(capsys.readouterr().out)["bandwidth_bytes_per_s"] == 0


def test_check_config_with_a_bad_value_exits_two(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EI_UPLOADER_ID", "../bad")
    assert main(["--check-config"]) == 2
    assert "EI_UPLOADER_ID" in capsys.readouterr().err
