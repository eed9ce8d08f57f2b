"""Smoke-test comparison with tolerance, disk-full detection, and settings validation."""

from __future__ import annotations

import errno

import numpy as np
import pytest
from edgeinspect.core.errors import ConfigError, PackageError, StorageError
from edgeinspect.core.package import compare_outputs
from edgeinspect_model_manager.errors import is_disk_full
from edgeinspect_model_manager.settings import ModelManagerSettings

GOLDEN = {"defect_probability": np.array([[0.25]], dtype=np.float32)}


def test_outputs_within_tolerance_pass() -> None:
    got = {"defect_probability": np.array([[0.25002]], dtype=np.float32)}
    assert compare_outputs(got, GOLDEN, rtol=1e-3, atol=1e-4) is None


def test_outputs_beyond_tolerance_say_by_how_much() -> None:
    got = {"defect_probability": np.array([[0.75]], dtype=np.float32)}
    problem = compare_outputs(got, GOLDEN, rtol=1e-3, atol=1e-4)
    assert problem is not None and "differs from the golden output by up to 0.5" in problem


def test_a_missing_or_reshaped_output_fails() -> None:
    assert "missing" in str(compare_outputs({}, GOLDEN, 1e-3, 1e-4))
    reshaped = {"defect_probability": np.zeros((1, 2), dtype=np.float32)}
    assert "shape [1, 2]" in str(compare_outputs(reshaped, GOLDEN, 1e-3, 1e-4))


def test_a_full_disk_is_recognised_through_wrapped_errors() -> None:
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise PackageError("cannot read package x.tar.gz") from inner
    except PackageError as outer:
        assert is_disk_full(outer)
    assert not is_disk_full(StorageError("sha256 mismatch"))


def test_settings_need_a_valid_thing_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EI_THING_NAME", "press/7")
    with pytest.raises(ConfigError, match="EI_THING_NAME"):
        ModelManagerSettings.load()


def test_settings_parse_groups_and_pair_the_client_certificate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EI_THING_NAME", "press-7")
    monkeypatch.setenv("EI_THING_GROUPS", "line-3, plant-a")
    settings = ModelManagerSettings.load()
    assert settings.thing_groups == ["line-3", "plant-a"] and settings.client_id == "press-7"
    assert settings.mqtt_tls() is None
    monkeypatch.setenv("EI_MQTT_CERT_FILE", "/run/secrets/cert.pem")
    with pytest.raises(ConfigError, match="together"):
        ModelManagerSettings.load()


def test_check_config_prints_settings_without_passwords(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgeinspect_model_manager.main import main

    monkeypatch.setenv("EI_THING_NAME", "press-7")
    monkeypatch.setenv("EI_MQTT_URL", "mqtt://device:hunter2@broker:1883")
    monkeypatch.setenv("EI_MQTT_PASSWORD", "hunter3")
    assert main(["--check-config"]) == 0
    out = capsys.readouterr().out
    assert '"thing_name": "press-7"' in out and "mqtt://device:***@broker:1883" in out
    assert "hunter" not in out


def test_invalid_settings_exit_with_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgeinspect_model_manager.main import main

    monkeypatch.delenv("EI_THING_NAME", raising=False)
    assert main(["--check-config"]) == 2
    assert "EI_THING_NAME" in capsys.readouterr().err
