"""The same deployment as an AWS IoT Jobs ``CreateJob`` request: the fleet service is replaceable.

Devices speak AWS IoT Jobs' MQTT API (docs/jobs-protocol.md), so a fleet on AWS IoT Core needs no
``edgeinspect fleet serve`` at all: AWS IoT Jobs keeps the executions and answers the devices. What
stays ours is the job document (``deploy_document``); this module turns a job as our store would hold
it (document, targets, rollout) into the keyword arguments of the control plane's ``CreateJob``
(boto3: ``boto3.client("iot").create_job(**request)``), so the same approved version can be deployed
either way. Nothing here talks to AWS: the caller sends the request with its own credentials.

How our rollout maps (docs/fleet.md, "Replacing the fleet service by AWS IoT Jobs"):

- targets: ``group:NAME`` / a bare name -> the thing group's ARN, ``thing:NAME`` -> the thing's ARN;
- waves -> ``jobExecutionsRolloutConfig.exponentialRate``: AWS rolls out by rate, not by waves that wait
  for each other, so the first wave's size becomes the base rate per minute and the growth between
  waves the increment factor, raised each time that many things succeeded;
- the abort threshold -> ``abortConfig``: cancel when more than that percentage of the executions
  failed (``ALL``: failed, rejected, timed out), judged once the first wave's worth of things ran.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from edgeinspect_cloud.fleet.errors import FleetError
from edgeinspect_cloud.fleet.records import Rollout, check_group, check_job_id, check_thing

MAX_DOCUMENT_BYTES = 32 * 1024
"""AWS IoT Jobs' limit for a job document passed inline (``document``)."""
MAX_RATE_PER_MINUTE = 1000
MAX_INCREMENT_FACTOR = 5.0


def target_arn(target: str, region: str, account: str) -> str:
    """``group:line-3`` / ``line-3`` -> the thing group's ARN; ``thing:press-7`` -> the thing's ARN."""
    kind, _, name = (
        target.partition(":") if target.startswith(("group:", "thing:")) else ("group", "", target)
    )
    if kind == "thing":
        return f"arn:aws:iot:{region}:{account}:thing/{check_thing(name)}"
    return f"arn:aws:iot:{region}:{account}:thinggroup/{check_group(name)}"


def rollout_config(rollout: Rollout, things: int) -> dict[str, Any]:
    """``jobExecutionsRolloutConfig`` and ``abortConfig`` for ``things`` targets (module docstring)."""
    sizes = _wave_sizes(rollout, things)
    config: dict[str, Any] = {}
    if len(sizes) > 1:
        growth = max(sizes[i + 1] / sizes[i] for i in range(len(sizes) - 1))
        config["jobExecutionsRolloutConfig"] = {
            "exponentialRate": {
                "baseRatePerMinute": max(1, min(MAX_RATE_PER_MINUTE, sizes[0])),
                "incrementFactor": round(min(MAX_INCREMENT_FACTOR, max(1.1, growth)), 1),
                "rateIncreaseCriteria": {"numberOfSucceededThings": max(1, sizes[0])},
            }
        }
    if rollout.abort_threshold_pct is not None:
        config["abortConfig"] = {
            "criteriaList": [
                {
                    "failureType": "ALL",
                    "action": "CANCEL",
                    "thresholdPercentage": float(rollout.abort_threshold_pct),
                    "minNumberOfExecutedThings": max(1, sizes[0]),
                }
            ]
        }
    return config


def create_job_request(
    job_id: str,
    document: Mapping[str, Any],
    targets: Sequence[str],
    rollout: Rollout,
    *,
    things: int,
    region: str,
    account: str,
    description: str = "",
    in_progress_timeout_min: int | None = None,
) -> dict[str, Any]:
    """The ``CreateJob`` request for the deployment our CLI would create (``things``: how many it reaches).

    ``in_progress_timeout_min`` sets ``timeoutConfig``: AWS marks an execution ``TIMED_OUT`` when the
    device does not finish in time (our service has no timeout: a device that never reports stays
    ``IN_PROGRESS``). Raises ``FleetError`` for an invalid job id or target, or a document over 32 KB.
    """
    check_job_id(job_id)
    if not targets:
        raise FleetError("a job needs at least one target", hint="pass a thing group or a thing")
    body = json.dumps(dict(document), separators=(",", ":"))
    if len(body.encode()) > MAX_DOCUMENT_BYTES:
        raise FleetError(
            f"the job document is {len(body.encode())} bytes; AWS IoT Jobs takes at most 32 KB inline",
            hint="store it in S3 and pass documentSource instead",
        )
    request: dict[str, Any] = {
        "jobId": job_id,
        "targets": [target_arn(t, region, account) for t in targets],
        "document": body,
        "targetSelection": "SNAPSHOT",
        **rollout_config(rollout, things),
    }
    if description:
        request["description"] = description[:2028]
    if in_progress_timeout_min is not None:
        request["timeoutConfig"] = {"inProgressTimeoutInMinutes": int(in_progress_timeout_min)}
    return request


def _wave_sizes(rollout: Rollout, things: int) -> list[int]:
    if things < 1:
        return [0]
    if rollout.wave_pct:
        ends = [min(things, math.ceil(things * pct / 100 - 1e-9)) for pct in rollout.wave_pct]
        sizes = [b - a for a, b in zip([0, *ends], ends, strict=False)]
    else:
        size, extra = divmod(things, min(rollout.waves, things))
        sizes = [size + (1 if i < extra else 0) for i in range(min(rollout.waves, things))]
    return [s for s in sizes if s > 0]
