"""Modbus TCP trigger input: poll a PLC coil or register; each change is exactly one trigger.

``coil``: a rising edge (0 -> 1) triggers; the part id is read from two holding registers
(``EI_MODBUS_PART_ID_REGISTER``, uint32) when configured. ``register``: every new value triggers and
*is* the part id (the PLC writes the next serial number), unless a part-id register is configured.

The first read after (re)connecting only sets the baseline: a coil already high when we connect is
not a new part, so a reconnect never fires a trigger twice. A PLC that pulses faster than
``EI_MODBUS_POLL_MS`` is not seen: keep the trigger high for at least two poll intervals.
"""

from __future__ import annotations

import threading

from edgeinspect.core.observability import get_logger
from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException

from edgeinspect_line_io.inputs.base import Fire
from edgeinspect_line_io.modbus_map import u32_from

log = get_logger(__name__)


class ModbusInput:
    """Polls ``host:port`` on its own thread."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        unit: int,
        kind: str,
        address: int,
        part_id_register: int,
        poll_s: float,
        retry_s: float = 0.5,
    ) -> None:
        self._host = host
        self._port = port
        self._unit = unit
        self._kind = kind
        self._address = address
        self._part_register = part_id_register
        self._poll_s = poll_s
        self._retry_s = retry_s
        self._stop = threading.Event()
        self._connected = False
        self._thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        return f"modbus:{self._host}:{self._port}/{self._kind}{self._address}"

    def start(self, fire: Fire) -> None:
        self._thread = threading.Thread(target=self._run, args=(fire,), name="modbus-input", daemon=True)
        self._thread.start()

    def connected(self) -> bool:
        return self._connected

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self, fire: Fire) -> None:
        while not self._stop.is_set():
            client = ModbusTcpClient(self._host, port=self._port, timeout=1.0, retries=0)
            try:
                if client.connect():  # type: ignore[no-untyped-call]
                    self._connected = True
                    self._poll(client, fire)
            except (ModbusException, OSError) as exc:
                log.warning("modbus_input_lost", input=self.name, error=str(exc))
            finally:
                self._connected = False
                client.close()  # type: ignore[no-untyped-call]
            self._stop.wait(self._retry_s)

    def _poll(self, client: ModbusTcpClient, fire: Fire) -> None:
        last = self._read(client)
        while not self._stop.wait(self._poll_s):
            value = self._read(client)
            changed = (value and not last) if self._kind == "coil" else value != last
            last = value
            if changed:
                fire(self._part_id(client, value))

    def _read(self, client: ModbusTcpClient) -> int:
        if self._kind == "coil":
            reply = client.read_coils(self._address, count=1, device_id=self._unit)
            _check(reply)
            return int(bool(reply.bits[0]))
        reply = client.read_holding_registers(self._address, count=1, device_id=self._unit)
        _check(reply)
        return int(reply.registers[0])

    def _part_id(self, client: ModbusTcpClient, value: int) -> str:
        if self._part_register >= 0:
            reply = client.read_holding_registers(self._part_register, count=2, device_id=self._unit)
            _check(reply)
            return str(u32_from(reply.registers[0], reply.registers[1]))
        return str(value) if self._kind == "register" else ""


def _check(reply: object) -> None:
    if getattr(reply, "isError", lambda: True)():
        raise ModbusException(f"the PLC answered with an error: {reply}")
