"""The fail-safe at the line: a part we triggered with no verdict by its gate is rejected (and its late
verdict does not pulse again); an error verdict follows EI_FAIL_SAFE; the UI's status key is kept.

Results are written into the stream directly (the worker is not the point here).
"""

from __future__ import annotations

import json
import time

import redis
from edgeinspect.core import names
from edgeinspect.core.lifecycle import wait_until

from tests.fixtures.plc import ModbusPlc
from tests.integration.line_io.conftest import StartLine, events_of, frames_of
from tests.integration.line_io.test_modbus import _frame, add_result


def test_a_triggered_part_without_a_verdict_gets_the_fail_safe_reject_once(
    start_line: StartLine, modbus_plc: ModbusPlc, camera_url: str, redis_client: redis.Redis, line_id: str
) -> None:
    line = start_line(
        outputs="modbus-client", camera_url=camera_url, modbus_port=modbus_plc.port, modbus_reject_coil=3,
        watch_triggers=True,
    )  # fmt: skip
    service = line.service
    shot = service.trigger("test", "77")  # no judge runs: the verdict never comes in time
    assert wait_until(lambda: len(modbus_plc.coil_writes(3)) == 2, timeout=5)
    assert service.metrics.counts["no_verdict"] == 1
    assert [e.detail["part_id"] for e in events_of(redis_client, line_id, "no_verdict")] == ["77"]
    frame = frames_of(redis_client, line_id)[0]
    assert (frame.frame_id, frame.part_id) == (shot.frame_id, "77")
    add_result(redis_client, frame, "defect")  # the verdict, too late: recorded, never pulsed again
    assert wait_until(lambda: service.metrics.counts["results"] == 2, timeout=5)
    time.sleep(0.1)
    assert len(modbus_plc.coil_writes(3)) == 2 and service.metrics.counts["missed_rejects"] == 0


def test_an_error_verdict_follows_the_fail_safe_setting(
    start_line: StartLine, modbus_plc: ModbusPlc, redis_client: redis.Redis, line_id: str
) -> None:
    line = start_line(
        outputs="modbus-client", modbus_port=modbus_plc.port, modbus_reject_coil=3, fail_safe="pass"
    )
    add_result(redis_client, _frame(line_id, "1"), "error")
    assert wait_until(lambda: line.service.metrics.counts["results"] == 1, timeout=5)
    time.sleep(0.5)  # past its gate
    assert modbus_plc.coil_writes(3) == [] and line.service.metrics.counts["fail_safe"] == 1


def test_the_ui_status_key_shows_connections_and_the_last_reject(
    start_line: StartLine, modbus_plc: ModbusPlc, redis_client: redis.Redis, line_id: str
) -> None:
    start_line(outputs="modbus-client", modbus_port=modbus_plc.port, modbus_reject_coil=3)
    add_result(redis_client, _frame(line_id, "4711"), "defect")

    def status() -> dict[str, object]:
        raw = redis_client.get(names.line_io_status_key(line_id))
        return json.loads(raw) if raw else {}

    assert wait_until(lambda: (status().get("last_reject") or {}).get("part_id") == "4711", timeout=5)
    body = status()
    assert body["state"] == "ContinuousExecution" and body["connections"]["redis"] is True
    assert body["connections"][f"output:modbus-client:127.0.0.1:{modbus_plc.port}"] is True
    assert body["counts"]["rejects"] == 1 and body["counts"]["missed_rejects"] == 0
