"""The client half of the agent's TCP authentication: every call carries
``authorization: Bearer <token>`` (``EI_AGENT_TOKEN``), which the agent checks on TCP connections.

A channel wrapper rather than per-call metadata, so the raw stubs of :class:`AgentClient` (``compat``,
``extension``) send it too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import grpc


class _Details(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: Any
    compression: Any


class BearerToken(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    """Adds the ``authorization`` metadata entry to every call."""

    def __init__(self, token: str) -> None:
        self._entry = ("authorization", f"Bearer {token}")

    def _add(self, details: Any) -> _Details:
        metadata = [*(details.metadata or ()), self._entry]
        return _Details(
            details.method,
            details.timeout,
            metadata,
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def _intercept(self, continuation: Callable[[Any, Any], Any], details: Any, request: Any) -> Any:
        return continuation(self._add(details), request)

    intercept_unary_unary = _intercept
    intercept_unary_stream = _intercept
    intercept_stream_unary = _intercept
    intercept_stream_stream = _intercept


def with_token(channel: grpc.Channel, token: str) -> grpc.Channel:
    """``channel`` sending ``token`` with every call; unchanged when ``token`` is empty."""
    return grpc.intercept_channel(channel, BearerToken(token)) if token else channel
