"""OPC UA on loopback: a real asyncua client browses the vision system, calls StartSingleJob and gets
the result event with the right part id and verdict; logins are checked; a PLC's OPC UA tags (a soft
PLC on asyncua) trigger exactly one frame and receive the verdict and the reject pulse.

Results come from ``Judge`` (one result per frame, written into the stream): the worker and the
agent are not the point here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from asyncua import ua
from asyncua.client.client import Client
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.ua.uaerrors import BadInvalidState, BadNotSupported, UaError
from cryptography.x509.oid import ExtendedKeyUsageOID
from edgeinspect.core.lifecycle import wait_until
from edgeinspect.core.messages import Frame
from edgeinspect_line_io.outputs.opcua_server import MV_NAMESPACE, NAMESPACE, VISION_SYSTEM_TYPE

from tests.fixtures.plc import OpcUaPlc
from tests.fixtures.servers import LOOPBACK, free_port
from tests.integration.line_io.conftest import Judge, StartLine, frames_of

JudgeFactory = Callable[[Callable[[Frame], str]], Judge]


def _endpoint() -> str:
    return f"opc.tcp://{LOOPBACK}:{free_port()}/edgeinspect/"


class Events:
    """A subscription handler: the result events and every value ``CurrentState`` took, in order."""

    def __init__(self) -> None:
        self.received: list[Any] = []
        self.states: list[str] = []

    def event_notification(self, event: Any) -> None:
        self.received.append(event)

    def datachange_notification(self, node: Any, value: Any, data: Any) -> None:
        self.states.append(str(value))


async def _until(check: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    for _ in range(int(timeout_s / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def _vision_system(client: Client, line: str) -> tuple[Any, int]:
    idx = await client.get_namespace_index(NAMESPACE)
    return await client.nodes.objects.get_child(f"{idx}:VisionSystem_{line}"), idx


async def _state_machine(client: Client, vs: Any) -> Any:
    """The standard's VisionStateMachine instance (OPC 40100 namespace); our methods hang off it."""
    return await vs.get_child(f"{await client.get_namespace_index(MV_NAMESPACE)}:VisionStateMachine")


async def _single_inspection(endpoint: str, line: str) -> dict[str, Any]:
    """Every state the vision system takes is observed through a data-change subscription with a
    queue (the server sends each value it writes): a single job may end before the method's answer
    reaches the client, so sampling ``CurrentState`` after the call cannot see ``SingleExecution``."""
    async with Client(endpoint) as client:
        vs, idx = await _vision_system(client, line)
        names = {(await n.read_browse_name()).Name for n in await vs.get_children()}
        mv = await client.get_namespace_index(MV_NAMESPACE)
        typed = await vs.read_type_definition() == ua.NodeId(VISION_SYSTEM_TYPE, mv)
        sm = await _state_machine(client, vs)
        top = (await (await sm.get_child("0:CurrentState")).read_value()).Text  # the standard's level
        state = await sm.get_child(f"{idx}:CurrentState")
        etype = await client.nodes.base_event_type.get_child(f"{idx}:ResultReadyEventType")
        seen = Events()
        subscription = await client.create_subscription(20, seen)
        await subscription.subscribe_data_change(state, queuesize=32)
        await subscription.subscribe_events(vs, etype)
        await _until(lambda: seen.states == ["Ready"], "the initial state")
        job = await sm.call_method(f"{idx}:StartSingleJob", ua.Variant("4711", ua.VariantType.String))
        await _until(lambda: len(seen.received) >= 1 and len(seen.states) >= 3, "the result and Ready")
        after = await state.read_value()  # Ready is set before the result event goes out
        last = await (await vs.get_child(f"{idx}:ResultManagement")).get_child(f"{idx}:LastResult")
        part = await (await last.get_child(f"{idx}:PartId")).read_value()
        await sm.call_method(f"{idx}:StartContinuous")
        await _until(lambda: len(seen.states) >= 4, "ContinuousExecution")
        try:
            await sm.call_method(f"{idx}:StartSingleJob", ua.Variant("1", ua.VariantType.String))
            refused = ""
        except BadInvalidState as exc:
            refused = type(exc).__name__
        await asyncio.sleep(0.1)  # a stray event or state change would arrive within a publish or two
        return {"names": names, "job": job, "events": list(seen.received), "states": list(seen.states),
                "refused": refused, "after": after, "part": part, "typed": typed, "top": top}  # fmt: skip


def test_a_client_browses_calls_a_single_inspection_and_gets_the_result_event(
    start_line: StartLine, camera_url: str, judge: JudgeFactory, redis_client: redis.Redis, line_id: str
) -> None:
    judge(lambda frame: "defect" if frame.part_id == "4711" else "ok")
    endpoint = _endpoint()
    start_line(
        opcua_server=True,
        opcua_endpoint=endpoint,
        opcua_allow_anonymous=True,
        opcua_users="op:secret",
        camera_url=camera_url,
        start_continuous=False,
    )
    got = asyncio.run(_single_inspection(endpoint, line_id))
    assert {"VisionStateMachine", "RecipeManagement", "ResultManagement"} <= got["names"]
    assert got["typed"] and got["top"] == "Operational"  # a VisionSystemType of the OPC 40100 NodeSet
    assert got["states"] == ["Ready", "SingleExecution", "Ready", "ContinuousExecution"]
    assert got["after"] == "Ready"
    assert len(got["events"]) == 1
    event = got["events"][0]
    assert (event.ResultId, event.PartId, event.IsPartGood, event.Verdict) == (
        got["job"],
        "4711",
        False,
        "defect",
    )
    assert got["part"] == "4711"
    assert got["refused"] == "BadInvalidState"
    assert [(f.frame_id, f.part_id) for f in frames_of(redis_client, line_id)] == [(got["job"], "4711")]


async def _login(endpoint: str, line: str, pki: Path, user: str, password: str) -> str:
    key, cert = pki / "client-key.pem", pki / "client-cert.der"
    uri = "urn:edgeinspect:test-client"
    await setup_self_signed_certificate(
        key, cert, uri, "localhost", [ExtendedKeyUsageOID.CLIENT_AUTH], {"commonName": "test client"}
    )
    client = Client(endpoint)
    client.application_uri = uri
    client.set_user(user)
    client.set_password(password)
    await client.set_security_string(f"Basic256Sha256,SignAndEncrypt,{cert},{key}")
    async with client:
        vs, idx = await _vision_system(client, line)
        sm = await _state_machine(client, vs)
        mv = await client.get_namespace_index(MV_NAMESPACE)
        for method, refusal in ((f"{mv}:Halt", BadNotSupported), (f"{mv}:Reset", BadInvalidState)):
            with pytest.raises(refusal):  # no Halted state; the standard's Reset is ours (not in Error)
                await sm.call_method(method)
        return str(await (await sm.get_child(f"{idx}:CurrentState")).read_value())


async def _anonymous(endpoint: str) -> None:
    async with Client(endpoint) as client:
        await client.nodes.objects.get_children()


def test_users_log_in_encrypted_and_anonymous_is_refused_unless_allowed(
    start_line: StartLine, line_id: str, tmp_path: Path
) -> None:
    endpoint = _endpoint()
    start_line(opcua_server=True, opcua_endpoint=endpoint, opcua_users="op:secret")
    assert asyncio.run(_login(endpoint, line_id, tmp_path, "op", "secret")) == "ContinuousExecution"
    with pytest.raises((UaError, OSError, TimeoutError)):
        asyncio.run(_login(endpoint, line_id, tmp_path, "op", "wrong"))
    with pytest.raises((UaError, OSError, TimeoutError)):
        asyncio.run(_anonymous(endpoint))


def test_a_plc_tag_triggers_one_frame_and_gets_the_verdict_and_the_pulse(
    start_line: StartLine,
    opcua_plc: OpcUaPlc,
    camera_url: str,
    judge: JudgeFactory,
    redis_client: redis.Redis,
    line_id: str,
) -> None:
    judged = judge(lambda frame: "defect")
    line = start_line(
        inputs="opcua",
        outputs="opcua-client",
        camera_url=camera_url,
        opcua_plc_url=opcua_plc.url,
        opcua_plc_trigger_node=opcua_plc.node_id("Trigger"),
        opcua_plc_trigger_part_node=opcua_plc.node_id("PartId"),
        opcua_plc_reject_node=opcua_plc.node_id("Reject"),
        opcua_plc_good_node=opcua_plc.node_id("PartGood"),
        opcua_plc_part_node=opcua_plc.node_id("LastPart"),
        reject_delay_ms=2000.0,  # the judge's verdict comes well before the gate, even on a busy box
    )
    service = line.service
    assert wait_until(lambda: service.inputs[0].connected(), timeout=10)
    opcua_plc.set_tag("PartId", "A-4711")
    opcua_plc.set_tag("Trigger", True)
    assert wait_until(lambda: len(frames_of(redis_client, line_id)) == 1, timeout=10)
    opcua_plc.set_tag("Trigger", False)
    assert wait_until(
        lambda: [w.values for w in opcua_plc.tag_writes("Reject")][-2:] == [[True], [False]], 15
    )
    assert [f.part_id for f in frames_of(redis_client, line_id)] == ["A-4711"]
    assert [w.values for w in opcua_plc.tag_writes("LastPart")][-1] == ["A-4711"]
    assert len(judged.judged) == 1 and service.metrics.counts["triggers"] == 1
    assert service.metrics.counts["results"] == 1
