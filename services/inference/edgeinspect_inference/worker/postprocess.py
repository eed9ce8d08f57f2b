"""Model outputs -> a :class:`~edgeinspect.core.messages.Prediction` (and a mask at frame resolution).

The arithmetic (scores, logits, pixel thresholds, area and box) is :mod:`edgeinspect.core.postprocess`,
the very functions the cloud evaluation uses; this module picks the manifest's output, maps the mask
back through the preprocessing geometry and builds the prediction, as ``docs/model-contract.md`` says:
a classifier's score is its defect probability; a segmenter's pixel is defect when
``p >= thresholds.pixel`` and its image score is the maximum pixel probability; either is ``defect``
when ``score >= thresholds.image``. Logit outputs are turned into probabilities first, so thresholds
always compare probabilities, as evaluation chose them. ``thresholds`` replaces the manifest's when
the line overrides them (:mod:`.overrides`); the prediction records the threshold that decided.
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
    the outputs are malformed."""
    chosen = thresholds or manifest.thresholds
    spec = _output_spec(manifest)
    tensor = outputs.get(spec.name)
    if tensor is None:
        raise MessageError(
            f"{manifest.name}:{manifest.version} returned outputs {sorted(outputs)}, "
            f"not the {spec.name!r} its manifest names",
            hint="the model file and its manifest disagree; rebuild the package",
        )
    if manifest.task == "classification":
        score = classification_score(tensor, spec.meaning)
        return ModelVerdict(_prediction(manifest, chosen.image, score, latency_ms, role))
    pixel = float(chosen.pixel if chosen.pixel is not None else 0.5)
    score, model_mask = segmentation_score_and_mask(tensor, spec.meaning, pixel)
    if not want_mask:
        return ModelVerdict(_prediction(manifest, chosen.image, score, latency_ms, role))
    mask = geometry.to_frame(model_mask)
    area, bbox = mask_area_and_bbox(mask)
    return ModelVerdict(_prediction(manifest, chosen.image, score, latency_ms, role, area, bbox), mask)


def _prediction(
    manifest: Manifest,
    image_threshold: float,
    score: float,
    latency_ms: float,
    role: Role,
    area: int = 0,
    bbox: tuple[int, int, int, int] | None = None,
) -> Prediction:
    threshold = float(image_threshold)
    return Prediction(
        model=manifest.name,
        version=manifest.version,
        task=manifest.task,
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


def _output_spec(manifest: Manifest) -> OutputSpec:
    """The output that carries the task's answer (the first with a meaning the task understands)."""
    wanted = CLASSIFICATION_MEANINGS if manifest.task == "classification" else SEGMENTATION_MEANINGS
    for spec in manifest.outputs:
        if spec.meaning in wanted:
            return spec
    raise MessageError(
        f"{manifest.name}:{manifest.version} ({manifest.task}) has no output meaning one of {wanted}",
        hint="fix the manifest's outputs",
    )
