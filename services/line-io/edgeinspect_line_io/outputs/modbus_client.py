"""Modbus TCP client output: the reject pulse on a PLC coil, the result block in its holding registers.

The PLC is the Modbus server here (most PLCs are); we write on each pulse edge and once per part. A
write that does not come back raises ``OutputUnavailable``: the connection is dropped and the actuator
reconnects and retries until the part's window has passed.
"""

from __future__ import annotations

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException

from edgeinspect_line_io.modbus_map import result_block
from edgeinspect_line_io.outputs.base import LineInfo, OutputRefused, OutputUnavailable
from edgeinspect_line_io.verdicts import PartResult


class ModbusClientOutput:
    """Writes coil ``reject_coil`` (pulse) and, when ``result_register >= 0``, the 32-register block."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        unit: int,
        reject_coil: int,
        result_register: int,
        info: LineInfo,
        timeout_s: float = 1.0,
    ) -> None:
        self._host = host
        self._port = port
        self._unit = unit
        self._reject_coil = reject_coil
        self._result_register = result_register
        self._info = info
        self._timeout = timeout_s
        self._client: ModbusTcpClient | None = None
        self._connected = False

    @property
    def name(self) -> str:
        return f"modbus-client:{self._host}:{self._port}"

    def open(self) -> None:
        self.close()
        client = ModbusTcpClient(self._host, port=self._port, timeout=self._timeout, retries=0)
        if not client.connect():  # type: ignore[no-untyped-call]
            client.close()  # type: ignore[no-untyped-call]
            raise OutputUnavailable(
                f"no Modbus TCP server at {self._host}:{self._port}",
                hint="check EI_MODBUS_HOST / EI_MODBUS_PORT and that the PLC is on",
            )
        self._client = client
        self._connected = True

    def connected(self) -> bool:
        return self._connected

    def publish(self, part: PartResult) -> None:
        if self._result_register < 0:
            return
        block = result_block(part, self._info.missed_rejects, self._info.state)
        self._call("write_registers", self._result_register, block)

    def set_reject(self, on: bool, part: PartResult) -> None:
        self._call("write_coil", self._reject_coil, on)

    def _call(self, method: str, address: int, value: object) -> None:
        if self._client is None:
            self.open()
        assert self._client is not None
        try:
            reply = getattr(self._client, method)(address, value, device_id=self._unit)
        except (ModbusException, OSError) as exc:
            self._fail()
            raise OutputUnavailable(f"{method} at {address} on {self.name} failed: {exc}") from exc
        if reply.isError():
            raise OutputRefused(
                f"{method} at {address} on {self.name} refused: {reply}",
                hint="check the PLC's address map against EI_MODBUS_REJECT_COIL / EI_MODBUS_RESULT_REGISTER",
            )

    def _fail(self) -> None:
        self._connected = False
        self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()  # type: ignore[no-untyped-call]
            self._client = None
