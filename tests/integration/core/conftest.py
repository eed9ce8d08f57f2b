from __future__ import annotations

from collections.abc import Iterator

import pytest
from edgeinspect.core.streams import Streams

from tests.fixtures.redis_server import RedisServer


@pytest.fixture
def redis_url_streams(redis_server: RedisServer) -> Iterator[Streams]:
    streams = Streams.from_url(redis_server.url)
    yield streams
    streams.close()
