"""From an approved registry version to a deployment job document (docs/jobs-protocol.md).

Only ``Approved`` versions are deployed: approval is the human gate between "evaluated in the cloud"
and "running on the line", so a pending or rejected version is refused with the command that would
approve it. The document carries the package's URL, sha256 and size from the registry record, so the
device checks what it downloads against what was approved.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Literal

from edgeinspect.core.ids import IdentifierError, check_model_name, check_model_version
from edgeinspect.core.thresholds import FIELDS

from edgeinspect_cloud.fleet.errors import FleetError
from edgeinspect_cloud.registry import APPROVED, ModelRegistry, ModelVersion

Role = Literal["primary", "shadow"]
DEVICE_DEFAULT_ALIASES = {"classification": "defect-cls", "segmentation": "defect-seg"}
"""The alias a device moves when the document names none (docs/jobs-protocol.md, ``alias``)."""


def deploy_document(
    mv: ModelVersion, role: Role = "primary", *, alias: str | None = None, rollback_on_failure: bool = True
) -> dict[str, Any]:
    """The ``deploy_model`` job document for a registry version."""
    package = mv.registration.package
    document: dict[str, Any] = {
        "operation": "deploy_model",
        "model": {
            "name": mv.group,
            "version": str(mv.version),
            "url": package.url,
            "sha256": package.sha256,
            "size": package.size,
        },
        "role": role,
        "rollback_on_failure": rollback_on_failure,
    }
    if alias:
        document["alias"] = alias
    return document


def approved_version(registry: ModelRegistry, model: str, version: int) -> ModelVersion:
    """The registry's version, refused with ``FleetError`` unless its current status is ``Approved``."""
    mv = registry.get(model, version)
    if mv.status != APPROVED:
        raise FleetError(
            f"{model} version {version} is {mv.status}, not {APPROVED}: it cannot be deployed",
            hint=f"approve it first: edgeinspect registry approve {model} {version} --comment '...'",
        )
    return mv


def threshold_document(
    model: str,
    version: str | None,
    changes: dict[str, float | None],
    *,
    requested_by: str,
    reason: str = "",
) -> dict[str, Any]:
    """The ``set_threshold`` job document: a line's thresholds over the package's, no new package.

    ``changes`` maps ``image``/``pixel`` to a value in [0, 1] (already checked) or ``None`` (back to the
    manifest's); at least one must be given.
    """
    try:
        check_model_name(model)
        if version is not None:
            check_model_version(version)
    except IdentifierError as exc:
        raise FleetError(exc.message, hint=exc.hint) from exc
    unknown = sorted(set(changes) - set(FIELDS))
    if unknown or not changes:
        raise FleetError(
            f"nothing to set: give --image and/or --pixel, or --clear (got {unknown or 'none'})",
            hint="e.g. edgeinspect set-threshold --model defect-cls --image 0.3 --target line-3",
        )
    spec: dict[str, str] = {"name": model} if version is None else {"name": model, "version": version}
    return {
        "operation": "set_threshold",
        "model": spec,
        "thresholds": dict(changes),
        "requested_by": requested_by,
        "reason": reason,
    }


def new_job_id(model: str, version: int | str, now: float | None = None, *, kind: str = "deploy") -> str:
    """``{kind}-{model}-{version}-{utc time}-{random}``, within AWS's 64 characters of [a-zA-Z0-9_-]."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(time.time() if now is None else now))
    safe = "".join(c if c.isalnum() or c in "_-" else "-" for c in model)[:24]
    tag = "".join(c if c.isalnum() or c in "_-" else "-" for c in str(version))[:8]
    return f"{kind}-{safe}-{tag}-{stamp}-{secrets.token_hex(3)}"
