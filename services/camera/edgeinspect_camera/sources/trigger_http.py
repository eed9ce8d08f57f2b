"""The trigger's HTTP surface: routes, request limits, and the one place errors become status codes.

Standard library only (``ThreadingHTTPServer``): two POST routes do not need a web framework, and a
PLC's HTTP client gets plain JSON either way.

    POST /frames[?source=NAME][&part_id=ID]  body: image bytes -> 202 {"frame_id", "ts_ns", ...}
                                                         | 400 | 411 | 413 | 503
    POST /capture[?part_id=ID]                                 -> 202 {"frame_id", "ts_ns", ...}
                                                         | 400 | 409 | 502 | 503

``part_id`` is the PLC's name for the part (a serial number): it travels with the frame to the result,
the capture and the uploaded metadata. At most 64 printable characters.

What a client can take is bounded (:mod:`edgeinspect.core.httpbounds`): at most
``EI_TRIGGER_MAX_CONNECTIONS`` connections (one more gets 503 at once), each with
``EI_TRIGGER_REQUEST_TIMEOUT_S`` to deliver its whole request; a body over ``EI_TRIGGER_MAX_BYTES`` is
refused from its Content-Length (413), an image over ``EI_TRIGGER_MAX_PIXELS`` from its header (413),
before any pixel is decoded; and at most ``EI_TRIGGER_DECODE_SLOTS`` images are decoded at once.
Nothing a client sends is quoted back beyond its first hundred characters.

Who may call (:class:`TriggerGuard`, the UI's rules from :mod:`edgeinspect.core.webguard`): a
``Host`` on the allow-list (loopback, the listen address, ``EI_TRIGGER_ALLOWED_HOSTS``; 421 else), no
cross-site browser request (403), and ``Authorization: Bearer <token>`` (401 else; ``EI_TRIGGER_TOKEN``
or a token generated once into ``EI_TRIGGER_STATE_DIR``), all checked before the body is read.
``EI_TRIGGER_AUTH=none`` turns the token off, and is accepted only for a loopback listener.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from edgeinspect.core.errors import EdgeInspectError
from edgeinspect.core.httpbounds import BoundedHandler, BoundedHTTPServer
from edgeinspect.core.observability import get_logger
from edgeinspect.core.safejson import clip
from edgeinspect.core.webguard import allowed_hosts, bearer_refusal, is_loopback

from edgeinspect_camera.sources.base import FrameUnreadable, Grab, SourceError

log = get_logger(__name__)
MAX_SOURCE_CHARS = 100


class QueueFull(SourceError):
    """More posted frames are waiting than ``EI_TRIGGER_QUEUE`` allows; the caller should retry."""


class FrameTooLarge(SourceError):
    """A posted image declares more pixels than ``EI_TRIGGER_MAX_PIXELS`` (refused before decoding)."""


class DecoderBusy(SourceError):
    """Every decode slot stayed busy for the whole wait; the caller should retry."""


class NoCaptureSource(SourceError):
    """``POST /capture`` was called but no ``EI_TRIGGER_SOURCE`` is configured."""


class BadPartId(SourceError):
    """The ``part_id`` query parameter is too long or holds control characters."""


PART_ID_MAX = 64
ANY_INTERFACE = frozenset({"", "0.0.0.0", "::"})


@dataclass(frozen=True)
class TriggerGuard:
    """Who may call the trigger: ``token`` ("" = no authentication) and the allowed ``Host`` names."""

    token: str
    hosts: frozenset[str]

    @classmethod
    def of(cls, token: str, listen_host: str, configured_hosts: str = "") -> TriggerGuard:
        """The loopback names, the listen address (unless it is every interface) and the configured
        names; an empty token only for a loopback listener."""
        if not token and not is_loopback(listen_host):
            raise ValueError(f"a trigger on {listen_host or 'every interface'!r} needs a token")
        extra = [] if listen_host in ANY_INTERFACE else [listen_host]
        return cls(token, allowed_hosts([*extra, *configured_hosts.split(",")]))


def part_id_from(query: str) -> str:
    """The request's ``part_id`` (empty when absent); ``BadPartId`` when it could not be a label."""
    part_id = parse_qs(query).get("part_id", [""])[0]
    if len(part_id) > PART_ID_MAX or not part_id.isprintable():
        raise BadPartId(
            f"part_id {part_id[:80]!r} is not a part id",
            hint=f"send at most {PART_ID_MAX} printable characters (a serial number)",
        )
    return part_id


class TriggerTarget(Protocol):
    """What the HTTP layer needs from the trigger source."""

    max_bytes: int

    def submit_image(self, body: bytes, source: str, part_id: str = "") -> Grab: ...

    def capture_now(self, part_id: str = "") -> Grab: ...


def status_for(error: EdgeInspectError, route: str) -> int:
    """Map a domain error to an HTTP status (the only such mapping in the camera)."""
    if isinstance(error, QueueFull | DecoderBusy):
        return 503
    if isinstance(error, FrameTooLarge):
        return 413
    if isinstance(error, BadPartId):
        return 400
    if isinstance(error, NoCaptureSource):
        return 409
    if isinstance(error, FrameUnreadable):
        return 400 if route == "/frames" else 502
    if isinstance(error, SourceError):
        return 503
    return 500


class _Handler(BoundedHandler):
    target: TriggerTarget
    guard: TriggerGuard | None

    def _refused(self, method: str) -> bool:
        """Answer 421/403/401 (and close, the body unread) when the guard refuses the request."""
        if self.guard is None:
            return False
        headers = {name.lower(): value for name, value in self.headers.items()}
        refusal = bearer_refusal(method, headers, self.guard.hosts, self.guard.token)
        if refusal is None:
            return False
        self.request_received()
        self.close_connection = True
        log.warning("trigger_unauthorized", status=refusal.status, error=refusal.error)
        extra = {"WWW-Authenticate": 'Bearer realm="edgeinspect"'} if refusal.status == 401 else {}
        self._json(refusal.status, {"error": refusal.error, "hint": refusal.hint}, extra)
        return True

    def do_POST(self) -> None:
        if self._refused("POST"):
            return
        url = urlsplit(self.path)
        route = url.path.rstrip("/") or "/"
        if route not in ("/frames", "/capture"):
            self.request_received()
            self._json(
                404, {"error": f"no route {clip(route)}", "hint": "POST /frames (image body) or /capture"}
            )
            return
        try:
            part_id = part_id_from(url.query)
            if route == "/frames":
                body = self._body()
                if body is None:
                    return
                source = parse_qs(url.query).get("source", [""])[0][:MAX_SOURCE_CHARS]
                grab = self.target.submit_image(body, source, part_id)
            else:
                self.request_received()
                grab = self.target.capture_now(part_id)
        except EdgeInspectError as exc:
            status = status_for(exc, route)
            log.warning("trigger_refused", route=route, status=status, error=exc.message)
            headers = {"Retry-After": "1"} if status == 503 else {}
            self._json(status, {"error": exc.message, "hint": exc.hint}, headers)
            return
        self._json(
            202,
            {"frame_id": grab.frame_id, "ts_ns": grab.ts_ns, "source": grab.source, "part_id": grab.part_id},
        )

    def do_GET(self) -> None:
        if self._refused("GET"):
            return
        self.request_received()
        self._json(405, {"error": "use POST", "hint": "POST /frames (image body) or POST /capture"})

    def _body(self) -> bytes | None:
        """The request body, or ``None`` after answering 411/413/400 for a missing or oversize one."""
        length_text = self.headers.get("Content-Length")
        if length_text is None or not length_text.isdigit() or len(length_text) > 18:
            self.request_received()
            self._json(411, {"error": "Content-Length is required", "hint": "send the image as the body"})
            return None
        length = int(length_text)
        if length > self.target.max_bytes:
            self.request_received()
            self.close_connection = True
            self._json(
                413,
                {
                    "error": f"body of {length} bytes is over {self.target.max_bytes}",
                    "hint": "send a smaller image, or raise EI_TRIGGER_MAX_BYTES",
                },
            )
            return None
        if length == 0:
            self.request_received()
            self._json(
                400, {"error": "the request body is empty", "hint": "POST the image bytes as the body"}
            )
            return None
        try:
            body = self.rfile.read(length)
        except OSError:  # the per-read timeout: a client that stalled mid-body
            body = b""
        self.request_received()
        if len(body) < length:  # the client stopped sending, or its deadline shut the socket
            self.close_connection = True
            log.warning("trigger_body_incomplete", received=len(body), expected=length)
            return None
        return body

    def _json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return  # requests are logged as structured events, not as Apache-style lines


class TriggerServer:
    """The HTTP server on its own thread; ``stop`` closes the socket so the port is free again."""

    def __init__(
        self,
        target: TriggerTarget,
        host: str,
        port: int,
        *,
        max_connections: int = 32,
        request_timeout_s: float = 10.0,
        guard: TriggerGuard | None = None,
    ) -> None:
        attrs = {"target": target, "timeout": request_timeout_s, "guard": guard}
        handler = type("TriggerHandler", (_Handler,), attrs)
        self._server = BoundedHTTPServer(
            (host, port), handler, max_connections=max_connections, request_deadline_s=request_timeout_s
        )
        self._thread = threading.Thread(target=self._serve, name="trigger-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> TriggerServer:
        self._thread.start()
        return self

    def _serve(self) -> None:
        self._server.serve_forever(poll_interval=0.05)  # a short poll makes stop() quick

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
