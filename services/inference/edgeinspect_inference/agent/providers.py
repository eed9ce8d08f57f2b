"""Execution providers behind one small interface, chosen by a setting (``EI_EXECUTION_PROVIDERS``).

Each provider knows its ONNX Runtime name and its options; :func:`resolve` turns the configured
preference order into the list handed to ``InferenceSession`` (CPU always last, as the fallback),
so adding a provider never touches the model table. ``auto`` (the default) names every provider in
the table; with ``EI_PROVIDER_TUNING`` on, the agent measures the available ones per model and keeps
the fastest correct one (``tuning``), otherwise the first available one is used.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgeinspect.core.errors import ConfigError


@dataclass(frozen=True)
class ExecutionProvider:
    """One ONNX Runtime execution provider: short name (setting value), ORT name and its options."""

    name: str
    ort_name: str
    options: dict[str, Any] = field(default_factory=dict)

    def as_ort(self) -> tuple[str, dict[str, Any]]:
        """The ``(name, options)`` pair ``InferenceSession(providers=...)`` expects."""
        return self.ort_name, dict(self.options)


PROVIDERS: dict[str, ExecutionProvider] = {
    provider.name: provider
    for provider in (
        # Engine cache beside the process: TensorRT builds are slow, rebuild only on a new model hash.
        ExecutionProvider(
            "tensorrt",
            "TensorrtExecutionProvider",
            {"trt_fp16_enable": True, "trt_engine_cache_enable": True},
        ),
        ExecutionProvider("cuda", "CUDAExecutionProvider", {"cudnn_conv_algo_search": "HEURISTIC"}),
        ExecutionProvider("openvino", "OpenVINOExecutionProvider", {"device_type": "CPU"}),
        ExecutionProvider("cpu", "CPUExecutionProvider"),
    )
}
CPU = PROVIDERS["cpu"]
AUTO = "auto"
"""``EI_EXECUTION_PROVIDERS=auto``: every provider of the table this box has, in the table's order."""


def resolve(order: Sequence[str], available: Callable[[], Sequence[str]]) -> list[ExecutionProvider]:
    """The providers to request, in preference order, keeping only those ORT has; CPU always last.

    ``available`` is ``onnxruntime.get_available_providers``; an unknown name in ``order`` is a
    ``ConfigError`` naming the valid ones (a typo must not silently fall back to CPU). ``auto`` alone
    stands for every provider of the table.
    """
    if AUTO in order:
        if len(order) > 1:
            raise ConfigError(
                f"EI_EXECUTION_PROVIDERS: 'auto' cannot be combined with other names (got {list(order)})",
                hint="use 'auto', or list the providers to consider in preference order",
            )
        order = list(PROVIDERS)
    unknown = [name for name in order if name not in PROVIDERS]
    if unknown:
        raise ConfigError(
            f"EI_EXECUTION_PROVIDERS: unknown provider(s) {unknown}",
            hint=f"use 'auto' or names from {sorted(PROVIDERS)}",
        )
    present = set(available())
    chosen = [PROVIDERS[name] for name in order if PROVIDERS[name].ort_name in present and name != "cpu"]
    return [*chosen, CPU]


def short_name(ort_name: str) -> str:
    """``CUDAExecutionProvider`` -> ``cuda``: the name reports and metrics use."""
    for provider in PROVIDERS.values():
        if provider.ort_name == ort_name:
            return provider.name
    return ort_name
