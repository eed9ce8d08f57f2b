"""What the field says: telemetry windows per device and line, and features of captured samples.

Telemetry comes from the capture store (the uploader's ``_telemetry/`` parts), from JSON Lines files
(one summary per line, e.g. recorded from MQTT with ``mosquitto_sub -t 'edgeinspect/+/telemetry'``),
or from folders of such files. Captured frames add a second, independent look at the *images*: the
monitor recomputes brightness, contrast and sharpness from the stored pixels. Their scores are left
out on purpose: the capture policy keeps every defect and near-threshold frame, so captured scores
are biased by design; telemetry counts every frame.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from edgeinspect.core.capture_manifest import read_telemetry_day, utc_day
from edgeinspect.core.errors import EdgeInspectError, MessageError
from edgeinspect.core.telemetry import TelemetrySummary, image_features, merge_summaries

from edgeinspect_cloud.monitor.errors import MonitorError
from edgeinspect_cloud.review.captures import CaptureStore, LineDay

CAPTURES = "captures"
"""The ``source`` of a group built from captured frames (telemetry groups have ``telemetry``)."""


@dataclass
class FieldGroup:
    """One device on one line (telemetry), or one line's captured frames (``source == "captures"``)."""

    line: str
    device: str
    source: str
    windows: list[TelemetrySummary] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.line}/{self.device}" if self.source != CAPTURES else f"{self.line}/{CAPTURES}"

    def total(self) -> TelemetrySummary:
        """Every window added up."""
        models: dict[str, str] = {}
        for window in self.windows:
            models.update(window.models)
        return merge_summaries(self.windows, line=self.line, thing=self.device, models=models)


def in_range(summary: TelemetrySummary, first: date | None, last: date | None) -> bool:
    """Whether the window ended within ``[first, last]`` (UTC days; open ends allowed)."""
    day = utc_day(summary.end_ns)
    return (first is None or day >= first) and (last is None or day <= last)


def read_telemetry(
    sources: Sequence[str],
    lines: Sequence[str] = (),
    first: date | None = None,
    last: date | None = None,
    **store_options: Any,
) -> list[TelemetrySummary]:
    """Every window summary from ``sources`` (store URLs, files, folders), filtered by line and days.

    ``store_options`` go to ``open_store`` for URL sources (``endpoint_url`` of an S3-compatible store).
    """
    found: list[TelemetrySummary] = []
    for source in sources:
        if "://" in source:
            found.extend(_from_store(CaptureStore.open(source, **store_options), lines))
        else:
            found.extend(_from_path(Path(source)))
    return [
        s for s in found if s.kind == "window" and (not lines or s.line in lines) and in_range(s, first, last)
    ]


def _from_store(store: CaptureStore, lines: Sequence[str]) -> Iterable[TelemetrySummary]:
    for item in store.telemetry_days(lines):
        yield from read_telemetry_day(store.store, item.line, item.day)


def _from_path(path: Path) -> Iterable[TelemetrySummary]:
    if path.is_dir():
        for child in sorted(path.rglob("*.json*")):
            yield from _from_path(child)
        return
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MonitorError(f"cannot read telemetry file {path}: {exc}", hint="check --telemetry") from exc
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            yield TelemetrySummary.from_json(json.loads(raw))
        except (ValueError, MessageError) as exc:
            raise MonitorError(
                f"{path} line {number} is not a telemetry summary: {exc}",
                hint="one JSON summary per line, as the worker publishes them",
            ) from exc


def group_windows(windows: Iterable[TelemetrySummary]) -> list[FieldGroup]:
    """Windows grouped by (line, device), each group's windows in time order."""
    groups: dict[tuple[str, str], FieldGroup] = {}
    for window in windows:
        key = (window.line, window.thing or window.line)
        groups.setdefault(key, FieldGroup(key[0], key[1], "telemetry")).windows.append(window)
    for group in groups.values():
        group.windows.sort(key=lambda w: (w.start_ns, w.end_ns))
    return [groups[key] for key in sorted(groups)]


def capture_groups(
    store: CaptureStore, days: Sequence[LineDay], reasons: Sequence[str] = ()
) -> list[FieldGroup]:
    """Image features of captured frames per line (only those captured for ``reasons``, if given)."""
    summaries: dict[str, TelemetrySummary] = {}
    for record in store.records(days):
        if reasons and not set(reasons) & set(record.reasons):
            continue
        try:
            features = image_features(store.image(record))
        except EdgeInspectError:
            continue  # an unreadable capture says nothing about drift; review shows it
        summary = summaries.setdefault(record.line, TelemetrySummary(line=record.line, thing=CAPTURES))
        summary.frames += 1
        summary.start_ns = min(summary.start_ns or record.ts_ns, record.ts_ns)
        summary.end_ns = max(summary.end_ns, record.ts_ns)
        for name, value in features.as_dict().items():
            summary.histogram(name).add(value)
    return [FieldGroup(line, CAPTURES, CAPTURES, [summaries[line]]) for line in sorted(summaries)]
