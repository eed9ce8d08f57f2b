"""Modbus TCP on loopback: a pymodbus server as the PLC receives reject pulses and result blocks; a
pymodbus client reads our server's map; a PLC coil's rising edge takes exactly one frame.

Results are written into ``ei:results:{line}`` directly (``Judge`` or ``add_result``): the worker is not
the point of these tests.
"""

from __future__ import annotations

import time

import redis
from edgeinspect.core import names
from edgeinspect.core.lifecycle import wait_until
from edgeinspect.core.messages import Frame
from edgeinspect.core.streams import Streams
from edgeinspect_line_io.modbus_map import text_from_registers, text_registers, u32_from
from pymodbus.client import ModbusTcpClient

from tests.fixtures.plc import ModbusPlc
from tests.fixtures.servers import LOOPBACK, free_port
from tests.integration.line_io.conftest import StartLine, events_of, frames_of, result_for

MS = 1_000_000


def _frame(line: str, part_id: str, ts_ns: int | None = None) -> Frame:
    return Frame(
        frame_id=f"f-{part_id}",
        line=line,
        camera="cam",
        ts_ns=time.time_ns() if ts_ns is None else ts_ns,
        encoding="png",
        height=1,
        width=1,
        channels=1,
        data=b"x",
        part_id=part_id,
    )


def add_result(client: redis.Redis, frame: Frame, verdict: str) -> None:
    Streams(client).add(names.results_stream(frame.line), result_for(frame, verdict))


def _client_output(start_line: StartLine, plc: ModbusPlc, **overrides: object) -> object:
    return start_line(
        outputs="modbus-client",
        modbus_port=plc.port,
        modbus_reject_coil=3,
        modbus_result_register=64,
        **overrides,
    )


def test_the_plc_gets_a_reject_pulse_at_the_gate_and_the_result_block(
    start_line: StartLine, modbus_plc: ModbusPlc, redis_client: redis.Redis, line_id: str
) -> None:
    line = _client_output(start_line, modbus_plc)
    bad, good = _frame(line_id, "4711"), _frame(line_id, "4712")
    add_result(redis_client, bad, "defect")
    add_result(redis_client, good, "ok")
    assert wait_until(lambda: len(modbus_plc.coil_writes(3)) == 2, timeout=5)
    on, off = modbus_plc.coil_writes(3)
    assert (on.values, off.values) == ([True], [False])
    gate = bad.ts_ns + 400 * MS
    assert on.ts_ns >= gate and off.ts_ns >= gate + 30 * MS  # never early; dropped a pulse width later
    pulse = line.service.metrics.last_reject  # type: ignore[attr-defined]
    assert pulse["part_id"] == "4711" and 0 <= pulse["error_ms"] <= 1000  # started within the window
    assert wait_until(lambda: len(modbus_plc.register_writes(64)) == 2, timeout=5)
    blocks = [w.values for w in modbus_plc.register_writes(64)]
    assert [b[1:3] for b in blocks] == [[2, 1], [1, 0]]  # defect/reject, ok/pass
    assert [u32_from(b[4], b[5]) for b in blocks] == [4711, 4712]
    assert line.service.metrics.counts["missed_rejects"] == 0  # type: ignore[attr-defined]


def test_a_late_verdict_is_counted_as_missed_and_never_actuated(
    start_line: StartLine, modbus_plc: ModbusPlc, redis_client: redis.Redis, line_id: str
) -> None:
    line = _client_output(start_line, modbus_plc)
    late = _frame(line_id, "5000", ts_ns=time.time_ns() - 2_000 * MS)  # its gate passed 1.6 s ago
    add_result(redis_client, late, "defect")
    service = line.service  # type: ignore[attr-defined]
    assert wait_until(lambda: service.metrics.counts["missed_rejects"] == 1, timeout=5)
    assert wait_until(lambda: len(modbus_plc.register_writes(64)) == 1, timeout=5)
    assert modbus_plc.register_writes(64)[0].values[2] == 2  # action: reject missed
    time.sleep(0.2)
    assert modbus_plc.coil_writes(3) == []  # never pulsed late
    alarms = events_of(redis_client, line_id, "missed_reject")
    assert len(alarms) == 1 and alarms[0].level == "error"
    assert alarms[0].detail["part_id"] == "5000" and alarms[0].detail["cause"] == "late_verdict"


def test_a_plc_that_goes_away_and_comes_back_in_the_window_loses_nothing(
    start_line: StartLine, modbus_plc: ModbusPlc, redis_client: redis.Redis, line_id: str
) -> None:
    line = _client_output(start_line, modbus_plc, reject_delay_ms=1200.0)
    service = line.service  # type: ignore[attr-defined]
    add_result(redis_client, _frame(line_id, "1"), "ok")
    assert wait_until(lambda: len(modbus_plc.register_writes(64)) == 1, timeout=5)
    modbus_plc.stop()
    parts = [_frame(line_id, str(n), ts_ns=time.time_ns() + n * 50 * MS) for n in (2, 3)]  # 50 ms apart
    for frame in parts:
        add_result(redis_client, frame, "defect")
    assert wait_until(
        lambda: service.metrics.connections.get(f"output:{service.actuators[0].output.name}") is False, 5
    )
    time.sleep(0.3)
    modbus_plc.start()  # back on, same port, within both parts' windows
    assert wait_until(lambda: len(modbus_plc.coil_writes(3)) == 4, timeout=5)
    assert [w.values for w in modbus_plc.coil_writes(3)] == [[True], [False], [True], [False]]
    assert wait_until(lambda: len(modbus_plc.register_writes(64)) == 3, timeout=5)
    assert [u32_from(*w.values[4:6]) for w in modbus_plc.register_writes(64)] == [1, 2, 3]
    assert service.metrics.counts["missed_rejects"] == 0 and service.metrics.counts["expired_writes"] == 0


def test_a_modbus_client_reads_our_server_map(
    start_line: StartLine, redis_client: redis.Redis, line_id: str
) -> None:
    port = free_port()
    line = start_line(outputs="modbus-server", modbus_server_port=port, modbus_unit=1, reject_width_ms=1500.0)
    add_result(redis_client, _frame(line_id, "SN-77"), "defect")
    client = ModbusTcpClient(LOOPBACK, port=port)
    assert client.connect()
    try:
        # as a PLC does: the toggle coil says a new result is complete (it is written after the block)
        assert wait_until(lambda: client.read_coils(2, count=1, device_id=1).bits[0], 5)
        block = client.read_holding_registers(0, count=32, device_id=1).registers
        assert block[0] == 1 and block[1:4] == [2, 1, 900]  # first result: defect, reject, score
        assert block[13] == 4 and text_from_registers(block[16:32]) == "SN-77"  # ContinuousExecution
        coils = client.read_coils(0, count=4, device_id=1).bits[:4]
        assert coils[1:] == [False, True, True]  # not good, toggled, ready
        assert wait_until(lambda: client.read_coils(0, count=1, device_id=1).bits[0], timeout=5)  # the pulse
        assert wait_until(lambda: not client.read_coils(0, count=1, device_id=1).bits[0], timeout=5)
    finally:
        client.close()
    assert line.service.metrics.counts["rejects"] == 1  # type: ignore[attr-defined]


def test_a_plc_coil_edge_takes_exactly_one_frame_with_the_part_id(
    start_line: StartLine,
    modbus_plc: ModbusPlc,
    camera_url: str,
    judge: object,
    redis_client: redis.Redis,
    line_id: str,
) -> None:
    judged = judge(lambda frame: "defect")  # type: ignore[operator]
    line = start_line(
        inputs="modbus",
        outputs="modbus-client",
        camera_url=camera_url,
        modbus_port=modbus_plc.port,
        modbus_trigger="coil",
        modbus_trigger_address=10,
        modbus_part_id_register=20,
        modbus_reject_coil=3,
        reject_delay_ms=2000.0,  # the judge's verdict comes well before the gate, even on a busy box
    )
    service = line.service
    assert wait_until(lambda: service.inputs[0].connected(), timeout=5)
    time.sleep(0.05)
    modbus_plc.set_registers(20, [0, 4711])
    modbus_plc.set_coil(10, True)  # the part is in front of the camera
    assert wait_until(lambda: len(frames_of(redis_client, line_id)) == 1, timeout=5)
    time.sleep(0.1)
    modbus_plc.set_coil(10, False)
    time.sleep(0.1)  # held high for many polls and dropped: still one frame
    assert [f.part_id for f in frames_of(redis_client, line_id)] == ["4711"]
    assert wait_until(lambda: len(modbus_plc.coil_writes(3)) == 2, timeout=15)  # its reject pulse
    assert len(judged.judged) == 1 and service.metrics.counts["triggers"] == 1
    assert service.metrics.counts["results"] == 1 and service.metrics.counts["no_verdict"] == 0


def test_a_plc_writing_our_trigger_coil_takes_exactly_one_frame_with_its_part_id(
    start_line: StartLine, camera_url: str, judge: object, redis_client: redis.Redis, line_id: str
) -> None:
    judged = judge(lambda frame: "ok")  # type: ignore[operator]
    port = free_port()
    line = start_line(
        inputs="modbus-server", outputs="modbus-server", modbus_server_port=port, camera_url=camera_url
    )
    service = line.service  # type: ignore[attr-defined]
    client = ModbusTcpClient(LOOPBACK, port=port)
    assert client.connect()

    def counter() -> int:
        return int(client.read_holding_registers(0, count=1, device_id=1).registers[0])

    try:
        client.write_registers(32, [0, 4711], device_id=1)  # the part id, then the trigger
        client.write_coil(8, True, device_id=1)
        client.write_coil(8, True, device_id=1)  # a PLC that writes the level every scan: no new edge
        assert wait_until(lambda: not client.read_coils(8, count=1, device_id=1).bits[0], timeout=10)  # ack
        assert client.read_holding_registers(32, count=2, device_id=1).registers == [0, 0]  # id consumed
        assert wait_until(lambda: counter() == 1, timeout=10)
        block = client.read_holding_registers(0, count=32, device_id=1).registers
        assert u32_from(block[4], block[5]) == 4711 and block[1] == 1  # its result: ok
        client.write_registers(34, text_registers("SN-A7", 16), device_id=1)  # a text part id
        client.write_coil(8, True, device_id=1)
        assert wait_until(lambda: counter() == 2, timeout=10)
    finally:
        client.close()
    assert [f.part_id for f in frames_of(redis_client, line_id)] == ["4711", "SN-A7"]
    assert len(judged.judged) == 2 and service.metrics.counts["triggers"] == 2
