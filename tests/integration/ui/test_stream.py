"""The SSE stream: a snapshot on connect, then live results; Redis outages become status events."""

from __future__ import annotations

from typing import Any

import httpx
from edgeinspect.core.lifecycle import wait_until
from edgeinspect.core.streams import Streams

from tests.fixtures.redis_server import RedisServer
from tests.integration.ui.support import LiveUi, SseReader, job_event, push, serve_ui

TIMEOUT = httpx.Timeout(15.0)


def test_snapshot_on_connect_then_every_live_result(ui: LiveUi, streams: Streams, line_id: str) -> None:
    push(streams, line_id, "before", "defect")
    assert wait_until(lambda: httpx.get(f"{ui.url}/api/stats").json()["inspected"] == 1, 10)
    with httpx.stream("GET", f"{ui.url}/api/stream", params={"line": line_id}, timeout=TIMEOUT) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        sse = SseReader(response.iter_lines())
        assert sse.until("status")["redis"] == "up"
        assert sse.until("models")["agent"] == "not_configured"
        defects: Any = sse.until("defects")
        assert [d["frame_id"] for d in defects] == ["before"]
        assert sse.until("result")["frame_id"] == "before"
        push(streams, line_id, "live-1", "ok")
        push(streams, line_id, "live-2", "defect")
        assert sse.until("defect")["frame_id"] == "live-2"
        assert sse.until("stats", lambda s: s["inspected"] == 3)["defects"] == 2
        assert "edgeinspect_ui_sse_clients 1.0" in httpx.get(f"{ui.url}/metrics").text
    assert wait_until(lambda: "edgeinspect_ui_sse_clients 0.0" in httpx.get(f"{ui.url}/metrics").text, 10)


def test_a_job_event_pushes_a_new_model_table(ui: LiveUi, streams: Streams, line_id: str) -> None:
    with httpx.stream("GET", f"{ui.url}/api/stream", params={"line": line_id}, timeout=TIMEOUT) as response:
        sse = SseReader(response.iter_lines())
        sse.until("models")
        job_event(streams, f"job-{line_id}", "SUCCEEDED", "defect-cls", "8")
        table = sse.until("models", lambda t: t["last_job"] and t["last_job"]["job_id"] == f"job-{line_id}")
        assert table["last_job"]["status"] == "SUCCEEDED"


def test_unknown_line_is_refused_before_streaming(ui: LiveUi) -> None:
    assert httpx.get(f"{ui.url}/api/stream", params={"line": "elsewhere"}).status_code == 404


def test_redis_outage_is_a_status_event_and_the_feed_resumes(own_redis: RedisServer, line_id: str) -> None:
    streams = Streams.from_url(own_redis.url)
    with serve_ui(redis_url=own_redis.url, ui_lines=line_id, line=line_id) as ui:
        with httpx.stream("GET", f"{ui.url}/api/stream", timeout=TIMEOUT) as response:
            sse = SseReader(response.iter_lines())
            assert sse.until("status")["redis"] == "up"
            own_redis.stop()
            assert sse.until("status")["redis"] == "down"
            assert httpx.get(f"{ui.url}/readyz").status_code == 503
            assert httpx.get(f"{ui.url}/api/results/recent").status_code == 503
            own_redis.start()
            assert sse.until("status")["redis"] == "up"
            push(streams, line_id, "after-restart", "defect")
            assert sse.until("result")["frame_id"] == "after-restart"
        assert httpx.get(f"{ui.url}/readyz").status_code == 200
    streams.close()
