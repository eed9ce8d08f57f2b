"""How the primary models' predictions become one verdict and one score for a frame.

Rules (``EI_VERDICT_RULE``):

- ``any``: ``defect`` when either primary model says defect; the score is the highest primary score.
- ``classification``: the classifier alone decides and its score is the frame's score; when no
  classifier is loaded the segmenter stands in (a line keeps being judged while one alias is missing).

Shadow predictions never take part: they are recorded, compared and captured, nothing more.
No primary prediction at all means ``error`` (the caller says why in the result).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from edgeinspect.core.messages import Prediction, Verdict

VerdictRule = Literal["any", "classification"]


def decide(predictions: Sequence[Prediction], rule: VerdictRule) -> tuple[Verdict, float]:
    """(verdict, score) of a frame from its predictions under ``rule``."""
    primaries = [p for p in predictions if p.role == "primary"]
    if not primaries:
        return "error", 0.0
    if rule == "classification":
        classifiers = [p for p in primaries if p.task == "classification"]
        deciders = classifiers or primaries
    else:
        deciders = primaries
    verdict: Verdict = "defect" if any(p.label == "defect" for p in deciders) else "ok"
    return verdict, max(p.score for p in deciders)


def shadow_disagreements(predictions: Sequence[Prediction]) -> list[tuple[Prediction, Prediction]]:
    """(primary, shadow) pairs of the same task whose labels differ."""
    primary_by_task = {p.task: p for p in predictions if p.role == "primary"}
    pairs: list[tuple[Prediction, Prediction]] = []
    for shadow in predictions:
        primary = primary_by_task.get(shadow.task)
        if shadow.role == "shadow" and primary is not None and primary.label != shadow.label:
            pairs.append((primary, shadow))
    return pairs
