"""The drift monitor's error type (a bad baseline, no field data, an unreachable alert target)."""

from __future__ import annotations

from edgeinspect.core.errors import EdgeInspectError


class MonitorError(EdgeInspectError):
    """The monitor cannot compare or report: what is missing or wrong, and what to pass instead."""
