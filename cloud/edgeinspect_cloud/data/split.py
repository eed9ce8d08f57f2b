"""Stratified, seeded train/validation split of a list of samples, done BEFORE any augmentation.

Splitting first is what keeps validation honest: an augmented copy of a validation image in the
training set (a flip, a brighter copy) would let the model memorise what it is then scored on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edgeinspect_cloud.errors import DatasetError

IndexArray = npt.NDArray[np.intp]


@dataclass(frozen=True)
class Split:
    """Indices into the sample list: disjoint, sorted, together covering every sample."""

    train: IndexArray
    val: IndexArray


def stratified_split(
    labels: npt.ArrayLike, val_fraction: float, seed: int, *, need_defects: bool = True
) -> Split:
    """Put ``val_fraction`` of each class (good, defective) into validation, chosen by ``seed``.

    Each class with at least two members gives validation at least one, so the validation set can
    measure recall even on a tiny dataset. Raises ``DatasetError`` for a fraction outside (0, 1) or a
    dataset without a single defective (or good) image, on which nothing can be learned or measured;
    ``need_defects=False`` (the good-parts-only model) accepts a dataset without defects.
    """
    y = np.asarray(labels).astype(bool)
    if not 0.0 < val_fraction < 1.0:
        raise DatasetError(f"validation fraction must be within (0, 1), got {val_fraction}", hint="e.g. 0.2")
    for value, name in ((True, "defective"), (False, "good")):
        if not np.any(y == value) and (need_defects or not value):
            raise DatasetError(
                f"the training split holds no {name} image",
                hint="a detector needs both good and defective examples (check the masks); with good "
                "frames only, train the anomaly model (--task anomaly)",
            )
    rng = np.random.default_rng([seed, 0x5B117])
    val: list[int] = []
    for value in (False, True):
        members = rng.permutation(np.flatnonzero(y == value))
        take = round(len(members) * val_fraction)
        if len(members) >= 2:
            take = min(max(take, 1), len(members) - 1)
        val.extend(int(i) for i in members[:take])
    val_idx = np.array(sorted(val), dtype=np.intp)
    train_idx = np.setdiff1d(np.arange(y.size), val_idx).astype(np.intp)
    return Split(train=train_idx, val=val_idx)
