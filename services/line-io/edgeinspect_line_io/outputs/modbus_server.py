"""Modbus TCP server output: the result map served to PLCs that poll (see ``modbus_map``).

The map lives in a pymodbus ``SimDevice`` served on the service's asyncio loop; each part rewrites
the result block (holding registers 0-31) and the coils (reject, part good, result toggle, ready).
A PLC polls register 0 (the result counter) and reads the rest when it changes.
"""

from __future__ import annotations

import contextlib

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from edgeinspect_line_io.aio import LoopThread
from edgeinspect_line_io.modbus_map import (
    BLOCK_SIZE,
    COIL_GOOD,
    COIL_READY,
    COIL_REJECT,
    REG_STATE,
    result_block,
)
from edgeinspect_line_io.outputs.base import LineInfo, OutputUnavailable
from edgeinspect_line_io.state import VisionState
from edgeinspect_line_io.verdicts import PartResult

FC_COILS, FC_HOLDING = 1, 3
READY_STATES = {VisionState.READY, VisionState.SINGLE_EXECUTION, VisionState.CONTINUOUS_EXECUTION}


def device(unit: int) -> SimDevice:
    """Coils 0-15, discrete inputs 0-15, holding registers 0-63 and input registers 0-7, all zero."""
    return SimDevice(
        id=unit,
        simdata=(
            [SimData(0, count=16, values=False, datatype=DataType.BITS)],
            [SimData(0, count=16, values=False, datatype=DataType.BITS)],
            [SimData(0, count=2 * BLOCK_SIZE, values=0, datatype=DataType.REGISTERS)],
            [SimData(0, count=8, values=0, datatype=DataType.REGISTERS)],
        ),
    )


class ModbusServerOutput:
    """Serves the map on ``host:port`` for unit ``unit`` (0 answers every unit id)."""

    serves = True  # a server that cannot bind stops the start

    def __init__(self, host: str, port: int, *, unit: int, info: LineInfo, aio: LoopThread) -> None:
        self._host = host
        self._port = port
        self._unit = unit
        self._info = info
        self._aio = aio
        self._server: ModbusTcpServer | None = None
        self._toggle = False

    @property
    def name(self) -> str:
        return f"modbus-server:{self._host}:{self._port}"

    def open(self) -> None:
        if self._server is not None:
            return
        try:
            self._server = self._aio.run(self._start())
        except (OSError, RuntimeError) as exc:
            raise OutputUnavailable(
                f"cannot serve Modbus TCP on {self._host}:{self._port}: {exc}",
                hint="pick a free EI_MODBUS_SERVER_PORT (502 needs root or CAP_NET_BIND_SERVICE)",
            ) from exc
        self.show_state()

    async def _start(self) -> ModbusTcpServer:
        server = ModbusTcpServer(device(self._unit), address=(self._host, self._port))
        await server.serve_forever(background=True)
        return server

    def connected(self) -> bool:
        return self._server is not None

    def publish(self, part: PartResult) -> None:
        block = result_block(part, self._info.missed_rejects, self._info.state)
        self._toggle = not self._toggle
        self._set(FC_HOLDING, 0, block)
        self._set(FC_COILS, COIL_GOOD, [part.is_good, self._toggle, self._ready()])

    def set_reject(self, on: bool, part: PartResult) -> None:
        self._set(FC_COILS, COIL_REJECT, [on])

    def show_state(self) -> None:
        """Refresh the state register and the ready coil (called on every state change)."""
        if self._server is None:
            return
        self._set(FC_HOLDING, REG_STATE, [self._info.state])
        self._set(FC_COILS, COIL_READY, [self._ready()])

    def _ready(self) -> bool:
        return self._info.state in READY_STATES

    def _set(self, fc: int, address: int, values: list[int] | list[bool]) -> None:
        if self._server is None:
            raise OutputUnavailable(f"{self.name} is not serving", hint="see the start-up error above")
        self._aio.run(self._server.async_setValues(self._unit, fc, address, values), timeout=2.0)

    def close(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            with contextlib.suppress(TimeoutError, RuntimeError):
                self._aio.run(server.shutdown(), timeout=5.0)  # type: ignore[no-untyped-call]
