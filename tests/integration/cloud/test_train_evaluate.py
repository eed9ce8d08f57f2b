"""Train both models in quick mode on small synthetic frames, evaluate them the edge's way, report.

One dataset (320x116 frames, half the KolektorSDD2 size; quick models take 128x48) and one quick run
of each trainer are shared by the module's tests: training dominates the cost, and every test only
reads the results. The classifier gets 8 epochs of batches of 4 instead of quick's 3 of 16: ten times
the steps, still tiny, enough to learn the defects well beyond what a threshold on raw pixels can do.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from edgeinspect.core.package import (
    Framework,
    Manifest,
    build_package,
    load_private_key,
    load_public_keys,
    utc_now,
    write_keypair,
)
from edgeinspect_cloud.cli import main
from edgeinspect_cloud.data.dataset import list_split, read_sample
from edgeinspect_cloud.data.synth import write_dataset
from edgeinspect_cloud.evaluation.package import evaluate_dataset
from edgeinspect_cloud.evaluation.spec import ModelSpec
from edgeinspect_cloud.training.config import TrainConfig, TrainResult, default_config
from edgeinspect_cloud.training.export import framework_predict
from edgeinspect_cloud.training.finish import SPEC_FILE

from tests.unit.cloud.synth_helpers import TRIVIAL, trivial_baseline_aps

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

REPORT_FILES = ("metrics.json", "report.html", "report.md", "pr_curve.png", "roc_curve.png")
REPORT_FILES += ("confusion_matrix.png", "examples.png")


LEARNS = {"epochs": 8, "batch_size": 4, "learning_rate": 2e-3}
"""Quick settings with enough steps to learn (quick mode itself only proves the machinery runs)."""


def quick(task: str, **changes: object) -> TrainConfig:
    """The quick config without progress bars (test logs stay readable)."""
    return default_config(task, quick=True).with_overrides(progress=False, **changes)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 frames of 320x116, a quarter defective, 30% in test/."""
    root = tmp_path_factory.mktemp("synth") / "dataset"
    write_dataset(root, count=300, defect_ratio=0.25, seed=21, height=320, width=116)
    return root


@pytest.fixture(scope="module")
def classifier(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    from edgeinspect_cloud.training.classifier import train_classifier

    return train_classifier(dataset, tmp_path_factory.mktemp("cls"), quick("classification", **LEARNS))


@pytest.fixture(scope="module")
def segmenter(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    from edgeinspect_cloud.training.segmenter import train_segmenter

    return train_segmenter(dataset, tmp_path_factory.mktemp("seg"), quick("segmentation"))


def check_run(result: TrainResult, output: str, shape: tuple[int, ...]) -> None:
    """The run folder, the ONNX contract and framework/ONNX Runtime parity on validation images."""
    assert result.onnx_path.is_file() and result.checkpoint_path.is_file()
    assert (result.run_dir / "result.json").is_file() and (result.run_dir / "config.json").is_file()
    session = ort.InferenceSession(str(result.onnx_path), providers=["CPUExecutionProvider"])
    (image,) = session.get_inputs()
    assert (image.name, image.type) == ("image", "tensor(uint8)")
    assert [o.name for o in session.get_outputs()] == [output]
    pixels = result.validation.images[:8]
    onnx_out = session.run(None, {"image": pixels})[0]
    assert onnx_out.shape == (len(pixels), *shape)
    assert np.max(np.abs(onnx_out - framework_predict(result.model, pixels))) < 1e-4
    assert result.metrics["onnx_parity_max_abs_diff"] < 1e-4
    spec = ModelSpec.read(result.run_dir / SPEC_FILE)
    assert spec.thresholds == result.thresholds and spec.input == result.input
    assert 0.0 <= result.thresholds.image <= 1.0
    assert len(result.dataset_fingerprint) == 64
    assert result.epochs_run >= 1 and result.train_seconds > 0
    assert result.report_dir is not None
    assert all((result.report_dir / name).is_file() for name in REPORT_FILES)


def test_classifier_trains_exports_and_matches_onnx_runtime(classifier: TrainResult) -> None:
    check_run(classifier, "defect_probability", (1,))
    assert classifier.framework.name == "pytorch"
    assert classifier.validation.masks is None
    assert classifier.validation.scores.shape == classifier.validation.labels.shape


def test_segmenter_trains_exports_and_matches_onnx_runtime(segmenter: TrainResult) -> None:
    check_run(segmenter, "mask_probability", (1, 128, 48))
    assert segmenter.framework.name == "keras"
    assert segmenter.thresholds.pixel is not None
    assert segmenter.validation.masks is not None and segmenter.validation.masks.shape[1:] == (128, 48)
    assert {"pixel_ap", "dice", "iou"} <= set(segmenter.metrics)


def test_a_segmenter_fine_tune_ships_half_way_from_its_parent(
    segmenter: TrainResult, dataset: Path, tmp_path: Path
) -> None:
    """The Keras U-Net blends like the PyTorch networks: parent + 0.5 x (best epoch - parent)."""
    from edgeinspect_cloud.training.config import finetune_config
    from edgeinspect_cloud.training.prepare import prepare_data
    from edgeinspect_cloud.training.segmenter import build_segmenter, train_segmenter

    config = finetune_config(
        segmenter.summary()["config"], segmenter.checkpoint_path, epochs=2, progress=False
    )
    tuned = train_segmenter(dataset, tmp_path / "tuned", config)
    assert tuned.checkpoint_path == tmp_path / "tuned/checkpoints/segmenter-blended.weights.h5"
    model = build_segmenter(config, prepare_data(dataset, config), 1)
    weights = {}
    for name, path in (
        ("parent", segmenter.checkpoint_path),
        ("best", tmp_path / "tuned/checkpoints/segmenter-best.weights.h5"),
        ("shipped", tuned.checkpoint_path),
    ):
        model.load_weights(path)
        weights[name] = model.get_weights()
    for parent, best, shipped in zip(weights["parent"], weights["best"], weights["shipped"], strict=True):
        np.testing.assert_allclose(shipped, parent + 0.5 * (best - parent), atol=1e-6)
    assert any(not np.allclose(p, b) for p, b in zip(weights["parent"], weights["best"], strict=True))


def test_evaluation_through_onnx_runtime_equals_framework_scores(
    classifier: TrainResult, dataset: Path
) -> None:
    """The runner's preprocess + ORT + postprocess gives the framework's answer on the same frames."""
    from edgeinspect.core.preprocess import preprocess

    files = list_split(dataset, "test")[:6]
    frames = [read_sample(f).image for f in files]
    spec = ModelSpec.read(classifier.run_dir / SPEC_FILE)
    evaluation = evaluate_dataset(classifier.onnx_path, spec, dataset, split="test")
    tensors = np.concatenate([preprocess(frame, spec.input).tensor for frame in frames])
    expected = framework_predict(classifier.model, tensors)[:, 0]
    assert np.allclose(evaluation.scores[:6], expected, atol=1e-5)


def test_trained_classifier_beats_trivial_thresholds(classifier: TrainResult, dataset: Path) -> None:
    files = list_split(dataset, "test")
    samples = [read_sample(f) for f in files]
    labels = np.array([s.defective for s in samples])
    baselines = trivial_baseline_aps([s.image for s in samples], labels)
    trivial = max(baselines[key] for key in TRIVIAL)
    spec = ModelSpec.read(classifier.run_dir / SPEC_FILE)
    model_ap = evaluate_dataset(classifier.onnx_path, spec, dataset, split="test").metrics["image_ap"]
    assert model_ap > trivial + 0.2, (model_ap, trivial)


def test_same_seed_trains_the_same_weights(dataset: Path, tmp_path: Path) -> None:
    from edgeinspect_cloud.training.classifier import train_classifier

    config = quick("classification", epochs=1, max_train_images=48)
    first = train_classifier(dataset, tmp_path / "a", config)
    second = train_classifier(dataset, tmp_path / "b", config)
    pixels = first.validation.images
    assert np.array_equal(framework_predict(first.model, pixels), framework_predict(second.model, pixels))
    assert first.thresholds == second.thresholds


def last_json(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    lines = capsys.readouterr().out.strip().splitlines()
    parsed: dict[str, object] = json.loads(lines[-1])
    return parsed


def test_evaluate_command_on_a_bare_model_writes_the_report_and_a_json_line(
    segmenter: TrainResult, dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    spec = segmenter.run_dir / SPEC_FILE
    args = ["evaluate", "--model", str(segmenter.onnx_path), "--spec", str(spec), "--dataset", str(dataset)]
    assert main([*args, "--out", str(out), "--no-progress"]) == 0
    metrics = last_json(capsys)
    assert {"image_ap", "image_auroc", "f1", "threshold", "pixel_ap", "dice", "iou"} <= set(metrics)
    for name in REPORT_FILES:
        assert (out / name).stat().st_size > 0, name
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["metrics"]["image_ap"] == metrics["image_ap"]
    assert len(saved["per_image"]) == len(list_split(dataset, "test"))
    assert "<table>" in (out / "report.html").read_text()


def test_evaluate_command_verifies_and_evaluates_a_signed_package(
    classifier: TrainResult, dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    private, public = write_keypair(tmp_path / "keys")
    manifest = Manifest(
        name="defect-cls",
        version="1",
        task="classification",
        framework=Framework.model_validate(classifier.framework.model_dump()),
        created_at=utc_now(),
        input=classifier.input,
        outputs=classifier.outputs,
        thresholds=classifier.thresholds,
        metrics={k: v for k, v in classifier.metrics.items() if np.isfinite(v)},
        dataset_fingerprint=classifier.dataset_fingerprint,
    )
    golden = classifier.validation.images[:1]
    session = ort.InferenceSession(str(classifier.onnx_path), providers=["CPUExecutionProvider"])
    outputs = {"defect_probability": session.run(None, {"image": golden})[0]}
    package = build_package(
        tmp_path, manifest, classifier.onnx_path, golden, outputs, load_private_key(private)
    )
    assert load_public_keys(public)
    args = ["evaluate", "--package", str(package), "--dataset", str(dataset), "--public-key", str(public)]
    assert main([*args, "--out", str(tmp_path / "report"), "--no-progress"]) == 0
    metrics = last_json(capsys)
    assert {"image_ap", "image_auroc", "f1", "threshold", "operating_threshold"} <= set(metrics)
    assert metrics["operating_threshold"] == pytest.approx(classifier.thresholds.image, abs=1e-6)
    assert "dice" not in metrics
    unverified = ["evaluate", "--package", str(package), "--dataset", str(dataset), "--no-progress"]
    assert main([*unverified, "--out", str(tmp_path / "unverified")]) == 0
    assert last_json(capsys)["image_ap"] == metrics["image_ap"]


def test_evaluate_command_refuses_a_model_without_spec(
    classifier: TrainResult, dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", "--model", str(classifier.onnx_path), "--dataset", str(dataset)]) == 1
    assert "--model needs --spec" in capsys.readouterr().err


def test_train_command_quick_writes_a_run_folder_and_a_json_line(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    args = ["train", "--dataset", str(dataset), "--task", "classification", "--quick", "--epochs", "1"]
    assert main([*args, "--max-train-images", "40", "--out", str(run), "--no-progress"]) == 0
    summary = last_json(capsys)
    entry = summary["tasks"]["classification"]  # type: ignore[index]
    assert {"val", "test", "onnx_path", "thresholds", "train_seconds"} <= set(entry)
    for name in (
        "model.onnx",
        "model_spec.json",
        "result.json",
        "report/metrics.json",
        "report-test/report.html",
    ):
        assert (run / "classification" / name).is_file(), name
