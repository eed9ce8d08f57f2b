"""Rollout decisions as pure functions: how things split into waves, and what a wave's outcome means.

Why waves: a bad model that passes every cloud check can still fail on real devices (another camera,
another lighting); releasing it to a few first and stopping when too many of them fail keeps the rest of
the line on the model that works.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from edgeinspect_cloud.fleet.records import FAILURES, TERMINAL, Rollout

Decision = Literal["wait", "abort", "next_wave", "complete"]


def plan_waves(things: Sequence[str], waves: int, wave_pct: Sequence[float] = ()) -> list[list[str]]:
    """Split ``things`` (in the given order) into at most ``waves`` non-empty, near-equal batches.

    Earlier waves get the extra thing when the split is uneven, so the first wave is never the smallest.
    With ``wave_pct`` (cumulative percentages, see :class:`Rollout`) wave ``i`` ends at
    ``ceil(len(things) * wave_pct[i] / 100)`` things, so a 1% canary of 50 things is still one thing;
    waves left empty by rounding are dropped.
    """
    if wave_pct:
        return _plan_pct(things, wave_pct)
    count = min(max(waves, 1), len(things)) or 1
    size, extra = divmod(len(things), count)
    out: list[list[str]] = []
    start = 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        out.append(list(things[start:end]))
        start = end
    return [batch for batch in out if batch]


def _plan_pct(things: Sequence[str], wave_pct: Sequence[float]) -> list[list[str]]:
    out: list[list[str]] = []
    start = 0
    for pct in wave_pct:
        end = min(len(things), max(start, math.ceil(len(things) * pct / 100 - 1e-9)))
        out.append(list(things[start:end]))
        start = end
    return [batch for batch in out if batch]


@dataclass(frozen=True)
class WaveOutcome:
    """What the rollout should do next, and a sentence saying why (kept as the job's ``reason``)."""

    decision: Decision
    reason: str = ""


def judge_wave(statuses: Sequence[str], wave: int, last_wave: int, rollout: Rollout) -> WaveOutcome:
    """Judge wave ``wave`` (0-based) from its executions' statuses.

    Abort as soon as the failures alone exceed the threshold (the rest of the wave cannot undo that);
    otherwise wait until every execution of the wave is terminal, then release the next wave or finish.
    """
    size = len(statuses)
    failed = sum(1 for status in statuses if status in FAILURES)
    threshold = rollout.abort_threshold_pct
    if threshold is not None and size and failed * 100 > threshold * size:
        return WaveOutcome(
            "abort",
            f"rollout aborted: {failed} of {size} executions of wave {wave + 1} failed "
            f"(more than the {threshold:g}% threshold)",
        )
    if any(status not in TERMINAL for status in statuses):
        return WaveOutcome("wait")
    if wave < last_wave:
        return WaveOutcome("next_wave")
    return WaveOutcome("complete")
