"""Fixtures for the uploader's integration tests: a clean ``ei:capture``, settings, a running service."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from edgeinspect.core import names
from edgeinspect.core.streams import Streams
from edgeinspect_uploader.settings import UploaderSettings

from tests.fixtures.redis_server import RedisServer

SettingsFactory = Callable[..., UploaderSettings]


@pytest.fixture
def capture_streams(redis_client: redis.Redis) -> Iterator[Streams]:
    """``ei:capture`` and ``ei:events`` are global keys: every test starts and ends with them empty."""
    redis_client.delete(names.capture_stream(), names.events_stream())
    streams = Streams(redis_client)
    yield streams
    redis_client.delete(names.capture_stream(), names.events_stream())


@pytest.fixture
def make_settings(redis_server: RedisServer, tmp_path: Path, line_id: str) -> SettingsFactory:
    """Settings for a test uploader: its own spool, quick retries; keyword overrides win."""

    def build(**overrides: Any) -> UploaderSettings:
        values: dict[str, Any] = {
            "redis_url": redis_server.url,
            "line": line_id,
            "capture_url": f"file://{tmp_path / 'store'}",
            "spool_dir": tmp_path / "spool",
            "retry_initial_s": 0.1,
            "retry_max_s": 0.5,
            "s3_max_attempts": 1,
            "s3_connect_timeout_s": 1.0,
            "s3_read_timeout_s": 5.0,
            "stale_claim_ms": 1000,
        }
        values.update(overrides)
        return UploaderSettings.load(**values)

    return build
