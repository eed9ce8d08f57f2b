"""The networks follow the model contract and survive export: uint8 NCHW in, probabilities out, ORT parity.

Untrained, tiny networks: the contract and the export do not depend on the weights, and these run in
seconds. Training itself is covered by tests/integration/cloud/test_train_evaluate.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from edgeinspect_cloud.data.arrays import input_spec
from edgeinspect_cloud.errors import TrainingError
from edgeinspect_cloud.training.config import ONNX_OPSET, TrainConfig, default_config
from edgeinspect_cloud.training.export import export_onnx, framework_of, framework_predict, parity

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def batch(n: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3, height, width), dtype=np.uint8)


def _io(path: Path) -> tuple[list[tuple[str, int, list[object]]], list[tuple[str, int, list[object]]]]:
    """(name, elem_type, dims) of a model's inputs and outputs; dims are ints or symbolic names."""
    model = onnx.load(str(path))

    def describe(values: list[onnx.ValueInfoProto]) -> list[tuple[str, int, list[object]]]:
        return [
            (
                v.name,
                v.type.tensor_type.elem_type,
                [_dim(d) for d in v.type.tensor_type.shape.dim],
            )
            for v in values
        ]

    return describe(list(model.graph.input)), describe(list(model.graph.output))


def _dim(dim: onnx.TensorShapeProto.Dimension) -> object:
    return dim.dim_value if dim.HasField("dim_value") else dim.dim_param


def test_classifier_takes_uint8_and_returns_probabilities_matching_onnx(tmp_path: Path) -> None:
    import torch
    from edgeinspect_cloud.training.resnet import ContractClassifier, ResNet18

    torch.manual_seed(0)
    model = ContractClassifier(ResNet18(base_width=4), [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]).eval()
    spec = input_spec(64, 32)
    path = export_onnx(model, tmp_path / "cls.onnx", spec, "defect_probability")
    inputs, outputs = _io(path)
    assert inputs[0][:2] == ("image", onnx.TensorProto.UINT8) and inputs[0][2][1:] == [3, 64, 32]
    assert outputs[0][:2] == ("defect_probability", onnx.TensorProto.FLOAT) and outputs[0][2][1:] == [1]
    assert onnx.load(str(path)).opset_import[0].version == ONNX_OPSET
    pixels = batch(5, 64, 32)
    probs = framework_predict(model, pixels)
    assert probs.shape == (5, 1) and np.all((probs >= 0) & (probs <= 1))
    assert parity(model, path, pixels) < 1e-5


def test_normalisation_is_inside_the_classifier_graph() -> None:
    import torch
    from edgeinspect_cloud.training.resnet import ContractClassifier

    seen: list[torch.Tensor] = []

    class Spy(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(x)
            return x.mean(dim=(1, 2, 3))[:, None]

    wrapper = ContractClassifier(Spy(), [0.5, 0.25, 0.0], [0.5, 0.25, 1.0])
    wrapper(torch.full((1, 3, 2, 2), 255, dtype=torch.uint8))
    assert seen[0].dtype == torch.float32
    assert seen[0][0, :, 0, 0].tolist() == pytest.approx([1.0, 3.0, 1.0])


@pytest.mark.parametrize(("height", "width"), [(64, 32), (40, 24)])
def test_unet_keeps_any_input_size_and_matches_onnx(tmp_path: Path, height: int, width: int) -> None:
    from edgeinspect_cloud.training.unet import build_unet

    model = build_unet(height, width, base_filters=2)  # 40x24 is padded to 48x32 inside, then cropped
    spec = input_spec(height, width)
    path = export_onnx(model, tmp_path / "seg.onnx", spec, "mask_probability")
    inputs, outputs = _io(path)
    assert inputs[0][:2] == ("image", onnx.TensorProto.UINT8) and inputs[0][2][1:] == [3, height, width]
    assert outputs[0][:2] == ("mask_probability", onnx.TensorProto.FLOAT)
    assert outputs[0][2][1:] == [1, height, width]
    pixels = batch(3, height, width)
    probs = framework_predict(model, pixels)
    assert probs.shape == (3, 1, height, width) and np.all((probs >= 0) & (probs <= 1))
    assert parity(model, path, pixels) < 1e-5
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.run(None, {"image": pixels[:1]})[0].shape == (1, 1, height, width)  # dynamic batch


def test_unknown_model_types_are_refused() -> None:
    with pytest.raises(TrainingError, match=r"expected a torch\.nn\.Module or a keras\.Model"):
        framework_of(object())


def test_configs_are_checked() -> None:
    assert default_config("segmentation").crop_height == 96
    with pytest.raises(TrainingError, match="multiple of 16"):
        TrainConfig(task="segmentation", height=64, img_width=32, width=4, epochs=1, crop_height=20)
    with pytest.raises(TrainingError, match="unknown task"):
        TrainConfig(task="detection", height=64, img_width=32, width=4, epochs=1)  # type: ignore[arg-type]
    with pytest.raises(TrainingError, match="epochs must be positive"):
        default_config("classification").with_overrides(epochs=0)
