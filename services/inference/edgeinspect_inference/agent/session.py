"""One ONNX Runtime session and what it expects: the only module of the agent that imports onnxruntime.

Inputs are validated against the model's own input specs *before* ``run``, so a wrong shape or dtype
comes back as ``InvalidInputError`` naming expected and got, instead of an opaque ORT failure.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from edgeinspect_inference.agent.errors import InferenceError, InvalidInputError, ModelLoadError
from edgeinspect_inference.agent.providers import ExecutionProvider, short_name

_ORT_DTYPES: dict[str, np.dtype[Any]] = {
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(int8)": np.dtype(np.int8),
    "tensor(int16)": np.dtype(np.int16),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(float)": np.dtype(np.float32),
    "tensor(double)": np.dtype(np.float64),
    "tensor(bool)": np.dtype(np.bool_),
}


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output: name, dtype and shape (-1 for a dynamic dimension)."""

    name: str
    dtype: np.dtype[Any]
    shape: tuple[int, ...]

    def accepts_shape(self, shape: tuple[int, ...]) -> bool:
        return len(shape) == len(self.shape) and all(
            d in (-1, s) for d, s in zip(self.shape, shape, strict=True)
        )

    @property
    def dynamic_batch(self) -> bool:
        return bool(self.shape) and self.shape[0] == -1


def _spec(node: Any) -> TensorSpec:
    dtype = _ORT_DTYPES.get(node.type)
    if dtype is None:
        raise ModelLoadError(f"tensor {node.name!r} has type {node.type}, which the agent API cannot carry")
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in (node.shape or []))
    return TensorSpec(node.name, dtype, shape)


def available_providers() -> list[str]:
    """ONNX Runtime names of the execution providers this build and box offer."""
    return list(ort.get_available_providers())


def runtime_version() -> str:
    """The ONNX Runtime version (part of a tuning decision's cache key: a new runtime re-measures)."""
    return str(ort.__version__)


def rss_bytes() -> int:
    """Resident memory of this process (Linux ``/proc/self/statm``); 0 where unavailable."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class ModelSession:
    """An ``InferenceSession`` with validated ``run`` and the specs and provider it reports."""

    def __init__(
        self,
        model_path: Path,
        providers: Sequence[ExecutionProvider],
        intra_op_threads: int = 0,
        allow_spinning: bool = True,
        max_batch: int = 64,
        *,
        inter_op_threads: int = 1,
        parallel: bool = False,
    ) -> None:
        self.max_batch = max_batch
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = inter_op_threads
        if parallel:  # independent branches of the graph run at once on the inter-op pool
            options.execution_mode = ort.ExecutionMode.ORT_PARALLEL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
        try:
            self._session = ort.InferenceSession(
                str(model_path), sess_options=options, providers=[p.as_ort() for p in providers]
            )
        except Exception as exc:  # ORT raises several untyped pybind errors; all mean "cannot load"
            raise ModelLoadError(
                f"ONNX Runtime cannot load {model_path.name}: {exc}",
                hint="check the model's opset against this agent's onnxruntime version",
            ) from exc
        self.inputs = tuple(_spec(node) for node in self._session.get_inputs())
        self.outputs = tuple(_spec(node) for node in self._session.get_outputs())
        self.provider = short_name(self._session.get_providers()[0])
        self._output_names = [spec.name for spec in self.outputs]

    def validate(self, feeds: Mapping[str, np.ndarray]) -> None:
        """Raise ``InvalidInputError`` saying expected vs got for a missing/extra tensor, dtype or shape."""
        expected = [spec.name for spec in self.inputs]
        missing = [name for name in expected if name not in feeds]
        extra = sorted(set(feeds) - set(expected))
        if missing or extra:
            raise InvalidInputError(f"expected input tensors {expected}, got {sorted(feeds)}")
        for spec in self.inputs:
            array = feeds[spec.name]
            if array.dtype != spec.dtype:
                raise InvalidInputError(
                    f"input {spec.name!r}: expected dtype {spec.dtype}, got {array.dtype}"
                )
            if not spec.accepts_shape(tuple(array.shape)):
                expected_shape, got = list(spec.shape), list(array.shape)
                raise InvalidInputError(
                    f"input {spec.name!r}: expected shape {expected_shape} (-1: any), got {got}"
                )
            if spec.dynamic_batch and array.shape[0] > self.max_batch:
                raise InvalidInputError(
                    f"input {spec.name!r}: batch {array.shape[0]} is larger than this agent's limit "
                    f"of {self.max_batch} (EI_MAX_BATCH)",
                    hint="split the request into smaller batches",
                )

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Validate and run; outputs by name. ORT releases the GIL, so runs proceed in parallel."""
        self.validate(feeds)
        try:
            values = self._session.run(self._output_names, dict(feeds))
        except Exception as exc:  # any ORT failure on valid-looking inputs is the model's, not the client's
            raise InferenceError(f"ONNX Runtime failed to run the model: {exc}") from exc
        return dict(zip(self._output_names, values, strict=True))
