"""Fixtures of the UI's integration tests: a Streams on the session's redis-server, the UI served."""

from __future__ import annotations

from collections.abc import Iterator

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
    """The UI showing only this test's line (the session's Redis holds other tests' lines too)."""
    with serve_ui(redis_url=redis_server.url, ui_lines=line_id, line=line_id) as live:
        yield live
