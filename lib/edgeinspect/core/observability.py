"""Structured logs, Prometheus helpers and a tiny health server for services without an HTTP app.

Logs are one JSON object per line (``{"ts":..., "level":..., "logger":..., "event":..., ...ids}``) so
a factory's log shipper can index frame and job ids without parsing prose.
"""

from __future__ import annotations

import errno
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client import REGISTRY as DEFAULT_REGISTRY

from edgeinspect.core.httpbounds import BoundedHTTPServer

_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line, keeping every ``extra`` field as a top-level key."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, separators=(",", ":"))


class StructLogger:
    """A thin facade: ``log.info("frame_done", frame_id=f, ms=3.1)`` becomes one JSON line."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger

    def _log(self, level: int, event: str, exc_info: bool, fields: dict[str, Any]) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, event, extra=_extra(fields), exc_info=exc_info, stacklevel=3)

    def debug(self, event: str, **fields: Any) -> None:
        self._log(logging.DEBUG, event, False, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log(logging.INFO, event, False, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log(logging.WARNING, event, False, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._log(logging.ERROR, event, False, fields)

    def exception(self, event: str, **fields: Any) -> None:
        self._log(logging.ERROR, event, True, fields)


def _extra(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` with names the LogRecord owns (``message``, ``name``, ``args``...) as ``field_<name>``.

    Why: ``logging`` raises KeyError for an ``extra`` key that would overwrite a record attribute, and
    it raises in the caller, only when the level is enabled. A ``message=`` field once killed the fleet
    service's request thread on the first rejected request, but only where INFO logging was on.
    """
    if _RESERVED.isdisjoint(fields):
        return fields
    return {f"field_{k}" if k in _RESERVED else k: v for k, v in fields.items()}


def get_logger(name: str) -> StructLogger:
    """The structured logger for a module (``get_logger(__name__)``)."""
    return StructLogger(logging.getLogger(name))


def configure_logging(level: str = "INFO", service: str | None = None) -> None:
    """Send every log record to stderr as JSON; call once from a service's ``main()``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    if service:
        handler.addFilter(_ServiceFilter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class _ServiceFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self._service
        return True


class Health:
    """Liveness and readiness as a service sees itself: ready only while its dependencies are."""

    def __init__(self) -> None:
        self._checks: dict[str, Callable[[], bool]] = {}
        self._stopping = threading.Event()
        self.started_at = time.time()

    def add_check(self, name: str, check: Callable[[], bool]) -> None:
        """Register a readiness check (e.g. ``redis`` -> ping succeeds)."""
        self._checks[name] = check

    def mark_stopping(self) -> None:
        """After SIGTERM: still alive, no longer ready, so the orchestrator stops routing to us."""
        self._stopping.set()

    def readiness(self) -> tuple[bool, dict[str, bool]]:
        results: dict[str, bool] = {}
        for name, check in self._checks.items():
            try:
                results[name] = bool(check())
            except Exception:  # a failing check means not ready, never a crash of the probe
                results[name] = False
        ready = not self._stopping.is_set() and all(results.values())
        return ready, results


JsonRoute = Callable[[], tuple[int, dict[str, Any]]]
"""An extra GET endpoint of a ``HealthServer``: returns the HTTP status and a JSON body."""


class _HealthHandler(BaseHTTPRequestHandler):
    timeout = 10.0  # with BoundedHTTPServer: a probe port cannot be held open by half-sent requests
    health: Health
    registry: CollectorRegistry
    routes: Mapping[str, JsonRoute]

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._send(200, "application/json", b'{"status":"ok"}')
        elif path == "/readyz":
            ready, checks = self.health.readiness()
            body = json.dumps({"ready": ready, "checks": checks}).encode()
            self._send(200 if ready else 503, "application/json", body)
        elif path == "/metrics":
            self._send(200, CONTENT_TYPE_LATEST, generate_latest(self.registry))
        elif path in self.routes:
            status, payload = self.routes[path]()
            self._send(status, "application/json", json.dumps(payload, default=str).encode("utf-8"))
        else:
            paths = ["/healthz", "/readyz", "/metrics", *self.routes]
            self._send(404, "application/json", json.dumps({"error": "not found", "paths": paths}).encode())

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


class HealthServer:
    """``/healthz``, ``/readyz`` and ``/metrics`` on a background thread, for non-HTTP services.

    ``routes`` adds a service's own small JSON endpoints (the uploader's ``/status``) to the same
    server, so no service needs a web framework, or a second copy of this one, for one more path.
    """

    def __init__(
        self,
        health: Health,
        host: str = "127.0.0.1",
        port: int = 0,
        registry: CollectorRegistry = DEFAULT_REGISTRY,
        routes: Mapping[str, JsonRoute] | None = None,
    ) -> None:
        attrs = {"health": health, "registry": registry, "routes": dict(routes or {})}
        handler = type("Handler", (_HealthHandler,), attrs)
        self._server = _bind(host, port, handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="health-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _bind(
    host: str, port: int, handler: type[BaseHTTPRequestHandler], wait_s: float = 10.0
) -> BoundedHTTPServer:
    """Bind the health port, waiting a little while it is still held: a restarted service often
    comes back before its previous process has released the port."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return BoundedHTTPServer((host, port), handler)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or port == 0 or time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)
