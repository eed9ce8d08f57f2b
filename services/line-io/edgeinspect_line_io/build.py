"""From settings to a running line: which outputs and inputs, the asyncio loop they share, the wiring.

Kept apart from ``service`` so the service can be built with any outputs (tests, the bench) and so
the third-party libraries are imported only for the outputs a line uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgeinspect_line_io.aio import LoopThread
from edgeinspect_line_io.inputs.base import Input
from edgeinspect_line_io.outputs.base import LineInfo, Output
from edgeinspect_line_io.service import LineIoService
from edgeinspect_line_io.settings import LineIoSettings


@dataclass
class LineIo:
    """The service with what it runs on; ``start``/``stop`` in the right order."""

    service: LineIoService
    aio: LoopThread
    opcua: Any = None  # the OpcUaServerOutput when served
    extras: list[Any] = field(default_factory=list)

    def start(self) -> None:
        self.service.start()

    def stop(self) -> None:
        self.service.stop()
        self.aio.stop()

    def status_route(self) -> tuple[int, dict[str, Any]]:
        return 200, self.service.status()


def _outputs(settings: LineIoSettings, info: LineInfo, aio: LoopThread) -> tuple[list[Output], Any]:
    outputs: list[Output] = []
    opcua = None
    if settings.opcua_server:
        from edgeinspect_line_io.outputs.opcua_server import OpcUaServerOutput

        opcua = OpcUaServerOutput(
            line=settings.line,
            endpoint=settings.opcua_endpoint,
            aio=aio,
            info=info,
            users=settings.users(),
            allow_anonymous=settings.opcua_allow_anonymous,
            recipes=settings.recipes,
            cert=settings.opcua_cert,
            key=settings.opcua_key,
            cert_dir=settings.opcua_cert_dir,
            nodeset=settings.opcua_nodeset,
        )
        outputs.append(opcua)
    for kind in settings.outputs:
        outputs.append(_output(kind, settings, info, aio))
    return outputs, opcua


def _output(kind: str, settings: LineIoSettings, info: LineInfo, aio: LoopThread) -> Output:
    if kind == "modbus-client":
        from edgeinspect_line_io.outputs.modbus_client import ModbusClientOutput

        return ModbusClientOutput(
            settings.modbus_host,
            settings.modbus_port,
            unit=settings.modbus_unit,
            reject_coil=settings.modbus_reject_coil,
            result_register=settings.modbus_result_register,
            info=info,
        )
    if kind == "modbus-server":
        from edgeinspect_line_io.outputs.modbus_server import ModbusServerOutput

        return ModbusServerOutput(
            settings.modbus_server_host,
            settings.modbus_server_port,
            unit=settings.modbus_unit,
            info=info,
            aio=aio,
        )
    if kind == "opcua-client":
        from edgeinspect_line_io.outputs.opcua_client import OpcUaClientOutput

        _require(settings.opcua_plc_url, "EI_OPCUA_PLC_URL", kind)
        return OpcUaClientOutput(
            settings.opcua_plc_url,
            aio=aio,
            user=settings.opcua_plc_user,
            password=settings.opcua_plc_password.get_secret_value(),
            reject_node=settings.opcua_plc_reject_node,
            good_node=settings.opcua_plc_good_node,
            part_node=settings.opcua_plc_part_node,
        )
    from edgeinspect_line_io.outputs.gpiod_line import GpiodOutput

    if settings.gpiod_reject_line < 0:
        raise ValueError("the gpiod output needs EI_GPIOD_REJECT_LINE (the reject's line offset)")
    return GpiodOutput(settings.gpiod_chip, settings.gpiod_reject_line)


def _inputs(settings: LineIoSettings, aio: LoopThread, outputs: list[Output]) -> list[Input]:
    inputs: list[Input] = []
    for kind in settings.inputs:
        if kind == "modbus-server":
            from edgeinspect_line_io.outputs.modbus_server import ModbusServerOutput, ServerTrigger

            served = [o for o in outputs if isinstance(o, ModbusServerOutput)]
            if not served:
                raise ValueError("the modbus-server input (coil 8 of our map) needs EI_OUTPUTS=modbus-server")
            inputs.append(ServerTrigger(served[0]))
        elif kind == "modbus":
            from edgeinspect_line_io.inputs.modbus import ModbusInput

            inputs.append(
                ModbusInput(
                    settings.modbus_host,
                    settings.modbus_port,
                    unit=settings.modbus_unit,
                    kind=settings.modbus_trigger,
                    address=settings.modbus_trigger_address,
                    part_id_register=settings.modbus_part_id_register,
                    poll_s=settings.modbus_poll_ms / 1000,
                )
            )
        elif kind == "opcua":
            from edgeinspect_line_io.inputs.opcua import OpcUaInput

            _require(settings.opcua_plc_url, "EI_OPCUA_PLC_URL", "opcua input")
            _require(settings.opcua_plc_trigger_node, "EI_OPCUA_PLC_TRIGGER_NODE", "opcua input")
            inputs.append(
                OpcUaInput(
                    settings.opcua_plc_url,
                    aio=aio,
                    trigger_node=settings.opcua_plc_trigger_node,
                    part_node=settings.opcua_plc_trigger_part_node,
                    user=settings.opcua_plc_user,
                    password=settings.opcua_plc_password.get_secret_value(),
                )
            )
        else:
            from edgeinspect_line_io.outputs.gpiod_line import GpiodInput

            if settings.gpiod_trigger_line < 0:
                raise ValueError("the gpiod input needs EI_GPIOD_TRIGGER_LINE (the trigger's line offset)")
            inputs.append(GpiodInput(settings.gpiod_chip, settings.gpiod_trigger_line))
    return inputs


def _require(value: str, variable: str, what: str) -> None:
    if not value:
        raise ValueError(f"the {what} needs {variable}")


def build_service(settings: LineIoSettings, **service_options: Any) -> LineIo:
    """Every output and input the settings name, on one shared asyncio loop, wired to one service."""
    aio = LoopThread().start()
    info = LineInfo()
    outputs, opcua = _outputs(settings, info, aio)
    service = LineIoService(
        settings, outputs=outputs, inputs=_inputs(settings, aio, outputs), info=info, **service_options
    )
    for output in outputs:
        show = getattr(output, "show_state", None)
        if show is not None:
            _follow_state(service, output)
    if opcua is not None:
        opcua.bind(service)
    return LineIo(service, aio, opcua)


def _follow_state(service: LineIoService, output: Any) -> None:
    """Mirror state changes on an output that shows the state (OPC UA variables, Modbus register)."""
    from edgeinspect_line_io.outputs.base import OutputUnavailable

    def changed(_before: Any, after: Any) -> None:
        try:
            if hasattr(output, "endpoint"):
                output.show_state(after, service.state.error_reason)
            else:
                output.show_state()
        except (OutputUnavailable, TimeoutError):
            pass  # not serving yet: the output shows the state when it opens

    service.state.subscribe(changed)
