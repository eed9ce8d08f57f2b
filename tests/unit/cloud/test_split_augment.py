"""Split first, then augment: stratified seeded split, no leakage, masks that follow their images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from edgeinspect.core.preprocess import preprocess
from edgeinspect_cloud.data.arrays import input_spec
from edgeinspect_cloud.data.augment import AugmentConfig, augment_batch, balanced_order
from edgeinspect_cloud.data.dataset import read_sample
from edgeinspect_cloud.data.split import stratified_split
from edgeinspect_cloud.data.synth import write_dataset
from edgeinspect_cloud.errors import DatasetError
from edgeinspect_cloud.training.config import default_config
from edgeinspect_cloud.training.prepare import prepare_data


def test_split_is_stratified_disjoint_complete_and_seeded() -> None:
    labels = np.array([True] * 20 + [False] * 80)
    split = stratified_split(labels, 0.25, seed=3)
    assert np.intersect1d(split.train, split.val).size == 0
    assert sorted([*split.train, *split.val]) == list(range(100))
    assert int(labels[split.val].sum()) == 5 and split.val.size == 25
    again = stratified_split(labels, 0.25, seed=3)
    assert np.array_equal(split.val, again.val)
    assert not np.array_equal(split.val, stratified_split(labels, 0.25, seed=4).val)


def test_tiny_classes_still_reach_validation() -> None:
    labels = np.array([True, True] + [False] * 10)
    split = stratified_split(labels, 0.1, seed=0)
    assert int(labels[split.val].sum()) == 1 and int(labels[split.train].sum()) == 1


@pytest.mark.parametrize("labels", [[False] * 5, [True] * 5])
def test_split_needs_both_classes(labels: list[bool]) -> None:
    with pytest.raises(DatasetError, match="holds no"):
        stratified_split(labels, 0.2, seed=0)


def test_balanced_epoch_keeps_every_image_and_oversamples_defects() -> None:
    labels = np.array([True] * 10 + [False] * 90)
    order = balanced_order(labels, np.random.default_rng(0), defect_share=0.4)
    assert sorted(set(order.tolist())) == list(range(100))
    good = order[~labels[order]]
    assert sorted(good.tolist()) == list(range(10, 100))
    assert abs(labels[order].mean() - 0.4) < 0.01


def test_augmented_masks_follow_their_images() -> None:
    rng = np.random.default_rng(1)
    masks = np.zeros((6, 40, 24), np.float32)
    for index in range(6):
        y, x = rng.integers(4, 30), rng.integers(2, 16)
        masks[index, y : y + 8, x : x + 6] = 1.0
    images = np.zeros((6, 3, 40, 24), np.uint8)
    images[:, 0] = (masks * 255).astype(np.uint8)
    geometric_only = AugmentConfig(max_rotation_deg=10.0, brightness=0.0, contrast=0.0, noise_std=0.0)
    out_images, out_masks = augment_batch(images, masks, rng, geometric_only)
    assert out_masks is not None
    for index in range(6):
        bright, marked = out_images[index, 0] > 127, out_masks[index] > 0.5
        overlap = (bright & marked).sum() / max(1, (bright | marked).sum())
        assert overlap > 0.85
    assert np.array_equal(images[:, 0], (masks * 255).astype(np.uint8)), "inputs must not be modified"


def test_photometric_augmentation_changes_pixels_but_not_the_mask() -> None:
    rng = np.random.default_rng(2)
    images = rng.integers(60, 200, (4, 3, 16, 16), dtype=np.uint8)
    masks = rng.random((4, 16, 16)).astype(np.float32)
    photometric = AugmentConfig(hflip=False, vflip=False, max_rotation_deg=0.0)
    out_images, out_masks = augment_batch(images, masks, rng, photometric)
    assert out_images.dtype == np.uint8 and not np.array_equal(out_images, images)
    assert out_masks is not None and np.array_equal(out_masks, masks)


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("leak")
    write_dataset(root, count=50, defect_ratio=0.3, seed=9, height=64, width=48, test_fraction=0.0)
    return root


def test_no_validation_image_or_augmented_copy_reaches_training(small_dataset: Path) -> None:
    config = default_config("classification", quick=True).with_overrides(
        height=64, img_width=48, val_fraction=0.3, progress=False
    )
    data = prepare_data(small_dataset, config)
    assert not set(data.train.ids) & set(data.val.ids)
    assert len(data.train) + len(data.val) == 50
    assert int(data.val.labels.sum()) == 4  # 30% of the 15 defective images, stratified
    variants = {
        flipped.tobytes()
        for image in data.val.images
        for flipped in (image, image[:, ::-1], image[:, :, ::-1], image[:, ::-1, ::-1])
    }
    flips_only = AugmentConfig(max_rotation_deg=0.0, brightness=0.0, contrast=0.0, noise_std=0.0)
    rng = np.random.default_rng(0)
    for _epoch in range(3):
        order = balanced_order(data.train.labels, rng, config.defect_share)
        batch, _ = augment_batch(data.train.images[order], None, rng, flips_only)
        assert not {image.tobytes() for image in batch} & variants


def test_training_arrays_come_from_core_preprocess(small_dataset: Path) -> None:
    config = default_config("segmentation", quick=True).with_overrides(
        height=32, img_width=24, val_fraction=0.3, progress=False
    )
    data = prepare_data(small_dataset, config)
    spec = input_spec(32, 24)
    sample = read_sample(data.val_files[0])
    assert np.array_equal(data.val.images[0], preprocess(sample.image, spec).tensor[0])
    assert data.val.masks.shape == (len(data.val), 32, 24)
    assert data.val.masks.min() >= 0.0 and data.val.masks.max() <= 1.0
    assert len(data.fingerprint) == 64


def test_rehearsed_frames_join_training_only(small_dataset: Path, tmp_path: Path) -> None:
    """A fine-tune's earlier line trains beside the new one; validation stays the new line's own."""
    old = tmp_path / "old"
    write_dataset(old, count=10, defect_ratio=0.4, seed=9, height=64, width=32)
    config = default_config("classification", quick=True).with_overrides(progress=False)
    alone = prepare_data(small_dataset, config)
    both = prepare_data(small_dataset, config.with_overrides(rehearse=(str(old),)))
    rehearsed = {f.image_path for f in both.train_files} - {f.image_path for f in alone.train_files}
    assert rehearsed == {f.image_path for f in both.train_files if f.image_path.is_relative_to(old)}
    assert len(rehearsed) == len(list((old / "train").glob("?????.png")))
    assert [f.image_path for f in both.val_files] == [f.image_path for f in alone.val_files]
    assert both.fingerprint == alone.fingerprint and len(both.train.images) == len(both.train_files)
