"""Secure headers, optional basic and bearer auth, and that no secret ever reaches the page."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.fixtures.redis_server import RedisServer
from tests.integration.ui.support import LiveUi, serve_ui

TOKEN = "s3cret-token-for-tests"
PASSWORD = "pa55-for-tests"


@pytest.fixture
def bearer_ui(redis_server: RedisServer, line_id: str) -> Iterator[LiveUi]:
    with serve_ui(redis_url=redis_server.url, ui_lines=line_id, ui_auth="bearer", ui_token=TOKEN) as live:
        yield live


@pytest.fixture
def basic_ui(redis_server: RedisServer, line_id: str) -> Iterator[LiveUi]:
    with serve_ui(
        redis_url=redis_server.url, ui_lines=line_id, ui_auth="basic", ui_password=PASSWORD
    ) as live:
        yield live


def test_every_response_carries_the_secure_headers(ui: LiveUi) -> None:
    for path in ("/", "/api/lines", "/static/app.js", "/healthz", "/api/nothing-here"):
        headers = httpx.get(ui.url + path).headers
        csp = headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
    assert httpx.get(ui.url + "/api/lines").headers["cache-control"] == "no-store"


def test_the_page_has_no_inline_script_or_style(ui: LiveUi) -> None:
    html = httpx.get(ui.url + "/").text
    assert "<script>" not in html and "<style" not in html and "style=" not in html
    assert '<script type="module" src="/static/app.js"></script>' in html


def test_basic_auth_guards_page_and_api_but_not_probes(basic_ui: LiveUi) -> None:
    assert httpx.get(basic_ui.url + "/api/lines").status_code == 401
    challenge = httpx.get(basic_ui.url + "/").headers["www-authenticate"]
    assert challenge.startswith("Basic")
    assert httpx.get(basic_ui.url + "/api/lines", auth=("operator", "wrong")).status_code == 401
    assert httpx.get(basic_ui.url + "/api/lines", auth=("operator", PASSWORD)).status_code == 200
    page = httpx.get(basic_ui.url + "/", auth=("operator", PASSWORD))
    assert page.status_code == 200 and PASSWORD not in page.text
    for probe in ("/healthz", "/readyz", "/metrics", "/static/app.css"):
        assert httpx.get(basic_ui.url + probe).status_code == 200


def test_bearer_auth_takes_the_header_or_a_signed_in_cookie(bearer_ui: LiveUi) -> None:
    assert httpx.get(bearer_ui.url + "/api/stats").status_code == 401
    headers = {"authorization": f"Bearer {TOKEN}"}
    assert httpx.get(bearer_ui.url + "/api/stats", headers=headers).status_code == 200
    redirect = httpx.get(bearer_ui.url + "/")
    assert redirect.status_code == 303 and redirect.headers["location"] == "/login"

    with httpx.Client(base_url=bearer_ui.url) as browser:
        failed = browser.post("/login", data={"token": "wrong"})
        assert failed.status_code == 303 and "failed" in failed.headers["location"]
        signed_in = browser.post("/login", data={"token": TOKEN})
        assert signed_in.status_code == 303
        cookie = signed_in.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
        page = browser.get("/")
        assert page.status_code == 200 and TOKEN not in page.text
        assert browser.get("/api/stats").status_code == 200
    cookie_value = cookie.split(";")[0].split("=", 1)[1]
    as_header = {"authorization": f"Bearer {cookie_value}"}
    assert httpx.get(bearer_ui.url + "/api/stats", headers=as_header).status_code == 401


def test_openapi_schema_is_served_and_names_every_endpoint(ui: LiveUi) -> None:
    schema = httpx.get(ui.url + "/openapi.json").json()
    for path in (
        "/api/models",
        "/api/results/recent",
        "/api/stats",
        "/api/events",
        "/api/lines",
        "/api/frames/{line}/{frame_id}.png",
        "/api/masks/{line}/{result_id}.png",
        "/api/stream",
    ):
        assert path in schema["paths"], path
    assert httpx.get(ui.url + "/docs").status_code == 404  # it would load scripts from a CDN
