"""Training-time augmentation and class balancing, applied to TRAINING batches only.

Augmentation works on model-ready batches (``NxCxHxW`` uint8, as :mod:`edgeinspect.core.preprocess`
produced them) so the network always sees the exact pixel format the edge will feed it; masks
(``NxHxW`` float in [0, 1]) get the same geometric transform as their image. Validation and test
data never pass through here.

Imbalance (most parts are good) is handled by :func:`balanced_order`: each epoch repeats defective
images (with replacement) until they make up ``defect_share`` of the epoch, and augmentation makes
the repeats differ from one another.

:meth:`AugmentConfig.robust` adds what pushes a model to generalise across surfaces, lights and
cameras (``--augment robust``): gamma and per-channel colour jitter, grey conversion, blur, stronger
noise, and *texture mixing* (the fine detail of another good part in the batch laid over the image at
low weight, so the network cannot key on one surface's texture statistics). Each new step draws its
random numbers only when switched on, so the standard augmentation is unchanged, draw for draw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

Images = npt.NDArray[np.uint8]
Masks = npt.NDArray[np.float32]


@dataclass(frozen=True)
class AugmentConfig:
    """Strength of each augmentation; zero (or False) switches it off."""

    hflip: bool = True
    vflip: bool = True
    max_rotation_deg: float = 8.0
    brightness: float = 0.12
    contrast: float = 0.15
    noise_std: float = 4.0
    gamma: float = 0.0
    """Std of log(gamma): ``pixel = 255 * (pixel / 255) ** gamma``."""
    colour: float = 0.0
    """Largest per-channel gain change (a colour cast), e.g. 0.2 for gains in [0.8, 1.2]."""
    grey: float = 0.0
    """Probability of turning the image grey (a monochrome camera)."""
    blur: float = 0.0
    """Largest Gaussian blur sigma in pixels (half the images stay sharp)."""
    texture_mix: float = 0.0
    """Probability of overlaying another good image's fine texture (its high-pass) at weight 0.2-0.5."""

    @classmethod
    def off(cls) -> AugmentConfig:
        """No augmentation at all (for tests and for debugging a training run)."""
        return cls(False, False, 0.0, 0.0, 0.0, 0.0)

    @classmethod
    def robust(cls) -> AugmentConfig:
        """The standard geometry plus strong photometric, camera and texture jitter (``--augment robust``)."""
        return cls(
            brightness=0.2, contrast=0.3, noise_std=6.0, gamma=0.25, colour=0.2, grey=0.2, blur=1.2,
            texture_mix=0.3,
        )  # fmt: skip

    @classmethod
    def named(cls, name: str) -> AugmentConfig:
        """``standard``, ``robust`` or ``off`` (the ``--augment`` choices)."""
        choices = {"standard": cls(), "robust": cls.robust(), "off": cls.off()}
        if name not in choices:
            raise ValueError(f"unknown augmentation {name!r}; use one of {', '.join(choices)}")
        return choices[name]


def balanced_order(
    labels: npt.ArrayLike, rng: np.random.Generator, defect_share: float
) -> npt.NDArray[np.intp]:
    """One epoch's shuffled sample order, defective samples repeated to ``defect_share`` of it.

    Good samples appear once each; defective ones at least once (never dropped), more when they are
    rarer than ``defect_share``.
    """
    y = np.asarray(labels).astype(bool)
    good, bad = np.flatnonzero(~y), np.flatnonzero(y)
    order = [good, bad]
    if bad.size and 0.0 < defect_share < 1.0:
        wanted = round(good.size * defect_share / (1.0 - defect_share))
        if wanted > bad.size:
            order.append(rng.choice(bad, wanted - bad.size, replace=True))
    return rng.permutation(np.concatenate(order)).astype(np.intp)


def augment_batch(
    images: Images, masks: Masks | None, rng: np.random.Generator, config: AugmentConfig
) -> tuple[Images, Masks | None]:
    """Randomly flipped, rotated, brightened, contrasted and noised copies (inputs are not modified)."""
    out_images = images.copy()
    out_masks = None if masks is None else masks.copy()
    for index in range(images.shape[0]):
        image = out_images[index].transpose(1, 2, 0)
        mask = None if out_masks is None else out_masks[index]
        image, mask = _geometric(image, mask, rng, config)
        out_images[index] = _photometric(image, rng, config).transpose(2, 0, 1)
        if out_masks is not None and mask is not None:
            out_masks[index] = mask
    if config.texture_mix > 0 and masks is not None:
        _mix_textures(out_images, images, masks, rng, config.texture_mix)
    return out_images, out_masks


def _mix_textures(
    out: Images, originals: Images, masks: Masks, rng: np.random.Generator, chance: float
) -> None:
    """Overlay, on some images, the high-pass detail of another GOOD image of the batch (in place).

    Only good donors are used, so no defect is ever pasted where the mask says none is.
    """
    donors = np.flatnonzero(masks.reshape(len(masks), -1).max(axis=1) <= 0.5)
    if donors.size == 0:
        return
    for index in range(out.shape[0]):
        if rng.random() >= chance:
            continue
        donor = originals[int(donors[rng.integers(0, donors.size)])].transpose(1, 2, 0).astype(np.float32)
        detail = donor - np.asarray(cv2.GaussianBlur(donor, (0, 0), 3.0), dtype=np.float32).reshape(
            donor.shape
        )
        if float(rng.random()) < 0.5:
            detail = detail[::-1, ::-1]
        weight = float(rng.uniform(0.2, 0.5))
        work = out[index].transpose(1, 2, 0).astype(np.float32) + weight * detail
        out[index] = np.clip(np.rint(work), 0, 255).astype(np.uint8).transpose(2, 0, 1)


def _geometric(
    image: Images, mask: Masks | None, rng: np.random.Generator, config: AugmentConfig
) -> tuple[Images, Masks | None]:
    if config.hflip and rng.random() < 0.5:
        image, mask = image[:, ::-1], None if mask is None else mask[:, ::-1]
    if config.vflip and rng.random() < 0.5:
        image, mask = image[::-1], None if mask is None else mask[::-1]
    if config.max_rotation_deg > 0:
        angle = float(rng.uniform(-config.max_rotation_deg, config.max_rotation_deg))
        height, width = image.shape[:2]
        matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), angle, 1.0)
        image = np.asarray(_warp(image, matrix), dtype=np.uint8)
        if mask is not None:
            mask = np.asarray(_warp(mask, matrix), dtype=np.float32)
    return np.ascontiguousarray(image), None if mask is None else np.ascontiguousarray(mask)


def _warp(plane: npt.NDArray[Any], matrix: Any) -> npt.NDArray[Any]:
    """Rotate with bilinear interpolation, reflecting at the border (no black corners to learn from)."""
    height, width = plane.shape[:2]
    warped = cv2.warpAffine(
        np.ascontiguousarray(plane),
        matrix,
        (width, height),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT_101,
    )
    if plane.ndim == 3 and warped.ndim == 2:  # OpenCV drops a trailing axis of length 1
        warped = warped[:, :, None]
    return np.asarray(warped)


def _photometric(image: Images, rng: np.random.Generator, config: AugmentConfig) -> Images:
    if config.brightness == 0 and config.contrast == 0 and config.noise_std == 0:
        return image
    work = _camera(image.astype(np.float32), rng, config)
    mean = float(work.mean())
    gain = 1.0 + float(rng.uniform(-config.contrast, config.contrast))
    shift = 255.0 * float(rng.uniform(-config.brightness, config.brightness))
    work = (work - mean) * gain + mean + shift
    if config.noise_std > 0:
        sigma = float(rng.uniform(0.0, config.noise_std))
        work += rng.standard_normal(work.shape, dtype=np.float32) * sigma
    return np.clip(np.rint(work), 0, 255).astype(np.uint8)


def _camera(
    work: npt.NDArray[np.float32], rng: np.random.Generator, config: AugmentConfig
) -> npt.NDArray[np.float32]:
    """Gamma, colour cast, grey and blur (the robust steps; each draws only when switched on)."""
    if config.gamma > 0:
        work = 255.0 * (np.clip(work, 0, 255) / 255.0) ** float(np.exp(rng.normal(0.0, config.gamma)))
    if config.colour > 0 and work.shape[2] == 3:
        work = work * rng.uniform(1.0 - config.colour, 1.0 + config.colour, 3).astype(np.float32)
    if config.grey > 0 and rng.random() < config.grey:
        work = np.repeat(work.mean(axis=2, keepdims=True), work.shape[2], axis=2)
    if config.blur > 0 and rng.random() < 0.5:
        sigma = float(rng.uniform(0.3, config.blur))
        work = np.asarray(cv2.GaussianBlur(work, (0, 0), sigma), dtype=np.float32).reshape(work.shape)
    return np.asarray(work, dtype=np.float32)


def crop_rows(
    images: Images, masks: Masks, rng: np.random.Generator, height: int, focus: float = 0.8
) -> tuple[Images, Masks]:
    """Full-width crops of ``height`` rows; with probability ``focus`` a crop holds a defect pixel.

    A fully convolutional segmenter learns the same filters from crops as from whole images at a
    fraction of the cost; focusing most crops of defective images on their defect keeps the rare
    positive pixels from being cropped away.
    """
    total = images.shape[2]
    if height >= total:
        return images, masks
    out_images = np.empty((*images.shape[:2], height, images.shape[3]), np.uint8)
    out_masks = np.empty((masks.shape[0], height, masks.shape[2]), np.float32)
    for index in range(images.shape[0]):
        rows = np.flatnonzero(masks[index].max(axis=1) > 0.5)
        if rows.size and rng.random() < focus:
            centre = int(rows[rng.integers(0, rows.size)])
            top = int(np.clip(centre - rng.integers(0, height), 0, total - height))
        else:
            top = int(rng.integers(0, total - height + 1))
        out_images[index] = images[index, :, top : top + height]
        out_masks[index] = masks[index, top : top + height]
    return out_images, out_masks
