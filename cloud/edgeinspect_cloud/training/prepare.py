"""Turn a dataset folder into training and validation arrays: list, split, THEN load (never augment here).

The split happens on the file list, before a single pixel is read or augmented, so no validation image
(nor any altered copy of it) can reach the training arrays. Augmentation happens later, batch by batch,
on the training arrays only (:mod:`edgeinspect_cloud.data.augment`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from edgeinspect.core.package import InputSpec

from edgeinspect_cloud.data.arrays import ArraySet, input_spec, load_arrays
from edgeinspect_cloud.data.dataset import SampleFiles, list_split, read_labels
from edgeinspect_cloud.data.fingerprint import dataset_fingerprint
from edgeinspect_cloud.data.split import stratified_split
from edgeinspect_cloud.data.synth import refuse_heldout
from edgeinspect_cloud.training.config import TrainConfig


@dataclass
class PreparedData:
    """Model-ready training and validation arrays, the files behind them, and the dataset fingerprint."""

    spec: InputSpec
    train: ArraySet
    val: ArraySet
    train_files: list[SampleFiles]
    val_files: list[SampleFiles]
    fingerprint: str


def _rehearsal(config: TrainConfig) -> list[SampleFiles]:
    """Every ``train/`` frame of the rehearsed earlier lines: training batches only, never validation."""
    files: list[SampleFiles] = []
    for root in config.rehearse:
        refuse_heldout(root)
        files += list_split(root, "train")
    return files


def prepare_data(dataset_dir: str | Path, config: TrainConfig, *, split: str = "train") -> PreparedData:
    """Split ``dataset_dir/split`` (stratified, seeded), then load both parts through core preprocessing.

    ``config.max_train_images`` caps the training part (stratified by keeping the defect ratio), for
    quick runs on a big dataset. ``config.rehearse`` datasets' training frames are added to the
    training part after the split (a fine-tune's earlier lines). A held-out family set (``data synth
    --families heldout``) is refused, except a one-surface held-out line for a fine-tune or the
    good-parts-only model (new-line cases).
    """
    refuse_heldout(dataset_dir, new_line=config.init_weights is not None or config.task == "anomaly")
    files = list_split(dataset_dir, split)
    labels = read_labels(files)
    need_defects = config.task != "anomaly"  # the good-parts-only model trains on a line without any
    parts = stratified_split(labels, config.val_fraction, config.seed, need_defects=need_defects)
    train_idx = parts.train
    if config.max_train_images is not None and train_idx.size > config.max_train_images:
        keep = stratified_split(
            labels[train_idx],
            config.max_train_images / train_idx.size,
            config.seed,
            need_defects=need_defects,
        )
        train_idx = np.sort(train_idx[keep.val])
    spec = input_spec(config.height, config.img_width, mode=config.resize_mode)
    train_files = [files[i] for i in train_idx] + _rehearsal(config)
    val_files = [files[i] for i in parts.val]
    return PreparedData(
        spec=spec,
        train=load_arrays(train_files, spec, progress=config.progress),
        val=load_arrays(val_files, spec, progress=config.progress),
        train_files=train_files,
        val_files=val_files,
        fingerprint=dataset_fingerprint(dataset_dir),
    )
