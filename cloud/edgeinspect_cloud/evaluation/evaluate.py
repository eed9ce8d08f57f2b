"""Evaluate a model on dataset samples: image-level and pixel-level metrics, computed the edge's way.

:func:`evaluate_samples` runs an :class:`~edgeinspect_cloud.evaluation.runner.OnnxModel` over samples
read by the dataset loader and returns an :class:`Evaluation` (per-image scores, curves, metrics,
example predictions for the report). Metric names are the keys of ``metrics.json`` and of the JSON
line ``evaluate`` prints last: ``image_ap``, ``image_auroc``, ``f1``, ``threshold`` (the F1-maximising
image threshold on THIS data) and, for a segmenter, ``pixel_ap``, ``dice``, ``iou`` at
``pixel_threshold``. When the model already has thresholds (a package), ``operating_*`` figures say
how it does at the thresholds the edge will actually apply: precision, recall, false-reject rate
(good parts flagged / good parts) and the counts of false rejects and escapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from edgeinspect.core.package import TWO_OUTPUT_TASKS, Thresholds
from tqdm import tqdm

from edgeinspect_cloud.data.dataset import SampleFiles, read_sample
from edgeinspect_cloud.evaluation import metrics as m
from edgeinspect_cloud.evaluation.runner import OnnxModel

DEFAULT_PIXEL_THRESHOLD = 0.5
_PIXEL_GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)


@dataclass(frozen=True)
class Example:
    """One image for the report's grid: the frame, its true mask, the predicted probabilities, the score."""

    sample_id: str
    image: npt.NDArray[np.uint8]
    truth: npt.NDArray[np.bool_]
    probabilities: npt.NDArray[np.float32] | None
    score: float


@dataclass
class Evaluation:
    """Scores and figures of one model on one set of samples (see the module doc for metric names)."""

    task: str
    ids: list[str]
    labels: npt.NDArray[np.bool_]
    scores: npt.NDArray[np.float64]
    metrics: dict[str, float]
    confusion: m.Confusion
    confusion_threshold: float
    pixel_threshold: float | None = None
    examples: list[Example] = field(default_factory=list)

    def headline(self) -> dict[str, float]:
        """The flat metrics dict (floats only), NaN written as ``None`` by the JSON writers."""
        return dict(self.metrics)


def choose_pixel_threshold(
    truths: list[npt.NDArray[np.bool_]], probabilities: list[npt.NDArray[np.float32]]
) -> float:
    """The pixel threshold (0.05 steps) with the best micro Dice on defective images (0.5 if none)."""
    pairs = [(t, p) for t, p in zip(truths, probabilities, strict=True) if t.any()]
    if not pairs:
        return DEFAULT_PIXEL_THRESHOLD
    truth = np.concatenate([t.ravel() for t, _ in pairs])
    prob = np.concatenate([p.ravel() for _, p in pairs])
    dices = [m.dice_iou(truth, prob >= t)[0] for t in _PIXEL_GRID]
    return float(_PIXEL_GRID[int(np.argmax(dices))])


def evaluate_samples(
    model: OnnxModel,
    samples: Sequence[SampleFiles],
    *,
    thresholds: Thresholds | None = None,
    batch_size: int = 8,
    examples: int = 8,
    progress: bool = False,
) -> Evaluation:
    """Run ``model`` on every sample and compute the metrics (see :class:`Evaluation`).

    ``thresholds`` are the model's operating thresholds (from its manifest), if it has any yet; the
    pixel threshold for Dice/IoU is theirs, else the Dice-maximising one on these samples.
    """
    segmentation = model.spec.task in ("segmentation", *TWO_OUTPUT_TASKS)
    scores = np.zeros(len(samples))
    mask_scores = np.zeros(len(samples))
    labels = np.zeros(len(samples), bool)
    truths: list[npt.NDArray[np.bool_]] = []
    probs: list[npt.NDArray[np.float32]] = []
    bar = tqdm(total=len(samples), desc="evaluate", unit="img", disable=not progress, leave=False)
    for start in range(0, len(samples), batch_size):
        chunk = [read_sample(files) for files in samples[start : start + batch_size]]
        predictions = model.predict([s.image for s in chunk], with_masks=segmentation)
        for offset, (sample, prediction) in enumerate(zip(chunk, predictions, strict=True)):
            scores[start + offset] = prediction.score
            if prediction.mask_score is not None:
                mask_scores[start + offset] = prediction.mask_score
            labels[start + offset] = sample.defective
            if segmentation and sample.defective and prediction.probabilities is not None:
                truths.append(sample.mask)
                probs.append(prediction.probabilities)
        bar.update(len(chunk))
    bar.close()
    result = _image_metrics(model.spec.task, list(samples), labels, scores, thresholds)
    if segmentation:
        pixel = thresholds.pixel if thresholds is not None and thresholds.pixel is not None else None
        result.pixel_threshold = choose_pixel_threshold(truths, probs) if pixel is None else float(pixel)
        scores_px = m.pixel_scores(truths, probs, result.pixel_threshold)
        result.metrics.update(
            pixel_ap=scores_px.pixel_ap,
            dice=scores_px.dice,
            iou=scores_px.iou,
            dice_per_image=scores_px.dice_per_image,
            pixel_threshold=result.pixel_threshold,
        )
    if model.spec.task in TWO_OUTPUT_TASKS:
        result.metrics.update(_mask_verdict_metrics(labels, mask_scores, result.pixel_threshold))
    result.examples = pick_examples(model, samples, labels, scores, examples)
    return result


def _mask_verdict_metrics(
    labels: npt.NDArray[np.bool_], mask_scores: npt.NDArray[np.float64], pixel_threshold: float | None
) -> dict[str, float]:
    """A multi-task model's segmentation verdict: image AP of the mask's maximum, and its recall and
    precision at the pixel threshold (the mask is non-empty), the rule the edge applies to it."""
    cut = DEFAULT_PIXEL_THRESHOLD if pixel_threshold is None else pixel_threshold
    table = m.confusion(labels, mask_scores, cut)
    return {
        "mask_image_ap": m.average_precision(labels, mask_scores),
        "mask_recall": table.recall,
        "mask_precision": table.precision,
    }


def _image_metrics(
    task: str,
    samples: list[SampleFiles],
    labels: npt.NDArray[np.bool_],
    scores: npt.NDArray[np.float64],
    thresholds: Thresholds | None,
) -> Evaluation:
    f1, best = m.best_f1(labels, scores)
    values: dict[str, float] = {
        "image_ap": m.average_precision(labels, scores),
        "image_auroc": m.roc_auc(labels, scores),
        "f1": f1,
        "threshold": best,
        "images": float(labels.size),
        "defective": float(labels.sum()),
    }
    operating = best if thresholds is None else float(thresholds.image)
    table = m.confusion(labels, scores, operating) if np.isfinite(operating) else m.Confusion(0, 0, 0, 0)
    if thresholds is not None:
        values.update(
            operating_threshold=operating,
            operating_f1=table.f1,
            operating_precision=table.precision,
            operating_recall=table.recall,
            operating_false_reject_rate=table.false_reject_rate,
            operating_false_rejects=float(table.fp),
            operating_escapes=float(table.fn),
        )
    return Evaluation(task, [s.sample_id for s in samples], labels, scores, values, table, operating)


def pick_examples(
    model: OnnxModel,
    samples: Sequence[SampleFiles],
    labels: npt.NDArray[np.bool_],
    scores: npt.NDArray[np.float64],
    count: int,
) -> list[Example]:
    """A few telling images: surest and least sure defects, most and least suspicious good parts."""
    if count <= 0 or not len(samples):
        return []
    per_group = max(1, count // 4)
    chosen: list[int] = []
    for group in (np.flatnonzero(labels), np.flatnonzero(~labels)):
        ranked = group[np.argsort(-scores[group], kind="mergesort")]
        for index in [*ranked[:per_group], *ranked[::-1][:per_group]]:
            if int(index) not in chosen:
                chosen.append(int(index))
    loaded = [read_sample(samples[i]) for i in chosen[:count]]
    predictions = model.predict([s.image for s in loaded], with_masks=True)
    return [
        Example(s.files.sample_id, s.image, s.mask, p.probabilities, p.score)
        for s, p in zip(loaded, predictions, strict=True)
    ]


def json_ready(values: dict[str, Any]) -> dict[str, Any]:
    """NaN and infinity become ``None`` (JSON has neither); floats are rounded to 6 decimals."""
    ready: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, float):
            ready[key] = round(value, 6) if np.isfinite(value) else None
        else:
            ready[key] = value
    return ready
