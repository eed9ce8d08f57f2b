"""Model outputs -> a :class:`~edgeinspect.core.messages.Prediction` (and a mask at frame resolution).

The arithmetic (scores, logits, pixel thresholds, area and box) is :mod:`edgeinspect.core.postprocess`,
the very functions the cloud evaluation uses; this module picks the manifest's output, maps the mask
back through the preprocessing geometry and builds the prediction, as ``docs/model-contract.md`` says:
a classifier's score is its defect probability; a segmenter's pixel is defect when
``p >= thresholds.pixel`` and its image score is the maximum pixel probability; either is ``defect``
when ``score >= thresholds.image``. A multi-task model's one answer becomes both predictions
(:func:`postprocess_all`): the classification one from its image score (``thresholds.image``), the
segmentation one from its mask, ``defect`` when the mask is not empty (maximum ``>= thresholds.pixel``).
A good-parts-only (``anomaly``) model gives one segmentation-style prediction: its calibrated image
score against ``thresholds.image`` and its anomaly map, thresholded at ``thresholds.pixel``, as the mask.
Logit outputs are turned into probabilities first, so thresholds always compare probabilities, as
evaluation chose them. ``thresholds`` replaces the manifest's when the line overrides them
(:mod:`.overrides`); the prediction records the threshold that decided.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from edgeinspect.core.errors import MessageError
from edgeinspect.core.messages import Prediction
from edgeinspect.core.package import Manifest, OutputSpec, Thresholds
from edgeinspect.core.postprocess import (
    CLASSIFICATION_MEANINGS,
    SEGMENTATION_MEANINGS,
    classification_score,
    is_defect,
    mask_area_and_bbox,
    segmentation_score_and_mask,
)
from edgeinspect.core.preprocess import Geometry

Role = Literal["primary", "shadow"]
Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class ModelVerdict:
    """One model's prediction for a frame, plus its binary mask at frame resolution (segmentation)."""

    prediction: Prediction
    mask: Mask | None = None


def postprocess_all(
    manifest: Manifest,
    outputs: Mapping[str, npt.NDArray[Any]],
    geometry: Geometry,
    *,
    latency_ms: float,
    role: Role = "primary",
    want_mask: bool = True,
    thresholds: Thresholds | None = None,
) -> list[ModelVerdict]:
    """Every verdict one model's outputs hold: one, or two for a ``multitask`` model (image score first)."""
    first = postprocess(
        manifest,
        outputs,
        geometry,
        latency_ms=latency_ms,
        role=role,
        want_mask=want_mask,
        thresholds=thresholds,
    )
    if manifest.task != "multitask":
        return [first]
    chosen = thresholds or manifest.thresholds
    pixel = _pixel_threshold(chosen)
    score, mask, area, bbox = _mask_answer(manifest, outputs, geometry, pixel, want_mask)
    second = _prediction(manifest, pixel, score, latency_ms, role, area, bbox, task="segmentation")
    return [first, ModelVerdict(second, mask)]


def postprocess(
    manifest: Manifest,
    outputs: Mapping[str, npt.NDArray[Any]],
    geometry: Geometry,
    *,
    latency_ms: float,
    role: Role = "primary",
    want_mask: bool = True,
    thresholds: Thresholds | None = None,
) -> ModelVerdict:
    """Judge one model's outputs with ``thresholds`` (default: its manifest's); ``MessageError`` if
    the outputs are malformed.

    A ``multitask`` model gives its classification verdict here (:func:`postprocess_all` gives both).
    """
    chosen = thresholds or manifest.thresholds
    if manifest.task == "anomaly":
        return _anomaly_verdict(manifest, outputs, geometry, chosen, latency_ms, role, want_mask)
    if manifest.task != "segmentation":
        spec, tensor = _answer(manifest, outputs, CLASSIFICATION_MEANINGS)
        score = classification_score(tensor, spec.meaning)
        return ModelVerdict(_prediction(manifest, chosen.image, score, latency_ms, role))
    score, mask, area, bbox = _mask_answer(manifest, outputs, geometry, _pixel_threshold(chosen), want_mask)
    return ModelVerdict(_prediction(manifest, chosen.image, score, latency_ms, role, area, bbox), mask)


def _anomaly_verdict(
    manifest: Manifest,
    outputs: Mapping[str, npt.NDArray[Any]],
    geometry: Geometry,
    thresholds: Thresholds,
    latency_ms: float,
    role: Role,
    want_mask: bool,
) -> ModelVerdict:
    """A good-parts-only model answers as a segmenter would: its calibrated image score against
    ``thresholds.image`` and its anomaly map, thresholded at ``thresholds.pixel``, as the mask."""
    spec, tensor = _answer(manifest, outputs, CLASSIFICATION_MEANINGS)
    score = classification_score(tensor, spec.meaning)
    _, mask, area, bbox = _mask_answer(manifest, outputs, geometry, _pixel_threshold(thresholds), want_mask)
    prediction = _prediction(
        manifest, thresholds.image, score, latency_ms, role, area, bbox, task="segmentation"
    )
    return ModelVerdict(prediction, mask)


def _pixel_threshold(thresholds: Thresholds) -> float:
    return float(thresholds.pixel if thresholds.pixel is not None else 0.5)


def _mask_answer(
    manifest: Manifest,
    outputs: Mapping[str, npt.NDArray[Any]],
    geometry: Geometry,
    pixel: float,
    want_mask: bool,
) -> tuple[float, Mask | None, int, tuple[int, int, int, int] | None]:
    """The mask output's image score, and (when wanted) its mask at frame resolution, area and box."""
    spec, tensor = _answer(manifest, outputs, SEGMENTATION_MEANINGS)
    score, model_mask = segmentation_score_and_mask(tensor, spec.meaning, pixel)
    if not want_mask:
        return score, None, 0, None
    mask = geometry.to_frame(model_mask)
    area, bbox = mask_area_and_bbox(mask)
    return score, mask, area, bbox


def _prediction(
    manifest: Manifest,
    threshold: float,
    score: float,
    latency_ms: float,
    role: Role,
    area: int = 0,
    bbox: tuple[int, int, int, int] | None = None,
    *,
    task: Literal["classification", "segmentation"] | None = None,
) -> Prediction:
    """The prediction of one task; a multi-task model's are ``task``-labelled like two models' would be."""
    threshold = float(threshold)
    return Prediction(
        model=manifest.name,
        version=manifest.version,
        task=task or ("segmentation" if manifest.task == "segmentation" else "classification"),
        label=_label(score, threshold),
        score=score,
        threshold=threshold,
        latency_ms=round(float(latency_ms), 3),
        role=role,
        defect_area_px=area,
        bbox=bbox,
    )


def _label(score: float, threshold: float) -> Literal["ok", "defect"]:
    return "defect" if is_defect(score, threshold) else "ok"


def _answer(
    manifest: Manifest, outputs: Mapping[str, npt.NDArray[Any]], wanted: tuple[str, ...]
) -> tuple[OutputSpec, npt.NDArray[Any]]:
    """The manifest's output with one of the ``wanted`` meanings, and the tensor returned for it."""
    spec = _output_spec(manifest, wanted)
    tensor = outputs.get(spec.name)
    if tensor is None:
        raise MessageError(
            f"{manifest.name}:{manifest.version} returned outputs {sorted(outputs)}, "
            f"not the {spec.name!r} its manifest names",
            hint="the model file and its manifest disagree; rebuild the package",
        )
    return spec, tensor


def _output_spec(manifest: Manifest, wanted: tuple[str, ...]) -> OutputSpec:
    """The first output with one of the ``wanted`` meanings (what a task's answer is)."""
    for spec in manifest.outputs:
        if spec.meaning in wanted:
            return spec
    raise MessageError(
        f"{manifest.name}:{manifest.version} ({manifest.task}) has no output meaning one of {wanted}",
        hint="fix the manifest's outputs",
    )
