"""Stream records -> API shapes: one place decides what the page sees of a result or an event."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from edgeinspect.core.messages import Event, Result

from edgeinspect_ui.api.schemas import ENTRY_ID_PATTERN, EventOut, JobOut, PredictionOut, ResultOut

SHA_PREFIX = 12


def entry_ms(entry_id: str) -> int:
    """The millisecond part of a stream entry id (the time Redis stored it)."""
    return int(entry_id.split("-", 1)[0])


def frame_url(line: str, frame_id: str, result: Result, result_id: str) -> str:
    """Link to the frame: its entry id in ei:frames when the worker stamped it (one read), and a time
    window telling the server where to look otherwise.

    The frame was stored between its capture (``ts_ns`` minus ``e2e_ms`` covers both conventions for
    a result's ``ts_ns``) and the moment its result was stored; the window bounds the scan for
    results without ``frame_entry`` (from workers older than it).
    """
    ts_ms = result.ts_ns // 1_000_000
    after = max(0, min(ts_ms, int(ts_ms - result.e2e_ms)) - 50)
    before = entry_ms(result_id) + 50
    exact = f"&entry={result.frame_entry}" if re.match(ENTRY_ID_PATTERN, result.frame_entry) else ""
    return f"/api/frames/{quote(line)}/{quote(frame_id, safe='')}.png?after={after}&before={before}{exact}"


def result_out(line: str, result_id: str, result: Result) -> ResultOut:
    """The page's view of a result (no bytes: the frame and mask are links)."""
    return ResultOut(
        id=result_id,
        line=line,
        frame_id=result.frame_id,
        ts_ns=result.ts_ns,
        verdict=result.verdict,
        score=result.score,
        e2e_ms=result.e2e_ms,
        error=result.error,
        source=result.source,
        part_id=result.part_id,
        predictions=[
            PredictionOut(
                model=p.model,
                version=p.version,
                task=p.task,
                role=p.role,
                label=p.label,
                score=p.score,
                threshold=p.threshold,
                latency_ms=p.latency_ms,
                defect_area_px=p.defect_area_px,
                bbox=list(p.bbox) if p.bbox is not None else None,
            )
            for p in result.predictions
        ],
        frame_url=frame_url(line, result.frame_id, result, result_id),
        mask_url=f"/api/masks/{quote(line)}/{result_id}.png" if result.mask else None,
    )


def event_out(event_id: str, event: Event) -> EventOut:
    return EventOut(
        id=event_id,
        type=event.type,
        ts_ns=event.ts_ns,
        service=event.service,
        line=event.line,
        level=event.level,
        detail=event.detail,
    )


def job_out(event: Event) -> JobOut | None:
    """A ``job_status`` event as a job row; ``None`` when it names no job."""
    detail: dict[str, Any] = event.detail
    job_id = detail.get("job_id")
    if not job_id:
        return None
    return JobOut(
        job_id=str(job_id),
        status=str(detail.get("status", "")),
        model=str(detail.get("model", "") or ""),
        version=str(detail.get("version", "") or ""),
        reason=str(detail.get("reason", "") or ""),
        ts_ns=event.ts_ns,
    )
