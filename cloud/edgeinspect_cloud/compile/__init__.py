"""Compile: any trained model (PyTorch, Keras, ONNX) -> contract ONNX, optimised fp32 and static int8.

Typical use::

    source = from_torch(model, task="classification", height=256, width=96, normalisation=norm)
    result = compile_model(source, CompileData(calibration=train_x, validation=val_x, labels=val_y), out)

Every failure is a :class:`CompileError`; a parity gate that fails raises its subclass
:class:`ParityError` with the measured figures.
"""

from edgeinspect_cloud.compile.compiler import (
    FP32_FILE,
    INT8_FILE,
    REPORT_FILE,
    CompileData,
    CompileOptions,
    CompileResult,
    compile_model,
    compile_multitask,
    load_report,
)
from edgeinspect_cloud.compile.contract import (
    INPUT_NAME,
    OUTPUT_NAMES,
    Adaptation,
    Layout,
    Task,
    adapt_to_contract,
    check_contract,
)
from edgeinspect_cloud.compile.errors import CompileError, ParityError
from edgeinspect_cloud.compile.optimize import optimize, quantize_int8
from edgeinspect_cloud.compile.parity import ParityReport, accuracy, compare, image_scores
from edgeinspect_cloud.compile.runtime import latency_ms, open_session, predict
from edgeinspect_cloud.compile.sources import (
    OPSET,
    SourceModel,
    from_keras,
    from_onnx,
    from_torch,
    load_source,
    normalise,
)

__all__ = [
    "FP32_FILE",
    "INPUT_NAME",
    "INT8_FILE",
    "OPSET",
    "OUTPUT_NAMES",
    "REPORT_FILE",
    "Adaptation",
    "CompileData",
    "CompileError",
    "CompileOptions",
    "CompileResult",
    "Layout",
    "ParityError",
    "ParityReport",
    "SourceModel",
    "Task",
    "accuracy",
    "adapt_to_contract",
    "check_contract",
    "compare",
    "compile_model",
    "compile_multitask",
    "from_keras",
    "from_onnx",
    "from_torch",
    "image_scores",
    "latency_ms",
    "load_report",
    "load_source",
    "normalise",
    "open_session",
    "optimize",
    "predict",
    "quantize_int8",
]
