"""Image- and pixel-level detection metrics in plain numpy (no scikit-learn in the cloud image).

Definitions follow scikit-learn's, so figures compare with published ones:

- average precision = sum over thresholds of (recall_k - recall_{k-1}) * precision_k (no interpolation);
- ROC AUC by the trapezoid rule over the exact ROC curve (ties handled as one threshold);
- F1 is maximised over every distinct score, and the threshold returned is the score at which the
  decision ``score >= threshold`` first reaches it (the rule the edge applies);
- the *operating* threshold a model ships with reaches the same F1 on validation but sits in the
  middle of the gap below that score (:func:`operating_threshold`);
- other operating points follow a :class:`ThresholdPolicy` the quality engineer sets (a minimum
  recall or a maximum false-reject rate on validation, :func:`choose_operating_point`), mid-gap too.

Pixel metrics count all pixels of the DEFECTIVE images together (micro average), so a large defect
weighs more than a small one, which matches how per-pixel AP is usually reported; the per-image mean
Dice is returned too, because a small missed defect hides in the micro average.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from edgeinspect.core.package import OperatingPoint

from edgeinspect_cloud.errors import EvaluationError

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Curve:
    """Points of a PR or ROC curve (x, y) with the score threshold at each point."""

    x: FloatArray
    y: FloatArray
    thresholds: FloatArray


def _check(labels: npt.ArrayLike, scores: npt.ArrayLike) -> tuple[npt.NDArray[np.bool_], FloatArray]:
    y = np.asarray(labels).astype(bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise EvaluationError(f"{y.size} labels but {s.size} scores", hint="pass one score per label")
    if not np.all(np.isfinite(s)):
        raise EvaluationError("scores contain NaN or infinity", hint="check the model's outputs")
    return y, s


def _counts(labels: npt.ArrayLike, scores: npt.ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Cumulative true and false positives at each distinct score, highest score first."""
    y, s = _check(labels, scores)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]
    tp = np.cumsum(y, dtype=np.float64)[last_of_tie]
    fp = (last_of_tie + 1) - tp
    return tp, fp, s[last_of_tie]


def pr_curve(labels: npt.ArrayLike, scores: npt.ArrayLike) -> Curve:
    """Precision (y) against recall (x), one point per distinct score, recall increasing."""
    tp, fp, thresholds = _counts(labels, scores)
    positives = tp[-1] if tp.size else 0.0
    precision = tp / np.maximum(tp + fp, 1.0)
    recall = tp / positives if positives > 0 else np.zeros_like(tp)
    return Curve(np.r_[0.0, recall], np.r_[1.0, precision], np.r_[np.inf, thresholds])


def roc_curve(labels: npt.ArrayLike, scores: npt.ArrayLike) -> Curve:
    """True-positive rate (y) against false-positive rate (x), from (0, 0) to (1, 1)."""
    tp, fp, thresholds = _counts(labels, scores)
    tpr = tp / tp[-1] if tp.size and tp[-1] > 0 else np.zeros_like(tp)
    fpr = fp / fp[-1] if fp.size and fp[-1] > 0 else np.zeros_like(fp)
    return Curve(np.r_[0.0, fpr], np.r_[0.0, tpr], np.r_[np.inf, thresholds])


def average_precision(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Area under the step PR curve; NaN when there is no positive label (AP is undefined)."""
    curve = pr_curve(labels, scores)
    if curve.x[-1] == 0:
        return float("nan")
    return float(np.sum(np.diff(curve.x) * curve.y[1:]))


def roc_auc(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Area under the ROC curve; NaN unless both classes are present."""
    y, _ = _check(labels, scores)
    if y.all() or not y.any():
        return float("nan")
    curve = roc_curve(labels, scores)
    return float(np.trapezoid(curve.y, curve.x))


def best_f1(labels: npt.ArrayLike, scores: npt.ArrayLike) -> tuple[float, float]:
    """The highest F1 over all thresholds and the threshold reaching it (``score >= threshold``)."""
    tp, fp, thresholds = _counts(labels, scores)
    positives = tp[-1] if tp.size else 0.0
    if positives == 0:
        return float("nan"), float("nan")
    f1 = 2 * tp / (tp + fp + positives)
    best = int(np.argmax(f1))
    return float(f1[best]), float(thresholds[best])


def operating_threshold(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """The F1-optimal decision on these (validation) scores, placed mid-gap rather than at its edge.

    ``best_f1``'s threshold is the lowest defect score it flags: every threshold down to the next lower
    score gives the same validation figures. A model whose validation split separates perfectly would
    ship a threshold equal to its least confident defect (0.997, say), and let every unseen defect that
    scores a little lower escape, the expensive error on a line. Halfway to the next lower score keeps
    validation's F1 and leaves a margin on the side of catching defects.
    """
    _f1, best = best_f1(labels, scores)
    if not np.isfinite(best):
        return best
    s = np.asarray(scores, dtype=np.float64)
    below = s[s < best]
    return _between(float(best), float(below.max())) if below.size else best


@dataclass(frozen=True)
class Confusion:
    """Counts at one threshold: true/false positives/negatives (positive = defective)."""

    tp: int
    fp: int
    tn: int
    fn: int

    @property
    def precision(self) -> float:
        """Of the parts flagged, the share truly defective (1.0 when none is flagged)."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        """Of the defective parts, the share flagged (NaN when there are none)."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def false_reject_rate(self) -> float:
        """Of the good parts, the share flagged defective (NaN when there are none)."""
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else float("nan")

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall (0 when nothing is right)."""
        denominator = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denominator if denominator else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Counts plus precision, recall, false-reject rate and F1, for ``metrics.json``."""
        return {
            **asdict(self),
            "precision": self.precision,
            "recall": self.recall,
            "false_reject_rate": self.false_reject_rate,
            "f1": self.f1,
        }


def confusion(labels: npt.ArrayLike, scores: npt.ArrayLike, threshold: float) -> Confusion:
    """The confusion matrix of the decision ``score >= threshold``."""
    y, s = _check(labels, scores)
    flagged = s >= threshold
    return Confusion(
        tp=int(np.sum(flagged & y)),
        fp=int(np.sum(flagged & ~y)),
        tn=int(np.sum(~flagged & ~y)),
        fn=int(np.sum(~flagged & y)),
    )


PolicyKind = Literal["best-f1", "target-recall", "max-false-reject"]
POLICY_KINDS: tuple[PolicyKind, ...] = ("best-f1", "target-recall", "max-false-reject")
POLICY_HELP = "best-f1 (default), target-recall:R (recall >= R) or max-false-reject:F (false rejects <= F)"


@dataclass(frozen=True)
class ThresholdPolicy:
    """How the shipped image threshold is chosen on validation; written ``best-f1``,
    ``target-recall:0.99`` (the fewest false rejects with recall >= 0.99) or ``max-false-reject:0.01``
    (the most recall with at most 1% of good parts rejected)."""

    kind: PolicyKind = "best-f1"
    target: float | None = None

    def __str__(self) -> str:
        return self.kind if self.target is None else f"{self.kind}:{self.target:g}"

    @classmethod
    def parse(cls, text: str) -> ThresholdPolicy:
        """``EvaluationError`` naming the accepted forms when ``text`` is none of them."""
        kind, sep, value = text.strip().partition(":")
        if kind not in POLICY_KINDS:
            raise EvaluationError(f"unknown threshold policy {text!r}", hint=f"use {POLICY_HELP}")
        if kind == "best-f1":
            if sep:
                raise EvaluationError("best-f1 takes no value", hint="write just best-f1")
            return cls()
        try:
            target = float(value)
        except ValueError:
            raise EvaluationError(
                f"threshold policy {text!r} needs a number after '{kind}:'", hint=f"e.g. {kind}:0.99"
            ) from None
        low_ok = kind == "max-false-reject"  # no false rejects at all is a target; no recall is not
        if not math.isfinite(target) or not (0.0 <= target <= 1.0) or (target == 0.0 and not low_ok):
            bounds = "0..1" if low_ok else "above 0 and at most 1"
            raise EvaluationError(
                f"threshold policy {text!r}: {value} is not {bounds}", hint=f"e.g. {kind}:0.01"
            )
        return cls(kind, target)  # type: ignore[arg-type]


RECALL_TOLERANCE = 1e-9
"""Counts are integers: 99/100 meets 0.99 even if the division rounds just below."""


def choose_operating_point(
    labels: npt.ArrayLike, scores: npt.ArrayLike, policy: ThresholdPolicy, *, split: str = "validation"
) -> OperatingPoint:
    """The threshold ``policy`` picks on these scores, mid-gap, with the figures the edge will see.

    Every policy picks one of the distinct scores as the lowest flagged one and then, as
    :func:`operating_threshold` does, moves the threshold halfway to the next lower score (the same
    figures on this split, a margin for unseen defects). A split without the class a policy needs to
    judge (defects for a recall target, good parts for a false-reject limit) falls back to best F1, and
    an unreachable target to the closest threshold; ``met`` then says false.
    """
    y, s = _check(labels, scores)
    positives, negatives = int(y.sum()), int((~y).sum())
    met = True
    if policy.kind == "target-recall" and positives and policy.target is not None:
        threshold = _target_recall(y, s, policy.target)
    elif policy.kind == "max-false-reject" and negatives and policy.target is not None:
        threshold, met = _max_false_reject(y, s, policy.target)
    else:
        met = policy.kind == "best-f1" and positives > 0
        threshold = operating_threshold(y, s)
        threshold = threshold if math.isfinite(threshold) else 0.5
    table = confusion(y, s, threshold)
    if policy.kind == "target-recall" and policy.target is not None and positives:
        met = table.recall + RECALL_TOLERANCE >= policy.target
    return OperatingPoint(
        policy=str(policy),
        threshold=threshold,
        split=split,
        met=met,
        precision=table.precision,
        recall=_finite(table.recall),
        false_reject_rate=_finite(table.false_reject_rate),
        f1=table.f1 if positives else None,
        images=int(y.size),
        defective=positives,
        false_rejects=table.fp,
        escapes=table.fn,
    )


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _between(flagged: float, lower: float) -> float:
    """Halfway from ``flagged`` down to ``lower``, strictly above ``lower`` (which must stay unflagged).

    Two neighbouring floats have no number between them (the smallest subnormal halves to 0.0): then
    the flagged score itself is the threshold, which flags the same parts.
    """
    middle = (flagged + lower) / 2
    return middle if middle > lower else flagged


def _mid_gap(thresholds: FloatArray, index: int) -> float:
    """Halfway from the lowest flagged score to the next lower one (itself when it is the lowest)."""
    if index + 1 < thresholds.size:
        return _between(float(thresholds[index]), float(thresholds[index + 1]))
    return float(thresholds[index])


def _target_recall(y: npt.NDArray[np.bool_], s: FloatArray, target: float) -> float:
    """The highest threshold (fewest false rejects) whose recall reaches ``target``."""
    tp, _fp, thresholds = _counts(y, s)
    reaching = np.flatnonzero(tp / tp[-1] + RECALL_TOLERANCE >= target)
    return _mid_gap(thresholds, int(reaching[0]))


def _max_false_reject(y: npt.NDArray[np.bool_], s: FloatArray, limit: float) -> tuple[float, bool]:
    """The lowest threshold (most recall) that rejects at most ``limit`` of the good parts.

    When even the highest score is a good part beyond the limit, nothing may be flagged: the threshold
    goes halfway above the highest score (1.0 at most, and ``met`` false if 1.0 still flags it).
    """
    _tp, fp, thresholds = _counts(y, s)
    within = np.flatnonzero(fp / fp[-1] <= limit + RECALL_TOLERANCE)
    if within.size:
        return _mid_gap(thresholds, int(within[-1])), True
    top = float(thresholds[0])
    above = (top + 1.0) / 2 if top < 1.0 else 1.0
    return above, above > top


@dataclass(frozen=True)
class PixelScores:
    """Pixel-level figures over the defective images: AP, micro Dice and IoU, mean per-image Dice."""

    pixel_ap: float
    dice: float
    iou: float
    dice_per_image: float
    images: int


def dice_iou(truth: npt.NDArray[np.bool_], predicted: npt.NDArray[np.bool_]) -> tuple[float, float]:
    """Dice and IoU of two boolean masks (1.0 for both when both are empty)."""
    inter = float(np.sum(truth & predicted))
    total = float(truth.sum() + predicted.sum())
    union = total - inter
    if total == 0:
        return 1.0, 1.0
    return 2 * inter / total, inter / union


def pixel_scores(
    truths: list[npt.NDArray[np.bool_]], probabilities: list[npt.NDArray[np.floating[Any]]], threshold: float
) -> PixelScores:
    """Pixel AP, Dice and IoU over the images whose true mask is non-empty (the defective ones)."""
    pairs = [(t, p) for t, p in zip(truths, probabilities, strict=True) if t.any()]
    if not pairs:
        nan = float("nan")
        return PixelScores(nan, nan, nan, nan, 0)
    for truth, prob in pairs:
        if truth.shape != prob.shape:
            raise EvaluationError(
                f"mask is {truth.shape} but the prediction is {prob.shape}",
                hint="map predictions back to the frame resolution before scoring",
            )
    truth_all = np.concatenate([t.ravel() for t, _ in pairs])
    prob_all = np.concatenate([p.ravel() for _, p in pairs]).astype(np.float32)
    dice, iou = dice_iou(truth_all, prob_all >= threshold)
    per_image = [dice_iou(t, p >= threshold)[0] for t, p in pairs]
    ap = average_precision(truth_all, _quantise(prob_all))
    return PixelScores(ap, dice, iou, float(np.mean(per_image)), len(pairs))


def _quantise(probabilities: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Round to 1/4096 so millions of pixels sort into few distinct scores (AP changes < 1e-3)."""
    quantised = (np.round(probabilities * np.float32(4096.0)) / np.float32(4096.0)).astype(np.float32)
    return quantised
