"""``set_threshold`` jobs: a line overrides a model's thresholds on this device, no new package needed.

The override is device state like an alias: kept in state.json (with who asked, when, why and the job),
audited as a ``threshold_set`` event with the old and new values, reported in the retained device state
so the cloud sees it, and handed to the inference workers as the JSON table in Redis
``ei:thresholds`` (``edgeinspect.core.thresholds``), which they apply to the next frames. The table is
written again between jobs, so a Redis that restarted empty has it back within seconds.

Applying one never touches the agent or the model files, so it cannot break what the device serves;
values were already checked (0..1, finite) when the job document was parsed.
"""

from __future__ import annotations

import time
from typing import Any

from edgeinspect.core.observability import get_logger
from edgeinspect.core.thresholds import Override, OverrideTable, override_key

from edgeinspect_model_manager.device import Device
from edgeinspect_model_manager.jobdoc import SetThreshold
from edgeinspect_model_manager.outcome import Outcome

log = get_logger(__name__)
MANIFEST = "manifest"
"""How a value that is not overridden reads in statusDetails (the package's own threshold applies)."""


def apply_threshold(device: Device, job_id: str, op: SetThreshold) -> Outcome:
    """Record the override (or its removal), tell the workers and the audit trail; always succeeds
    unless state.json cannot be written, in which case nothing changed."""
    key = override_key(op.name, op.version or "")
    now = time.time()
    with device.change() as state:
        old = state.thresholds.get(key)
        before = old.values() if old is not None else {"image": None, "pixel": None}
        after = {**before, **op.changes}
        entry = Override(
            **after,
            source="job",
            set_by=op.requested_by,
            set_at=round(now, 3),
            job_id=job_id,
            reason=op.reason,
        )
        if entry.empty:
            state.thresholds.pop(key, None)
        else:
            state.thresholds[key] = entry
    published = publish_thresholds(device)
    audit: dict[str, Any] = {
        "key": key,
        "model": op.name,
        "version": op.version or "",
        "old_image": before["image"],
        "new_image": after["image"],
        "old_pixel": before["pixel"],
        "new_pixel": after["pixel"],
        "set_by": op.requested_by,
        "set_at": round(now, 3),
        "job_id": job_id,
        "reason": op.reason,
    }
    device.reporter.event("threshold_set", **audit)
    log.info("threshold_set", published=published, **audit)
    return Outcome.succeeded(
        key=key,
        image=_shown(after["image"]),
        pixel=_shown(after["pixel"]),
        previous_image=_shown(before["image"]),
        previous_pixel=_shown(before["pixel"]),
    )


def publish_thresholds(device: Device) -> bool:
    """Write the device's override table to Redis for the workers (cheap; called between jobs too)."""
    with device.lock:
        table = OverrideTable(device.state.thresholds)
    return device.reporter.thresholds(table.to_bytes())


def _shown(value: float | None) -> str:
    return MANIFEST if value is None else f"{value:g}"
