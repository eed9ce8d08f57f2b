"""Modbus TCP server output: the result map served to PLCs that poll (see ``modbus_map``).

The map lives in a pymodbus ``SimDevice`` served on the service's asyncio loop; each part rewrites
the result block (holding registers 0-31) and the coils (reject, part good, result toggle, ready).
A PLC polls register 0 (the result counter) and reads the rest when it changes.

A PLC may also trigger through the map (``EI_INPUTS=modbus-server``): it writes the part id into
registers 32-49 and 1 into coil 8; the write's rising edge is one trigger, handed to a thread of its
own (the camera call blocks, the asyncio loop must not), which writes coil 8 back to 0 and clears the
part id once the camera has answered: the PLC's acknowledgement.
"""

from __future__ import annotations

import contextlib
import queue
import threading

from edgeinspect.core.observability import get_logger
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice
from pymodbus.simulator.simdevice import SimAction

from edgeinspect_line_io.aio import LoopThread
from edgeinspect_line_io.inputs.base import Fire
from edgeinspect_line_io.modbus_map import (
    BLOCK_SIZE,
    COIL_GOOD,
    COIL_READY,
    COIL_REJECT,
    COIL_TRIGGER,
    REG_STATE,
    REG_TRIGGER_PART,
    TRIGGER_PART_REGISTERS,
    result_block,
    trigger_part_id,
)
from edgeinspect_line_io.outputs.base import LineInfo, OutputUnavailable
from edgeinspect_line_io.state import VisionState
from edgeinspect_line_io.verdicts import PartResult

log = get_logger(__name__)
FC_COILS, FC_HOLDING = 1, 3
FC_WRITE_COIL, FC_WRITE_COILS = 5, 15  # what a PLC's trigger write arrives as
READY_STATES = {VisionState.READY, VisionState.SINGLE_EXECUTION, VisionState.CONTINUOUS_EXECUTION}


def device(unit: int, action: SimAction | None = None) -> SimDevice:
    """Coils 0-15, discrete inputs 0-15, holding registers 0-63 and input registers 0-7, all zero;
    ``action`` hears every request (the trigger coil's writes)."""
    return SimDevice(
        id=unit,
        action=action,
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
        self._fire: Fire | None = None
        self._trigger_high = False  # coil 8 as last written (by the PLC or by our ack)
        self._edges: queue.SimpleQueue[bool] = queue.SimpleQueue()
        self._trigger_thread: threading.Thread | None = None

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
        server = ModbusTcpServer(device(self._unit, self._action), address=(self._host, self._port))
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

    # -- the trigger coil (the input side; ``ServerTrigger`` is its ``Input``) -----------------------

    def listen(self, fire: Fire | None) -> None:
        """Hand each rising edge of the trigger coil to ``fire`` (None: ignore the coil again)."""
        self._fire = fire
        if fire is not None and self._trigger_thread is None:
            self._trigger_thread = threading.Thread(target=self._triggers, name="modbus-server-trigger",
                                                    daemon=True)  # fmt: skip
            self._trigger_thread.start()
        elif fire is None and self._trigger_thread is not None:
            self._edges.put(False)
            self._trigger_thread.join(5)
            self._trigger_thread = None

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> None:
        """Runs on the loop for every request: a PLC write that raises coil 8 is one trigger."""
        if set_values is None or function_code not in (FC_WRITE_COIL, FC_WRITE_COILS):
            return
        if not address <= COIL_TRIGGER < address + len(set_values):
            return
        high = bool(set_values[COIL_TRIGGER - address])
        rising = high and not self._trigger_high
        self._trigger_high = high
        if rising and self._fire is not None:
            self._edges.put(True)

    def _triggers(self) -> None:
        while self._edges.get():
            fire = self._fire
            try:
                if fire is not None:
                    fire(self._take_part_id())
            finally:
                self._acknowledge()

    def _take_part_id(self) -> str:
        assert self._server is not None
        values = self._aio.run(
            self._server.async_getValues(self._unit, FC_HOLDING, REG_TRIGGER_PART, TRIGGER_PART_REGISTERS),
            timeout=2.0,
        )
        return trigger_part_id([int(v) for v in values]) if isinstance(values, list) else ""

    def _acknowledge(self) -> None:
        """Coil 8 back to 0 and the part id cleared: the PLC may send the next part."""
        try:
            self._set(FC_HOLDING, REG_TRIGGER_PART, [0] * TRIGGER_PART_REGISTERS)
            self._trigger_high = False  # before the write: a PLC write racing it is a new edge
            self._set(FC_COILS, COIL_TRIGGER, [False])
        except (OutputUnavailable, TimeoutError) as exc:
            log.warning("modbus_trigger_not_acknowledged", output=self.name, error=str(exc))

    def close(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            with contextlib.suppress(TimeoutError, RuntimeError):
                self._aio.run(server.shutdown(), timeout=5.0)  # type: ignore[no-untyped-call]


class ServerTrigger:
    """The ``Input`` side of our Modbus server: the PLC writes coil 8 (``EI_INPUTS=modbus-server``)."""

    def __init__(self, server: ModbusServerOutput) -> None:
        self._server = server

    @property
    def name(self) -> str:
        return f"{self._server.name}/coil{COIL_TRIGGER}"

    def start(self, fire: Fire) -> None:
        self._server.listen(fire)

    def connected(self) -> bool:
        return self._server.connected()

    def close(self) -> None:
        self._server.listen(None)
