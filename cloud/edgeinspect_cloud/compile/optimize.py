"""Offline graph optimisation and static int8 quantisation with ONNX Runtime.

Optimisation uses ORT's *basic* level by default: constant folding, redundant-node elimination and
semantics-preserving fusions that produce only standard ONNX operators, so the optimised model still
runs on every execution provider an edge box may use (CPU, OpenVINO, CUDA/TensorRT). The *extended*
and *all* levels emit CPU-specific contrib operators and memory layouts and would tie a package to one
provider; the agent applies those online, on the device, where the provider is known.

Quantisation is **static** and in **QDQ** format: activations uint8 (asymmetric), weights int8
per output channel, ranges calibrated on real images. Dynamic quantisation is never used: it
quantises activations at run time and makes convolutions several times slower on CPU, the opposite
of the point. The contract's preamble (cast and normalisation of the uint8 input) stays in float.

Weights use the *reduced* 7-bit range by default. On x86 CPUs with AVX2 but without VNNI (most edge
PCs older than Ice Lake, and AMD before Zen 4), ONNX Runtime multiplies uint8 activations by int8
weights with ``VPMADDUBSW``, whose int16 pair sums saturate: measured here, single 1x1 convolutions
came out wrong by up to 1.6 (logit units) once fused into ``QLinearConv``, while the same QDQ graph
evaluated unfused was within 0.04. 7-bit weights cannot saturate. Turn ``reduce_range`` off only for
targets known to have VNNI or ARM dot-product instructions; the parity gate runs the int8 model with
every ORT optimisation on, as the agent does, so a saturating model fails there.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from edgeinspect_cloud.compile.contract import INPUT_NAME, POST_PREFIX, PRE_PREFIX
from edgeinspect_cloud.compile.errors import CompileError

OptimisationLevel = Literal["none", "basic", "extended"]
CalibrationName = Literal["minmax", "entropy", "percentile"]

_LEVELS = {
    "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
}
_METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}


def optimize(source: str | Path, dest: str | Path, level: OptimisationLevel = "basic") -> Path:
    """Write ORT's offline-optimised copy of ``source`` to ``dest`` (see the module docstring for levels)."""
    out = Path(dest)
    options = ort.SessionOptions()
    options.graph_optimization_level = _LEVELS[level]
    options.optimized_model_filepath = str(out)
    options.log_severity_level = 3
    try:
        ort.InferenceSession(str(source), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped exceptions
        raise CompileError(f"ONNX Runtime cannot optimise {source}: {exc}", hint="check the model") from exc
    onnx.checker.check_model(str(out))
    return out


class ImageCalibration(CalibrationDataReader):  # type: ignore[misc]
    """Feeds calibration images (uint8 NCHW) to the calibrator one at a time."""

    def __init__(self, images: npt.NDArray[np.uint8], input_name: str = INPUT_NAME) -> None:
        self._images = images
        self._input_name = input_name
        self._iter: Iterator[dict[str, npt.NDArray[np.uint8]]] = self._feeds()

    def _feeds(self) -> Iterator[dict[str, npt.NDArray[np.uint8]]]:
        for index in range(len(self._images)):
            yield {self._input_name: self._images[index : index + 1]}

    def get_next(self) -> dict[str, npt.NDArray[np.uint8]] | None:
        return next(self._iter, None)

    def rewind(self) -> None:
        self._iter = self._feeds()


def quantize_int8(
    fp32_path: str | Path,
    dest: str | Path,
    calibration: npt.NDArray[np.uint8],
    *,
    method: CalibrationName = "minmax",
    reduce_range: bool = True,
) -> Path:
    """Statically quantise ``fp32_path`` (QDQ, uint8 activations, per-channel int8 weights) to ``dest``.

    ``calibration`` is a few dozen representative images, uint8 NCHW, preprocessed exactly as at
    inference: the ranges they produce are baked into the model.
    """
    if calibration.ndim != 4 or calibration.dtype != np.uint8 or len(calibration) == 0:
        raise CompileError(
            f"calibration images must be a non-empty uint8 NCHW array, got {calibration.dtype} "
            f"{list(calibration.shape)}",
            hint="pass training images preprocessed like the model input",
        )
    out, source = Path(dest).resolve(), Path(fp32_path).resolve()
    # ORT's pre-processing and quantiser write uuid-named tensor-data files into the working
    # directory: run them inside the scratch folder so none lands in the caller's (a repository).
    with tempfile.TemporaryDirectory(prefix="ei-quant-") as work, contextlib.chdir(work):
        prepared = Path(work) / "prepared.onnx"
        _pre_process(source, prepared)
        model = onnx.load(str(prepared))
        excluded = [n.name for n in model.graph.node if n.name.startswith((PRE_PREFIX, POST_PREFIX))]
        try:
            quantize_static(
                str(prepared),
                str(out),
                ImageCalibration(calibration),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
                reduce_range=reduce_range,
                calibrate_method=_METHODS[method],
                nodes_to_exclude=excluded,
                extra_options={"CalibTensorRangeSymmetric": False},
            )
        except Exception as exc:  # the quantiser raises many types
            raise CompileError(
                f"int8 quantisation of {fp32_path} failed: {exc}", hint="check the model"
            ) from exc
    return out


def _pre_process(source: Path, dest: Path) -> None:
    """ORT's recommended pre-processing (shape inference + optimisation); retried without symbolic shapes."""
    try:
        quant_pre_process(str(source), str(dest))
    except Exception:  # symbolic shape inference fails on some exports; plain ONNX inference suffices
        quant_pre_process(str(source), str(dest), skip_symbolic_shape=True)
