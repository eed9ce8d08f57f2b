"""Model outputs -> a :class:`~edgeinspect.core.messages.Prediction` (and a mask at frame resolution).

Follows ``docs/model-contract.md``: a classifier's score is its defect probability; a segmenter's
pixel is defect when ``p >= thresholds.pixel`` and its image score is the maximum pixel probability;
either is ``defect`` when ``score >= thresholds.image``. Logit outputs are accepted too (their
``meaning`` in the manifest says so) and turned into probabilities here, so thresholds always compare
probabilities, as evaluation chose them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from edgeinspect.core.errors import MessageError
from edgeinspect.core.messages import Prediction
from edgeinspect.core.package import Manifest, OutputSpec
from edgeinspect.core.preprocess import Geometry

Role = Literal["primary", "shadow"]
Mask = npt.NDArray[np.bool_]

_CLASSIFICATION = ("defect_probability", "defect_logit", "class_probabilities", "class_logits")
_SEGMENTATION = ("mask_probability", "mask_logit")


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
) -> ModelVerdict:
    """Judge one model's outputs with its own manifest's thresholds (``MessageError`` if malformed)."""
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
        return ModelVerdict(_prediction(manifest, score, latency_ms, role))
    pixel = float(manifest.thresholds.pixel if manifest.thresholds.pixel is not None else 0.5)
    score, model_mask = segmentation_score_and_mask(tensor, spec.meaning, pixel)
    if not want_mask:
        return ModelVerdict(_prediction(manifest, score, latency_ms, role))
    mask = geometry.to_frame(model_mask)
    area, bbox = mask_area_and_bbox(mask)
    return ModelVerdict(_prediction(manifest, score, latency_ms, role, area, bbox), mask)


def _prediction(
    manifest: Manifest,
    score: float,
    latency_ms: float,
    role: Role,
    area: int = 0,
    bbox: tuple[int, int, int, int] | None = None,
) -> Prediction:
    threshold = float(manifest.thresholds.image)
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
    return "defect" if score >= threshold else "ok"


def _output_spec(manifest: Manifest) -> OutputSpec:
    """The output that carries the task's answer (the first with a meaning the task understands)."""
    wanted = _CLASSIFICATION if manifest.task == "classification" else _SEGMENTATION
    for spec in manifest.outputs:
        if spec.meaning in wanted:
            return spec
    raise MessageError(
        f"{manifest.name}:{manifest.version} ({manifest.task}) has no output meaning one of {wanted}",
        hint="fix the manifest's outputs",
    )


def classification_score(tensor: npt.NDArray[Any], meaning: str) -> float:
    """The defect probability of one image from a classifier output of the given meaning.

    ``class_probabilities`` / ``class_logits`` are ``[1, K]`` with class 0 meaning *good*: the defect
    probability is then ``1 - p[0]`` (any defect class).
    """
    values = np.asarray(tensor, dtype=np.float64).reshape(-1)
    if values.size == 0:
        raise MessageError(f"classifier output ({meaning}) is empty")
    if meaning == "defect_probability":
        return _unit(float(values[0]))
    if meaning == "defect_logit":
        return _sigmoid(float(values[0]))
    if values.size < 2:
        raise MessageError(f"{meaning} needs at least two classes, got {values.size}")
    if meaning == "class_logits":
        shifted = np.exp(values - values.max())
        values = shifted / shifted.sum()
    return _unit(1.0 - float(values[0]))


def segmentation_score_and_mask(
    tensor: npt.NDArray[Any], meaning: str, pixel_threshold: float
) -> tuple[float, Mask]:
    """(max pixel probability, ``p >= pixel_threshold`` mask) of an ``[1, 1, H, W]`` segmenter output."""
    if tensor.ndim < 2:
        raise MessageError(f"segmentation output must be at least 2-D, got shape {tensor.shape}")
    plane = tensor.reshape(tensor.shape[-2], tensor.shape[-1])
    peak = float(plane.max())
    if meaning == "mask_logit":  # threshold in logit space: no exp over every pixel
        cut = _logit(pixel_threshold)
        return _sigmoid(peak), np.greater_equal(plane, cut)
    return _unit(peak), np.greater_equal(plane, pixel_threshold)


def mask_area_and_bbox(mask: Mask) -> tuple[int, tuple[int, int, int, int] | None]:
    """Defect pixels and their bounding box ``(x0, y0, x1, y1)``, ends exclusive; ``None`` when empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return 0, None
    cols = np.flatnonzero(mask.any(axis=0))
    area = int(np.count_nonzero(mask[rows[0] : rows[-1] + 1]))
    return area, (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


def _unit(value: float) -> float:
    """A probability clamped to [0, 1]; NaN or infinity means a broken model, never a silent 0."""
    if not math.isfinite(value):
        raise MessageError(f"model returned a non-finite score {value}", hint="check the model file")
    return min(1.0, max(0.0, value))


def _sigmoid(value: float) -> float:
    if math.isnan(value):
        raise MessageError("model returned a NaN logit", hint="check the model file")
    if math.isinf(value):
        return 1.0 if value > 0 else 0.0
    return 1.0 / (1.0 + math.exp(-value)) if value >= 0 else math.exp(value) / (1.0 + math.exp(value))


def _logit(probability: float) -> float:
    p = min(max(probability, 1e-12), 1 - 1e-12)
    return math.log(p / (1 - p))
