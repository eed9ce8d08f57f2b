"""The agent's domain errors and THE one table that maps every error to a gRPC status code.

The model table raises these without knowing about gRPC; the servicers turn them into status codes
through :func:`status_name`, and the metrics count errors by the same name, so a code a client sees
and a code on a dashboard can never disagree.
"""

from __future__ import annotations

from edgeinspect.core.errors import EdgeInspectError, MessageError, PackageError


class ModelNotFoundError(EdgeInspectError):
    """No loaded model, version or alias answers to the name asked for (never loaded, or unloaded)."""


class ModelExistsError(EdgeInspectError):
    """A model name or name:version is already loaded; unload it first or pick another name."""


class CaptureExistsError(EdgeInspectError):
    """A ``CaptureData`` capture_id was already used; every capture needs its own id."""


class InvalidInputError(EdgeInspectError):
    """Inputs do not match the model: missing or extra tensor, wrong shape or dtype."""


class ModelInUseError(EdgeInspectError):
    """The version is referenced by an alias (as primary or shadow), so it cannot be unloaded now."""


class ModelLoadError(EdgeInspectError):
    """The package verified but ONNX Runtime could not create a session from its model."""


class InferenceError(EdgeInspectError):
    """ONNX Runtime failed while running a model on inputs that passed validation."""


class OverloadedError(EdgeInspectError):
    """The agent cannot take more of this work right now (e.g. too many shadow runs pending)."""


class NotFoundPathError(EdgeInspectError):
    """The package directory or file given to load does not exist."""


_STATUS_TABLE: tuple[tuple[type[BaseException], str], ...] = (
    (ModelNotFoundError, "NOT_FOUND"),
    (NotFoundPathError, "NOT_FOUND"),
    (ModelExistsError, "ALREADY_EXISTS"),
    (CaptureExistsError, "ALREADY_EXISTS"),
    (InvalidInputError, "INVALID_ARGUMENT"),
    (MessageError, "INVALID_ARGUMENT"),  # core.tensors.TensorError: bytes vs shape, bad shm handle
    (ModelInUseError, "FAILED_PRECONDITION"),
    (PackageError, "FAILED_PRECONDITION"),
    (ModelLoadError, "FAILED_PRECONDITION"),
    (OverloadedError, "RESOURCE_EXHAUSTED"),
    (InferenceError, "INTERNAL"),
)


def status_name(exc: BaseException) -> str:
    """The gRPC status code name (``NOT_FOUND``...) for an error; ``INTERNAL`` for anything unforeseen."""
    for kind, code in _STATUS_TABLE:
        if isinstance(exc, kind):
            return code
    return "INTERNAL"


MAX_MESSAGE_CHARS = 2000
"""Longest status message a client gets: gRPC carries it in a header, and clients cap headers at 8 KiB."""


def clip(text: str, limit: int = 120) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out (client input is quoted in
    errors and logs, and a megabyte of it must not become a megabyte of error)."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...(+{len(text) - limit} chars)"


def describe(exc: BaseException) -> str:
    """The message a client reads: what was wrong and, when known, what to do (never overlong)."""
    if isinstance(exc, EdgeInspectError):
        hint = f" ({clip(exc.hint, 400)})" if exc.hint else ""
        return clip(exc.message, MAX_MESSAGE_CHARS) + hint
    return clip(f"internal error: {type(exc).__name__}: {exc}", MAX_MESSAGE_CHARS)
