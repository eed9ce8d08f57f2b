"""The review web app: a FastAPI page over captured frames, writing decisions as a dataset.

``create_app(store, export, days, reviewers=...)`` takes its dependencies (the capture store, the
dataset being written, which (line, day) manifests to show, who may review), so tests and
``edgeinspect review`` build the same app. Every request but ``/healthz`` and the sign-in form needs a
signed-in reviewer (:mod:`edgeinspect_cloud.review.access`); a Host outside the allow-list is refused
(421) and a POST from another site's page too (403).
The page is static HTML, CSS and vanilla JS (``static/``, no build step), in the live UI's look; the
API is small and JSON:

- ``GET  /api/captures?line=&verdict=&min_score=&max_score=&disagreement=&unreviewed=``: the list;
- ``GET  /api/captures/{key}``: one capture's result and the last decision on it;
- ``GET  /api/captures/{key}/image`` and ``/mask``: the stored frame and the model's mask (PNG);
- ``POST /api/captures/{key}/review`` ``{"label": "ok"|"defect", "mask": "data:image/png;base64,..."}``:
  writes the decision into the dataset, under the signed-in reviewer's name;
- ``GET  /api/whoami``: the signed-in reviewer; ``GET|POST /login``: the sign-in form;
- ``GET  /api/export``: what the dataset holds; ``POST /api/refresh``: re-read the manifests.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from edgeinspect.core import images
from edgeinspect.core.capture_manifest import ManifestRecord
from edgeinspect.core.errors import EdgeInspectError, ImageError, StorageError
from edgeinspect.core.observability import get_logger
from edgeinspect.core.webguard import HostGuard
from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edgeinspect_cloud.review.access import RequireReviewer, Reviewers
from edgeinspect_cloud.review.captures import CaptureStore, LineDay
from edgeinspect_cloud.review.export import Decision, ReviewError, ReviewExport, capture_key

log = get_logger(__name__)
STATIC = Path(__file__).with_name("static")
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]


class ReviewBody(BaseModel):
    """A decision from the page: the label and the mask as a PNG data URL (frame size). Who decided is
    the signed-in reviewer; a ``reviewer`` field in the body is ignored."""

    label: Literal["ok", "defect"]
    mask: str | None = Field(default=None, description="data:image/png;base64,... of the mask")


class CaptureIndex:
    """The captures on show, keyed by :func:`capture_key`; re-read on :meth:`refresh`."""

    def __init__(self, store: CaptureStore, days: Sequence[LineDay] | None) -> None:
        self.store = store
        self._days = days
        self._lock = threading.Lock()
        self.records: dict[str, ManifestRecord] = {}

    def refresh(self) -> int:
        days = self._days if self._days is not None else self.store.days()
        records = {capture_key(r): r for r in self.store.records(days) if "image" in r.objects}
        with self._lock:
            self.records = records
        return len(records)

    def get(self, key: str) -> ManifestRecord:
        with self._lock:
            record = self.records.get(key)
        if record is None:
            raise HTTPException(404, f"no capture {key!r}; refresh the list")
        return record


def _item(record: ManifestRecord, decided: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "key": capture_key(record),
        "line": record.line,
        "frame_id": record.frame_id,
        "time": record.time,
        "verdict": record.verdict,
        "score": record.score,
        "reasons": record.reasons,
        "disagreement": "shadow_disagreement" in record.reasons,
        "has_mask": "mask" in record.objects,
        "width": record.width,
        "height": record.height,
        "review": decided,
    }


def _decode_mask(data_url: str | None, record: ManifestRecord) -> np.ndarray:
    if not data_url:
        return np.zeros((record.height, record.width), dtype=bool)
    _, _, payload = data_url.partition(",")
    try:
        pixels = images.decode(base64.b64decode(payload, validate=True), "png")
    except (ValueError, ImageError) as exc:
        raise HTTPException(422, f"the mask is not a PNG data URL: {exc}") from exc
    mask: np.ndarray = pixels.max(axis=2) >= 128
    return mask


def create_app(
    store: CaptureStore,
    export: ReviewExport,
    days: Sequence[LineDay] | None = None,
    *,
    reviewers: Reviewers,
    hosts: frozenset[str],
) -> FastAPI:
    """The review app over ``store``, writing into ``export``; ``days`` None means every day found;
    ``reviewers`` may sign in; ``hosts`` are the names it answers to (``webguard.allowed_hosts``)."""
    index = CaptureIndex(store, days)
    app = FastAPI(title="edgeinspect review", docs_url=None, redoc_url=None)
    app.state.index = index

    @app.exception_handler(EdgeInspectError)
    async def domain_error(_request: Request, exc: EdgeInspectError) -> JSONResponse:
        status = 422 if isinstance(exc, ReviewError) else 502 if isinstance(exc, StorageError) else 500
        return JSONResponse({"detail": exc.message, "hint": exc.hint}, status_code=status)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/login", include_in_schema=False)
    def login_form() -> FileResponse:
        return FileResponse(STATIC / "login.html")

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        """Trade name and token for an HttpOnly session cookie (the page never sees the token)."""
        user, token = reviewers.login_form(await request.body())
        if not reviewers.sign_in(user, token):
            log.info("review_sign_in_refused", user=user[:64])
            return RedirectResponse("/login?failed=1", status_code=303)
        response = RedirectResponse("/", status_code=303)
        response.headers["set-cookie"] = reviewers.session_cookie(user, request.url.scheme == "https")
        return response

    @app.get("/api/whoami")
    def whoami(request: Request) -> dict[str, str]:
        return {"reviewer": request.state.reviewer}

    @app.get("/api/captures")
    def list_captures(
        line: str = "",
        verdict: str = "",
        min_score: float = Query(default=0.0, ge=0.0, le=1.0),
        max_score: float = Query(default=1.0, ge=0.0, le=1.0),
        disagreement: bool = False,
        unreviewed: bool = False,
    ) -> dict[str, Any]:
        items = []
        for record in sorted(index.records.values(), key=lambda r: (r.line, r.ts_ns, r.frame_id)):
            decided = export.decided(capture_key(record))
            if (line and record.line != line) or (verdict and record.verdict != verdict):
                continue
            if not min_score <= record.score <= max_score:
                continue
            if disagreement and "shadow_disagreement" not in record.reasons:
                continue
            if unreviewed and decided is not None:
                continue
            items.append(_item(record, decided))
        lines = sorted({r.line for r in index.records.values()})
        return {"items": items, "lines": lines, "total": len(index.records), "export": export.summary()}

    @app.post("/api/refresh")
    def refresh() -> dict[str, int]:
        return {"captures": index.refresh()}

    @app.get("/api/export")
    def export_summary() -> dict[str, Any]:
        return export.summary()

    @app.get("/api/captures/{key:path}/image")
    def image(key: str) -> Response:
        data, media = store.image_bytes(index.get(key))
        return Response(data, media_type=media)

    @app.get("/api/captures/{key:path}/mask")
    def mask(key: str) -> Response:
        record = index.get(key)
        if "mask" not in record.objects:
            raise HTTPException(404, f"capture {key} has no mask (the model saw no defect)")
        return Response(store.store.get_bytes(record.objects["mask"].key), media_type="image/png")

    @app.post("/api/captures/{key:path}/review")
    def review(key: str, body: ReviewBody, request: Request) -> dict[str, Any]:
        record = index.get(key)
        decision = Decision(body.label, _decode_mask(body.mask, record), request.state.reviewer)
        data, _ = store.image_bytes(record)
        entry = export.save(record, data, decision, store.mask(record))
        log.info("capture_reviewed", capture=key, label=body.label, reviewer=decision.reviewer)
        return {"key": key, **entry}

    @app.get("/api/captures/{key:path}")
    def detail(key: str) -> dict[str, Any]:
        record = index.get(key)
        return {**_item(record, export.decided(key)), "result": store.result(record)}

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(RequireReviewer, reviewers=reviewers)
    app.add_middleware(HostGuard, hosts=hosts)
    app.add_middleware(SecureHeaders)
    index.refresh()
    return app


class SecureHeaders:
    """Adds the page's security headers (the live UI's policy: scripts and styles from here only)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in HEADERS}
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message["headers"] = kept + HEADERS
            await send(message)

        await self.app(scope, receive, with_headers)
