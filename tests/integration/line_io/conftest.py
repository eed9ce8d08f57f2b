"""The line I/O against real servers: the session's redis-server, a real trigger camera, real PLC
stand-ins (pymodbus and asyncua servers), and real OPC UA / Modbus clients in the tests.

The verdicts come from ``Judge``: a thread that reads the line's frames and writes one result per
frame into ``ei:results:{line}`` (part id copied, verdict chosen by the test). The worker and the
agent are not the point of these tests (their own tests cover them); the I/O layer is.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from edgeinspect.core import names
from edgeinspect.core.lifecycle import wait_until
from edgeinspect.core.messages import Event, Frame, Result
from edgeinspect.core.streams import Streams
from edgeinspect_camera.sources.trigger import TriggerSource
from edgeinspect_line_io.build import LineIo, build_service
from edgeinspect_line_io.settings import LineIoSettings

from tests.fixtures.plc import ModbusPlc, OpcUaPlc
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.servers import LOOPBACK, free_port
from tests.integration.camera.conftest import StartCamera, start_camera  # noqa: F401 (a fixture)
from tests.unit.camera.helpers import write_folder

StartLine = Callable[..., LineIo]


class Judge:
    """Reads ``ei:frames:{line}`` and adds a result per frame; ``verdict(frame)`` decides."""

    def __init__(self, url: str, line: str, verdict: Callable[[Frame], str]) -> None:
        self.streams = Streams.from_url(url)
        self.line = line
        self.verdict = verdict
        self.judged: list[Frame] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Judge:
        self._thread.start()
        return self

    def _run(self) -> None:
        position = "0-0"
        while not self._stop.is_set():
            for entry in self.streams.read({names.frames_stream(self.line): position}, block_ms=100):
                position = entry.id
                frame = entry.parse(Frame)
                verdict = self.verdict(frame)
                self.streams.add(names.results_stream(self.line), result_for(frame, verdict))
                self.judged.append(frame)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.streams.close()


def result_for(frame: Frame, verdict: str, *, ts_ns: int | None = None, score: float = 0.9) -> Result:
    return Result(
        frame_id=frame.frame_id,
        line=frame.line,
        ts_ns=frame.ts_ns if ts_ns is None else ts_ns,
        verdict=verdict,  # type: ignore[arg-type]
        score=score if verdict == "defect" else 0.1,
        predictions=[],
        e2e_ms=1.0,
        part_id=frame.part_id,
    )


@pytest.fixture
def modbus_plc() -> Iterator[ModbusPlc]:
    plc = ModbusPlc().start()
    yield plc
    plc.close()


@pytest.fixture
def opcua_plc() -> Iterator[OpcUaPlc]:
    plc = OpcUaPlc().start()
    yield plc
    plc.close()


@pytest.fixture
def camera_url(start_camera: StartCamera, tmp_path: Path) -> str:  # noqa: F811
    """A trigger camera (``POST /capture`` grabs from a replay folder) on a free port."""
    folder = tmp_path / "replay"
    folder.mkdir()
    write_folder(folder, 2, seed=11)
    port = free_port()
    camera = start_camera(source=f"http://{LOOPBACK}:{port}", trigger_source=f"folder://{folder}")
    assert wait_until(lambda: camera.source_up, timeout=10)
    assert isinstance(camera.source, TriggerSource)
    return f"http://{LOOPBACK}:{port}"


@pytest.fixture
def start_line(redis_server: RedisServer, line_id: str, tmp_path: Path) -> Iterator[StartLine]:
    """Build and start a line I/O from settings overrides; stopped after the test."""
    started: list[LineIo] = []

    def start(**overrides: Any) -> LineIo:
        values: dict[str, Any] = dict(
            redis_url=redis_server.url,
            line=line_id,
            camera_url=f"http://{LOOPBACK}:{free_port()}",
            opcua_server=False,
            opcua_cert_dir=str(tmp_path / "pki"),
            reject_delay_ms=400.0,
            reject_width_ms=30.0,
            # generous: these tests check what happens, not how punctually (the bench measures that)
            reject_tolerance_ms=1000.0,
            # no fail-safe for a triggered part whose verdict is slow: on a loaded box the judge may
            # take longer than the delay, and these tests count results (test_rules turns it on)
            watch_triggers=False,
            plc_retry_ms=20.0,
            modbus_poll_ms=5.0,
        )
        values.update(overrides)
        line = build_service(LineIoSettings.load(**values))
        line.start()
        started.append(line)
        assert wait_until(lambda: line.service.metrics.connections.get("redis") is True, timeout=10)
        return line

    yield start
    for line in started:
        line.stop()


@pytest.fixture
def judge(redis_server: RedisServer, line_id: str) -> Iterator[Callable[[Callable[[Frame], str]], Judge]]:
    judges: list[Judge] = []

    def make(verdict: Callable[[Frame], str]) -> Judge:
        j = Judge(redis_server.url, line_id, verdict).start()
        judges.append(j)
        return j

    yield make
    for j in judges:
        j.stop()


def frames_of(client: redis.Redis, line: str) -> list[Frame]:
    entries = Streams(client).read({names.frames_stream(line): "0-0"}, count=100_000, block_ms=None)
    return [e.parse(Frame) for e in entries]


def results_of(client: redis.Redis, line: str) -> list[Result]:
    entries = Streams(client).read({names.results_stream(line): "0-0"}, count=100_000, block_ms=None)
    return [e.parse(Result) for e in entries]


def events_of(client: redis.Redis, line: str, type_: str) -> list[Event]:
    entries = Streams(client).read({names.events_stream(): "0-0"}, count=1_000_000, block_ms=None)
    found = [e.parse(Event) for e in entries]
    return [e for e in found if e.line == line and e.type == type_]
