"""Browser tests: the real page in headless Chromium against the UI served over a real Redis."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from edgeinspect.core.streams import Streams

from tests.fixtures.redis_server import RedisServer
from tests.integration.ui.support import LiveUi, serve_ui


@pytest.fixture
def streams(redis_server: RedisServer) -> Iterator[Streams]:
    client = Streams.from_url(redis_server.url)
    yield client
    client.close()


@pytest.fixture
def ui(redis_server: RedisServer, line_id: str) -> Iterator[LiveUi]:
    with serve_ui(redis_url=redis_server.url, ui_lines=line_id, line=line_id) as live:
        yield live


@pytest.fixture
def panel(ui: LiveUi, page: Any) -> Any:
    """The browser page, torn down (and screenshotted) while the UI it shows is still up."""
    return page
