"""Fixtures of the reliability tests; the model-manager device kit is shared with the integration tests
(imported here, never copied)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.agent import AgentServer
from tests.fixtures.redis_server import RedisServer
from tests.integration.model_manager.conftest import kit  # noqa: F401  (the model-manager device kit)
from tests.reliability.edge import EdgeLine, make_line


@pytest.fixture
def edge(
    own_redis: RedisServer, agent_server: AgentServer, line_id: str, tmp_path: Path
) -> Iterator[EdgeLine]:
    """One line of real processes on the test's own Redis; every process it started is stopped after."""
    line = make_line(line_id, own_redis, agent_server, tmp_path)
    yield line
    line.stop_all()
