"""The page itself and the bearer-mode sign-in form; both are static files, never templated, so no
setting or secret can end up in the HTML."""

from __future__ import annotations

from importlib import resources
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from edgeinspect_ui.state import UiState, ui_state

router = APIRouter(include_in_schema=False)
MAX_FORM = 4096


def static_dir() -> str:
    return str(resources.files("edgeinspect_ui") / "static")


@router.get("/")
def index() -> FileResponse:
    return FileResponse(f"{static_dir()}/index.html", headers={"cache-control": "no-cache"})


@router.get("/login")
def login_form() -> FileResponse:
    return FileResponse(f"{static_dir()}/login.html", headers={"cache-control": "no-cache"})


@router.post("/login")
async def login(request: Request, state: Annotated[UiState, Depends(ui_state)]) -> Response:
    """Bearer mode: trade the token for an HttpOnly session cookie (the page never sees the token)."""
    body = await request.body()
    token = parse_qs(body[:MAX_FORM].decode("utf-8", "replace")).get("token", [""])[0]
    if not state.auth.token_matches(token):
        return RedirectResponse("/login?failed=1", status_code=303)
    response = RedirectResponse("/", status_code=303)
    response.headers["set-cookie"] = state.auth.session_cookie(secure=request.url.scheme == "https")
    return response
