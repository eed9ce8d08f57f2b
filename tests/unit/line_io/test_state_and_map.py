"""The vision state machine's transitions and the Modbus register map."""

from __future__ import annotations

import pytest
from edgeinspect_line_io.modbus_map import BLOCK_SIZE, result_block, text_from_registers, u32_from
from edgeinspect_line_io.settings import LineIoSettings
from edgeinspect_line_io.state import StateError, StateMachine, VisionState
from edgeinspect_line_io.verdicts import PartResult


def test_states_follow_opc_40100_and_refuse_what_their_state_does_not_allow() -> None:
    sm = StateMachine()
    seen: list[str] = []
    sm.subscribe(lambda _b, after: seen.append(after.label))
    with pytest.raises(StateError, match="Preoperational"):
        sm.start_single("j")
    sm.initialized()
    sm.ready()
    sm.start_single("job-1")
    assert not sm.single_done("job-2") and sm.state is VisionState.SINGLE_EXECUTION
    assert sm.single_done("job-1")
    sm.start_continuous()
    assert sm.accepts_plc_triggers()
    with pytest.raises(StateError):
        sm.start_single("j")
    sm.error("redis unavailable")
    sm.reset()
    sm.ready()
    assert seen == ["Initialized", "Ready", "SingleExecution", "Ready", "ContinuousExecution", "Error",
                    "Initialized", "Ready"]  # fmt: skip


def _part(**overrides: object) -> PartResult:
    base = dict(
        result_id="f", part_id="4711", line="l", verdict="defect", action="reject", reason="defect",
        late=False,
        score=0.934, defect_area_px=70_000, bbox=(1, 2, 3, 4), model_version="m@1", capture_ns=0,
        received_ns=12_000_000, gate_ns=0, seq=65_537,
    )  # fmt: skip
    base.update(overrides)
    return PartResult(**base)  # type: ignore[arg-type]


def test_the_result_block_encodes_every_field_documented() -> None:
    block = result_block(_part(), missed_total=3, state=4)
    assert len(block) == BLOCK_SIZE
    assert block[:4] == [1, 2, 1, 934]  # counter wraps, defect, reject, score x1000
    assert u32_from(block[4], block[5]) == 4711 and u32_from(block[6], block[7]) == 70_000
    assert block[8:12] == [1, 2, 3, 4] and block[12:14] == [3, 4] and u32_from(block[14], block[15]) == 12
    assert text_from_registers(block[16:32]) == "4711"
    late = result_block(_part(late=True, part_id="SN-A7"), 0, 4)
    assert late[2] == 2 and late[4:6] == [0, 0] and text_from_registers(late[16:]) == "SN-A7"


def test_settings_take_comma_lists_and_refuse_unknown_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    from edgeinspect.core.errors import ConfigError

    monkeypatch.setenv("EI_OUTPUTS", "modbus-client, modbus-server")
    monkeypatch.setenv("EI_OPCUA_USERS", "op:secret,qa:pw")
    settings = LineIoSettings.load()
    assert settings.outputs == ("modbus-client", "modbus-server")
    assert settings.users() == {"op": "secret", "qa": "pw"}
    monkeypatch.setenv("EI_OUTPUTS", "profinet")
    with pytest.raises(ConfigError, match="EI_OUTPUTS"):
        LineIoSettings.load()


def test_a_single_job_whose_result_beats_the_cameras_answer_still_ends_once() -> None:
    sm = StateMachine()
    seen: list[str] = []
    sm.initialized()
    sm.ready()
    sm.subscribe(lambda _b, after: seen.append(after.label))
    sm.start_single()
    assert not sm.single_done("other") and not sm.single_done("f-1")  # remembered, not yet known as ours
    sm.single_started("f-1")  # the camera's answer names the frame: its result already came
    assert sm.state is VisionState.READY and not sm.single_done("f-1")
    sm.start_single()
    sm.single_aborted()  # the camera refused
    assert seen == ["SingleExecution", "Ready", "SingleExecution", "Ready"]


def test_the_part_id_a_plc_writes_before_its_trigger() -> None:
    from edgeinspect_line_io.modbus_map import text_registers, trigger_part_id

    assert trigger_part_id([0, 4711] + [0] * 16) == "4711"
    assert trigger_part_id([0, 4711, *text_registers("SN-9", 16)]) == "SN-9"  # the text wins
    assert trigger_part_id([0] * 18) == ""
