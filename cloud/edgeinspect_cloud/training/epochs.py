"""One training epoch's batches, the same for every framework: balanced, shuffled, augmented, cropped.

Each epoch oversamples defective images to ``config.defect_share`` (seeded by the config's seed and
the epoch), augments every batch (never validation images) and, with ``crop``, cuts full-width row
crops whose image label is then whether the crop holds a defect pixel. The framework supplies one
``step`` per batch (forward, loss, update) and gets the epoch's mean loss.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from edgeinspect_cloud.data.arrays import ArraySet
from edgeinspect_cloud.data.augment import augment_batch, balanced_order, crop_rows
from edgeinspect_cloud.training.config import TrainConfig

Step = Callable[[npt.NDArray[np.uint8], npt.NDArray[np.float32], npt.NDArray[np.float32]], float]
"""(uint8 images NCHW, masks NHW, image labels N) -> the batch's loss after one update."""


def run_epoch(train: ArraySet, cfg: TrainConfig, epoch: int, step: Step, *, crop: int | None = None) -> float:
    """One pass over the epoch's batches through ``step``; returns the mean loss (NaN if no batch)."""
    rng = np.random.default_rng([cfg.seed, epoch])
    order = balanced_order(train.labels, rng, cfg.defect_share)
    losses: list[float] = []
    batches = range(0, len(order) - cfg.batch_size + 1, cfg.batch_size)
    bar = tqdm(batches, desc=f"epoch {epoch}", unit="batch", leave=False, disable=not cfg.progress)
    for start in bar:
        index = order[start : start + cfg.batch_size]
        images, masks = augment_batch(train.images[index], train.masks[index], rng, cfg.augment)
        assert masks is not None
        labels = train.labels[index].astype(np.float32)
        if crop:
            images, masks = crop_rows(images, masks, rng, crop)
            labels = (masks.reshape(len(masks), -1).max(axis=1) > 0.5).astype(np.float32)
        losses.append(step(images, masks, labels))
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    return float(np.mean(losses)) if losses else float("nan")
