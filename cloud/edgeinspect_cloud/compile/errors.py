"""Errors of the compile step (export, contract adaptation, optimisation, quantisation, parity)."""

from __future__ import annotations

from edgeinspect.core.errors import EdgeInspectError


class CompileError(EdgeInspectError):
    """A model cannot be exported, adapted to the model contract, optimised or quantised."""


class ParityError(CompileError):
    """Two versions of a model disagree beyond tolerance (framework vs ONNX, or int8 vs fp32).

    ``report`` holds the measured figures (max abs diff, verdict agreement) as a JSON-ready dict.
    """

    def __init__(self, message: str, *, hint: str = "", report: dict[str, float] | None = None) -> None:
        super().__init__(message, hint=hint)
        self.report = report or {}
