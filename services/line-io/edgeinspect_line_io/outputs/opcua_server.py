"""The OPC UA server: one vision-system object per line, modelled on OPC 40100-1 (Machine Vision).

What an integrator's PLC or SCADA finds under ``Objects`` (namespace ``urn:edgeinspect:line-io``):

    VisionSystem_<line>                      emits ResultReadyEventType
      VisionStateMachine
        CurrentState, CurrentStateNumber, ErrorReason
        StartSingleJob(PartId) -> JobId, StartContinuous(), StopContinuous(), Reset()
      RecipeManagement
        ActiveRecipe, Recipes, SelectRecipe(RecipeId)
      ResultManagement
        LastResult: ResultId, PartId, IsPartGood, Verdict, Action, Late, Score, DefectAreaPx,
                    DefectBox, ModelVersion, CaptureTime, CreationTime, ProcessingTimeMs, ResultCounter
        Reject, MissedRejects

The OPC Foundation's Machine Vision NodeSet (OPC 40100-1 v1.0, vendored in ``nodesets/`` under the
OPC Foundation MIT license) is loaded at start: ``VisionSystem_<line>`` is a ``VisionSystemType``
and its ``VisionStateMachine`` the standard's instance (``CurrentState``, ns 0, shows the top-level
state Preoperational / Operational / Error; its ``Reset`` is ours, ``Halt`` is refused). Our own
variables and methods hang off those objects in ``urn:edgeinspect:line-io`` (docs/line-io.md).
Security: Basic256Sha256 (Sign, SignAndEncrypt) with user/password tokens; a server certificate is
generated when none is given; anonymous sessions without security only with ``EI_OPCUA_ALLOW_ANONYMOUS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hmac
import time
from pathlib import Path
from typing import Any, Protocol

from asyncua import ua
from asyncua.common.methods import uamethod
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.server import Server
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes
from edgeinspect.core.errors import ConfigError, EdgeInspectError
from edgeinspect.core.observability import get_logger

from edgeinspect_line_io.aio import LoopThread
from edgeinspect_line_io.outputs.base import LineInfo, OutputUnavailable
from edgeinspect_line_io.state import StateError, VisionState
from edgeinspect_line_io.verdicts import PartResult

log = get_logger(__name__)
NAMESPACE = "urn:edgeinspect:line-io"
MV_NAMESPACE = "http://opcfoundation.org/UA/MachineVision"
NODESET = Path(__file__).resolve().parent.parent / "nodesets" / "Opc.Ua.MachineVision.NodeSet2.xml"
VISION_SYSTEM_TYPE = 1003  # ns=MachineVision;i=1003 VisionSystemType
START_TIMEOUT_S = 120.0  # the standard address space and the NodeSet: seconds, more on a busy box
TOP_STATES = ("Preoperational", "Operational", "Error")  # VisionStateMachineType's states we use
EVENT_FIELDS: tuple[tuple[str, ua.VariantType], ...] = (
    ("ResultId", ua.VariantType.String),
    ("PartId", ua.VariantType.String),
    ("IsPartGood", ua.VariantType.Boolean),
    ("Verdict", ua.VariantType.String),
    ("Action", ua.VariantType.String),
    ("Late", ua.VariantType.Boolean),
    ("Score", ua.VariantType.Double),
    ("DefectAreaPx", ua.VariantType.UInt32),
    ("ModelVersion", ua.VariantType.String),
    ("CaptureTime", ua.VariantType.DateTime),
)


class Controls(Protocol):
    """What the methods do (the service implements it)."""

    def start_single(self, part_id: str) -> str: ...

    def start_continuous(self) -> None: ...

    def stop_continuous(self) -> None: ...

    def reset(self) -> None: ...

    def select_recipe(self, recipe: str) -> None: ...


class Users:
    """asyncua's user manager: user/password pairs, anonymous only when allowed."""

    def __init__(self, users: dict[str, str], allow_anonymous: bool) -> None:
        self._users = users
        self._anonymous = allow_anonymous

    def get_user(
        self, iserver: Any, username: str | None = None, password: str | None = None, certificate: Any = None
    ) -> User | None:
        if username is None:
            return User(role=UserRole.User) if self._anonymous else None
        expected = self._users.get(username)
        if expected is None or password is None or not hmac.compare_digest(expected, password):
            log.warning("opcua_login_refused", user=username)
            return None
        return User(role=UserRole.User, name=username)


def _time(ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC)


def _status(exc: EdgeInspectError) -> ua.StatusCode:
    """A refused method: BadInvalidState for the state machine, BadInvalidArgument for a bad recipe,
    BadCommunicationError when the camera did not take the frame."""
    log.warning("opcua_method_refused", error=exc.message, hint=exc.hint)
    if isinstance(exc, StateError):
        code = StatusCodes.BadInvalidArgument if "recipe" in exc.message else StatusCodes.BadInvalidState
    else:
        code = StatusCodes.BadCommunicationError
    return ua.StatusCode(ua.UInt32(code))


class OpcUaServerOutput:
    """The vision system of one line, served on ``endpoint`` from the service's asyncio loop."""

    serves = True  # a server that cannot bind stops the start

    def __init__(
        self,
        *,
        line: str,
        endpoint: str,
        aio: LoopThread,
        info: LineInfo,
        users: dict[str, str],
        allow_anonymous: bool,
        recipes: tuple[str, ...],
        cert: str = "",
        key: str = "",
        cert_dir: str = "",
        nodeset: bool = True,
    ) -> None:
        if not users and not allow_anonymous:
            raise ConfigError(
                "the OPC UA server would let nobody in",
                hint="set EI_OPCUA_USERS=user:password (or EI_OPCUA_ALLOW_ANONYMOUS=true on a test bench)",
            )
        self.line = line
        self.endpoint = endpoint
        self._aio = aio
        self._info = info
        self._users = Users(users, allow_anonymous)
        self._anonymous = allow_anonymous
        self._recipes = recipes
        self._cert, self._key, self._cert_dir = cert, key, cert_dir
        self._controls: Controls | None = None
        self._server: Server | None = None
        self._nodes: dict[str, Any] = {}
        self._event: Any = None
        self._counter = 0
        self._shown_recipe = recipes[0]
        self._nodeset = nodeset
        self._top_states: dict[str, ua.NodeId] = {}

    @property
    def name(self) -> str:
        return f"opcua-server:{self.endpoint}"

    def bind(self, controls: Controls) -> None:
        self._controls = controls

    # -- start and stop ------------------------------------------------------------------------------------

    def open(self) -> None:
        if self._server is not None:
            return
        try:
            self._aio.run(self._start(), timeout=START_TIMEOUT_S)
        except (OSError, RuntimeError, TimeoutError) as exc:
            self._server = None
            raise OutputUnavailable(
                f"cannot serve OPC UA on {self.endpoint}: {exc}", hint="pick a free port in EI_OPCUA_ENDPOINT"
            ) from exc
        log.info("opcua_serving", endpoint=self.endpoint, anonymous=self._anonymous)

    async def _start(self) -> None:
        server = Server(user_manager=self._users)  # type: ignore[arg-type]
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name(f"edgeinspect line-io {self.line}")
        uri = f"{NAMESPACE}:{self.line}"
        await server.set_application_uri(uri)
        await self._load_certificate(server, uri)
        policies = [
            ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
            ua.SecurityPolicyType.Basic256Sha256_Sign,
        ]
        ids = ["Username"]
        if self._anonymous:
            policies.append(ua.SecurityPolicyType.NoSecurity)
            ids.append("Anonymous")
        server.set_security_policy(policies)
        server.set_security_IDs(ids)
        idx = await server.register_namespace(NAMESPACE)
        mv = await self._load_nodeset(server) if self._nodeset else None
        await self._build(server, idx, mv)
        await server.start()
        self._server = server

    async def _load_certificate(self, server: Server, uri: str) -> None:
        if self._cert and self._key:
            await server.load_certificate(self._cert)
            await server.load_private_key(self._key)
            return
        from asyncua.crypto.cert_gen import setup_self_signed_certificate
        from cryptography.x509.oid import ExtendedKeyUsageOID

        folder = Path(self._cert_dir)
        folder.mkdir(parents=True, exist_ok=True)
        key, cert = folder / f"{self.line}-key.pem", folder / f"{self.line}-cert.der"
        await setup_self_signed_certificate(
            key,
            cert,
            uri,
            "localhost",
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
            {"commonName": f"edgeinspect line-io {self.line}", "organizationName": "edgeinspect"},
        )
        await server.load_certificate(str(cert))
        await server.load_private_key(str(key))

    async def _load_nodeset(self, server: Server) -> int:
        """Import the Machine Vision NodeSet (about 800 nodes); returns its namespace index."""
        started = time.monotonic()
        await server.import_xml(str(NODESET))
        mv = int(await server.get_namespace_index(MV_NAMESPACE))
        log.info("opcua_nodeset_loaded", namespace=MV_NAMESPACE, seconds=round(time.monotonic() - started, 2))
        return mv

    async def _vision_system(self, server: Server, idx: int, mv: int | None) -> tuple[Any, Any]:
        """The vision-system object and its state machine: the standard's types when loaded."""
        name = f"VisionSystem_{self.line}"
        if mv is None:
            vs = await server.nodes.objects.add_object(idx, name)
            return vs, await vs.add_object(idx, "VisionStateMachine")
        vs = await server.nodes.objects.add_object(
            idx,
            name,
            objecttype=ua.NodeId(ua.Int32(VISION_SYSTEM_TYPE), ua.Int16(mv)),
            instantiate_optional=False,
        )
        sm = await vs.get_child(f"{mv}:VisionStateMachine")
        self._nodes["StandardState"] = await sm.get_child("0:CurrentState")
        self._nodes["StandardStateId"] = await self._nodes["StandardState"].get_child("0:Id")
        for label in TOP_STATES:
            self._top_states[label] = (await sm.get_child(f"{mv}:{label}")).nodeid
        server.link_method(await sm.get_child(f"{mv}:Reset"), self._m_reset)
        server.link_method(await sm.get_child(f"{mv}:Halt"), self._m_halt)
        return vs, sm

    async def _build(self, server: Server, idx: int, mv: int | None) -> None:
        vs, sm = await self._vision_system(server, idx, mv)
        await vs.set_event_notifier([ua.EventNotifier.SubscribeToEvents])
        await vs.add_property(idx, "Line", self.line)
        n = self._nodes
        n["CurrentState"] = await sm.add_variable(idx, "CurrentState", VisionState(self._info.state).label)
        n["CurrentStateNumber"] = await sm.add_variable(
            idx, "CurrentStateNumber", self._info.state, varianttype=ua.VariantType.UInt32
        )
        n["ErrorReason"] = await sm.add_variable(idx, "ErrorReason", "")
        str_t = ua.VariantType.String
        await sm.add_method(idx, "StartSingleJob", self._m_single, [str_t], [str_t])
        await sm.add_method(idx, "StartContinuous", self._m_continuous, [], [])
        await sm.add_method(idx, "StopContinuous", self._m_stop, [], [])
        await sm.add_method(idx, "Reset", self._m_reset, [], [])
        rm = await vs.add_object(idx, "RecipeManagement")
        n["ActiveRecipe"] = await rm.add_variable(idx, "ActiveRecipe", self._recipes[0])
        await rm.add_variable(idx, "Recipes", list(self._recipes), varianttype=ua.VariantType.String)
        await rm.add_method(idx, "SelectRecipe", self._m_recipe, [str_t], [])
        results = await vs.add_object(idx, "ResultManagement")
        last = await results.add_object(idx, "LastResult")
        now = dt.datetime.now(dt.UTC)
        initial: dict[str, tuple[Any, ua.VariantType]] = {
            "ResultId": ("", str_t), "PartId": ("", str_t), "IsPartGood": (False, ua.VariantType.Boolean),
            "Verdict": ("", str_t), "Action": ("", str_t), "Late": (False, ua.VariantType.Boolean),
            "Score": (0.0, ua.VariantType.Double), "DefectAreaPx": (0, ua.VariantType.UInt32),
            "DefectBox": ([0, 0, 0, 0], ua.VariantType.Int32), "ModelVersion": ("", str_t),
            "CaptureTime": (now, ua.VariantType.DateTime), "CreationTime": (now, ua.VariantType.DateTime),
            "ProcessingTimeMs": (0.0, ua.VariantType.Double), "ResultCounter": (0, ua.VariantType.UInt32),
        }  # fmt: skip
        for name, (value, kind) in initial.items():
            n[name] = await last.add_variable(idx, name, value, varianttype=kind)
        n["Reject"] = await results.add_variable(idx, "Reject", False, varianttype=ua.VariantType.Boolean)
        n["MissedRejects"] = await results.add_variable(
            idx, "MissedRejects", 0, varianttype=ua.VariantType.UInt32
        )
        etype = await server.create_custom_event_type(
            idx, "ResultReadyEventType", ObjectIds.BaseEventType, list(EVENT_FIELDS)
        )
        self._event = await server.get_event_generator(etype, vs.nodeid)
        await self._show_state(VisionState(self._info.state), "")

    def close(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            with contextlib.suppress(TimeoutError, RuntimeError, OSError):
                self._aio.run(server.stop(), timeout=10.0)

    def connected(self) -> bool:
        return self._server is not None

    # -- the output --------------------------------------------------------------------------------------

    def publish(self, part: PartResult) -> None:
        self._run(self._publish(part))

    def set_reject(self, on: bool, part: PartResult) -> None:
        self._run(self._nodes["Reject"].write_value(on, ua.VariantType.Boolean))

    def show_state(self, state: VisionState, reason: str) -> None:
        if self._server is not None:
            self._run(self._show_state(state, reason))

    def _run(self, coro: Any) -> None:
        if self._server is None:
            coro.close()
            raise OutputUnavailable(f"{self.name} is not serving")
        self._aio.run(coro, timeout=2.0)

    async def _show_state(self, state: VisionState, reason: str) -> None:
        if "StandardState" in self._nodes:  # the standard's top level: Preoperational/Operational/Error
            top = {VisionState.PREOPERATIONAL: "Preoperational", VisionState.ERROR: "Error"}.get(
                state, "Operational"
            )
            await self._nodes["StandardState"].write_value(ua.LocalizedText(top))
            await self._nodes["StandardStateId"].write_value(self._top_states[top], ua.VariantType.NodeId)
        await self._nodes["CurrentState"].write_value(state.label)
        await self._nodes["CurrentStateNumber"].write_value(int(state), ua.VariantType.UInt32)
        await self._nodes["ErrorReason"].write_value(reason)

    async def _publish(self, part: PartResult) -> None:
        self._counter += 1
        box = list(part.bbox) if part.bbox is not None else [0, 0, 0, 0]
        values: dict[str, tuple[Any, ua.VariantType]] = {
            "ResultId": (part.result_id, ua.VariantType.String),
            "PartId": (part.part_id, ua.VariantType.String),
            "IsPartGood": (part.is_good, ua.VariantType.Boolean),
            "Verdict": (part.verdict, ua.VariantType.String),
            "Action": (part.action, ua.VariantType.String),
            "Late": (part.late, ua.VariantType.Boolean),
            "Score": (float(part.score), ua.VariantType.Double),
            "DefectAreaPx": (int(part.defect_area_px), ua.VariantType.UInt32),
            "DefectBox": (box, ua.VariantType.Int32),
            "ModelVersion": (part.model_version, ua.VariantType.String),
            "CaptureTime": (_time(part.capture_ns), ua.VariantType.DateTime),
            "CreationTime": (_time(part.received_ns), ua.VariantType.DateTime),
            "ProcessingTimeMs": ((part.received_ns - part.capture_ns) / 1e6, ua.VariantType.Double),
            "ResultCounter": (self._counter, ua.VariantType.UInt32),
        }
        for name, (value, kind) in values.items():
            await self._nodes[name].write_value(value, kind)
        await self._nodes["MissedRejects"].write_value(self._info.missed_rejects, ua.VariantType.UInt32)
        if self._info.recipe and self._info.recipe != self._shown_recipe:  # learnt from the agent at start
            self._shown_recipe = self._info.recipe
            await self._nodes["ActiveRecipe"].write_value(self._info.recipe)
        event = self._event.event
        for name, _kind in EVENT_FIELDS:
            setattr(event, name, values[name][0])
        event.Severity = 100 if part.is_good else 500
        await self._event.trigger(message=f"result {part.result_id} part {part.part_id}: {part.verdict}")

    # -- methods (OPC UA clients call them on the loop thread; the work runs off it) ------------------

    async def _call(self, name: str, *args: Any) -> Any:
        """Run a control off the loop; a refusal comes back as a ``ua.StatusCode`` (asyncua turns a
        raised exception into BadUnexpectedError, which would hide the reason from the client)."""
        if self._controls is None:
            return ua.StatusCode(ua.UInt32(StatusCodes.BadResourceUnavailable))
        try:
            return await asyncio.get_running_loop().run_in_executor(
                None, getattr(self._controls, name), *args
            )
        except EdgeInspectError as exc:
            return _status(exc)

    @uamethod  # type: ignore[misc]
    async def _m_single(self, parent: Any, part_id: str) -> Any:
        job = await self._call("start_single", str(part_id))
        return job if isinstance(job, ua.StatusCode) else str(job)

    @uamethod  # type: ignore[misc]
    async def _m_continuous(self, parent: Any) -> Any:
        return await self._call("start_continuous")

    @uamethod  # type: ignore[misc]
    async def _m_stop(self, parent: Any) -> Any:
        return await self._call("stop_continuous")

    @uamethod  # type: ignore[misc]
    async def _m_reset(self, parent: Any) -> Any:
        return await self._call("reset")

    @uamethod  # type: ignore[misc]
    async def _m_halt(self, parent: Any) -> Any:
        """The standard's Halt: this vision system has no Halted state (stop the service instead)."""
        return ua.StatusCode(ua.UInt32(StatusCodes.BadNotSupported))

    @uamethod  # type: ignore[misc]
    async def _m_recipe(self, parent: Any, recipe: str) -> Any:
        refused = await self._call("select_recipe", str(recipe))
        if refused is None:
            self._shown_recipe = str(recipe)
            await self._nodes["ActiveRecipe"].write_value(str(recipe))
        return refused
