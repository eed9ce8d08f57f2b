"""The line I/O settings: which PLC connections a line has, and when the reject gate fires.

Built once in ``main()`` from ``EI_`` environment variables (see the README's table) and passed down.
One process serves one line (``EI_LINE``); its outputs and inputs are chosen by name, so a line with
only a Modbus PLC loads no OPC UA client and the other way round.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from edgeinspect.core.agent_tls import AgentClientTlsSettings
from edgeinspect.core.settings import ServiceSettings
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

OUTPUT_KINDS = ("modbus-client", "modbus-server", "opcua-client", "gpiod")
INPUT_KINDS = ("modbus", "modbus-server", "opcua", "gpiod")


def _split(value: object) -> tuple[str, ...]:
    """``"a, b"`` or a list -> ``("a", "b")``."""
    items = value.split(",") if isinstance(value, str) else list(value)  # type: ignore[call-overload]
    return tuple(str(item).strip() for item in items if str(item).strip())


def _names(value: object, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    """``"a, b"`` or a list -> ``("a", "b")``; an unknown name is refused naming the choices."""
    names = _split(value)
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; choose from {list(allowed)}")
    return names


class LineIoSettings(ServiceSettings, AgentClientTlsSettings):
    """Settings of ``edgeinspect-line-io`` (on top of the shared ``EI_REDIS_URL``, ``EI_LINE``, ...)."""

    service_name: ClassVar[str] = "line-io"

    camera_url: str = Field(
        default="http://127.0.0.1:8090", description="the camera's HTTP trigger (POST /capture?part_id=)"
    )
    camera_token: SecretStr = Field(
        default=SecretStr(""),
        description="the camera trigger's bearer token (its EI_TRIGGER_TOKEN, or the one it generated)",
    )
    trigger_timeout_s: float = Field(default=2.0, gt=0, description="how long a trigger may take")
    outputs: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), description=f"comma list of {OUTPUT_KINDS}"
    )
    inputs: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), description=f"comma list of {INPUT_KINDS}"
    )

    # reject timing and rules
    reject_delay_ms: float = Field(
        default=500.0, ge=0, description="capture -> reject gate: the part's travel time"
    )
    reject_width_ms: float = Field(default=50.0, gt=0, description="how long the reject pulse stays on")
    reject_tolerance_ms: float = Field(
        default=5.0, ge=0, description="how late a pulse may still start; later is a missed reject"
    )
    fail_safe: Literal["reject", "pass"] = Field(
        default="reject", description="what an error verdict (no model, bad frame) or no verdict does"
    )
    watch_triggers: bool = Field(
        default=True, description="a part we triggered with no verdict by its gate time gets the fail-safe"
    )
    plc_retry_ms: float = Field(default=50.0, gt=0, description="wait between writes to an absent PLC")
    realtime_priority: int = Field(
        default=0, ge=0, le=99, description="SCHED_FIFO priority of the timing threads (needs CAP_SYS_NICE)"
    )

    # OPC UA server (the vision system object)
    opcua_server: bool = Field(default=True, description="serve the OPC 40100-style vision system")
    opcua_endpoint: str = Field(default="opc.tcp://127.0.0.1:4840/edgeinspect/")
    opcua_cert: str = Field(default="", description="server certificate (PEM/DER); empty: generated")
    opcua_key: str = Field(default="", description="its private key (PEM)")
    opcua_cert_dir: str = Field(
        default="/var/lib/edgeinspect/opcua", description="where a generated certificate is kept"
    )
    opcua_users: SecretStr = Field(
        default=SecretStr(""), description="user:password pairs, comma separated, for UserName tokens"
    )
    opcua_nodeset: bool = Field(
        default=True, description="load the OPC 40100 Machine Vision NodeSet, use its types"
    )
    opcua_allow_anonymous: bool = Field(
        default=False, description="also offer anonymous sessions without security (test benches only)"
    )
    recipes: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("default",), description="recipe ids SelectRecipe accepts (the first is active at start)"
    )
    recipe_targets: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="the worker's aliases a recipe switches (e.g. defect-cls,defect-seg); recipe R points "
        "each at the agent alias R-<target>; empty: a recipe is only recorded",
    )
    agent_addr: str = Field(
        default="unix:///run/edgeinspect/agent.sock", description="the agent (for recipe switches)"
    )
    agent_token: SecretStr = Field(default=SecretStr(""), description="the agent's EI_AGENT_TOKEN")
    start_continuous: bool = Field(
        default=True, description="enter ContinuousExecution at start (PLC triggers are honoured)"
    )
    single_job_timeout_s: float = Field(
        default=10.0, gt=0, description="SingleExecution returns to Ready without a result after"
    )

    # Modbus TCP
    modbus_host: str = Field(default="127.0.0.1", description="the PLC (client output and input)")
    modbus_port: int = Field(default=502, ge=1, le=65535)
    modbus_unit: int = Field(default=1, ge=0, le=255, description="Modbus unit / device id")
    modbus_reject_coil: int = Field(default=0, ge=0, description="PLC coil pulsed to reject")
    modbus_result_register: int = Field(
        default=-1, ge=-1, description="PLC holding registers for the result block; -1: none"
    )
    modbus_trigger: Literal["coil", "register"] = Field(
        default="coil", description="coil: a rising edge triggers; register: a new value (the part id)"
    )
    modbus_trigger_address: int = Field(default=10, ge=0, description="the polled coil or register")
    modbus_part_id_register: int = Field(
        default=-1, ge=-1, description="two holding registers with the part id (uint32); -1: none"
    )
    modbus_poll_ms: float = Field(default=10.0, gt=0, description="trigger polling interval")
    modbus_server_host: str = Field(default="127.0.0.1", description="our Modbus server (for PLCs that poll)")
    modbus_server_port: int = Field(default=5020, ge=1, le=65535, description="our Modbus server's port")

    # OPC UA client (a PLC's tags)
    opcua_plc_url: str = Field(default="", description="the PLC's OPC UA endpoint")
    opcua_plc_user: str = Field(default="")
    opcua_plc_password: SecretStr = Field(default=SecretStr(""))
    opcua_plc_reject_node: str = Field(default="", description="Boolean tag pulsed to reject")
    opcua_plc_good_node: str = Field(default="", description="Boolean tag: IsPartGood of the last part")
    opcua_plc_part_node: str = Field(default="", description="String tag: the last judged part id")
    opcua_plc_trigger_node: str = Field(
        default="", description="tag whose change triggers a frame (Boolean: rising edge)"
    )
    opcua_plc_trigger_part_node: str = Field(default="", description="tag read for the part id")

    # gpiod (the box's digital I/O)
    gpiod_chip: str = Field(default="/dev/gpiochip0")
    gpiod_reject_line: int = Field(default=-1, ge=-1, description="output line of the reject; -1: none")
    gpiod_trigger_line: int = Field(default=-1, ge=-1, description="input line of the trigger; -1: none")

    @field_validator("outputs", mode="before")
    @classmethod
    def _outputs(cls, value: object) -> tuple[str, ...]:
        return _names(value, OUTPUT_KINDS, "output")

    @field_validator("inputs", mode="before")
    @classmethod
    def _inputs(cls, value: object) -> tuple[str, ...]:
        return _names(value, INPUT_KINDS, "input")

    @field_validator("recipes", mode="before")
    @classmethod
    def _recipes(cls, value: object) -> tuple[str, ...]:
        names = _split(value)
        if not names:
            raise ValueError("name at least one recipe")
        return names

    @field_validator("recipe_targets", mode="before")
    @classmethod
    def _recipe_targets(cls, value: object) -> tuple[str, ...]:
        return _split(value)

    def users(self) -> dict[str, str]:
        """``EI_OPCUA_USERS`` as {user: password}; a pair without ``:`` is refused at start."""
        pairs: dict[str, str] = {}
        for item in self.opcua_users.get_secret_value().split(","):
            if not item.strip():
                continue
            user, sep, password = item.strip().partition(":")
            if not sep or not user or not password:
                raise ValueError("EI_OPCUA_USERS: write user:password pairs separated by commas")
            pairs[user] = password
        return pairs
