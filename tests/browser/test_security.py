"""Open by default, seen from a real Chromium: DNS rebinding (the attacker's name resolves to the
box, so the browser sends the attacker's Host) and a signed-in reviewer's browser visiting another
site's page that posts to the review app. Chromium's resolver maps the attacker's name to loopback,
so no request ever leaves this machine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.fixtures.browser import CHROMIUM_ARGS, PANEL_VIEWPORT, chromium_path
from tests.fixtures.redis_server import RedisServer
from tests.helpers.review import review_process, sign_in, small_capture_store
from tests.integration.ui.support import LiveUi, serve_ui

pytestmark = pytest.mark.browser
ATTACKER = "attacker.test"  # a reserved name, mapped to 127.0.0.1 inside this Chromium only


@pytest.fixture(scope="module")
def rebinding_browser() -> Iterator[Any]:
    """A Chromium whose DNS answers the attacker's name with 127.0.0.1 (what rebinding achieves)."""
    from playwright.sync_api import sync_playwright

    args = [*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {ATTACKER} 127.0.0.1"]
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=chromium_path(), args=args)
        yield instance
        instance.close()


@pytest.fixture
def tab(rebinding_browser: Any) -> Iterator[Any]:
    context = rebinding_browser.new_context(viewport=PANEL_VIEWPORT)
    yield context.new_page()
    context.close()


def test_a_rebound_name_gets_no_page_and_no_data_from_the_ui(tab: Any, ui: LiveUi) -> None:
    port = ui.url.rsplit(":", 1)[1]
    response = tab.goto(f"http://{ATTACKER}:{port}/api/lines")
    assert response.status == 421
    assert "does not answer to the host name" in tab.content()
    assert tab.goto(f"http://localhost:{port}/api/lines").status == 200


def test_a_rebound_name_and_another_sites_form_cannot_reach_the_review_app(
    tab: Any, redis_server: RedisServer, redis_client: redis.Redis, line_id: str, tmp_path: Path
) -> None:
    store = small_capture_store(redis_server.url, redis_client, line_id, tmp_path)
    with review_process(store, tmp_path / "reviewed") as url:
        port = url.rsplit(":", 1)[1]
        assert tab.goto(f"http://{ATTACKER}:{port}/login").status == 421

        # signed in, the reviewer opens another site's page (another port of the same host: same-site,
        # so even a SameSite=Strict cookie goes along); it posts a form to the review app
        sign_in(tab, url, "ana")
        attack = f"http://127.0.0.1:{int(port) ^ 1}/"
        form = (
            f'<form id="f" method="post" action="{url}/api/refresh"></form>'
            '<script>document.getElementById("f").submit()</script>'
        )
        tab.route(attack, lambda route: route.fulfill(status=200, content_type="text/html", body=form))
        with tab.expect_navigation(url=f"{url}/api/refresh") as landed:
            tab.goto(attack)
        assert landed.value.status == 403
        assert "cross-origin request refused" in tab.content()


def test_the_ui_sign_in_form_works_under_the_same_origin_check(
    tab: Any, redis_server: RedisServer, line_id: str
) -> None:
    """The page's own form posts with ``Origin: null`` (its referrer policy) and Sec-Fetch-Site
    same-origin: it must pass, while the same form from another port must not."""
    token = "browser-token-for-tests"
    with serve_ui(redis_url=redis_server.url, ui_lines=line_id, ui_auth="bearer", ui_token=token) as ui:
        tab.goto(ui.url + "/")
        tab.wait_for_selector("#token")
        tab.fill("#token", token)
        with tab.expect_navigation(url=ui.url + "/"):
            tab.locator("button[type=submit]").click()
        assert tab.title() != "edgeinspect — sign in"
        assert tab.request.get(ui.url + "/api/lines").status == 200, "signed in: the cookie opens the API"
