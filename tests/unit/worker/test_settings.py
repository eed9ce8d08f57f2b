"""Worker settings: EI_ variables, validation naming the variable, --check-config, shm choice."""

from __future__ import annotations

import json

import pytest
from edgeinspect.core.errors import ConfigError
from edgeinspect_inference.worker.main import main
from edgeinspect_inference.worker.settings import WorkerSettings


def test_settings_come_from_ei_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EI_LINE", "press-7")
    monkeypatch.setenv("EI_VERDICT_RULE", "classification")
    monkeypatch.setenv("EI_CAPTURE_GOOD_FRACTION", "0.25")
    monkeypatch.setenv("EI_WEBHOOK_URL", "http://127.0.0.1:9/alerts")
    settings = WorkerSettings.load()
    assert (settings.line, settings.verdict_rule, settings.capture_good_fraction) == (
        "press-7",
        "classification",
        0.25,
    )
    assert settings.webhook_url == "http://127.0.0.1:9/alerts"
    assert settings.mqtt_url == ""
    assert settings.consumer  # hostname-pid by default


def test_a_bad_value_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EI_VERDICT_RULE", "majority")
    with pytest.raises(ConfigError, match="EI_VERDICT_RULE"):
        WorkerSettings.load()


def test_main_exits_2_on_bad_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EI_CAPTURE_GOOD_FRACTION", "2")
    assert main([]) == 2
    assert "EI_CAPTURE_GOOD_FRACTION" in capsys.readouterr().err


def test_check_config_prints_the_settings_and_exits_0(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EI_LINE", "press-9")
    assert main(["--check-config"]) == 0
    assert json.loads(capsys.readouterr().out)["line"] == "press-9"


@pytest.mark.parametrize(
    ("mode", "addr", "expected"),
    [
        ("auto", "unix:///run/edgeinspect/agent.sock", True),
        ("auto", "127.0.0.1:50051", False),
        ("on", "127.0.0.1:50051", True),
        ("off", "unix:///run/edgeinspect/agent.sock", False),
    ],
)
def test_shared_memory_is_used_on_a_unix_socket_unless_told(mode: str, addr: str, expected: bool) -> None:
    assert WorkerSettings.load(agent_shm=mode, agent_addr=addr).use_shm is expected


def test_threshold_overrides_are_checked_when_the_worker_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "EI_THRESHOLD_OVERRIDES", '{"defect-cls": {"image": 0.3}, "defect-seg:7": {"pixel": 0.6}}'
    )
    table = WorkerSettings.load().override_table()
    assert table.effective("defect-cls", "4", 0.5, None).image == 0.3
    assert table.entries["defect-seg:7"].source == "setting"
    monkeypatch.setenv("EI_THRESHOLD_OVERRIDES", '{"defect-cls": {"image": 1.3}}')
    with pytest.raises(ConfigError, match=r"EI_THRESHOLD_OVERRIDES.*between 0 and 1"):
        WorkerSettings.load()


def test_tiling_settings_come_from_ei_variables_and_bad_ones_name_theirs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert WorkerSettings.load().tiling_config().mode == "auto"
    monkeypatch.setenv("EI_TILING", "on")
    monkeypatch.setenv("EI_TILING_OVERLAP", "0.25")
    monkeypatch.setenv("EI_TILING_MAX_PIXELS", "1000000")
    config = WorkerSettings.load().tiling_config()
    assert (config.mode, config.overlap, config.max_pixels, config.blend) == ("on", 0.25, 1_000_000, None)
    monkeypatch.setenv("EI_TILING_OVERLAP", "0.95")
    with pytest.raises(ConfigError, match="EI_TILING_OVERLAP"):
        WorkerSettings.load()
