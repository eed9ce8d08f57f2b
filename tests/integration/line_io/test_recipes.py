"""SelectRecipe switches the models the line's worker calls: the real agent (two classifier versions),
the real worker on the line, line-io serving OPC UA; an asyncua client selects the recipe and the
next part is judged by the recipe's model version, as its result and the OPC UA LastResult say.
"""

from __future__ import annotations

import asyncio
from typing import Any

from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.uaerrors import BadInvalidArgument
from edgeinspect.core.lifecycle import wait_until
from edgeinspect.core.messages import Result
from edgeinspect_line_io.outputs.opcua_server import NAMESPACE

from tests.fixtures.servers import LOOPBACK, free_port
from tests.integration.line_io.conftest import StartLine
from tests.integration.worker.conftest import LineKit, line  # noqa: F401 (a fixture)


def _cls_version(result: Result) -> str:
    return next(p.version for p in result.predictions if p.task == "classification" and p.role == "primary")


async def _select(endpoint: str, line_id: str, recipe: str) -> tuple[str, str]:
    """Call SelectRecipe; returns (the refusal's name or "", ActiveRecipe after the call)."""
    async with Client(endpoint) as client:
        idx = await client.get_namespace_index(NAMESPACE)
        vs = await client.nodes.objects.get_child(f"{idx}:VisionSystem_{line_id}")
        rm = await vs.get_child(f"{idx}:RecipeManagement")
        refused = ""
        try:
            await rm.call_method(f"{idx}:SelectRecipe", ua.Variant(recipe, ua.VariantType.String))
        except BadInvalidArgument as exc:
            refused = type(exc).__name__
        return refused, str(await (await rm.get_child(f"{idx}:ActiveRecipe")).read_value())


async def _last_model(endpoint: str, line_id: str) -> Any:
    async with Client(endpoint) as client:
        idx = await client.get_namespace_index(NAMESPACE)
        vs = await client.nodes.objects.get_child(f"{idx}:VisionSystem_{line_id}")
        last = await (await vs.get_child(f"{idx}:ResultManagement")).get_child(f"{idx}:LastResult")
        return await (await last.get_child(f"{idx}:ModelVersion")).read_value()


def test_select_recipe_switches_the_model_the_worker_calls(
    start_line: StartLine,
    line: LineKit,  # noqa: F811
    line_id: str,
) -> None:
    line.deploy(version="1")  # cls:1 and seg:1 behind defect-cls / defect-seg
    line.deploy(version="2", seg=False, alias=False, knob=0.5)  # cls:2 loaded, no alias yet
    agent = line.agent_client()
    agent.set_alias("bolt-defect-cls", "cls", "1")
    agent.set_alias("nut-defect-cls", "cls", "2")
    endpoint = f"opc.tcp://{LOOPBACK}:{free_port()}/edgeinspect/"
    io = start_line(
        opcua_server=True, opcua_endpoint=endpoint, opcua_allow_anonymous=True, recipes="bolt,nut,washer",
        recipe_targets="defect-cls", agent_addr=line.agent.addr,
    )  # fmt: skip
    with line.worker():
        line.send("before", part_id="A-1")
        first = line.wait_results(1)[-1]
        assert _cls_version(first) == "1"
        assert asyncio.run(_select(endpoint, line_id, "nut")) == ("", "nut")
        assert {a.alias: a.version for a in agent.list_aliases()}["defect-cls"] == "2"
        line.send("after", part_id="A-2")
        second = line.wait_results(2)[-1]
        assert (second.frame_id, _cls_version(second)) == ("after", "2")
        assert wait_until(lambda: asyncio.run(_last_model(endpoint, line_id)) == "cls@2+seg@1", timeout=20)
        # a recipe without a model for the line's alias is refused whole; nothing moves
        assert asyncio.run(_select(endpoint, line_id, "washer")) == ("BadInvalidArgument", "nut")
        assert {a.alias: a.version for a in agent.list_aliases()}["defect-cls"] == "2"
    assert io.service.status()["recipe"] == "nut"
