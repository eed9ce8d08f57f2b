"""The fleet service's HTTP side: the fleet page, its JSON, and the probes, as one FastAPI app.

Served by uvicorn on a thread of ``edgeinspect fleet serve`` (``EI_HTTP_HOST``/``EI_HTTP_PORT``), in
the line UI's style: a static page (``static/fleet.*``, never templated, so nothing from the
database or the settings is ever interpreted as HTML) that polls ``/api/fleet`` and renders it with
DOM calls; a strict Content-Security-Policy; ``/healthz``, ``/readyz`` and ``/metrics`` with the same
answers as every other service. Read-only: deployments are made with the CLI, which checks approval.
"""

from __future__ import annotations

import threading
from importlib import resources
from typing import Annotated, Any

from edgeinspect.core.observability import Health, get_logger
from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from edgeinspect_cloud.fleet.errors import FleetDatabaseError, FleetError
from edgeinspect_cloud.fleet.fleetdb import FleetStore
from edgeinspect_cloud.fleet.overview import fleet_overview

log = get_logger(__name__)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


def static_dir() -> str:
    return str(resources.files("edgeinspect_cloud.fleet") / "static")


class _SecureHeaders(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers.update(HEADERS)
        if request.url.path.startswith("/api/"):
            response.headers["cache-control"] = "no-store"
        return response


def create_fleet_app(store: FleetStore, health: Health, registry: CollectorRegistry) -> FastAPI:
    """The app over ``store`` (a connection of its own: page reads never wait behind device requests)."""
    app = FastAPI(title="edgeinspect fleet", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(_SecureHeaders)
    app.mount("/static", StaticFiles(directory=static_dir()), name="static")
    lock = threading.Lock()

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(f"{static_dir()}/fleet.html", headers={"cache-control": "no-cache"})

    @app.get("/api/fleet")
    def overview(
        group: Annotated[str | None, Query(max_length=128)] = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    ) -> JSONResponse:
        try:
            with lock:  # one store connection: requests take turns
                body: dict[str, Any] = fleet_overview(store, group, limit)
        except FleetDatabaseError as exc:
            log.warning("fleet_page_db_unavailable", error=exc.message)
            return JSONResponse(
                {"error": exc.message, "hint": "the fleet database is unreachable; the page retries"},
                status_code=503,
            )
        return JSONResponse(body)

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        ready, checks = health.readiness()
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


class WebServer:
    """uvicorn serving the app on a daemon thread; ``stop()`` lets in-flight requests finish."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        import uvicorn

        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fleet-http", daemon=True)

    def start(self, timeout: float = 15.0) -> WebServer:
        self._thread.start()
        pause = threading.Event()
        for _ in range(int(timeout / 0.05)):
            if self._server.started or not self._thread.is_alive():
                break
            pause.wait(0.05)
        if not self._server.started:
            raise FleetError(
                "the fleet service's HTTP server did not start",
                hint="is EI_HTTP_PORT free? another process may listen on it",
            )
        return self

    @property
    def port(self) -> int:
        servers = getattr(self._server, "servers", [])
        for server in servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return 0

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
