"""The quality gate: the minimum figures a model must reach on held-out data before anyone may ship it.

It is judged twice, from the same record: by ``pipeline run`` (a model below its gate is never
registered) and by ``registry approve`` (a version whose recorded figures are below its recorded gate
is refused unless ``--force --comment``). The record lives in the registration's ``extra["gate"]``,
so the approver sees exactly the thresholds and figures the pipeline judged, not today's defaults.

Defaults come from the environment (``EI_GATE_MIN_AP``, ``EI_GATE_MIN_RECALL``, ``EI_GATE_MIN_DICE``,
``EI_GATE_MAX_AP_DROP``), per run from ``--gate-min-ap``/``--gate-min-recall``/``--gate-min-dice``/
``--gate-max-ap-drop``.

A fine-tuned version (``--init-from``) is also judged on every earlier line its parent was checked
on: its image AP there may fall at most ``max_ap_drop`` below the parent's on the same frames
(the ``regression`` figures; ``image_ap[line]`` with the parent's AP as ``baseline``).
"""

from __future__ import annotations

import math
from typing import Any

from edgeinspect.core.errors import EdgeInspectError
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

GATE_KEY = "gate"
"""Where a registration keeps its gate record: ``registration.extra["gate"]``."""

FIGURES: dict[str, str] = {
    "image_ap": "min_image_ap",
    "operating_recall": "min_recall",
    "dice": "min_dice",
}
"""Metric name -> the gate's minimum for it (Dice only for segmenters)."""

_FLAGS = {"min_image_ap": "--gate-min-ap", "min_recall": "--gate-min-recall", "min_dice": "--gate-min-dice"}
_DROP_FLAG = "--gate-max-ap-drop"
_SLACK = 1e-9
"""Float slack in the regression check: a drop of exactly ``max_ap_drop`` passes."""


class QualityGate(BaseModel):
    """Minimum held-out figures: image AP, recall at the shipped image threshold, and pixel Dice.

    Recall is measured at the threshold the edge will apply, not the best one, because that is what
    the line sees. A minimum of 0 switches a figure off (it is then not even required to exist).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_image_ap: float = Field(default=0.9, ge=0.0, le=1.0)
    min_recall: float = Field(default=0.8, ge=0.0, le=1.0)
    min_dice: float = Field(default=0.6, ge=0.0, le=1.0)
    max_ap_drop: float = Field(default=0.005, ge=0.0, le=1.0)
    """How far a fine-tuned version's image AP on an earlier line may fall below its parent's."""

    def with_overrides(self, **changes: float | None) -> QualityGate:
        """A copy with the non-None ``changes`` (per-run flags over the configured defaults)."""
        values = {k: v for k, v in changes.items() if v is not None}
        return QualityGate.model_validate({**self.model_dump(), **values})


class GateSettings(BaseSettings):
    """The configured default gate (``EI_GATE_MIN_AP`` etc.); flags of one run override it."""

    model_config = SettingsConfigDict(env_prefix="EI_GATE_", extra="ignore")

    min_ap: float = Field(default=QualityGate().min_image_ap, ge=0.0, le=1.0)
    min_recall: float = Field(default=QualityGate().min_recall, ge=0.0, le=1.0)
    min_dice: float = Field(default=QualityGate().min_dice, ge=0.0, le=1.0)
    max_ap_drop: float = Field(default=QualityGate().max_ap_drop, ge=0.0, le=1.0)

    def gate(self) -> QualityGate:
        return QualityGate(
            min_image_ap=self.min_ap,
            min_recall=self.min_recall,
            min_dice=self.min_dice,
            max_ap_drop=self.max_ap_drop,
        )


def default_gate() -> QualityGate:
    """The configured default gate (environment), read at call time; a bad value names its variable."""
    try:
        return GateSettings().gate()
    except ValidationError as exc:
        problems = "; ".join(f"EI_GATE_{str(e['loc'][0]).upper()}: {e['msg']}" for e in exc.errors())
        raise EdgeInspectError(
            f"bad quality-gate setting ({problems})", hint="set it to a number from 0 to 1"
        ) from exc


class GateFigure(BaseModel):
    """One judged figure: its value (None when it could not be measured), its minimum, the verdict."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    value: float | None
    minimum: float
    passed: bool
    baseline: float | None = None
    """For a regression figure: the parent version's value on the same frames."""

    def describe(self) -> str:
        shown = "missing" if self.value is None else f"{self.value:.3f}"
        if self.baseline is not None:
            shown = "missing" if self.value is None else f"{self.value:.4f}"
            verdict = "within" if self.passed else "regressed beyond"
            return (
                f"{self.name} {shown} vs parent {self.baseline:.4f} ({verdict} the allowed drop, "
                f"minimum {self.minimum:.4f})"
            )
        return f"{self.name} {shown} {'>=' if self.passed else '<'} {self.minimum:.3f}"


class GateRecord(BaseModel):
    """What the gate judged: thresholds, figures, where the figures came from, and the verdict."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str
    gate: QualityGate
    figures: list[GateFigure]
    source: str = "test"
    passed: bool
    regression: list[GateFigure] = Field(default_factory=list)
    """Earlier lines (fine-tuned versions): image AP against the parent's on each line's test split."""

    @property
    def failures(self) -> list[GateFigure]:
        return [figure for figure in [*self.figures, *self.regression] if not figure.passed]

    def describe_failures(self) -> str:
        return ", ".join(figure.describe() for figure in self.failures)

    def to_json(self) -> dict[str, JsonValue]:
        data: dict[str, JsonValue] = self.model_dump(mode="json")
        return data


def judge(
    task: str,
    metrics: dict[str, Any],
    gate: QualityGate,
    source: str = "test",
    old_lines: dict[str, tuple[float | None, float]] | None = None,
) -> GateRecord:
    """Judge ``metrics`` against ``gate``; Dice only counts for models trained on masks (segmenter,
    multi-task): an anomaly model's map is reported, not gated (it never saw a mask).

    A figure that is missing or not a number fails unless its minimum is 0: a gate that cannot see a
    figure must not assume it is good. ``old_lines`` maps an earlier line's name to (this model's
    image AP there, the parent's): each fails when it falls more than ``gate.max_ap_drop`` below.
    """
    regression = [
        _regression_figure(name, value, baseline, gate)
        for name, (value, baseline) in (old_lines or {}).items()
    ]
    figures = []
    for name, field_name in FIGURES.items():
        if name == "dice" and task not in ("segmentation", "multitask"):
            continue
        minimum = float(getattr(gate, field_name))
        value = _number(metrics.get(name))
        passed = minimum <= 0.0 or (value is not None and value >= minimum)
        figures.append(GateFigure(name=name, value=value, minimum=minimum, passed=passed))
    return GateRecord(
        task=task,
        gate=gate,
        figures=figures,
        source=source,
        passed=all(f.passed for f in [*figures, *regression]),
        regression=regression,
    )


def _regression_figure(line: str, value: float | None, baseline: float, gate: QualityGate) -> GateFigure:
    minimum = round(baseline - gate.max_ap_drop, 9)
    number = _number(value)
    passed = number is not None and number >= minimum - _SLACK
    return GateFigure(
        name=f"image_ap[{line}]", value=number, minimum=minimum, passed=passed, baseline=baseline
    )


def rejudge(record: dict[str, Any]) -> GateRecord:
    """Judge a stored gate record again from its own figures and thresholds (never trusting ``passed``)."""
    stored = GateRecord.model_validate(record)
    metrics = {figure.name: figure.value for figure in stored.figures}
    old_lines = {
        figure.name.removeprefix("image_ap[").removesuffix("]"): (figure.value, figure.baseline)
        for figure in stored.regression
        if figure.baseline is not None
    }
    return judge(stored.task, metrics, stored.gate, stored.source, old_lines)


def failing_flags(record: GateRecord) -> list[str]:
    """The ``pipeline run`` flags that set the failing minimums (for error hints)."""
    return [
        _DROP_FLAG if figure.baseline is not None else _FLAGS[FIGURES[figure.name]]
        for figure in record.failures
    ]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None
