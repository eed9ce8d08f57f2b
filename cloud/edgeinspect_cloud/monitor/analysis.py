"""Field against baseline: PSI and a two-sample test per feature, rate shifts, per device and line.

A feature is *drifted* when its PSI reaches ``psi_threshold`` AND its test's p-value is below
``p_threshold`` (see :mod:`edgeinspect.core.drift` for why both), and only with at least
``min_frames`` field observations: a window of five frames proves nothing either way. Histogram
features use the binned two-sample KS test; rates (``cls_defect_rate``, ``seg_defect_rate``) use the
two-proportion z-test and a two-bin PSI. Latency and shadow agreement are reported, never tested:
the baseline has no field latency, and a shadow has no baseline at all.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from edgeinspect.core.drift import Comparison, compare_histograms, compare_rates, psi
from edgeinspect.core.telemetry import LATENCY, TelemetrySummary

from edgeinspect_cloud.monitor.field import FieldGroup


@dataclass(frozen=True)
class Thresholds:
    """When a feature counts as drifted."""

    psi: float = 0.2
    p_value: float = 0.01
    min_frames: int = 30


@dataclass(frozen=True)
class FeatureDrift:
    """One feature of one group compared with the baseline."""

    feature: str
    kind: str  # "histogram" or "rate"
    psi: float
    statistic: float
    p_value: float
    n_baseline: int
    n_field: int
    baseline_value: float  # mean (histogram) or rate
    field_value: float
    drifted: bool
    enough_data: bool


@dataclass(frozen=True)
class WindowPoint:
    """One telemetry window of a group, for the over-time plots and table."""

    start_ns: int
    end_ns: int
    frames: int
    psi: dict[str, float]
    rates: dict[str, float]


@dataclass
class GroupReport:
    """Everything the report says about one group."""

    line: str
    device: str
    source: str
    frames: int
    models: dict[str, str]
    features: list[FeatureDrift]
    windows: list[WindowPoint] = field(default_factory=list)
    shadow_agreement: float | None = None
    latency_ms_mean: float | None = None

    @property
    def drifted(self) -> list[str]:
        return [f.feature for f in self.features if f.drifted]

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["drifted"] = self.drifted
        clean: dict[str, Any] = _finite(body)
        return clean


def _judge(
    feature: str, kind: str, result: Comparison, values: tuple[float, float], limits: Thresholds
) -> FeatureDrift:
    enough = result.n_field >= limits.min_frames and result.n_baseline >= limits.min_frames
    return FeatureDrift(
        feature=feature,
        kind=kind,
        psi=result.psi,
        statistic=result.statistic,
        p_value=result.p_value,
        n_baseline=result.n_baseline,
        n_field=result.n_field,
        baseline_value=values[0],
        field_value=values[1],
        drifted=enough and result.drifted(limits.psi, limits.p_value),
        enough_data=enough,
    )


def compare(
    baseline: TelemetrySummary, field_total: TelemetrySummary, limits: Thresholds
) -> list[FeatureDrift]:
    """Every feature and rate that both the baseline and the field have, in name order."""
    out: list[FeatureDrift] = []
    for name in sorted(set(baseline.features) & set(field_total.features) - {LATENCY}):
        base, seen = baseline.features[name], field_total.features[name]
        if not base.n or not seen.n:
            continue
        result = compare_histograms(base.counts, seen.counts)
        out.append(_judge(name, "histogram", result, (base.mean, seen.mean), limits))
    for name in sorted(set(baseline.rates) & set(field_total.rates)):
        b, f = baseline.rates[name], field_total.rates[name]
        result = compare_rates(b.k, b.n, f.k, f.n)
        out.append(_judge(name, "rate", result, (b.value, f.value), limits))
    return out


def window_points(baseline: TelemetrySummary, group: FieldGroup) -> list[WindowPoint]:
    """Per window: PSI of each shared histogram feature against the baseline, and its rates."""
    points = []
    for window in group.windows:
        shared = sorted(set(baseline.features) & set(window.features) - {LATENCY})
        values = {n: psi(baseline.features[n].counts, window.features[n].counts) for n in shared}
        rates = {name: rate.value for name, rate in window.rates.items() if rate.n}
        points.append(WindowPoint(window.start_ns, window.end_ns, window.frames, values, rates))
    return points


def analyse(baseline: TelemetrySummary, groups: list[FieldGroup], limits: Thresholds) -> list[GroupReport]:
    """A report per group (telemetry groups first, then captured-sample groups, each by key)."""
    reports = []
    for group in groups:
        total = group.total()
        latency = total.features.get(LATENCY)
        reports.append(
            GroupReport(
                line=group.line,
                device=group.device,
                source=group.source,
                frames=total.frames,
                models=total.models,
                features=compare(baseline, total, limits),
                windows=window_points(baseline, group),
                shadow_agreement=total.shadow.value if total.shadow.n else None,
                latency_ms_mean=latency.mean if latency is not None and latency.n else None,
            )
        )
    return reports


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: replace them with None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
