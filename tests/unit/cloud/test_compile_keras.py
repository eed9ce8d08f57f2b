"""Compile accepts a Keras model (object or ``.keras`` file): NHWC mask logits, wrapped to the contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from edgeinspect_cloud.compile import (
    CompileData,
    CompileOptions,
    check_contract,
    compile_model,
    from_keras,
    load_source,
    open_session,
    predict,
)

from tests.unit.cloud.compile_helpers import NORMALISATION, SIZE, keras_segmenter, toy_images

pytest.importorskip("tf2onnx")


@pytest.fixture(scope="module")
def data() -> CompileData:
    images, labels, masks = toy_images(30, seed=3)
    return CompileData(
        calibration=images[:15],
        validation=images[15:],
        labels=labels[15:],
        masks=masks[15:],
        pixel_threshold=0.5,
    )


def test_a_keras_segmenter_compiles_to_an_nchw_mask_contract(data: CompileData, tmp_path: Path) -> None:
    model = keras_segmenter()
    source = from_keras(model, task="segmentation", normalisation=NORMALISATION, sigmoid=True)
    assert source.framework.name == "tensorflow"
    result = compile_model(source, data, tmp_path, CompileOptions(latency_runs=2))

    assert result.int8_model_path is not None
    check_contract(onnx.load(str(result.int8_model_path)), "segmentation")
    outputs = predict(open_session(result.model_path), data.validation)
    assert outputs.shape == (len(data.validation), 1, SIZE, SIZE)

    nhwc = ((data.validation.astype(np.float32) / 255.0 - 0.5) / 0.25).transpose(0, 2, 3, 1)
    expected = 1.0 / (1.0 + np.exp(-np.asarray(model(nhwc, training=False))))
    np.testing.assert_allclose(outputs, expected.transpose(0, 3, 1, 2), atol=1e-5)

    report = json.loads((tmp_path / "compile.json").read_text())
    assert report["export_parity"]["reference"] == "tensorflow model"
    assert report["int8_parity"]["passed"] and report["int8_parity"]["pixel_agreement"] > 0.95
    assert {"image_ap", "pixel_ap", "dice", "iou"} <= set(report["int8"]["metrics"])


def test_a_keras_file_is_loaded_by_its_suffix(data: CompileData, tmp_path: Path) -> None:
    path = tmp_path / "segmenter.keras"
    keras_segmenter(seed=2).save(path)
    source = load_source(path, task="segmentation", normalisation=NORMALISATION, sigmoid=True)
    assert source.reference is not None and source.adaptation.layout == "NHWC"
    result = compile_model(source, data, tmp_path / "out", CompileOptions(quantize=False, latency_runs=1))
    assert result.report["export_parity"]["passed"]
