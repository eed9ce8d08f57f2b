"""From a result on ``ei:results:{line}`` to what the line does with the part: pass or reject, and when.

Pure functions and one record, so the reject rule and the fail-safe are checked exactly by unit tests:

* ``defect`` rejects, ``ok`` passes; ``error`` (no model, a corrupt frame, a crashed judge) and *no
  verdict at all* follow ``EI_FAIL_SAFE`` (``reject`` by default: an unjudged part is a bad part).
* The reject pulse is due at capture time + ``EI_REJECT_DELAY_MS`` (the part's travel from the camera
  to the gate) and lasts ``EI_REJECT_WIDTH_MS``. A verdict that arrives later than the due time +
  ``EI_REJECT_TOLERANCE_MS`` is *late*: the part has passed the gate, so a pulse now would throw out
  the next part instead. A late reject is never actuated; it is counted as a missed reject.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from edgeinspect.core.messages import Prediction, Result

Action = Literal["pass", "reject"]
MS = 1_000_000


@dataclass(frozen=True, slots=True)
class RejectTiming:
    """When the gate is and how long it stays open, in ns (from the settings)."""

    delay_ns: int
    width_ns: int
    tolerance_ns: int
    fail_safe: Action

    @classmethod
    def from_ms(
        cls, delay_ms: float, width_ms: float, tolerance_ms: float, fail_safe: Action
    ) -> RejectTiming:
        return cls(int(delay_ms * MS), int(width_ms * MS), int(tolerance_ms * MS), fail_safe)

    def gate_ns(self, capture_ns: int) -> int:
        """When the part is at the reject gate: the pulse's scheduled start."""
        return capture_ns + self.delay_ns

    def deadline_ns(self, capture_ns: int) -> int:
        """The last moment a pulse may start and still hit the part."""
        return self.gate_ns(capture_ns) + self.tolerance_ns


@dataclass(frozen=True, slots=True)
class PartResult:
    """One judged part as the PLC sees it (Modbus registers, OPC UA variables, a tag, a pulse)."""

    result_id: str  # the frame id
    part_id: str
    line: str
    verdict: str  # ok | defect | error | none (no verdict by the gate time)
    action: Action
    reason: str  # defect | ok | fail_safe:error | fail_safe:no_verdict
    late: bool
    score: float
    defect_area_px: int
    bbox: tuple[int, int, int, int] | None
    model_version: str
    capture_ns: int
    received_ns: int
    gate_ns: int
    error: str = ""
    seq: int = 0

    @property
    def is_good(self) -> bool:
        return self.verdict == "ok"

    @property
    def actuates(self) -> bool:
        """True when this part gets a reject pulse (a late one never does)."""
        return self.action == "reject" and not self.late

    def numbered(self, seq: int) -> PartResult:
        return replace(self, seq=seq)


def _defect_details(predictions: list[Prediction]) -> tuple[int, tuple[int, int, int, int] | None]:
    """Defect area and box from the primary segmenter (the classifier has neither)."""
    for p in predictions:
        if p.role == "primary" and p.task == "segmentation":
            return p.defect_area_px, p.bbox
    return 0, None


def _model_version(predictions: list[Prediction]) -> str:
    """``model@version`` of each primary model that judged, in order ("cls@3+seg@7")."""
    return "+".join(f"{p.model}@{p.version}" for p in predictions if p.role == "primary")


def decide(result: Result, timing: RejectTiming, now_ns: int) -> PartResult:
    """What to do with the part of ``result``, judged at ``now_ns`` (wall clock, like ``ts_ns``)."""
    if result.verdict == "defect":
        action: Action = "reject"
        reason = "defect"
    elif result.verdict == "ok":
        action, reason = "pass", "ok"
    else:
        action, reason = timing.fail_safe, "fail_safe:error"
    area, bbox = _defect_details(result.predictions)
    return PartResult(
        result_id=result.frame_id,
        part_id=result.part_id,
        line=result.line,
        verdict=result.verdict,
        action=action,
        reason=reason,
        late=now_ns > timing.deadline_ns(result.ts_ns),
        score=result.score,
        defect_area_px=area,
        bbox=bbox,
        model_version=_model_version(result.predictions),
        capture_ns=result.ts_ns,
        received_ns=now_ns,
        gate_ns=timing.gate_ns(result.ts_ns),
        error=result.error,
    )


def no_verdict(
    frame_id: str, part_id: str, line: str, capture_ns: int, timing: RejectTiming, now_ns: int
) -> PartResult:
    """The part of a frame we triggered whose verdict did not come by its gate time: the fail-safe."""
    return PartResult(
        result_id=frame_id,
        part_id=part_id,
        line=line,
        verdict="none",
        action=timing.fail_safe,
        reason="fail_safe:no_verdict",
        late=now_ns > timing.deadline_ns(capture_ns),
        score=0.0,
        defect_area_px=0,
        bbox=None,
        model_version="",
        capture_ns=capture_ns,
        received_ns=now_ns,
        gate_ns=timing.gate_ns(capture_ns),
        error="no verdict by the reject gate time",
    )
