"""The good-parts-only (anomaly) model: calibration from good frames, training without defects, packaging.

Tiny data (a few dozen 64x48 synthetic frames) and the quick profile: seconds. The figures are not the
point; what is: defects never reach the fit, the calibration reads good frames only, the ONNX model
answers a calibrated score and map, and a package of it round-trips with ``task: anomaly``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from edgeinspect.core.package import unpack_package
from edgeinspect_cloud.data.synth import write_dataset
from edgeinspect_cloud.errors import TrainingError
from edgeinspect_cloud.training.anomaly import (
    _cross_fitted_scores,
    _features,
    _raw_scores,
    _rows,
    calibration,
    train_anomaly,
)
from edgeinspect_cloud.training.anomaly_net import AnomalyNet, ContractAnomaly
from edgeinspect_cloud.training.config import ANOMALY_POLICY, TrainConfig, default_config

from tests.helpers.models import make_keys
from tests.helpers.trained import package_result


def tiny_config() -> TrainConfig:
    return default_config("anomaly", quick=True).with_overrides(height=64, img_width=48, progress=False)


def test_calibration_rejects_at_most_the_allowed_share_of_good_frames() -> None:
    good = np.arange(1.0, 101.0)  # 100 good validation scores
    threshold, spread = calibration(good, "max-false-reject:0.02")
    assert threshold == pytest.approx(98.5)  # two flagged (100, 99), halfway to the next
    assert spread == pytest.approx(np.std(good))
    strict, _ = calibration(good, "max-false-reject:0")
    assert strict > good.max()  # none flagged: above the highest good score
    assert (good > strict).sum() == 0


def test_cross_fitting_scores_each_training_frame_by_a_fit_that_never_saw_it() -> None:
    rng = np.random.default_rng(5)
    frames = rng.integers(90, 110, size=(10, 3, 32, 32), dtype=np.uint8)
    frames[3, :, 10:14, 10:14] = 250  # one good frame unlike the others (a glint, say)
    model = ContractAnomaly(AnomalyNet(4, seed=0), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    model.eval()
    features = _features(model, frames)
    held_out = _cross_fitted_scores(model, features, (32, 32), seed=0)
    model.network.fit_gaussian(_rows(features, seed=0))
    in_sample = _raw_scores(model, frames)
    # a fit that saw the frame explains it; one that did not finds it far, as a new frame would be
    assert held_out[3] > in_sample[3] and held_out[3] == held_out.max()
    assert np.all(held_out >= in_sample * 0.9)


@pytest.mark.parametrize("policy", ["target-recall:0.99"])
def test_a_policy_that_needs_defects_is_refused(policy: str) -> None:
    with pytest.raises(TrainingError, match="good frames only"):
        calibration(np.ones(10), policy)
    with pytest.raises(TrainingError, match="max-false-reject"):
        default_config("anomaly").with_overrides(threshold_policy=policy)


def test_the_usual_default_policy_reads_as_a_false_reject_limit() -> None:
    assert (
        default_config("anomaly").with_overrides(threshold_policy="best-f1").threshold_policy
        == ANOMALY_POLICY
    )


def test_trained_on_good_frames_only_it_answers_a_calibrated_score_and_map_and_packages(
    tmp_path: Path,
) -> None:
    dataset = tmp_path / "line"
    write_dataset(dataset, count=36, defect_ratio=0.25, seed=3, height=64, width=48, test_fraction=0.0)
    result = train_anomaly(dataset, tmp_path / "run", tiny_config())

    history = result.history[0]
    assert history["good_train"] > 0 and history["good_val"] > 0
    # the 9 defective frames of 36 were left out of the fit and of the calibration
    assert history["good_train"] + history["good_val"] == 27
    # every good frame calibrates: validation's, and training's scored by fits that left them out
    assert history["calibration_frames"] == 27
    assert (result.thresholds.image, result.thresholds.pixel) == (0.5, 0.5)
    point = result.operating_point
    assert point is not None and point.policy == ANOMALY_POLICY and point.threshold == 0.5
    assert point.met and point.false_rejects == 0  # 1% of a handful of good frames: none rejected
    assert [o.name for o in result.outputs] == ["defect_probability", "mask_probability"]

    session = ort.InferenceSession(str(result.onnx_path), providers=["CPUExecutionProvider"])
    score, plane = session.run(None, {"image": result.validation.images[:4]})
    assert score.shape == (4, 1) and plane.shape == (4, 1, 64, 48)
    assert plane.min() >= 0.0 and plane.max() <= 1.0
    assert np.allclose(score[:, 0], plane.reshape(4, -1).max(axis=1), atol=1e-6)  # the map's maximum

    keys = make_keys(tmp_path / "keys")
    tar = package_result(result, "defect-anomaly", tmp_path, keys.private_key)
    _folder, manifest = unpack_package(tar, tmp_path / "unpacked", keys.public_keys())
    assert manifest.task == "anomaly" and manifest.version == "1"
    assert [o.meaning for o in manifest.outputs] == ["defect_probability", "mask_probability"]
    assert manifest.thresholds.pixel == 0.5
    assert manifest.operating_point is not None and manifest.operating_point.policy == ANOMALY_POLICY


def test_a_line_without_any_defect_trains(tmp_path: Path) -> None:
    dataset = tmp_path / "new-line"
    write_dataset(dataset, count=20, defect_ratio=0.0, seed=4, height=64, width=48, test_fraction=0.0)
    result = train_anomaly(dataset, tmp_path / "run", tiny_config())
    point = result.operating_point
    assert point is not None and point.defective == 0 and point.recall is None and point.met


@pytest.fixture(scope="module")
def multitask_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A quick multi-task run (one epoch) on a 96x48 line: a backbone from "another line"."""
    from edgeinspect_cloud.training.multitask import train_multitask

    folder = tmp_path_factory.mktemp("backbone")
    write_dataset(folder / "line", count=24, defect_ratio=0.5, seed=5, height=96, width=48, test_fraction=0.0)
    config = default_config("multitask", quick=True).with_overrides(
        height=96, img_width=48, epochs=1, progress=False
    )
    result = train_multitask(folder / "line", folder / "run", config)
    return result.checkpoint_path


def test_a_backbone_gives_the_trained_encoders_features_at_its_own_input_size(
    tmp_path: Path, multitask_checkpoint: Path
) -> None:
    import torch

    dataset = tmp_path / "new-line"
    write_dataset(dataset, count=20, defect_ratio=0.0, seed=6, height=64, width=48, test_fraction=0.0)
    config = tiny_config().with_overrides(init_weights=str(multitask_checkpoint))
    result = train_anomaly(dataset, tmp_path / "run", config)

    assert (result.config.height, result.config.img_width) == (96, 48)  # the backbone's, not 64x48
    state = torch.load(tmp_path / "run/checkpoints/anomaly.pt", weights_only=False)["state_dict"]
    parent = torch.load(multitask_checkpoint, weights_only=False)["state_dict"]
    encoder = [k for k in parent if k.startswith("network.encoder.")]
    assert encoder and all(torch.equal(state[f"network.features.{k[8:]}"], parent[k]) for k in encoder)
    session = ort.InferenceSession(str(result.onnx_path), providers=["CPUExecutionProvider"])
    score, plane = session.run(None, {"image": result.validation.images[:2]})
    assert score.shape == (2, 1) and plane.shape == (2, 1, 96, 48)
    assert result.summary()["init_weights"] == str(multitask_checkpoint)


def test_a_backbone_that_is_not_a_multitask_checkpoint_is_refused(tmp_path: Path) -> None:
    import torch
    from edgeinspect_cloud.training.anomaly import load_backbone

    torch.save({"state_dict": {}, "config": {"task": "classification"}}, tmp_path / "cls.pt")
    with pytest.raises(TrainingError, match="not a multi-task checkpoint") as caught:
        load_backbone(tmp_path / "cls.pt")
    assert "multitask-best.pt" in caught.value.hint
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(TrainingError, match="cannot read the backbone"):
        load_backbone(tmp_path / "junk.pt")


def test_the_backbone_option_is_for_the_anomaly_task_and_an_existing_checkpoint(tmp_path: Path) -> None:
    from edgeinspect_cloud.commands.train import backbone_checkpoint

    with pytest.raises(TrainingError, match="good-parts-only"):
        backbone_checkpoint(tmp_path, "multitask")
    with pytest.raises(TrainingError, match="no multi-task checkpoint there"):
        backbone_checkpoint(tmp_path, "anomaly")
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints/multitask-best.pt").write_bytes(b"")
    assert backbone_checkpoint(tmp_path, "anomaly") == str(tmp_path / "checkpoints/multitask-best.pt")
