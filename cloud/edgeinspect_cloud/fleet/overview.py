"""What the fleet page shows, read from the store in a few grouped queries (never one query per device).

``fleet_overview(store)`` returns plain JSON: device and group counts, how many devices serve each
model version (from the retained state documents), every group with its versions, the rollouts
(in progress first) with per-wave progress, and the devices themselves (optionally one group's, at
most ``limit``). A thousand devices cost one scan of ``fleet_things`` and one grouped count of the
executions of the jobs shown.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from edgeinspect_cloud.fleet.fleetdb import FleetStore
from edgeinspect_cloud.fleet.records import JOB_IN_PROGRESS, Device, Job
from edgeinspect_cloud.fleet.views import model_text

RECENT_JOBS = 5
ONLINE_WITHIN_S = 15 * 60
WAVE_STATUSES = ("SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT", "IN_PROGRESS", "QUEUED", "SCHEDULED",
                 "CANCELED", "REMOVED")  # fmt: skip


def serving(device: Device) -> list[str]:
    """``name:version`` of each version the device serves as a primary (what its aliases point at)."""
    aliases = (device.state or {}).get("aliases")
    if not isinstance(aliases, dict):
        return []
    out = []
    for target in aliases.values():
        if isinstance(target, dict) and target.get("name") and target.get("version"):
            out.append(f"{target['name']}:{target['version']}")
    return sorted(set(out))


def _device_json(device: Device, now: float) -> dict[str, Any]:
    state = device.state or {}
    return {
        "thing": device.thing,
        "groups": device.groups,
        "state": state.get("state", "unknown"),
        "serving": serving(device),
        "loaded": device.loaded_versions(),
        "lastJob": device.last_job(),
        "lastSeen": device.last_seen,
        "online": device.last_seen is not None and now - device.last_seen < ONLINE_WITHIN_S,
    }


def _rollout_json(job: Job, waves: dict[int, Counter[str]]) -> dict[str, Any]:
    rows = []
    for wave in sorted(waves):
        counts = waves[wave]
        rows.append({"wave": wave + 1, "size": sum(counts.values()),
                     **{status: counts.get(status, 0) for status in WAVE_STATUSES}})  # fmt: skip
    return {
        "jobId": job.job_id,
        "model": model_text(job),
        "status": job.status,
        "releasedWave": job.released_wave + 1,
        "waves": rows,
        "abortThresholdPercentage": job.rollout.abort_threshold_pct,
        "reason": job.reason,
        "createdAt": job.created_at,
        "completedAt": job.completed_at,
    }


def _wave_counts(store: FleetStore, job_ids: list[str]) -> dict[str, dict[int, Counter[str]]]:
    out: dict[str, dict[int, Counter[str]]] = {job_id: {} for job_id in job_ids}
    if not job_ids:
        return out
    marks = ", ".join("?" for _ in job_ids)
    with store.db.transaction() as tx:
        rows = tx.query(
            f"SELECT job_id, wave, status, COUNT(*) AS n FROM fleet_executions WHERE job_id IN ({marks})"
            " GROUP BY job_id, wave, status",
            job_ids,
        )
    for row in rows:
        out[row["job_id"]].setdefault(int(row["wave"]), Counter())[row["status"]] += int(row["n"])
    return out


def fleet_overview(store: FleetStore, group: str | None = None, limit: int = 500) -> dict[str, Any]:
    """The page's JSON (see the module docstring)."""
    now = time.time()
    devices = store.devices.devices()
    versions: Counter[str] = Counter()
    groups: dict[str, Counter[str]] = {}
    sizes: Counter[str] = Counter()
    for device in devices:
        served = serving(device) or ["none"]
        versions.update(served)
        for name in device.groups:
            sizes[name] += 1
            groups.setdefault(name, Counter()).update(served)
    jobs = store.jobs.list_jobs(JOB_IN_PROGRESS, limit=20)
    jobs += [
        job for job in store.jobs.list_jobs(limit=RECENT_JOBS + len(jobs)) if job.status != JOB_IN_PROGRESS
    ][:RECENT_JOBS]
    waves = _wave_counts(store, [job.job_id for job in jobs])
    shown = [d for d in devices if group is None or group in d.groups]
    return {
        "generatedAt": now,
        "counts": {
            "devices": len(devices),
            "online": sum(
                1 for d in devices if d.last_seen is not None and now - d.last_seen < ONLINE_WITHIN_S
            ),
            "groups": len(groups),
            "rolloutsInProgress": sum(1 for job in jobs if job.status == JOB_IN_PROGRESS),
        },
        "versions": dict(versions.most_common()),
        "groups": [
            {"name": name, "devices": sizes[name], "versions": dict(groups[name].most_common())}
            for name in sorted(groups)
        ],
        "rollouts": [_rollout_json(job, waves[job.job_id]) for job in jobs],
        "devices": [_device_json(d, now) for d in shown[:limit]],
        "devicesShown": min(len(shown), limit),
        "devicesMatching": len(shown),
    }
