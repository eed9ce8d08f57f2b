"""Errors of the fleet jobs service and its CLI, rooted in the core hierarchy so the CLI prints them."""

from __future__ import annotations

from edgeinspect.core.errors import EdgeInspectError


class FleetError(EdgeInspectError):
    """A fleet operation cannot be done: unknown job or target, a bad rollout option, a refused deploy."""


class FleetDatabaseError(FleetError):
    """The jobs database is unreachable, refused a statement, or holds a schema we do not understand."""


class JobNotFoundError(FleetError):
    """No job with that id exists."""


class JobsRequestRejected(FleetError):
    """A device's jobs request is refused; ``code`` is AWS's ErrorResponse code (``VersionMismatch``...).

    ``execution_state`` (``status``, ``statusDetails``, ``versionNumber``) is sent back with the
    rejection when the execution exists, so the device can resynchronise (AWS does the same).
    """

    def __init__(self, code: str, message: str, execution_state: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.execution_state = execution_state
