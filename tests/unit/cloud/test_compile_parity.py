"""The parity gates: a model whose ONNX graph or int8 version disagrees fails compile with the figures."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from edgeinspect_cloud.compile import (
    CompileData,
    CompileOptions,
    ParityError,
    compare,
    compile_model,
    from_torch,
)
from edgeinspect_cloud.compile.parity import require_parity

from tests.unit.cloud.compile_helpers import (
    NORMALISATION,
    SIZE,
    torch_branchy_classifier,
    torch_brightness_classifier,
    toy_images,
)

SEG_INT8_GATE: dict[str, object] = {
    "task": "segmentation",
    "names": ("fp32 ONNX", "int8 ONNX"),
    "image_threshold": 0.5,
    "pixel_threshold": 0.5,
    "max_allowed": 0.25,
    "min_agreement": 0.9,
    "bounded": "scores",
    "min_pixel_agreement": 0.99,
}
"""The compile step's int8 gate for a segmenter (its defaults), as ``compare`` keyword arguments."""


def test_a_model_that_tracing_changes_fails_the_export_parity_gate(tmp_path: Path) -> None:
    images, labels, _ = toy_images(12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TracerWarning is exactly the bug this gate catches
        source = from_torch(
            torch_branchy_classifier(), task="classification", height=SIZE, width=SIZE, normalisation=None
        )
    data = CompileData(calibration=images, validation=images, labels=labels)
    with pytest.raises(ParityError) as caught:
        compile_model(source, data, tmp_path, CompileOptions(latency_runs=1))
    message = str(caught.value)
    assert "fp32 ONNX differs from torch model on 12 validation images" in message
    assert "check the export" in message
    assert caught.value.report["max_abs_diff"] > 1.0
    report = json.loads((tmp_path / "compile.json").read_text())  # the figures stay readable after a failure
    assert report["export_parity"]["passed"] is False
    assert not (tmp_path / "model.int8.onnx").exists()


def test_int8_calibrated_on_unrepresentative_images_fails_the_int8_parity_gate(tmp_path: Path) -> None:
    bright = np.full((8, 3, SIZE, SIZE), 220, np.uint8)
    dark = np.full((8, 3, SIZE, SIZE), 10, np.uint8)
    source = from_torch(
        torch_brightness_classifier(),
        task="classification",
        height=SIZE,
        width=SIZE,
        normalisation=NORMALISATION,
    )
    data = CompileData(calibration=dark, validation=np.concatenate([dark, bright]), image_threshold=0.0)
    with pytest.raises(ParityError, match="int8 ONNX differs from fp32 ONNX") as caught:
        compile_model(source, data, tmp_path / "strict", CompileOptions(latency_runs=1, strict_int8=True))
    assert "calibrate on more representative images" in str(caught.value)

    result = compile_model(source, data, tmp_path, CompileOptions(latency_runs=1))  # default: ship fp32
    assert result.int8_model_path is None and not (tmp_path / "model.int8.onnx").exists()
    report = json.loads((tmp_path / "compile.json").read_text())
    assert report["export_parity"]["passed"] is True
    assert report["int8_parity"]["passed"] is False and report["int8_parity"]["max_abs_diff"] > 0.25
    assert report["precision"]["default"] == "fp32"
    assert report["precision"]["reason"].startswith("int8 failed the validation gate: parity check failed")

    representative = CompileData(calibration=np.concatenate([dark, bright]), validation=data.validation)
    result = compile_model(source, representative, tmp_path / "ok", CompileOptions(latency_runs=1))
    assert result.report["int8_parity"]["passed"]


def test_compare_measures_difference_and_verdict_agreement() -> None:
    reference = np.array([[0.1], [0.6], [0.9], [0.4]], np.float32)
    candidate = np.array([[0.12], [0.45], [0.88], [0.41]], np.float32)
    report = compare(
        reference,
        candidate,
        task="classification",
        names=("a", "b"),
        image_threshold=0.5,
        pixel_threshold=None,
        max_allowed=0.2,
        min_agreement=0.8,
    )
    assert report.max_abs_diff == pytest.approx(0.15, abs=1e-6)
    assert report.verdict_agreement == 0.75 and report.borderline == 0 and not report.passed

    on_the_edge = np.array([[0.1], [0.5], [0.9]], np.float32)  # the middle score IS the threshold
    rounded = on_the_edge - np.float32(1e-7)
    edge = compare(
        on_the_edge,
        rounded,
        task="classification",
        names=("a", "b"),
        image_threshold=0.5,
        pixel_threshold=None,
        max_allowed=1e-3,
        min_agreement=1.0,
        margin=1e-3,
    )
    assert edge.passed and edge.borderline == 1 and edge.verdict_agreement == 1.0

    masks = np.zeros((2, 1, 4, 4), np.float32)
    shifted = masks.copy()
    shifted[0, 0, 0, 0] = 0.9
    seg = compare(
        masks,
        shifted,
        task="segmentation",
        names=("a", "b"),
        image_threshold=0.5,
        pixel_threshold=0.5,
        max_allowed=1.0,
        min_agreement=0.0,
    )
    assert seg.verdict_agreement == 0.5 and seg.pixel_agreement == pytest.approx(31 / 32)


def test_int8_segmentation_is_judged_by_scores_and_pixels_not_one_steep_pixel() -> None:
    """One edge pixel far off decides nothing; a flipped verdict or a changed mask still fails."""
    reference = np.zeros((2, 1, 10, 10), np.float32)
    reference[0, 0, 4:6, 4:6] = 0.95
    reference[0, 0, 3, 4] = 0.8
    one_pixel = reference.copy()
    one_pixel[0, 0, 3, 4] = 0.1  # a steep edge pixel: 0.7 apart, 1 of 200 pixels
    common = SEG_INT8_GATE
    report = compare(reference, one_pixel, **common)  # type: ignore[arg-type]
    assert report.max_abs_diff == pytest.approx(0.7) and report.score_max_abs_diff == 0.0
    assert report.pixel_agreement == pytest.approx(199 / 200) and report.passed

    blurred = reference.copy()
    blurred[0, 0, 3:6, 4:6] = 0.6  # verdicts and pixels hold, but the score moved 0.35
    assert not compare(reference, blurred, **common).passed  # type: ignore[arg-type]

    lost = reference.copy()
    lost[0, 0, 3:6, 4:6] = 0.4  # the defect vanishes from the mask: 5 pixels and one verdict flip
    failed = compare(reference, lost, **common)  # type: ignore[arg-type]
    assert not failed.passed and failed.pixel_agreement == pytest.approx(195 / 200)
    with pytest.raises(ParityError, match=r"max abs diff of image scores 0\.55.*pixel agreement 97\.500%"):
        require_parity(failed, hint="recalibrate")

    exported = compare(reference, one_pixel, **{**common, "bounded": "outputs"})  # type: ignore[arg-type]
    assert not exported.passed  # an export is bounded on every output value


def test_pixels_near_the_pixel_threshold_are_counted_not_judged() -> None:
    """A barely trained U-Net says ~0.5 everywhere: int8 rounding flips those pixels and means nothing."""
    rng = np.random.default_rng(3)
    reference = (0.5 + rng.uniform(-0.01, 0.01, (4, 1, 8, 8))).astype(np.float32)
    reference[0, 0, 0, 0] = 0.9  # one clear defect pixel
    candidate = reference - np.float32(0.012)
    common = {**SEG_INT8_GATE, "image_threshold": 0.95}
    judged = compare(reference, candidate, margin=0.02, **common)  # type: ignore[arg-type]
    assert judged.borderline_pixels == 4 * 64 - 1 and judged.pixel_agreement == 1.0 and judged.passed
    strict = compare(reference, candidate, margin=0.0, **common)  # type: ignore[arg-type]
    assert strict.borderline_pixels == 0 and strict.pixel_agreement < 0.99 and not strict.passed
