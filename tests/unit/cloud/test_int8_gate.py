"""int8 that holds on new data: compile judges int8 on validation AND a shifted set, at the shipped
threshold; a pass makes int8 the package's default with fp32 beside it, a fail ships fp32 and says why.

The model's logit grows with brightness; int8 clips activations at the calibration range, so a model
calibrated on mid-grey frames agrees with fp32 on them but not on frames 40 levels brighter.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from edgeinspect.core.package import Framework, Manifest, OutputSpec, Thresholds, unpack_package
from edgeinspect_cloud.compile import (
    CompileData,
    CompileOptions,
    ParityError,
    SourceModel,
    compile_model,
    from_torch,
)
from edgeinspect_cloud.compile.shift import SHIFTS, shifted_set
from edgeinspect_cloud.packaging import PackageDraft, check_package, precision_from_report

from tests.helpers.models import make_keys
from tests.unit.cloud.compile_helpers import NORMALISATION, SIZE, input_spec, torch_brightness_classifier

THRESHOLD = 0.8
"""fp32 logit at brightness ~215: above every validation frame (<= 190), below the brightest shifted."""
OPTIONS = CompileOptions(latency_runs=1)


def _flat(levels: list[int]) -> np.ndarray:
    return np.stack([np.full((3, SIZE, SIZE), level, np.uint8) for level in levels])


MID = _flat(list(range(120, 191, 5)))
"""Mid-grey frames: calibration and validation (all good parts at THRESHOLD)."""
WIDE = _flat(list(range(10, 251, 10)))
"""Calibration over the whole range: int8 then clips nothing a shift produces."""


def _source() -> SourceModel:
    return from_torch(
        torch_brightness_classifier(),
        task="classification",
        height=SIZE,
        width=SIZE,
        normalisation=NORMALISATION,
    )


def _data(calibration: np.ndarray, **extra: object) -> CompileData:
    labels = np.zeros(len(MID), bool)
    return CompileData(
        calibration=calibration,
        validation=MID,
        labels=labels,
        image_threshold=THRESHOLD,
        **extra,  # type: ignore[arg-type]
    )


def test_the_shifted_set_is_deterministic_and_keeps_labels() -> None:
    labels = np.arange(len(MID)) % 2 == 0
    first, first_labels = shifted_set(MID, labels)
    second, _ = shifted_set(MID, labels)
    assert first.shape == (len(SHIFTS) * len(MID), 3, SIZE, SIZE) and first.dtype == np.uint8
    assert np.array_equal(first, second)
    assert first_labels is not None and np.array_equal(first_labels, np.tile(labels, len(SHIFTS)))
    assert first[: len(MID)].mean() < MID.mean() < first[len(MID) : 2 * len(MID)].mean()  # darker, brighter


def test_int8_that_holds_on_shifted_frames_is_the_default(tmp_path: Path) -> None:
    result = compile_model(_source(), _data(WIDE), tmp_path, OPTIONS)
    precision = result.report["precision"]
    assert precision["default"] == "int8" and precision["reason"] is None
    gates = {gate["set"]: gate for gate in precision["gates"]}
    assert gates["validation"]["passed"] and gates["shifted"]["passed"]
    shifted = gates["shifted"]
    assert shifted["images"] == len(SHIFTS) * len(MID) and shifted["threshold"] == THRESHOLD
    assert shifted["verdict_agreement"] >= 0.99 and shifted["good"] == shifted["images"]
    assert "brightness" in shifted["source"]
    assert result.int8_model_path == tmp_path / "model.int8.onnx" and result.int8_model_path.is_file()


def test_int8_failing_the_shift_gate_ships_fp32_and_says_why(tmp_path: Path) -> None:
    result = compile_model(_source(), _data(MID), tmp_path, OPTIONS)
    precision = result.report["precision"]
    gates = {gate["set"]: gate for gate in precision["gates"]}
    assert gates["validation"]["passed"] and gates["validation"]["verdict_agreement"] == 1.0
    shifted = gates["shifted"]
    assert not shifted["passed"] and shifted["verdict_agreement"] < 0.99
    assert shifted["false_rejects_fp32"] > shifted["false_rejects_int8"]  # int8 clipped the bright frames
    assert precision["default"] == "fp32"
    assert "int8 failed the shifted gate: verdict agreement" in precision["reason"]
    assert "(required 99.00%)" in precision["reason"] and "false rejects" in precision["reason"]
    assert result.int8_model_path is None and not (tmp_path / "model.int8.onnx").exists()
    assert (tmp_path / "model.int8.rejected.onnx").is_file()
    assert json.loads((tmp_path / "compile.json").read_text())["precision"] == precision

    lenient = CompileOptions(latency_runs=1, int8_min_shift_agreement=0.5)  # the tolerance is a setting
    assert (
        compile_model(_source(), _data(MID), tmp_path / "lenient", lenient).report["precision"]["default"]
        == "int8"
    )
    with pytest.raises(ParityError, match="int8 failed the shifted gate"):
        compile_model(
            _source(), _data(MID), tmp_path / "strict", CompileOptions(latency_runs=1, strict_int8=True)
        )


def test_a_given_held_out_family_replaces_the_synthetic_shifts(tmp_path: Path) -> None:
    family = _flat([120, 150, 180])  # inside the calibration range: int8 agrees
    data = _data(MID, shifted=family, shifted_labels=np.zeros(3, bool), shift_source="--shift-data line-b")
    gates = compile_model(_source(), data, tmp_path, OPTIONS).report["precision"]["gates"]
    assert gates[1] | {"verdict_agreement": 1.0} == gates[1]
    assert gates[1]["source"] == "--shift-data line-b" and gates[1]["images"] == 3


def _package(compiled: Path, out: Path, keys_dir: Path) -> tuple[Path, Manifest]:
    keys = make_keys(keys_dir)
    report = json.loads((compiled / "compile.json").read_text())
    spec = input_spec()
    int8 = compiled / "model.int8.onnx"
    draft = PackageDraft.create(
        out / "draft",
        name="cls",
        task="classification",
        framework=Framework(name="torch", version="test"),
        input_spec=spec,
        outputs=[OutputSpec(name="defect_probability", meaning="defect_logit", shape=[-1, 1])],
        thresholds=Thresholds(image=THRESHOLD),
        metrics={},
        dataset_fingerprint="test",
        model_path=compiled / "model.onnx",
        int8_model_path=int8 if int8.is_file() else None,
        golden_input=MID[:1],
        precision=precision_from_report(report),
    )
    tar = draft.build(1, keys.private_key, out)
    check_package(tar, keys.public_keys())
    _, manifest = unpack_package(tar, out / "unpacked", keys.public_keys())
    return tar, manifest


def test_the_package_carries_both_files_with_int8_default_or_fp32_and_the_reason(tmp_path: Path) -> None:
    compile_model(_source(), _data(WIDE), tmp_path / "good", OPTIONS)
    compile_model(_source(), _data(MID), tmp_path / "bad", OPTIONS)

    _, manifest = _package(tmp_path / "good", tmp_path / "pkg-good", tmp_path / "keys-good")
    assert manifest.precision is not None and manifest.precision.fallback == "fp32"
    assert manifest.default_variant == "int8" and {"model.onnx", "model.int8.onnx"} <= set(manifest.files)
    assert [g.set for g in manifest.precision.gates] == ["validation", "shifted"]

    _, manifest = _package(tmp_path / "bad", tmp_path / "pkg-bad", tmp_path / "keys-bad")
    assert manifest.default_variant == "fp32" and "model.int8.onnx" not in manifest.files
    assert manifest.precision is not None and "shifted gate" in (manifest.precision.reason or "")
