"""Secure headers, basic and bearer auth (bearer with a generated token by default), the Host
allow-list and the same-origin check of POSTs, and that no secret ever reaches the page."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from edgeinspect_ui.main import main
from edgeinspect_ui.settings import UiSettings

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


# ---- open by default (issue 15): auth on with a generated token, Host allow-list, same-origin POSTs ----

ATTACKER = "attacker.test"  # a reserved name; requests only ever go to the loopback address


def test_auth_is_on_by_default_with_a_token_generated_once_and_reused(
    redis_server: RedisServer, line_id: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    settings = {"redis_url": redis_server.url, "ui_lines": line_id, "ui_state_dir": str(tmp_path / "state")}
    assert UiSettings.load(**settings).ui_auth == "bearer"
    with serve_ui(ui_auth=UiSettings.model_fields["ui_auth"].default, **settings) as first:
        assert httpx.get(first.url + "/api/stats").status_code == 401
        token_file = tmp_path / "state" / "ui-token"
        token = token_file.read_text().strip()
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert token in capfd.readouterr().err, "the generated token is printed on the first start"
        assert httpx.get(first.url + "/api/stats", headers={"authorization": f"Bearer {token}"}).is_success
    with serve_ui(ui_auth="bearer", **settings) as again:
        assert token not in capfd.readouterr().err, "printed once only"
        assert httpx.get(again.url + "/api/stats", headers={"authorization": f"Bearer {token}"}).is_success


def test_no_auth_is_refused_beyond_loopback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EI_UI_AUTH", "none")
    monkeypatch.setenv("EI_HTTP_HOST", "0.0.0.0")
    assert main(["--check-config"]) == 2
    assert "EI_UI_AUTH=none is allowed only when EI_HTTP_HOST is loopback" in capsys.readouterr().err


def test_a_host_outside_the_allow_list_is_refused(redis_server: RedisServer, line_id: str) -> None:
    """DNS rebinding: a page on the attacker's name, resolved to this UI, sends the attacker's Host."""
    port = ""
    with serve_ui(redis_url=redis_server.url, ui_lines=line_id, ui_allowed_hosts="edge-ui.factory") as ui:
        port = ui.url.rsplit(":", 1)[1]
        refused = httpx.get(ui.url + "/api/lines", headers={"host": f"{ATTACKER}:{port}"})
        assert refused.status_code == 421
        assert ATTACKER in refused.json()["error"] and "allowed-hosts" in refused.json()["hint"]
        assert "content-security-policy" in refused.headers
        for host in (
            f"localhost:{port}",
            f"127.0.0.1:{port}",
            "[::1]",
            "edge-ui.factory",
            "EDGE-UI.factory.",
        ):
            assert httpx.get(ui.url + "/api/lines", headers={"host": host}).status_code == 200, host
        for probe in ("/healthz", "/readyz", "/metrics"):  # kubelet and Prometheus send the pod's IP
            assert httpx.get(ui.url + probe, headers={"host": "10.42.0.7:8080"}).status_code == 200


def test_a_cross_origin_post_is_refused(bearer_ui: LiveUi) -> None:
    """A page of another site (another port of this host included) may not post to the UI."""
    host = bearer_ui.url.removeprefix("http://")
    other = {"origin": f"http://{host.rsplit(':', 1)[0]}:1"}
    refused = httpx.post(bearer_ui.url + "/login", data={"token": TOKEN}, headers=other)
    assert refused.status_code == 403 and "cross-origin" in refused.json()["error"]
    assert "set-cookie" not in refused.headers
    site = {"sec-fetch-site": "cross-site"}
    assert httpx.post(bearer_ui.url + "/login", data={"token": TOKEN}, headers=site).status_code == 403
    same = {"origin": f"http://{host}"}
    assert httpx.post(bearer_ui.url + "/login", data={"token": TOKEN}, headers=same).status_code == 303
