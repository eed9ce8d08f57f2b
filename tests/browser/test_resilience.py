"""The page through a Redis restart, and with several lines to choose from."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from edgeinspect.core import names
from edgeinspect.core.streams import Streams

from tests.fixtures.redis_server import RedisServer
from tests.integration.ui.support import LiveUi, push, serve_ui

pytestmark = pytest.mark.browser
WAIT_MS = 15_000


@pytest.fixture
def own_ui(own_redis: RedisServer, line_id: str) -> Iterator[LiveUi]:
    with serve_ui(redis_url=own_redis.url, ui_lines=line_id, line=line_id) as live:
        yield live


def test_the_page_survives_a_redis_restart(
    own_ui: LiveUi, page: Any, own_redis: RedisServer, line_id: str
) -> None:
    streams = Streams.from_url(own_redis.url)
    page.goto(f"{own_ui.url}/?line={line_id}")
    push(streams, line_id, "before", "defect")
    page.wait_for_selector("#verdict[data-frame-id='before']", timeout=WAIT_MS)
    assert page.is_hidden("#banner")

    own_redis.stop()
    page.wait_for_selector("#banner:not([hidden])", timeout=WAIT_MS)
    assert "Redis is unreachable" in page.inner_text("#banner")
    page.screenshot(path=str(Path(__file__).resolve().parents[1] / "artifacts" / "redis_down_banner.png"))

    own_redis.start()
    page.wait_for_selector("#banner", state="hidden", timeout=WAIT_MS)
    push(streams, line_id, "after", "ok")
    page.wait_for_selector("#verdict[data-verdict='ok'][data-frame-id='after']", timeout=WAIT_MS)
    assert page.get_attribute("#defect-strip", "data-count") == "1", "the strip keeps what it showed"
    streams.close()


def test_the_line_selector_switches_the_live_view(redis_server: RedisServer, page: Any, line_id: str) -> None:
    first, second = f"{line_id}a", f"{line_id}b"
    streams = Streams.from_url(redis_server.url)
    push(streams, first, "a-1", "ok")
    push(streams, second, "b-1", "defect")
    with serve_ui(redis_url=redis_server.url, ui_lines=f"{first},{second}", line=first) as ui:
        page.goto(ui.url)
        page.wait_for_selector("#verdict[data-frame-id='a-1']", timeout=WAIT_MS)
        assert page.is_visible("#line-select")
        page.select_option("#line-select", second)
        page.wait_for_selector("#verdict[data-verdict='defect'][data-frame-id='b-1']", timeout=WAIT_MS)
        assert page.url.endswith(f"?line={second}")
        push(streams, first, "a-2", "ok")
        push(streams, second, "b-2", "ok")
        page.wait_for_selector("#verdict[data-frame-id='b-2']", timeout=WAIT_MS)
        assert page.get_attribute("#verdict", "data-frame-id") == "b-2"
        page.screenshot(path=str(Path(__file__).resolve().parents[1] / "artifacts" / "line_selector.png"))
    for line in (first, second):
        streams.client.delete(names.results_stream(line), names.frames_stream(line))
    streams.close()
