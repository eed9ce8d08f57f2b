"""Parity: does a converted model compute what the original did, closely enough to give the same verdicts?

Two comparisons guard a package: the training framework against the fp32 ONNX graph (an export or
optimisation bug shows up as differences far above float rounding), and the fp32 graph against its
int8 version (quantisation error, mostly bad calibration). Each yields a :class:`ParityReport`;
:func:`require_parity` turns a failing one into a :class:`ParityError` that says what was measured,
what was allowed, and what to try.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from edgeinspect_cloud.compile.contract import Task
from edgeinspect_cloud.compile.errors import ParityError
from edgeinspect_cloud.evaluation.metrics import average_precision, confusion, pixel_scores, roc_auc

FloatArray = npt.NDArray[np.float32]
Bounded = Literal["outputs", "scores"]


@dataclass(frozen=True)
class ParityReport:
    """How far ``candidate`` is from ``reference`` on the same images.

    ``verdict_agreement`` is the share of images given the same ok/defect verdict at the image
    threshold, among the images whose reference score is at least ``margin`` away from it; the
    ``borderline`` ones closer than that are counted but not judged, because the threshold chosen for
    best F1 *is* a validation score and any rounding flips that image (with a dozen validation images
    one such flip is 8%). ``pixel_agreement`` (segmentation) is the share of pixels on the same side of
    the pixel threshold, likewise among pixels at least ``margin`` from it (``borderline_pixels`` are
    not judged: a barely trained U-Net puts most pixels near 0.5, where any rounding flips them).

    ``bounded`` says which difference ``max_allowed`` limits. ``"outputs"``: every output value (an
    export, where anything above float rounding is a bug). ``"scores"``: the image scores that decide
    verdicts, with ``min_pixel_agreement`` guarding the masks (int8: a mask's per-pixel maximum
    difference sits on some defect edge where the sigmoid is steepest, e.g. 0.74 on one pixel of 8.6
    million while 99.997% of pixels and the Dice are unchanged; it says nothing about the verdicts).
    """

    reference: str
    candidate: str
    images: int
    max_abs_diff: float
    mean_abs_diff: float
    score_max_abs_diff: float
    verdict_agreement: float
    borderline: int
    margin: float
    pixel_agreement: float | None
    borderline_pixels: int | None
    max_allowed: float
    min_agreement: float
    bounded: Bounded = "outputs"
    min_pixel_agreement: float | None = None

    @property
    def bounded_diff(self) -> float:
        """The difference ``max_allowed`` limits (see ``bounded``)."""
        return self.max_abs_diff if self.bounded == "outputs" else self.score_max_abs_diff

    @property
    def pixels_agree(self) -> bool:
        if self.min_pixel_agreement is None or self.pixel_agreement is None:
            return True
        return self.pixel_agreement >= self.min_pixel_agreement

    @property
    def passed(self) -> bool:
        return (
            self.bounded_diff <= self.max_allowed
            and self.verdict_agreement >= self.min_agreement
            and self.pixels_agree
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def image_scores(outputs: FloatArray, task: Task) -> FloatArray:
    """One score per image: the defect probability, or a mask's maximum pixel probability."""
    flat = outputs.reshape(len(outputs), -1)
    scores: FloatArray = flat[:, 0] if task == "classification" else flat.max(axis=1)
    return scores


def compare(
    reference: FloatArray,
    candidate: FloatArray,
    *,
    task: Task,
    names: tuple[str, str],
    image_threshold: float,
    pixel_threshold: float | None,
    max_allowed: float,
    min_agreement: float,
    margin: float = 0.0,
    bounded: Bounded = "outputs",
    min_pixel_agreement: float | None = None,
) -> ParityReport:
    """Measure ``candidate`` against ``reference`` (same images, same order, contract outputs)."""
    if reference.shape != candidate.shape:
        raise ParityError(
            f"{names[1]} outputs shape {list(candidate.shape)} "
            f"but {names[0]} outputs {list(reference.shape)}",
            hint="the two models do not implement the same contract; re-export",
        )
    diff = np.abs(reference.astype(np.float64) - candidate.astype(np.float64))
    ref_scores, cand_scores = image_scores(reference, task), image_scores(candidate, task)
    score_diff = np.abs(ref_scores.astype(np.float64) - cand_scores.astype(np.float64))
    verdicts, borderline = agreement(ref_scores, cand_scores, image_threshold, margin)
    pixel, borderline_pixels = None, None
    if task == "segmentation" and pixel_threshold is not None:
        pixel, borderline_pixels = agreement(reference, candidate, pixel_threshold, margin)
    return ParityReport(
        reference=names[0],
        candidate=names[1],
        images=len(reference),
        max_abs_diff=float(diff.max()) if diff.size else 0.0,
        mean_abs_diff=float(diff.mean()) if diff.size else 0.0,
        score_max_abs_diff=float(score_diff.max()) if score_diff.size else 0.0,
        verdict_agreement=verdicts,
        borderline=borderline,
        margin=margin,
        pixel_agreement=pixel,
        borderline_pixels=borderline_pixels,
        max_allowed=max_allowed,
        min_agreement=min_agreement,
        bounded=bounded,
        min_pixel_agreement=min_pixel_agreement if task == "segmentation" else None,
    )


def agreement(
    reference: FloatArray, candidate: FloatArray, threshold: float, margin: float
) -> tuple[float, int]:
    """Share of values on the same side of ``threshold``, judged only where the reference is at least
    ``margin`` away from it, and how many were too close to judge (1.0 when none could be judged)."""
    kept = (reference >= threshold) == (candidate >= threshold)
    clear = np.abs(reference.astype(np.float64) - threshold) >= margin
    return (float(np.mean(kept[clear])) if clear.any() else 1.0), int((~clear).sum())


def require_parity(report: ParityReport, hint: str) -> None:
    """Raise ``ParityError`` (with the report attached) unless ``report`` passed."""
    if report.passed:
        return
    what = "max abs diff" if report.bounded == "outputs" else "max abs diff of image scores"
    pixels = ""
    if report.min_pixel_agreement is not None and report.pixel_agreement is not None:
        pixels = f", pixel agreement {report.pixel_agreement:.3%} (required {report.min_pixel_agreement:.3%})"
    raise ParityError(
        f"parity check failed: {report.candidate} differs from {report.reference} on {report.images} "
        f"validation images: {what} {report.bounded_diff:.4g} (allowed {report.max_allowed:.4g}), "
        f"verdict agreement {report.verdict_agreement:.1%} (required {report.min_agreement:.1%})"
        f"{pixels}",
        hint=hint,
        report={
            k: float(v) for k, v in report.as_dict().items() if isinstance(v, int | float) and v is not None
        },
    )


def accuracy(
    outputs: FloatArray,
    *,
    task: Task,
    labels: npt.NDArray[np.bool_],
    masks: npt.NDArray[np.bool_] | None,
    image_threshold: float,
    pixel_threshold: float | None,
) -> dict[str, float]:
    """Image AP/AUROC/F1 at the threshold, plus pixel AP/Dice/IoU at model resolution for segmentation.

    Used to put the int8 model's accuracy beside the fp32 model's on the same validation images.
    """
    scores = image_scores(outputs, task)
    result = {
        "image_ap": average_precision(labels, scores),
        "image_auroc": roc_auc(labels, scores),
        "f1": confusion(labels, scores, image_threshold).f1,
    }
    if task == "segmentation" and masks is not None and pixel_threshold is not None:
        probabilities = [outputs[i, 0] for i in range(len(outputs))]
        pixels = pixel_scores([masks[i] for i in range(len(masks))], probabilities, pixel_threshold)
        result |= {"pixel_ap": pixels.pixel_ap, "dice": pixels.dice, "iou": pixels.iou}
    return {key: value for key, value in result.items() if not math.isnan(value)}
