"""The one interface every trigger input implements: notice the PLC's "part here" and say so once.

An input runs its own thread or subscription and calls ``fire(part_id)`` exactly once per trigger
(a coil's rising edge, a register's new value, a tag change); the service turns that into exactly one
camera frame tagged with the part id.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

Fire = Callable[[str], None]
"""Called with the PLC's part id (empty when the PLC sent none) once per trigger."""


class Input(Protocol):
    """A trigger source of one line."""

    @property
    def name(self) -> str: ...

    def start(self, fire: Fire) -> None:
        """Begin watching; reconnects on its own while running."""
        ...

    def connected(self) -> bool: ...

    def close(self) -> None: ...
