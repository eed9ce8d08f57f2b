"""The domain error hierarchy: every error a factory engineer may read says what was wrong and what to do.

Services map these to gRPC/HTTP status codes in one place each; nothing raises bare ``Exception``.
"""

from __future__ import annotations


class EdgeInspectError(Exception):
    """Base of every edgeinspect error; ``hint`` tells the reader what to do about it."""

    def __init__(self, message: str, *, hint: str = "") -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message} ({hint})" if hint else message)


class ConfigError(EdgeInspectError):
    """A setting is missing or invalid."""


class MessageError(EdgeInspectError):
    """A stream entry or MQTT payload does not match its schema."""


class ImageError(EdgeInspectError):
    """Image bytes cannot be decoded, or are larger than allowed."""


class StorageError(EdgeInspectError):
    """An object store operation failed (missing object, unreachable endpoint, checksum mismatch)."""


class PackageError(EdgeInspectError):
    """A model package is malformed, unsigned, tampered with, or unsafe to unpack."""


class MqttError(EdgeInspectError):
    """The MQTT broker is unreachable or refused us."""


class AgentError(EdgeInspectError):
    """The edge agent refused or failed a call; ``code`` is the gRPC status name (e.g. ``NOT_FOUND``).

    Raised by :class:`edgeinspect.core.agent_client.AgentClient` so callers branch on a typed code
    instead of catching ``grpc.RpcError`` (clients never see transport types).
    """

    def __init__(self, code: str, message: str, *, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.code = code

    def __str__(self) -> str:
        return f"{self.code}: {super().__str__()}"
