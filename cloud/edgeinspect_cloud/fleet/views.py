"""How the fleet CLI prints jobs, executions and devices: aligned tables for people, JSON for scripts."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from edgeinspect_cloud.fleet.records import Device, Execution, Job


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces, trailing spaces trimmed."""
    allrows = [list(header), *[list(row) for row in rows]]
    widths = [max(len(row[i]) for row in allrows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in allrows
    )


def when(ts: float | None) -> str:
    """A UTC time as ``2026-01-01 12:00:00``; ``-`` for never."""
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


def ago(ts: float | None, now: float | None = None) -> str:
    """How long ago, roughly: ``12s``, ``5m``, ``3h``, ``2d``; ``never``."""
    if ts is None:
        return "never"
    seconds = max(0.0, (time.time() if now is None else now) - ts)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"


def model_text(job: Job) -> str:
    """``defect-cls:7 (shadow)`` for a deploy job, ``threshold defect-cls:* image=0.3`` for an
    override, the operation otherwise."""
    doc = job.document
    model = doc.get("model") if isinstance(doc.get("model"), dict) else None
    if model is None:
        return str(doc.get("operation") or doc.get("type") or "-")
    role = doc.get("role")
    text = f"{model.get('name')}:{model.get('version')}"
    if doc.get("operation") == "remove_model":
        return f"remove {text}"
    if doc.get("operation") == "set_threshold":
        raw = doc.get("thresholds")
        values: dict[str, Any] = raw if isinstance(raw, dict) else {}
        shown = " ".join(f"{k}={'manifest' if v is None else v}" for k, v in sorted(values.items()))
        return f"threshold {model.get('name')}:{model.get('version') or '*'} {shown}".rstrip()
    return f"{text} ({role})" if role and role != "primary" else text


def progress(executions: Sequence[Execution]) -> str:
    """``SUCCEEDED 2, FAILED 1, QUEUED 3`` in a fixed order."""
    counts = Counter(e.status for e in executions)
    order = ("SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT", "IN_PROGRESS", "QUEUED", "SCHEDULED", "CANCELED",
             "REMOVED")  # fmt: skip
    return ", ".join(f"{status} {counts[status]}" for status in order if counts[status]) or "-"


def jobs_table(jobs: Sequence[tuple[Job, Sequence[Execution]]]) -> str:
    rows = [
        (job.job_id, job.status, model_text(job), ",".join(job.targets), _waves(job), progress(execs),
         when(job.created_at))
        for job, execs in jobs
    ]  # fmt: skip
    return table(("JOB", "STATUS", "MODEL", "TARGETS", "WAVE", "EXECUTIONS", "CREATED (UTC)"), rows)


def _waves(job: Job) -> str:
    return f"{job.released_wave + 1}/{job.rollout.waves}"


def job_details(job: Job, executions: Sequence[Execution]) -> str:
    """The job, its rollout, why it stopped, then one line per execution."""
    threshold = job.rollout.abort_threshold_pct
    lines = [
        f"job {job.job_id}: {job.status}",
        f"  model         {model_text(job)}",
        f"  targets       {', '.join(job.targets)}",
        f"  rollout       wave {_waves(job)}"
        + (
            f", abort above {threshold:g}% failed per wave"
            if threshold is not None
            else ", no abort threshold"
        ),
        f"  created       {when(job.created_at)} UTC" + (f" by {job.created_by}" if job.created_by else ""),
        f"  updated       {when(job.updated_at)} UTC",
    ]
    if job.completed_at is not None:
        lines.append(f"  finished      {when(job.completed_at)} UTC")
    if job.reason:
        lines.append(f"  reason        {job.reason}")
    if job.description:
        lines.append(f"  description   {job.description}")
    lines.append("")
    rows = [
        (e.thing, str(e.wave + 1), e.status, str(e.version_number), when(e.updated_at), _details(e))
        for e in executions
    ]
    lines.append(table(("THING", "WAVE", "STATUS", "VERSION", "UPDATED (UTC)", "DETAILS"), rows))
    return "\n".join(lines)


def _details(execution: Execution) -> str:
    details = execution.status_details
    text = " ".join(f"{k}={v}" for k, v in sorted(details.items()))
    return text if len(text) <= 100 else text[:97] + "..."


def devices_table(devices: Sequence[Device], now: float | None = None) -> str:
    rows = [
        (d.thing, ",".join(d.groups) or "-", ago(d.last_seen, now), str((d.state or {}).get("state", "-")),
         d.last_job(), ", ".join(d.loaded_versions()) or "-")
        for d in devices
    ]  # fmt: skip
    return table(("THING", "GROUPS", "LAST SEEN", "STATE", "LAST JOB", "MODELS"), rows)
