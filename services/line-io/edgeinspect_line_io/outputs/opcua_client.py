"""OPC UA client output: write the verdict to a PLC's tags and pulse its reject tag.

Tags are node ids as the PLC's engineering tool shows them (``ns=3;s="DB_Vision"."Reject"``). Any
failed call drops the session; the actuator reconnects and retries within the part's window.
"""

from __future__ import annotations

from typing import Any

from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.uaerrors import UaError

from edgeinspect_line_io.aio import LoopThread
from edgeinspect_line_io.outputs.base import OutputUnavailable
from edgeinspect_line_io.verdicts import PartResult

ERRORS = (OSError, TimeoutError, UaError, ConnectionError)


async def connect(url: str, user: str, password: str, timeout_s: float) -> Client:
    """A connected session (user/password when given); ``OSError``/``UaError`` when the PLC is away."""
    client = Client(url, timeout=timeout_s)
    if user:
        client.set_user(user)
        client.set_password(password)
    await client.connect()
    return client


class OpcUaClientOutput:
    """Writes ``good_node`` (Boolean), ``part_node`` (String) per part and pulses ``reject_node``."""

    def __init__(
        self,
        url: str,
        *,
        aio: LoopThread,
        user: str = "",
        password: str = "",
        reject_node: str = "",
        good_node: str = "",
        part_node: str = "",
        timeout_s: float = 2.0,
    ) -> None:
        self._url = url
        self._aio = aio
        self._user, self._password = user, password
        self._ids = {"reject": reject_node, "good": good_node, "part": part_node}
        self._timeout = timeout_s
        self._client: Client | None = None

    @property
    def name(self) -> str:
        return f"opcua-client:{self._url.split('@')[-1]}"

    def open(self) -> None:
        self.close()
        try:
            self._client = self._aio.run(
                connect(self._url, self._user, self._password, self._timeout), timeout=self._timeout + 1
            )
        except ERRORS as exc:
            raise OutputUnavailable(
                f"no OPC UA session with {self.name}: {exc}",
                hint="check EI_OPCUA_PLC_URL, EI_OPCUA_PLC_USER and that the PLC is on",
            ) from exc

    def connected(self) -> bool:
        return self._client is not None

    def publish(self, part: PartResult) -> None:
        writes: list[tuple[str, Any, ua.VariantType]] = []
        if self._ids["good"]:
            writes.append((self._ids["good"], part.is_good, ua.VariantType.Boolean))
        if self._ids["part"]:
            writes.append((self._ids["part"], part.part_id, ua.VariantType.String))
        if writes:
            self._write(writes)

    def set_reject(self, on: bool, part: PartResult) -> None:
        if self._ids["reject"]:
            self._write([(self._ids["reject"], on, ua.VariantType.Boolean)])

    def _write(self, writes: list[tuple[str, Any, ua.VariantType]]) -> None:
        if self._client is None:
            self.open()
        client = self._client
        assert client is not None

        async def write_all() -> None:
            for node_id, value, kind in writes:
                await client.get_node(node_id).write_value(ua.DataValue(ua.Variant(value, kind)))

        try:
            self._aio.run(write_all(), timeout=self._timeout)
        except ERRORS as exc:
            self.close()
            raise OutputUnavailable(f"write to {self.name} failed: {exc}") from exc

    def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            try:
                self._aio.run(client.disconnect(), timeout=2.0)
            except (*ERRORS, RuntimeError):
                pass
