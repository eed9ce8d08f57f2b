"""The synthetic KolektorSDD2-style generator: seeded, in the real layout, imbalanced, and not trivial."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from edgeinspect_cloud.data.dataset import list_split, read_labels, read_sample
from edgeinspect_cloud.data.synth import plan_labels, render_sample, write_dataset
from edgeinspect_cloud.errors import DatasetError
from PIL import Image

from tests.unit.cloud.synth_helpers import TRIVIAL, trivial_baseline_aps


def _digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.png"))
    }


def test_same_seed_writes_the_same_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    settings = {"count": 12, "defect_ratio": 0.25, "height": 96, "width": 48}
    write_dataset(tmp_path / "a", seed=5, **settings)
    write_dataset(tmp_path / "b", seed=5, **settings)
    write_dataset(tmp_path / "c", seed=6, **settings)
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    assert _digests(tmp_path / "a") != _digests(tmp_path / "c")


def test_layout_matches_kolektorsdd2(tmp_path: Path) -> None:
    summary = write_dataset(tmp_path, count=20, defect_ratio=0.3, seed=1, height=128, width=64)
    for split in ("train", "test"):
        names = sorted(p.name for p in (tmp_path / split).iterdir())
        images = [n for n in names if not n.endswith("_GT.png")]
        assert images, split
        for name in images:
            assert len(Path(name).stem) == 5 and Path(name).stem.isdigit()
            assert f"{Path(name).stem}_GT.png" in names
            image = Image.open(tmp_path / split / name)
            mask = Image.open(tmp_path / split / f"{Path(name).stem}_GT.png")
            assert image.mode == "RGB" and image.size == (64, 128)
            assert mask.mode == "L" and mask.size == (64, 128)
            assert set(np.unique(np.asarray(mask)).tolist()) <= {0, 255}
    assert json.loads((tmp_path / "synth.json").read_text())["train_images"] == summary.train_images
    assert summary.train_images + summary.test_images == 20


def test_default_size_is_kolektorsdd2s(tmp_path: Path) -> None:
    write_dataset(tmp_path, count=2, defect_ratio=0.5, seed=0, test_fraction=0.0)
    sample = read_sample(list_split(tmp_path, "train")[0])
    assert sample.image.shape == (640, 232, 3)


def test_requested_imbalance_holds_in_both_splits(tmp_path: Path) -> None:
    summary = write_dataset(tmp_path, count=40, defect_ratio=0.25, seed=2, height=64, width=48)
    assert summary.train_defective + summary.test_defective == 10
    assert summary.test_images == 12 and summary.test_defective == 3  # 30% of each class
    train_labels = read_labels(list_split(tmp_path, "train"))
    assert int(train_labels.sum()) == summary.train_defective


def test_defective_images_have_masks_and_good_ones_do_not() -> None:
    for index in range(12):
        rng = np.random.default_rng([0, index])
        _, mask = render_sample(rng, 160, 64, defective=index % 2 == 0)
        assert mask.any() == (index % 2 == 0)


def test_labels_plan_is_seeded_and_stratified() -> None:
    defective, test = plan_labels(100, 0.2, 0.3, seed=4)
    again, test_again = plan_labels(100, 0.2, 0.3, seed=4)
    assert np.array_equal(defective, again) and np.array_equal(test, test_again)
    assert int(defective.sum()) == 20
    assert int((defective & test).sum()) == 6 and int((~defective & test).sum()) == 24


def test_refuses_to_mix_into_an_existing_dataset(tmp_path: Path) -> None:
    write_dataset(tmp_path, count=4, defect_ratio=0.5, seed=0, height=64, width=48)
    with pytest.raises(DatasetError, match="already holds files"):
        write_dataset(tmp_path, count=4, defect_ratio=0.5, seed=1, height=64, width=48)


@pytest.mark.parametrize(
    ("settings", "message"),
    [({"count": 1}, "count"), ({"defect_ratio": 1.5}, "defect ratio"), ({"height": 8}, "at least 32x32")],
)
def test_impossible_settings_are_refused(tmp_path: Path, settings: dict[str, float], message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        write_dataset(tmp_path, **settings)  # type: ignore[arg-type]


def test_trivial_thresholds_score_near_chance() -> None:
    images, labels = [], []
    for index in range(200):
        defective = index % 5 == 0
        image, _ = render_sample(np.random.default_rng([11, index]), 640, 232, defective)
        images.append(image)
        labels.append(defective)
    aps = trivial_baseline_aps(images, np.array(labels))
    # prevalence is 0.2: chance AP; a useful detector is near 1
    assert max(aps[key] for key in TRIVIAL) < 0.35, aps
    assert max(aps.values()) < 0.6, aps
