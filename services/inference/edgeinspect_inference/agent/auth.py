"""Who may call the agent over TCP: with ``EI_AGENT_TOKEN`` set, every call that arrives over TCP must
carry ``authorization: Bearer <token>``; calls on the unix socket (guarded by the socket file's
permissions) and gRPC health checks (what kubelet probes; they reveal nothing) need none.

A TCP listener beyond loopback without a token is refused at start-up (settings validation): the
agent loads models and answers predictions, so whoever reaches the port would drive the line. So is
one without TLS (``edgeinspect.core.agent_tls``), unless ``EI_AGENT_TCP_INSECURE=true``: on plain TCP
the token keeps other clients out, not eavesdroppers (see docs/security.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from edgeinspect.core.observability import get_logger
from edgeinspect.core.webguard import equal

log = get_logger(__name__)
METADATA_KEY = "authorization"
OPEN_METHODS = frozenset({"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"})
REFUSAL = "the agent needs `authorization: Bearer <EI_AGENT_TOKEN>` on TCP connections"


def bearer(metadata: Any) -> str:
    """The token of an ``authorization: Bearer`` metadata entry ("" when absent)."""
    for key, value in metadata or ():
        if key == METADATA_KEY and isinstance(value, str) and value.startswith("Bearer "):
            return value[7:]
    return ""


def _on_unix_socket(context: grpc.ServicerContext) -> bool:
    return str(context.peer()).startswith("unix:")


class TokenInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Lets a call through when it carries the token, came over the unix socket, or is a health check;
    otherwise answers UNAUTHENTICATED before the servicer sees the request.

    The peer is only known inside the call, so a call without the token gets a wrapped handler that
    checks it there.
    """

    def __init__(self, token: str) -> None:
        self._token = token

    def intercept_service(
        self, continuation: Callable[[Any], Any], handler_call_details: grpc.HandlerCallDetails
    ) -> Any:
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method in OPEN_METHODS:
            return handler
        if equal(bearer(handler_call_details.invocation_metadata), self._token):
            return handler
        return _guarded(handler, method)


def _guarded(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    """``handler`` with each behaviour refusing callers that are not on the unix socket."""

    def guard(behaviour: Callable[[Any, grpc.ServicerContext], Any]) -> Callable[..., Any]:
        def checked(request: Any, context: grpc.ServicerContext) -> Any:
            if not _on_unix_socket(context):
                log.warning("agent_call_refused", method=method, peer=str(context.peer()))
                context.abort(grpc.StatusCode.UNAUTHENTICATED, REFUSAL)
            return behaviour(request, context)

        return checked

    factories = {
        "unary_unary": grpc.unary_unary_rpc_method_handler,
        "unary_stream": grpc.unary_stream_rpc_method_handler,
        "stream_unary": grpc.stream_unary_rpc_method_handler,
        "stream_stream": grpc.stream_stream_rpc_method_handler,
    }
    for kind, factory in factories.items():
        behaviour = getattr(handler, kind)
        if behaviour is not None:
            return factory(  # type: ignore[no-any-return]
                guard(behaviour),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
    return handler


def interceptors(token: str) -> list[grpc.ServerInterceptor]:
    """The server's interceptors: the token check when a token is set, none otherwise."""
    return [TokenInterceptor(token)] if token else []
