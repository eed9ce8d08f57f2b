"""Every request and response shape of the UI's API, in one place (the OpenAPI schema is built from it).

The page's JavaScript reads exactly these objects, from the JSON endpoints and from the SSE stream.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

LINE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
FRAME_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
ENTRY_ID_PATTERN = r"^[0-9]{1,20}-[0-9]{1,20}$"


class ErrorOut(BaseModel):
    """What went wrong and what to do about it."""

    error: str
    hint: str = ""


class PredictionOut(BaseModel):
    """One model's opinion on one frame."""

    model: str
    version: str
    task: str
    role: str
    label: str
    score: float
    threshold: float
    latency_ms: float
    defect_area_px: int = 0
    bbox: list[int] | None = None


class ResultOut(BaseModel):
    """A verdict as the page shows it; images are links, never inline bytes."""

    id: str = Field(description="the entry id in ei:results:{line}")
    line: str
    frame_id: str
    ts_ns: int
    verdict: Literal["ok", "defect", "error", "no_model"]
    score: float
    e2e_ms: float
    error: str = ""
    source: str = ""
    part_id: str = Field(default="", description="the PLC's part id (serial), empty when none was sent")
    predictions: list[PredictionOut]
    frame_url: str = Field(description="the frame as an image (404 once trimmed from ei:frames:{line})")
    mask_url: str | None = Field(default=None, description="the mask as a red overlay with alpha")


class JobOut(BaseModel):
    """The last known state of a deployment job, from ``job_status`` events."""

    job_id: str
    status: str
    model: str = ""
    version: str = ""
    reason: str = ""
    ts_ns: int = 0


class ThresholdOut(BaseModel):
    """The thresholds one line's verdicts use for a model version, and whether the line overrides them."""

    image: float
    pixel: float | None = None
    manifest_image: float
    manifest_pixel: float | None = None
    overridden: bool = False
    source: Literal["manifest", "setting", "job"] = Field(
        default="manifest", description="setting: EI_THRESHOLD_OVERRIDES; job: a set_threshold job"
    )
    set_by: str = ""
    set_at: float = Field(default=0.0, description="seconds since the epoch (0: unknown, e.g. a setting)")
    reason: str = ""


class ModelRow(BaseModel):
    """One loaded model version, joined with its aliases, latency and last deployment job."""

    name: str
    version: str
    aliases: list[str]
    role: Literal["primary", "shadow", "loaded"]
    sha256: str
    sha256_short: str
    task: str
    execution_provider: str
    loaded_at_ns: int
    p50_ms: float | None = None
    p99_ms: float | None = None
    last_job: JobOut | None = None
    thresholds: dict[str, ThresholdOut] = Field(
        default_factory=dict, description="line -> the thresholds that line's verdicts use"
    )


class ModelsOut(BaseModel):
    """The device's model table; ``agent`` says whether it could be asked at all."""

    agent: Literal["ok", "not_configured", "unreachable"]
    message: str
    models: list[ModelRow]
    last_job: JobOut | None = None
    device_state: str | None = None


class StatsOut(BaseModel):
    """Shift counters of one line, counted by the UI as results arrive."""

    line: str
    shift_start_ns: int
    inspected: int
    defects: int
    errors: int
    waiting: int = Field(default=0, description="frames not inspected because no model was loaded")
    defect_rate: float = Field(description="defects / inspected, 0..1")
    fps: float = Field(description="results per second over the last 10 s")
    e2e_p50_ms: float
    e2e_p99_ms: float
    last_ts_ns: int = 0


class EventOut(BaseModel):
    """An entry of ``ei:events``."""

    id: str
    type: str
    ts_ns: int
    service: str = ""
    line: str = ""
    level: str = "info"
    detail: dict[str, Any]


class LinesOut(BaseModel):
    """Every line the UI knows, and the one to show first."""

    lines: list[str]
    default: str


class StatusOut(BaseModel):
    """Whether the UI can reach Redis; the page shows a banner while it cannot."""

    redis: Literal["up", "down"]
    message: str = ""


class LineIoOut(BaseModel):
    """A line's PLC I/O as ``edgeinspect-line-io`` last reported it (``present`` false: none runs)."""

    line: str
    present: bool
    state: str = ""
    connections: dict[str, bool] = Field(default_factory=dict, description="io name -> connected")
    counts: dict[str, int] = Field(default_factory=dict, description="triggers, rejects, missed_rejects, ...")
    last_trigger: dict[str, Any] | None = None
    last_reject: dict[str, Any] | None = None
    last_missed: dict[str, Any] | None = None
    updated_ns: int = 0


class HealthOut(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyOut(BaseModel):
    ready: bool
    checks: dict[str, bool]
