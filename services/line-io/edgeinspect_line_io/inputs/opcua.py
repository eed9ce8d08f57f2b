"""OPC UA trigger input: a subscription to a PLC tag; each change is exactly one trigger.

A Boolean tag triggers on its rising edge; any other tag triggers on every new value, and the value
is the part id (unless ``EI_OPCUA_PLC_TRIGGER_PART_NODE`` names a tag to read it from). The first
value after subscribing is the baseline, never a trigger, so a reconnect does not fire twice. The
session is checked every second and re-opened (with a new subscription) when the PLC comes back.
"""

from __future__ import annotations

import asyncio
from typing import Any

from asyncua.client.client import Client
from asyncua.common.node import Node
from edgeinspect.core.observability import get_logger

from edgeinspect_line_io.aio import LoopThread
from edgeinspect_line_io.inputs.base import Fire
from edgeinspect_line_io.outputs.opcua_client import ERRORS, connect

log = get_logger(__name__)


class _Handler:
    """asyncua's subscription handler: turns data changes into triggers."""

    def __init__(self, owner: OpcUaInput, client: Client) -> None:
        self._owner = owner
        self._client = client
        self._last: Any = None
        self._seen = False

    def datachange_notification(self, node: Node, value: Any, data: Any) -> None:
        last, self._last = self._last, value
        if not self._seen:
            self._seen = True
            return  # the value at subscription time: the baseline
        if isinstance(value, bool):
            if value and not last:
                self._owner.fired(self._client, "")
        elif value != last:
            self._owner.fired(self._client, str(value))


class OpcUaInput:
    """Watches ``trigger_node`` on the PLC at ``url``."""

    def __init__(
        self,
        url: str,
        *,
        aio: LoopThread,
        trigger_node: str,
        part_node: str = "",
        user: str = "",
        password: str = "",
        publish_ms: float = 10.0,
    ) -> None:
        self._url = url
        self._aio = aio
        self._trigger = trigger_node
        self._part = part_node
        self._user, self._password = user, password
        self._publish_ms = publish_ms
        self._fire: Fire | None = None
        self._task: Any = None
        self._connected = False

    @property
    def name(self) -> str:
        return f"opcua:{self._url.split('@')[-1]}/{self._trigger}"

    def start(self, fire: Fire) -> None:
        self._fire = fire
        self._task = self._aio.submit(self._supervise())

    def connected(self) -> bool:
        return self._connected

    def close(self) -> None:
        if self._task is not None:
            self._aio.loop.call_soon_threadsafe(self._task.cancel)
            self._task = None

    def fired(self, client: Client, part_id: str) -> None:
        """On the loop: read the part id tag if there is one, then trigger off the loop."""
        asyncio.get_running_loop().create_task(self._fire_async(client, part_id))

    async def _fire_async(self, client: Client, part_id: str) -> None:
        if self._part:
            try:
                part_id = str(await client.get_node(self._part).read_value())
            except ERRORS as exc:
                log.warning("part_id_unread", input=self.name, error=str(exc))
        assert self._fire is not None
        await asyncio.get_running_loop().run_in_executor(None, self._fire, part_id)

    async def _supervise(self) -> None:
        while True:
            client: Client | None = None
            try:
                client = await connect(self._url, self._user, self._password, 2.0)
                subscription = await client.create_subscription(self._publish_ms, _Handler(self, client))
                await subscription.subscribe_data_change(client.get_node(self._trigger))
                self._connected = True
                while True:
                    await asyncio.sleep(1.0)
                    await client.check_connection()
            except asyncio.CancelledError:
                break
            except ERRORS as exc:
                log.warning("opcua_input_lost", input=self.name, error=str(exc))
            finally:
                self._connected = False
                if client is not None:
                    try:
                        await client.disconnect()
                    except (*ERRORS, RuntimeError):
                        pass
            await asyncio.sleep(0.5)
