"""A deterministic shifted image set: the validation frames as another line, lens or lamp would see them.

int8 can agree with fp32 on the validation split it was calibrated beside and still disagree on new
data: quantisation ranges come from calibration activations, and a darker surface or a softer lens
moves activations to where the int8 grid is coarse or clipped (issue: int8 passed 99% agreement on
validation, then rejected 9 of 204 good parts of a new surface against fp32's 2). When no held-out
family of frames is given (``--shift-data``), compile judges int8 on this set instead: every
validation frame under a few photometric and optical shifts, seeded so the same inputs always give the
same set (a gate must be repeatable). Labels are unchanged: none of these shifts adds or hides a defect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Images = npt.NDArray[np.uint8]
FloatImages = npt.NDArray[np.float32]
SHIFT_SOURCE = "synthetic: brightness, contrast, gamma, colour, blur, noise of the validation frames"


@dataclass(frozen=True)
class Shift:
    """One named change of every image (float pixels 0..255 in, same out; clipped afterwards)."""

    name: str
    apply: Callable[[FloatImages, np.random.Generator], FloatImages]


def _brightness(delta: float) -> Callable[[FloatImages, np.random.Generator], FloatImages]:
    return lambda x, _rng: x + delta


def _contrast(factor: float) -> Callable[[FloatImages, np.random.Generator], FloatImages]:
    def apply(x: FloatImages, _rng: np.random.Generator) -> FloatImages:
        mean = x.mean(axis=(1, 2, 3), keepdims=True)
        return np.asarray((x - mean) * factor + mean, np.float32)

    return apply


def _gamma(gamma: float) -> Callable[[FloatImages, np.random.Generator], FloatImages]:
    return lambda x, _rng: 255.0 * np.power(np.clip(x, 0, 255) / 255.0, gamma)


def _colour(gains: tuple[float, float, float]) -> Callable[[FloatImages, np.random.Generator], FloatImages]:
    scale = np.asarray(gains, np.float32).reshape(1, 3, 1, 1)
    return lambda x, _rng: x * scale


def _blur(x: FloatImages, _rng: np.random.Generator) -> FloatImages:
    """A 3x3 box blur (edge pixels repeated): a slightly defocused lens."""
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
    height, width = x.shape[2], x.shape[3]
    total = sum(padded[:, :, i : i + height, j : j + width] for i in range(3) for j in range(3))
    return np.asarray(total, np.float32) / 9.0


def _noise(sigma: float) -> Callable[[FloatImages, np.random.Generator], FloatImages]:
    return lambda x, rng: x + rng.normal(0.0, sigma, size=x.shape).astype(np.float32)


SHIFTS: tuple[Shift, ...] = (
    Shift("darker", _brightness(-40.0)),
    Shift("brighter", _brightness(40.0)),
    Shift("low-contrast", _contrast(0.6)),
    Shift("high-contrast", _contrast(1.4)),
    Shift("gamma-0.7", _gamma(0.7)),
    Shift("gamma-1.4", _gamma(1.4)),
    Shift("warm", _colour((1.15, 1.0, 0.85))),
    Shift("cool", _colour((0.85, 1.0, 1.15))),
    Shift("blur", _blur),
    Shift("noise", _noise(8.0)),
)
"""Strong enough to move activations off the calibration ranges, mild enough to keep every defect."""


def shifted_set(
    images: Images, labels: npt.NDArray[np.bool_] | None = None, seed: int = 0
) -> tuple[Images, npt.NDArray[np.bool_] | None]:
    """Every image under every shift in :data:`SHIFTS` (``len(SHIFTS) * N`` images), labels repeated.

    The images are the model's input (uint8 NCHW, after resize), so the colour shifts act on the
    channels in the model's own order.
    """
    rng = np.random.default_rng(seed)
    base = images.astype(np.float32)
    parts = [np.clip(np.rint(shift.apply(base, rng)), 0, 255).astype(np.uint8) for shift in SHIFTS]
    shifted_labels = np.tile(labels, len(SHIFTS)) if labels is not None else None
    return np.ascontiguousarray(np.concatenate(parts)), shifted_labels
