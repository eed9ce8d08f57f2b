"""Rolling telemetry windows: frames go in one at a time, a summary per model set comes out per interval.

A window is *tumbling*: it starts with its first frame, and :meth:`TelemetryWindows.flush` (called by
the owner every ``interval``) turns every open window into a
:class:`~edgeinspect.core.telemetry.TelemetrySummary` and starts afresh. Windows are keyed by the
models that judged the frames (``defect-cls:3`` + ``defect-seg:2``): a swap starts a new window, so a
summary never mixes two versions and the monitor can tell which version drifted. The clock is passed
in, never read, so tests decide what time it is.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from edgeinspect.core.telemetry import (
    DEFECT_RATE,
    LATENCY,
    MASK_AREA,
    ImageFeatures,
    Rate,
    TelemetrySummary,
    rate_name,
    score_feature,
)


@dataclass(frozen=True, slots=True)
class ModelAnswer:
    """One primary model's answer on a frame (``defect`` is its label, not the frame's verdict)."""

    score: float
    defect: bool


@dataclass(frozen=True, slots=True)
class FrameObservation:
    """What telemetry keeps of one judged frame (no pixels: features only)."""

    verdict: str
    answers: Mapping[str, ModelAnswer] = field(default_factory=dict)
    """Primary answers by task (``classification``, ``segmentation``)."""
    models: Mapping[str, str] = field(default_factory=dict)
    """``{task: "name:version"}`` of the primaries that answered."""
    image: ImageFeatures | None = None
    mask_area: float | None = None
    shadow_agreed: bool | None = None
    """None when no shadow model ran; else whether every shadow agreed with its primary."""
    latency_ms: float | None = None


def observe(summary: TelemetrySummary, frame: FrameObservation) -> None:
    """Count one frame into ``summary`` (errors count as frames and verdicts, nothing else)."""
    summary.frames += 1
    summary.verdicts[frame.verdict] = summary.verdicts.get(frame.verdict, 0) + 1
    if frame.latency_ms is not None:
        summary.histogram(LATENCY).add(frame.latency_ms)
    if frame.verdict == "error":
        return
    summary.count_rate(DEFECT_RATE, frame.verdict == "defect")
    if frame.image is not None:
        for name, value in frame.image.as_dict().items():
            summary.histogram(name).add(value)
    for task, answer in frame.answers.items():
        summary.histogram(score_feature(task)).add(answer.score)
        summary.count_rate(rate_name(task), answer.defect)
    if frame.mask_area is not None:
        summary.histogram(MASK_AREA).add(frame.mask_area)
    if frame.shadow_agreed is not None:
        summary.shadow = summary.shadow + Rate(1, int(frame.shadow_agreed))


def models_key(models: Mapping[str, str]) -> str:
    """``classification=defect-cls:3,segmentation=defect-seg:2`` (``-`` for a frame no model judged)."""
    return ",".join(f"{task}={ref}" for task, ref in sorted(models.items())) or "-"


class TelemetryWindows:
    """Open windows of one line, one per model set; thread-safe (the worker commits on one thread,
    the publisher flushes on another)."""

    def __init__(self, line: str, thing: str = "") -> None:
        self.line = line
        self.thing = thing
        self._open: dict[str, TelemetrySummary] = {}
        self._lock = threading.Lock()

    def add(self, frame: FrameObservation, now_ns: int) -> None:
        """Count a frame judged at ``now_ns`` into the window of its models."""
        key = models_key(frame.models)
        with self._lock:
            summary = self._open.get(key)
            if summary is None:
                summary = TelemetrySummary(
                    line=self.line, thing=self.thing, models=dict(frame.models), start_ns=now_ns
                )
                self._open[key] = summary
            observe(summary, frame)
            summary.end_ns = max(summary.end_ns, now_ns)

    def flush(self, now_ns: int) -> list[TelemetrySummary]:
        """Close every open window at ``now_ns`` and return their summaries (oldest first)."""
        with self._lock:
            closed, self._open = list(self._open.values()), {}
        for summary in closed:
            summary.end_ns = max(summary.end_ns, now_ns)
        return sorted(closed, key=lambda s: (s.start_ns, sorted(s.models.items())))

    def pending_frames(self) -> int:
        """Frames counted into windows not yet flushed."""
        with self._lock:
            return sum(s.frames for s in self._open.values())
