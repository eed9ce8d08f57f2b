"""Domain randomisation: training families, the held-out family set, distractors, robust augmentation.

The held-out set exists to measure generalisation, so the tests pin down that it never reaches
training (disjoint family names, datasets that record what they hold, trainers that refuse it), that
generation stays seeded, that distractors are good parts, and that every family renders a valid image.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from edgeinspect_cloud.data import defects_extra, scenes, surfaces
from edgeinspect_cloud.data.augment import AugmentConfig, augment_batch
from edgeinspect_cloud.data.synth import family_set_of, write_dataset
from edgeinspect_cloud.errors import DatasetError
from edgeinspect_cloud.pipeline.layout import PipelineOptions, RunLayout
from edgeinspect_cloud.pipeline.steps_model import step_data
from edgeinspect_cloud.training.config import default_config
from edgeinspect_cloud.training.prepare import prepare_data


def _digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.png"))
    }


def test_heldout_families_and_defect_rules_share_nothing_with_training() -> None:
    assert not set(surfaces.HELDOUT_FAMILIES) & set(surfaces.TRAIN_FAMILIES)
    assert not set(defects_extra.HELDOUT_KINDS) & set(defects_extra.TRAIN_KINDS)
    assert set(scenes.family_names("heldout")) == set(surfaces.HELDOUT_FAMILIES)
    assert not set(scenes.family_names("train")) & set(surfaces.HELDOUT_FAMILIES)


def test_a_training_dataset_records_only_training_families(tmp_path: Path) -> None:
    summary = write_dataset(
        tmp_path / "d", count=40, defect_ratio=0.3, seed=4, families="train", height=96, width=48
    )
    assert summary.families == "train"
    assert sum(summary.family_counts.values()) == 40
    assert set(summary.family_counts) <= set(surfaces.TRAIN_FAMILIES)
    recorded = json.loads((tmp_path / "d" / "synth.json").read_text())
    assert recorded["families"] == "train" and family_set_of(tmp_path / "d") == "train"
    stems = {p.stem for p in (tmp_path / "d").rglob("*.png") if not p.stem.endswith("_GT")}
    assert set(recorded["image_families"]) == stems  # each image's family, for figures per family
    assert sorted(recorded["image_families"].values()) == sorted(
        name for name, n in summary.family_counts.items() for _ in range(n)
    )


@pytest.mark.parametrize("families", ["train", "heldout"])
def test_same_seed_same_bytes_for_every_family_set(tmp_path: Path, families: str) -> None:
    settings = {"count": 8, "defect_ratio": 0.5, "families": families, "height": 96, "width": 48}
    write_dataset(tmp_path / "a", seed=5, **settings)  # type: ignore[arg-type]
    write_dataset(tmp_path / "b", seed=5, **settings)  # type: ignore[arg-type]
    write_dataset(tmp_path / "c", seed=6, **settings)  # type: ignore[arg-type]
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    assert _digests(tmp_path / "a") != _digests(tmp_path / "c")


@pytest.mark.parametrize("name", [*surfaces.TRAIN_FAMILIES, *surfaces.HELDOUT_FAMILIES])
def test_every_family_renders_a_finite_standardised_texture(name: str) -> None:
    family = {**surfaces.TRAIN_FAMILIES, **surfaces.HELDOUT_FAMILIES}[name]
    plane, angle = family(np.random.default_rng(1), 80, 40)
    assert plane.shape == (80, 40) and plane.dtype == np.float32
    assert np.isfinite(plane).all() and np.isfinite(angle)
    assert abs(float(plane.mean())) < 1e-3 and abs(float(plane.std()) - 1.0) < 1e-2


@pytest.mark.parametrize("family_set", ["train", "heldout"])
def test_scenes_are_valid_images_with_masks_only_on_defective_parts(family_set: str) -> None:
    for index in range(12):
        defective = index % 2 == 0
        rng = np.random.default_rng([7, index])
        image, mask, family = scenes.render_scene(rng, 128, 48, defective, family_set)  # type: ignore[arg-type]
        assert image.shape == (128, 48, 3) and image.dtype == np.uint8
        assert float(image.std()) > 1.0  # not a flat or saturated frame
        assert mask.shape == (128, 48) and set(np.unique(mask)) <= {0, 255}
        assert bool(mask.any()) == defective
        assert family in scenes.family_names(family_set)  # type: ignore[arg-type]


def test_procedural_surfaces_differ_from_part_to_part_and_cover_every_primitive() -> None:
    """The procedural family is a new surface each time, drawn from all of its generic primitives."""
    from edgeinspect_cloud.data import procedural

    planes = [procedural.procedural(np.random.default_rng([2, i]), 96, 48)[0] for i in range(6)]
    for a, b in itertools.pairwise(planes):
        assert float(np.abs(np.corrcoef(a.ravel(), b.ravel())[0, 1])) < 0.9
    for name, primitive in procedural.PRIMITIVES.items():
        layer = primitive(np.random.default_rng(4), 96, 48, 30.0)
        assert layer.shape == (96, 48) and np.isfinite(layer).all() and float(layer.std()) > 0, name
    drawn = {scenes.render_scene(np.random.default_rng([8, i]), 64, 32, False, "train")[2] for i in range(40)}
    assert "procedural" in drawn and len(drawn) >= 6


def test_irregular_flaws_vary_in_shape_and_sign_and_are_always_masked() -> None:
    signs = set()
    for index in range(24):
        defect = defects_extra.irregular(np.random.default_rng([3, index]), 96, 48, 0.04)
        assert defect.kind == "irregular" and defect.mask.sum() >= 4
        assert np.abs(defect.effect[~defect.mask]).max() < np.abs(defect.effect[defect.mask]).max()
        signs.add(float(np.sign(defect.effect[defect.mask].sum())))
    assert signs == {-1.0, 1.0}


def test_a_one_surface_line_keeps_the_sets_draws_and_refuses_a_foreign_surface(tmp_path: Path) -> None:
    settings = {"count": 6, "defect_ratio": 0.5, "seed": 3, "height": 64, "width": 32}
    line = write_dataset(tmp_path / "s", families="heldout", surface="spangle", **settings)  # type: ignore[arg-type]
    assert line.family_counts == {"spangle": 6} and line.surface == "spangle"
    mixed = write_dataset(tmp_path / "m", families="heldout", **settings)  # type: ignore[arg-type]
    same = {stem for stem, family in mixed.image_families.items() if family == "spangle"}
    line_files, mixed_files = _digests(tmp_path / "s"), _digests(tmp_path / "m")
    shared = [name for name in line_files if Path(name).stem.removesuffix("_GT") in same]
    assert shared and all(line_files[n] == mixed_files[n] for n in shared)  # same part, same bytes
    for surface, families in (("spangle", "train"), ("brushed", "classic"), ("nope", "heldout")):
        with pytest.raises(DatasetError, match="is not a family of"):
            write_dataset(tmp_path / surface / families, families=families, surface=surface, **settings)  # type: ignore[arg-type]


def test_distractors_mark_good_parts_which_stay_labelled_good() -> None:
    """Good parts carry defect-like marks (dust, fibres, smudges, lines along the grain) and no mask."""
    marked = 0
    for index in range(20):
        rng = np.random.default_rng([9, index])
        plane = scenes.distractors(rng, 96, 48, angle=90.0, strength=0.04)
        marked += int(np.abs(plane).max() > 0.01)
        _, mask, _ = scenes.render_scene(np.random.default_rng([9, index]), 96, 48, False, "train")
        assert not mask.any()
    assert marked >= 15
    line = defects_extra.texture_line(np.random.default_rng(3), 96, 48, 90.0, 0.04)
    columns = np.flatnonzero(np.abs(line).max(axis=0) > 0)
    if columns.size:  # a benign mark runs the whole part along the grain, edge to edge
        assert (np.abs(line[:, columns]).max(axis=1) > 0).all()


def test_training_and_the_pipeline_refuse_the_heldout_set(tmp_path: Path) -> None:
    heldout = tmp_path / "heldout"
    write_dataset(heldout, count=12, defect_ratio=0.5, seed=1, families="heldout", height=96, width=48)
    config = default_config("classification", quick=True).with_overrides(progress=False)
    with pytest.raises(DatasetError, match="held-out"):
        prepare_data(heldout, config)
    options = PipelineOptions(run_dir=tmp_path / "run", tasks=["classification"], datasets=[heldout])
    with pytest.raises(DatasetError, match="held-out"):
        step_data(options, RunLayout(options.run_dir))
    fine_tune = replace(options, init_from=["defect-cls:1"])
    with pytest.raises(DatasetError, match="held-out"):  # the mixed set: never, whatever the purpose
        step_data(fine_tune, RunLayout(options.run_dir))


def test_a_one_surface_heldout_line_is_a_new_line_for_fine_tunes_and_the_anomaly_model_only(
    tmp_path: Path,
) -> None:
    line = tmp_path / "line"
    write_dataset(
        line, count=12, defect_ratio=0.5, seed=1, families="heldout", surface="twill", height=96, width=48
    )
    scratch = default_config("classification", quick=True).with_overrides(progress=False)
    with pytest.raises(DatasetError, match="held-out"):
        prepare_data(line, scratch)
    assert prepare_data(line, scratch.with_overrides(init_weights="parent.pt")).train.images.size
    assert prepare_data(line, default_config("anomaly", quick=True)).train.images.size
    options = PipelineOptions(run_dir=tmp_path / "run", tasks=["segmentation"], datasets=[line])
    with pytest.raises(DatasetError, match="held-out"):
        step_data(options, RunLayout(options.run_dir))
    assert step_data(replace(options, init_from=["defect-seg:2"]), RunLayout(options.run_dir))["total"]


def test_classic_is_still_the_default_and_refuses_nothing(tmp_path: Path) -> None:
    summary = write_dataset(tmp_path / "c", count=6, defect_ratio=0.5, seed=2, height=96, width=48)
    assert summary.families == "classic" and summary.family_counts == {}
    with pytest.raises(DatasetError, match="classic family set"):
        write_dataset(
            tmp_path / "x", count=6, seed=2, families="train", brightness_shift=-20, height=96, width=48
        )


def test_robust_augmentation_is_seeded_keeps_masks_and_mixes_only_good_textures() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 3, 32, 16), dtype=np.uint8)
    masks = np.zeros((6, 32, 16), np.float32)
    masks[0, 10:14, 4:8] = 1.0
    config = replace(AugmentConfig.robust(), hflip=False, vflip=False, max_rotation_deg=0.0)
    first = augment_batch(images, masks, np.random.default_rng(5), config)
    second = augment_batch(images, masks, np.random.default_rng(5), config)
    assert np.array_equal(first[0], second[0])
    assert first[1] is not None and np.array_equal(first[1], masks)  # photometric steps leave masks alone
    assert not np.array_equal(first[0], images)
    only_defective = np.zeros_like(masks) + 1.0
    mixed_off = replace(config, texture_mix=1.0)
    plain = replace(config, texture_mix=0.0)
    a = augment_batch(images, only_defective, np.random.default_rng(2), mixed_off)[0]
    b = augment_batch(images, only_defective, np.random.default_rng(2), plain)[0]
    assert np.array_equal(a, b)  # no good donor in the batch: nothing is mixed in
    assert AugmentConfig.named("standard") == AugmentConfig()
    with pytest.raises(ValueError, match="unknown augmentation"):
        AugmentConfig.named("strong")
