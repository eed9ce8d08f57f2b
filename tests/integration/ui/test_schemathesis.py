"""Property-based API test: schemathesis generates requests from our OpenAPI schema and sends them to
the UI served by uvicorn over a real Redis; none may fail with a server error, and every response must
match the schema it documents.

The schema comes from the app object (building it connects to nothing); the SSE endpoint is left out
(a response that never ends) and covered by ``test_stream``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from edgeinspect.core.streams import Streams
from edgeinspect_ui.app import create_app
from edgeinspect_ui.settings import UiSettings
from hypothesis import HealthCheck, settings

from tests.fixtures.redis_server import RedisServer
from tests.integration.ui.support import LiveUi, job_event, push, serve_ui

LINE = f"t{uuid.uuid4().hex[:10]}"
schema = schemathesis.openapi.from_dict(create_app(UiSettings(ui_lines=LINE, line=LINE)).openapi()).exclude(
    path="/api/stream"
)


@pytest.fixture(scope="module")
def served(redis_server: RedisServer) -> Iterator[LiveUi]:
    """One UI for every operation, over a line with a result of each verdict and a job event."""
    streams = Streams.from_url(redis_server.url)
    for i, verdict in enumerate(["ok", "defect", "error", "defect"]):
        push(streams, LINE, f"f{i}", verdict)
    job_event(streams, f"job-{LINE}", "SUCCEEDED", "defect-seg", "3")
    with serve_ui(redis_url=redis_server.url, ui_lines=LINE, line=LINE) as ui:
        yield ui
    streams.close()


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_request_the_schema_allows_causes_a_server_error(case: Any, served: LiveUi) -> None:
    case.call_and_validate(base_url=served.url)
