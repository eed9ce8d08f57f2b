"""Where a model comes from: a PyTorch module, a Keras model, or a ready ONNX file.

Each ``from_*`` function exports (when needed) to ONNX with the pinned opset and returns a
:class:`SourceModel`: the raw graph, how it differs from the model contract (:class:`Adaptation`),
the framework that made it, and - for framework models - a ``reference`` function that runs the
framework itself on contract inputs, so the compile step can prove the ONNX graph computes the same.

torch and tensorflow are imported inside the functions that need them: compiling an ONNX file never
pays for importing either.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from edgeinspect.core.package import Framework, Normalisation
from google.protobuf.message import DecodeError

from edgeinspect_cloud.compile.contract import Adaptation, Layout, Task
from edgeinspect_cloud.compile.errors import CompileError

OPSET = 17
"""The pinned ONNX opset: QDQ per-channel needs >= 13; 17 loads in every ONNX Runtime from 1.13 on,
including the older builds Jetson images ship."""

Reference = Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.float32]]
"""uint8 NCHW images -> the contract output (probabilities), computed by the training framework."""

_FRAMEWORK_SUFFIXES = {".onnx": "onnx", ".keras": "keras", ".h5": "keras", ".pt": "torch", ".pth": "torch"}


@dataclass(frozen=True)
class SourceModel:
    """A model ready for :func:`edgeinspect_cloud.compile.compile_model`."""

    model: onnx.ModelProto
    framework: Framework
    adaptation: Adaptation
    reference: Reference | None = None


def normalise(images: npt.NDArray[np.uint8], normalisation: Normalisation | None) -> npt.NDArray[np.float32]:
    """uint8 NCHW -> float32 NCHW, ``(pixel * scale - mean) / std``: what the graph's preamble computes."""
    x = images.astype(np.float32)
    if normalisation is None:
        return x
    mean = np.asarray(normalisation.mean, np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(normalisation.std, np.float32).reshape(1, -1, 1, 1)
    result: npt.NDArray[np.float32] = (x * np.float32(normalisation.scale) - mean) / std
    return result


def to_contract_output(raw: npt.NDArray[Any], adaptation: Adaptation) -> npt.NDArray[np.float32]:
    """A framework's raw output -> the contract output (sigmoid, [N, 1] or NCHW mask), in numpy."""
    out = np.asarray(raw, dtype=np.float32)
    if adaptation.sigmoid:
        out = (1.0 / (1.0 + np.exp(-out))).astype(np.float32)
    if adaptation.task == "classification":
        return out.reshape(-1, 1)
    if adaptation.layout == "NHWC":
        out = out.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(out)


def from_onnx(
    path: str | Path,
    *,
    task: Task,
    layout: Layout = "NCHW",
    normalisation: Normalisation | None = None,
    sigmoid: bool = False,
    framework: Framework | None = None,
) -> SourceModel:
    """A ready ONNX file. A uint8-input graph is taken as normalising itself; a float one is wrapped."""
    file = Path(path)
    try:
        model = onnx.load(str(file))
    except (OSError, ValueError, DecodeError) as exc:
        raise CompileError(f"cannot read ONNX model {file}: {exc}", hint="pass a valid .onnx file") from exc
    made_by = framework or Framework(
        name=model.producer_name or "onnx", version=model.producer_version or str(model.ir_version)
    )
    adaptation = Adaptation(task=task, layout=layout, normalisation=normalisation, sigmoid=sigmoid)
    return SourceModel(model=model, framework=made_by, adaptation=adaptation)


def from_torch(
    module: Any,
    *,
    task: Task,
    height: int,
    width: int,
    normalisation: Normalisation | None,
    sigmoid: bool = False,
    opset: int = OPSET,
) -> SourceModel:
    """Export a ``torch.nn.Module`` taking float NCHW input (TorchScript exporter, dynamic batch)."""
    import torch

    module.eval()
    buffer = io.BytesIO()
    dummy = torch.zeros(1, 3, height, width, dtype=torch.float32)
    export: Any = torch.onnx.export  # typed for paths only; it writes file objects too
    try:
        with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice, not actionable here
            warnings.simplefilter("ignore", DeprecationWarning)
            export(
                module,
                (dummy,),
                buffer,
                dynamo=False,
                opset_version=opset,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes={"input": {0: "N"}, "output": {0: "N"}},
            )
    except Exception as exc:  # the exporter raises many types; all mean the same to the user
        raise CompileError(
            f"PyTorch could not export the model to ONNX: {exc}", hint="check the module"
        ) from exc
    adaptation = Adaptation(task=task, layout="NCHW", normalisation=normalisation, sigmoid=sigmoid)

    def reference(images: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        with torch.no_grad():
            raw = module(torch.from_numpy(normalise(images, normalisation))).numpy()
        return to_contract_output(raw, adaptation)

    version = torch.__version__.split("+")[0]
    return SourceModel(
        model=onnx.load_from_string(buffer.getvalue()),
        framework=Framework(name="torch", version=version),
        adaptation=adaptation,
        reference=reference,
    )


def from_keras(
    model: Any,
    *,
    task: Task,
    normalisation: Normalisation | None,
    sigmoid: bool = False,
    opset: int = OPSET,
) -> SourceModel:
    """Convert a Keras model taking float NHWC input with tf2onnx (``from_keras``, dynamic batch)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    import tf2onnx

    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[3] != 3:
        raise CompileError(
            f"the Keras model input has shape {shape}, expected (None, H, W, 3)",
            hint="build the Keras model with a channels-last RGB image input",
        )
    signature = (tf.TensorSpec((None, shape[1], shape[2], 3), tf.float32, name="input"),)
    try:
        graph, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=opset)
    except Exception as exc:  # tf2onnx raises many types
        raise CompileError(
            f"tf2onnx could not convert the Keras model: {exc}", hint="check the model"
        ) from exc
    adaptation = Adaptation(task=task, layout="NHWC", normalisation=normalisation, sigmoid=sigmoid)

    def reference(images: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        nhwc = normalise(images, normalisation).transpose(0, 2, 3, 1)
        raw = np.asarray(model(nhwc, training=False))
        return to_contract_output(raw, adaptation)

    return SourceModel(
        model=graph,
        framework=Framework(name="tensorflow", version=tf.__version__),
        adaptation=adaptation,
        reference=reference,
    )


def load_source(
    path: str | Path,
    *,
    task: Task,
    normalisation: Normalisation | None = None,
    sigmoid: bool = False,
    layout: Layout | None = None,
    height: int | None = None,
    width: int | None = None,
) -> SourceModel:
    """Open a model file by its suffix: ``.onnx``, ``.keras``/``.h5`` (Keras), ``.pt``/``.pth`` (PyTorch).

    A PyTorch file may be TorchScript or a whole pickled module (``torch.save(model)``); the latter
    runs pickle, so only load files you made. PyTorch needs ``height`` and ``width``.
    """
    file = Path(path)
    kind = _FRAMEWORK_SUFFIXES.get(file.suffix.lower())
    if not file.is_file() or kind is None:
        raise CompileError(
            f"{file} is not a model file compile can read",
            hint=f"pass an existing file ending in one of {sorted(_FRAMEWORK_SUFFIXES)}",
        )
    if kind == "onnx":
        return from_onnx(
            file, task=task, layout=layout or "NCHW", normalisation=normalisation, sigmoid=sigmoid
        )
    if kind == "keras":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import keras

        model = keras.models.load_model(file, compile=False)
        return from_keras(model, task=task, normalisation=normalisation, sigmoid=sigmoid)
    if height is None or width is None:
        raise CompileError(
            "a PyTorch model needs --height and --width", hint="give the input size it was trained at"
        )
    return from_torch(
        _load_torch(file), task=task, height=height, width=width, normalisation=normalisation, sigmoid=sigmoid
    )


def _load_torch(file: Path) -> Any:
    import torch

    jit_load: Any = torch.jit.load
    try:
        return jit_load(str(file), map_location="cpu")
    except RuntimeError:
        pass  # not TorchScript: try a pickled module
    load: Any = torch.load
    module = load(file, map_location="cpu", weights_only=False)
    if not isinstance(module, torch.nn.Module):
        raise CompileError(
            f"{file} holds a {type(module).__name__}, not a model",
            hint="save the whole module (torch.save(model)) or TorchScript, not a state_dict",
        )
    return module
