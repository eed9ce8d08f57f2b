"""Export a framework model to ONNX (opset pinned) and check that ONNX Runtime agrees with the framework.

:func:`export_onnx` accepts what the trainers return in ``TrainResult.model`` (a PyTorch module or a
Keras model that takes uint8 NCHW pixels) and writes an ONNX file whose input is ``image`` (dynamic
batch) and whose output is named as the model contract says. :func:`parity` runs the same uint8 batch
through the framework and through ONNX Runtime and returns the largest absolute difference.

torch, tensorflow and tf2onnx are imported inside the functions that need them, so importing this
module (e.g. from the compile step) costs nothing.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from edgeinspect.core.package import InputSpec

from edgeinspect_cloud.errors import TrainingError
from edgeinspect_cloud.training.config import ONNX_OPSET


def framework_of(model: Any) -> str:
    """``"torch"`` or ``"keras"`` for a model object, judged by its class's module (no imports needed)."""
    for cls in type(model).__mro__:
        root = cls.__module__.split(".")[0]
        if root == "torch":
            return "torch"
        if root in ("keras", "tf_keras", "tensorflow"):
            return "keras"
    raise TrainingError(
        f"cannot export a {type(model).__name__}: expected a torch.nn.Module or a keras.Model",
        hint="pass a PyTorch or Keras model, or a ready ONNX file",
    )


def export_onnx(
    model: Any,
    path: str | Path,
    spec: InputSpec,
    output_name: str | Sequence[str],
    *,
    opset: int = ONNX_OPSET,
) -> Path:
    """Write ``model`` as ONNX: input ``spec.name`` (uint8, dynamic batch), outputs named ``output_name``.

    A list of names is for a model with several outputs (the multi-task model: PyTorch only), in the
    order the model returns them.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    names = [output_name] if isinstance(output_name, str) else list(output_name)
    if framework_of(model) == "torch":
        _export_torch(model, target, spec, names, opset)
    elif len(names) == 1:
        _export_keras(model, target, spec, names[0], opset)
    else:
        raise TrainingError(
            f"cannot export a Keras model with outputs {names}", hint="multi-output export is PyTorch only"
        )
    return target


def _export_torch(model: Any, path: Path, spec: InputSpec, output_names: list[str], opset: int) -> None:
    import torch

    model.eval()
    example = torch.zeros((1, spec.channels, spec.resize.height, spec.resize.width), dtype=torch.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter warns that it is the legacy path
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=[spec.name],
            output_names=output_names,
            dynamic_axes={spec.name: {0: "batch"}, **{name: {0: "batch"} for name in output_names}},
        )


def _export_keras(model: Any, path: Path, spec: InputSpec, output_name: str, opset: int) -> None:
    import tensorflow as tf
    import tf2onnx

    signature = (
        tf.TensorSpec((None, spec.channels, spec.resize.height, spec.resize.width), tf.uint8, spec.name),
    )
    proto, _ = tf2onnx.convert.from_keras(
        model, input_signature=signature, opset=opset, output_path=str(path)
    )
    outputs = [o.name for o in proto.graph.output]
    if outputs != [output_name]:
        raise TrainingError(
            f"exported Keras model has outputs {outputs}, expected [{output_name!r}]",
            hint="name the model's last layer after the contract's output",
        )


def framework_predict(model: Any, batch: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """The framework's own (first) output for a uint8 NCHW batch (inference mode)."""
    return framework_outputs(model, batch)[0]


def framework_outputs(model: Any, batch: npt.NDArray[np.uint8]) -> list[npt.NDArray[np.float32]]:
    """Every output of the framework model for a uint8 NCHW batch, in the model's order."""
    if framework_of(model) == "torch":
        import torch

        model.eval()
        with torch.no_grad():
            out = model(torch.from_numpy(np.ascontiguousarray(batch)))
        parts = out if isinstance(out, tuple | list) else (out,)
        return [np.asarray(part.numpy(), dtype=np.float32) for part in parts]
    return [np.asarray(model(batch, training=False), dtype=np.float32)]


def parity(
    model: Any, onnx_path: str | Path, batch: npt.NDArray[np.uint8], *, input_name: str = "image"
) -> float:
    """Largest absolute difference between the framework's and ONNX Runtime's outputs on ``batch``."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    onnx_outs = [np.asarray(o, dtype=np.float32) for o in session.run(None, {input_name: batch})]
    expected = framework_outputs(model, batch)
    worst = 0.0
    for onnx_out, wanted in zip(onnx_outs, expected, strict=False):
        if onnx_out.shape != wanted.shape:
            raise TrainingError(
                f"ONNX output shape {onnx_out.shape} differs from the framework's {wanted.shape}",
                hint="the export is broken; check the model's output layer",
            )
        worst = max(worst, float(np.max(np.abs(onnx_out - wanted))) if wanted.size else 0.0)
    if len(onnx_outs) != len(expected):
        raise TrainingError(
            f"ONNX model has {len(onnx_outs)} outputs, the framework model {len(expected)}",
            hint="the export is broken; check the output names",
        )
    return worst
