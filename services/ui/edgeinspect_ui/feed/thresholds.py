"""The thresholds each line's verdicts use, for the model table: the package's, or the line's override.

The inference worker of a line writes what it applies to ``ei:thresholds:{line}`` (its own
``EI_THRESHOLD_OVERRIDES`` and the model manager's ``set_threshold`` jobs); a line whose worker has
not written yet shows the device's job overrides (``ei:thresholds``), which it will apply. Nothing
here can fail the table: an unreadable or missing entry reads as "no override" (and is logged).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import redis
from edgeinspect.core import names
from edgeinspect.core.errors import EdgeInspectError
from edgeinspect.core.observability import get_logger
from edgeinspect.core.thresholds import OverrideTable

log = get_logger(__name__)


def line_overrides(client: redis.Redis, lines: Iterable[str]) -> dict[str, OverrideTable]:
    """line -> the override table its verdicts use (an empty table when none)."""
    try:
        device = _parse(client.get(names.threshold_overrides_key()), names.threshold_overrides_key())
        out: dict[str, OverrideTable] = {}
        for line in lines:
            key = names.line_thresholds_key(line)
            raw = client.get(key)
            out[line] = device if raw is None else _parse(raw, key, applied=True)
        return out
    except (redis.RedisError, OSError) as exc:
        log.warning("thresholds_unread", error=str(exc))
        return {}


def _parse(raw: bytes | str | None, what: str, *, applied: bool = False) -> OverrideTable:
    """The model manager's table, or (``applied``) the ``overrides`` of a worker's record."""
    if raw is None:
        return OverrideTable()
    try:
        if not applied:
            return OverrideTable.from_json(raw, source="job", what=what)
        body = json.loads(raw)
        return OverrideTable.from_json(body.get("overrides", {}), source=None, what=what)
    except (EdgeInspectError, ValueError, AttributeError) as exc:
        log.warning("thresholds_unreadable", key=what, error=str(exc)[:300])
        return OverrideTable()
