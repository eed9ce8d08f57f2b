"""Compile accepts a PyTorch module, a PyTorch file and ONNX files, and emits contract fp32 + int8 models."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from edgeinspect_cloud.compile import (
    CompileData,
    CompileError,
    CompileOptions,
    check_contract,
    compile_model,
    from_onnx,
    from_torch,
    load_source,
    open_session,
    predict,
)
from onnx import TensorProto, helper

from tests.unit.cloud.compile_helpers import NORMALISATION, SIZE, torch_classifier, toy_images

FAST = CompileOptions(latency_runs=2)


@pytest.fixture(scope="module")
def data() -> CompileData:
    images, labels, _ = toy_images(36)
    return CompileData(calibration=images[:18], validation=images[18:], labels=labels[18:])


def test_a_torch_module_compiles_to_contract_fp32_and_int8(data: CompileData, tmp_path: Path) -> None:
    source = from_torch(
        torch_classifier(),
        task="classification",
        height=SIZE,
        width=SIZE,
        normalisation=NORMALISATION,
        sigmoid=True,
    )
    result = compile_model(source, data, tmp_path, FAST)

    assert result.int8_model_path is not None
    for path in (result.model_path, result.int8_model_path):
        check_contract(onnx.load(str(path)), "classification")
    session = open_session(result.model_path)
    assert [(i.name, i.type, i.shape[1:]) for i in session.get_inputs()] == [
        ("image", "tensor(uint8)", [3, SIZE, SIZE])
    ]
    assert [o.name for o in session.get_outputs()] == ["defect_probability"]
    outputs = predict(session, data.validation)
    assert outputs.shape == (len(data.validation), 1) and np.all((outputs >= 0) & (outputs <= 1))
    np.testing.assert_allclose(outputs, source.reference(data.validation), atol=1e-5)  # type: ignore[misc]

    report = json.loads((tmp_path / "compile.json").read_text())
    assert report["framework"] == {"name": "torch", "version": torch.__version__.split("+")[0]}
    assert report["opset"] == 17 and report["export_parity"]["passed"] and report["int8_parity"]["passed"]
    assert report["export_parity"]["max_abs_diff"] < 1e-4
    for precision in ("fp32", "int8"):
        assert set(report[precision]["metrics"]) == {"image_ap", "image_auroc", "f1"}
        assert report[precision]["latency_ms"] > 0 and report[precision]["size_bytes"] > 0
    int8_ops = {node.op_type for node in onnx.load(str(result.int8_model_path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= int8_ops and "DynamicQuantizeLinear" not in int8_ops


def test_a_float_onnx_file_is_wrapped_with_normalisation(data: CompileData, tmp_path: Path) -> None:
    module = torch_classifier(seed=1)
    path = tmp_path / "exported.onnx"
    torch.onnx.export(
        module,
        (torch.zeros(1, 3, SIZE, SIZE),),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["x"],
        output_names=["logit"],
        dynamic_axes={"x": {0: "n"}},
    )
    source = load_source(path, task="classification", normalisation=NORMALISATION, sigmoid=True)
    result = compile_model(source, data, tmp_path / "out", FAST)

    with torch.no_grad():
        x = (torch.from_numpy(data.validation).float() / 255.0 - 0.5) / 0.25
        expected = torch.sigmoid(module(x)).numpy()
    np.testing.assert_allclose(predict(open_session(result.model_path), data.validation), expected, atol=1e-5)


def test_a_contract_ready_onnx_file_is_taken_as_it_is(data: CompileData, tmp_path: Path) -> None:
    first = compile_model(
        from_torch(
            torch_classifier(), task="classification", height=SIZE, width=SIZE, normalisation=NORMALISATION
        ),
        data,
        tmp_path / "first",
        CompileOptions(quantize=False, latency_runs=1),
    )
    again = compile_model(from_onnx(first.model_path, task="classification"), data, tmp_path / "again", FAST)
    np.testing.assert_allclose(
        predict(open_session(again.model_path), data.validation),
        predict(open_session(first.model_path), data.validation),
        atol=1e-6,
    )
    assert first.int8_model_path is None and not (tmp_path / "first" / "model.int8.onnx").exists()


def test_pytorch_files_load_as_torchscript_or_whole_module(data: CompileData, tmp_path: Path) -> None:
    module = torch_classifier()
    scripted = tmp_path / "scripted.pt"
    pickled = tmp_path / "whole.pt"
    trace: Any = torch.jit.trace
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # both formats are deprecated upstream; users still have such files
        trace(module, torch.zeros(1, 3, SIZE, SIZE)).save(str(scripted))
        torch.save(module, pickled)
    for path in (scripted, pickled):
        source = load_source(
            path, task="classification", normalisation=NORMALISATION, height=SIZE, width=SIZE
        )
        assert source.reference is not None
        result = compile_model(
            source, data, tmp_path / path.stem, CompileOptions(quantize=False, latency_runs=1)
        )
        assert result.model_path.is_file()
    with pytest.raises(CompileError, match="needs --height and --width"):
        load_source(scripted, task="classification")


def test_a_model_outside_the_contract_is_refused_with_the_reason(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])
    y1 = helper.make_tensor_value_info("y1", TensorProto.FLOAT, ["N", 3, 8, 8])
    y2 = helper.make_tensor_value_info("y2", TensorProto.FLOAT, ["N", 3, 8, 8])
    nodes = [helper.make_node("Identity", ["x"], ["y1"]), helper.make_node("Relu", ["x"], ["y2"])]
    path = tmp_path / "two.onnx"
    onnx.save(helper.make_model(helper.make_graph(nodes, "two", [x], [y1, y2])), str(path))
    images, _, _ = toy_images(4)
    data = CompileData(calibration=images, validation=images)
    with pytest.raises(CompileError, match="exactly one of each"):
        compile_model(load_source(path, task="segmentation"), data, tmp_path / "out")

    with pytest.raises(CompileError, match="classifier must output"):
        single = helper.make_graph(nodes[:1], "one", [x], [y1])
        onnx.save(helper.make_model(single), str(path))
        compile_model(load_source(path, task="classification"), data, tmp_path / "out")

    with pytest.raises(CompileError, match="not a model file"):
        load_source(tmp_path / "model.tflite", task="classification")
