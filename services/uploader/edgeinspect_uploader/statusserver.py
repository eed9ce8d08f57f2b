"""``/healthz``, ``/readyz``, ``/metrics`` and ``/status`` on one small background HTTP server.

Core's ``HealthServer`` serves the first three; the uploader adds ``/status`` (its backlog and
counters as JSON), so it runs this equally small server instead of a web framework.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from edgeinspect.core.observability import Health
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

StatusFn = Callable[[], dict[str, Any]]


class _Handler(BaseHTTPRequestHandler):
    health: Health
    registry: CollectorRegistry
    status: StatusFn

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._json(200, {"status": "ok"})
        elif path == "/readyz":
            ready, checks = self.health.readiness()
            self._json(200 if ready else 503, {"ready": ready, "checks": checks})
        elif path == "/metrics":
            self._send(200, CONTENT_TYPE_LATEST, generate_latest(self.registry))
        elif path == "/status":
            self._json(200, type(self).status())
        else:
            self._json(404, {"error": "not found", "paths": ["/healthz", "/readyz", "/metrics", "/status"]})

    def _json(self, code: int, body: dict[str, Any]) -> None:
        self._send(code, "application/json", json.dumps(body, default=str).encode("utf-8"))

    def _send(self, code: int, content_type: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


class StatusServer:
    """The uploader's HTTP endpoints on a daemon thread; ``port`` is known once constructed."""

    def __init__(
        self,
        health: Health,
        registry: CollectorRegistry,
        status: StatusFn,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        attrs = {"health": health, "registry": registry, "status": staticmethod(status)}
        handler = type("UploaderHandler", (_Handler,), attrs)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="uploader-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> StatusServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
