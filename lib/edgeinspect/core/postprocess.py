"""THE one postprocessing path: a model's raw output tensor becomes a score and (segmentation) a mask.

The counterpart of :mod:`edgeinspect.core.preprocess`: the edge worker judges a frame with these
functions and the cloud evaluation scores a model with them, so the thresholds stored in a manifest
mean the same thing in both places (``docs/model-contract.md``):

- classification: the score is the defect probability (``defect_probability``; logits and
  ``class_*`` outputs are converted, class 0 meaning *good*);
- segmentation: a pixel is defect when ``p >= thresholds.pixel``; the image score is the MAXIMUM
  pixel probability over the model's whole input canvas; the mask returns to the frame's resolution
  with :meth:`edgeinspect.core.preprocess.Geometry.to_frame` (nearest neighbour, so it stays binary);
- either is ``defect`` when ``score >= thresholds.image``.

Errors are :class:`~edgeinspect.core.errors.MessageError`: a malformed output is a broken message
from the model, never silently a score of 0.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from edgeinspect.core.errors import MessageError

Mask = npt.NDArray[np.bool_]

CLASSIFICATION_MEANINGS = ("defect_probability", "defect_logit", "class_probabilities", "class_logits")
SEGMENTATION_MEANINGS = ("mask_probability", "mask_logit")


def is_defect(score: float, threshold: float) -> bool:
    """The verdict rule everywhere: ``score >= threshold`` (a score AT the threshold is a defect)."""
    return score >= threshold


def classification_score(tensor: npt.NDArray[Any], meaning: str) -> float:
    """The defect probability of ONE image from a classifier output of the given ``meaning``.

    ``class_probabilities`` / ``class_logits`` are ``[1, K]`` with class 0 meaning *good*: the defect
    probability is then ``1 - p[0]`` (any defect class).
    """
    values = np.asarray(tensor, dtype=np.float64).reshape(-1)
    if values.size == 0:
        raise MessageError(f"classifier output ({meaning}) is empty")
    if meaning == "defect_probability":
        return unit(float(values[0]))
    if meaning == "defect_logit":
        return sigmoid(float(values[0]))
    if meaning not in CLASSIFICATION_MEANINGS:
        raise MessageError(f"{meaning!r} is not a classifier output", hint="fix the manifest's outputs")
    if values.size < 2:
        raise MessageError(f"{meaning} needs at least two classes, got {values.size}")
    if meaning == "class_logits":
        shifted = np.exp(values - values.max())
        values = shifted / shifted.sum()
    return unit(1.0 - float(values[0]))


def mask_plane(tensor: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """The ``HxW`` plane of ONE image's segmenter output (``[1, 1, H, W]``, ``[1, H, W]`` or ``[H, W]``)."""
    if tensor.ndim < 2 or math.prod(tensor.shape[:-2]) != 1:
        raise MessageError(
            f"segmentation output must hold one HxW plane, got shape {tensor.shape}",
            hint="the model must output mask_probability [N, 1, H, W]; pass one image's slice",
        )
    return tensor.reshape(tensor.shape[-2], tensor.shape[-1])


def mask_probabilities(tensor: npt.NDArray[Any], meaning: str) -> npt.NDArray[np.float32]:
    """Per-pixel defect probabilities (``HxW`` float32) of one image, whatever the output's meaning."""
    plane = mask_plane(tensor).astype(np.float32)
    if meaning == "mask_logit":
        plane = (1.0 / (1.0 + np.exp(-np.clip(plane, -60.0, 60.0)))).astype(np.float32)
    elif meaning != "mask_probability":
        raise MessageError(f"{meaning!r} is not a segmenter output", hint="fix the manifest's outputs")
    if not np.all(np.isfinite(plane)):
        raise MessageError("model returned non-finite mask values", hint="check the model file")
    return plane


def segmentation_score_and_mask(
    tensor: npt.NDArray[Any], meaning: str, pixel_threshold: float
) -> tuple[float, Mask]:
    """(max pixel probability, ``p >= pixel_threshold`` mask) of one image's segmenter output."""
    plane = mask_plane(tensor)
    peak = float(plane.max())
    if meaning == "mask_logit":  # threshold in logit space: no exp over every pixel
        cut = logit(pixel_threshold)
        return sigmoid(peak), np.greater_equal(plane, cut)
    if meaning != "mask_probability":
        raise MessageError(f"{meaning!r} is not a segmenter output", hint="fix the manifest's outputs")
    return unit(peak), np.greater_equal(plane, pixel_threshold)


def mask_area_and_bbox(mask: Mask) -> tuple[int, tuple[int, int, int, int] | None]:
    """Defect pixels and their bounding box ``(x0, y0, x1, y1)``, ends exclusive; ``None`` when empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return 0, None
    cols = np.flatnonzero(mask.any(axis=0))
    area = int(np.count_nonzero(mask[rows[0] : rows[-1] + 1]))
    return area, (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


def unit(value: float) -> float:
    """A probability clamped to [0, 1]; NaN or infinity means a broken model, never a silent 0."""
    if not math.isfinite(value):
        raise MessageError(f"model returned a non-finite score {value}", hint="check the model file")
    return min(1.0, max(0.0, value))


def sigmoid(value: float) -> float:
    """The logistic function, without overflow for large negative inputs."""
    if math.isnan(value):
        raise MessageError("model returned a NaN logit", hint="check the model file")
    if math.isinf(value):
        return 1.0 if value > 0 else 0.0
    return 1.0 / (1.0 + math.exp(-value)) if value >= 0 else math.exp(value) / (1.0 + math.exp(value))


def logit(probability: float) -> float:
    """The inverse of :func:`sigmoid`, clamped away from 0 and 1."""
    p = min(max(probability, 1e-12), 1 - 1e-12)
    return math.log(p / (1 - p))
