"""The one interface every output implements, whatever carries it (Modbus, OPC UA, a GPIO line).

An output does two things, each a short blocking call made from its own ``Actuator`` thread:
``publish`` tells the PLC about a judged part (registers, tags, variables, an event) as soon as the
verdict is known; ``set_reject`` drives the reject signal at the pulse's edges. Either raises
``OutputUnavailable`` when the PLC cannot be reached; the actuator then reconnects and retries until
the part's window has passed, so a PLC that comes back in time loses nothing.
"""

from __future__ import annotations

from typing import Protocol

from edgeinspect.core.errors import EdgeInspectError

from edgeinspect_line_io.verdicts import PartResult


class LineInfo:
    """Live facts of the line that outputs show beside each part; the service keeps them current."""

    def __init__(self) -> None:
        self.state = 0  # a VisionState number
        self.missed_rejects = 0
        self.recipe = ""  # the active recipe (SelectRecipe, or what the agent's aliases say at start)


class OutputUnavailable(EdgeInspectError):
    """The PLC (or device) of an output did not take a write; the actuator retries it."""


class OutputRefused(EdgeInspectError):
    """The PLC answered but refused the write (an address it does not have): retrying cannot help."""


class Output(Protocol):
    """A verdict sink and reject signal of one line."""

    @property
    def name(self) -> str:
        """The output's kind and address, for logs, metrics and the status (no passwords)."""
        ...

    def open(self) -> None:
        """Connect or start serving; raises ``OutputUnavailable`` when the PLC is not there yet."""
        ...

    def connected(self) -> bool:
        """True while the last call reached the PLC (a server output: while it serves)."""
        ...

    def publish(self, part: PartResult) -> None:
        """Make the part's verdict readable by the PLC now."""
        ...

    def set_reject(self, on: bool, part: PartResult) -> None:
        """Raise (``on``) or drop the reject signal for ``part``."""
        ...

    def close(self) -> None:
        """Disconnect or stop serving; safe to call twice."""
        ...
