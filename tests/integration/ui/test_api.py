"""The JSON API against a real redis-server: results, stats, defects, events, lines, images, models."""

from __future__ import annotations

import io

import httpx
import numpy as np
from edgeinspect.core import names
from edgeinspect.core.lifecycle import wait_until
from edgeinspect.core.streams import Streams
from PIL import Image

from tests.fixtures.redis_server import RedisServer
from tests.fixtures.servers import LOOPBACK, free_port
from tests.integration.ui.support import GREY, HEIGHT, MASK_BOX, WIDTH, LiveUi, job_event, push, serve_ui


def _get(ui: LiveUi, path: str, **params: str | int) -> httpx.Response:
    return httpx.get(f"{ui.url}{path}", params=params, timeout=10)


def test_recent_results_are_newest_first_with_links_not_bytes(
    ui: LiveUi, streams: Streams, line_id: str
) -> None:
    for i, verdict in enumerate(["ok", "defect", "error"]):
        push(streams, line_id, f"f{i}", verdict)
    body = _get(ui, "/api/results/recent", line=line_id, limit=10).json()
    assert [r["frame_id"] for r in body] == ["f2", "f1", "f0"]
    assert [r["verdict"] for r in body] == ["error", "defect", "ok"]
    defect = body[1]
    assert defect["mask_url"].startswith(f"/api/masks/{line_id}/")
    assert defect["frame_url"].startswith(f"/api/frames/{line_id}/f1.png?")
    assert body[0]["mask_url"] is None and body[0]["error"] == "cannot decode frame"


def test_stats_count_the_shift_as_results_arrive(ui: LiveUi, streams: Streams, line_id: str) -> None:
    for i in range(8):
        push(streams, line_id, f"f{i}", "defect" if i % 4 == 0 else "ok", e2e_ms=10.0 + i)
    assert wait_until(lambda: _get(ui, "/api/stats", line=line_id).json()["inspected"] == 8, 10)
    stats = _get(ui, "/api/stats", line=line_id).json()
    assert stats["defects"] == 2 and stats["errors"] == 0
    assert stats["defect_rate"] == 0.25
    assert 10.0 <= stats["e2e_p50_ms"] <= 17.0 and stats["fps"] > 0


def test_a_restarted_ui_replays_the_shift_from_the_stream(
    redis_server: RedisServer, streams: Streams, line_id: str
) -> None:
    for i in range(5):
        push(streams, line_id, f"f{i}", "defect" if i == 2 else "ok")
    with serve_ui(redis_url=redis_server.url, ui_lines=line_id, line=line_id) as ui:
        assert wait_until(lambda: _get(ui, "/api/stats").json()["inspected"] == 5, 10)
        defects = _get(ui, "/api/defects").json()
        assert [d["frame_id"] for d in defects] == ["f2"]


def test_frame_is_found_by_frame_id_with_and_without_the_window_hint(
    ui: LiveUi, streams: Streams, line_id: str
) -> None:
    for i in range(20):
        push(streams, line_id, f"f{i}", "ok")
    newest = _get(ui, "/api/results/recent", line=line_id, limit=20).json()
    hinted = httpx.get(ui.url + newest[15]["frame_url"], timeout=10)  # f4, deep in the stream
    assert hinted.status_code == 200 and hinted.headers["content-type"] == "image/png"
    assert np.asarray(Image.open(io.BytesIO(hinted.content))).shape == (HEIGHT, WIDTH, 3)
    plain = _get(ui, f"/api/frames/{line_id}/f19.png")
    assert plain.status_code == 200
    assert "immutable" in plain.headers["cache-control"]


def test_a_frame_is_found_when_a_burst_fills_its_window(ui: LiveUi, streams: Streams, line_id: str) -> None:
    """Many cameras on one line put hundreds of frames into one result's window; each is still shown."""
    for i in range(150):  # a 5 s end-to-end time puts every earlier frame of the burst in the window
        push(streams, line_id, f"burst-{i}", "ok", e2e_ms=5_000, stamp_entry=False)  # an older worker
    newest = _get(ui, "/api/results/recent", line=line_id, limit=1).json()[0]
    assert newest["frame_id"] == "burst-149"
    response = httpx.get(ui.url + newest["frame_url"], timeout=10)
    assert response.status_code == 200, response.text
    assert _get(ui, f"/api/frames/{line_id}/burst-10.png").status_code == 200  # its id was seen on the way
    for i in range(100):
        push(streams, line_id, f"later-{i}", "ok", stamp_entry=False)
    unwindowed = _get(ui, f"/api/frames/{line_id}/later-0.png")  # 99 entries back: past the newest 64
    assert unwindowed.status_code == 404 and "newest 64 frames" in unwindowed.json()["error"]
    assert "frame_url" in unwindowed.json()["hint"]


def test_a_frame_is_read_by_its_entry_id_whatever_the_capture_clock_says(
    ui: LiveUi, streams: Streams, line_id: str
) -> None:
    """A camera clock 10 s ahead of Redis's puts the window after the frame; the entry id does not care."""
    push(streams, line_id, "skewed", "ok", skew_ms=10_000)
    push(streams, line_id, "skewed-old", "ok", skew_ms=10_000, stamp_entry=False)
    links = {r["frame_id"]: r["frame_url"] for r in _get(ui, "/api/results/recent", line=line_id).json()}
    assert "&entry=" in links["skewed"] and "&entry=" not in links["skewed-old"]
    assert httpx.get(ui.url + links["skewed"], timeout=10).status_code == 200
    assert httpx.get(ui.url + links["skewed-old"], timeout=10).status_code == 404  # what the window alone did
    wrong = httpx.get(ui.url + links["skewed"].replace("skewed.png", "skewed-old.png"), timeout=10)
    assert wrong.status_code == 404, "an entry id holding another frame is not that frame"


def test_raw_frames_are_served_as_png(ui: LiveUi, streams: Streams, line_id: str) -> None:
    push(streams, line_id, "raw-1", "ok", encoding="raw")
    response = _get(ui, f"/api/frames/{line_id}/raw-1.png")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    pixels = np.asarray(Image.open(io.BytesIO(response.content)))
    assert pixels.shape == (HEIGHT, WIDTH, 3) and int(pixels[0, 0, 0]) == GREY


def test_a_trimmed_frame_is_a_404_that_says_why(ui: LiveUi, streams: Streams, line_id: str) -> None:
    push(streams, line_id, "gone", "defect", with_frame=False)
    response = _get(ui, f"/api/frames/{line_id}/gone.png")
    assert response.status_code == 404
    assert "MAXLEN" in response.json()["hint"]


def test_mask_is_a_red_overlay_transparent_outside_the_defect(
    ui: LiveUi, streams: Streams, line_id: str
) -> None:
    result_id = push(streams, line_id, "f1", "defect")
    response = _get(ui, f"/api/masks/{line_id}/{result_id}.png")
    assert response.status_code == 200
    rgba = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGBA"))
    x0, y0, x1, y1 = MASK_BOX
    inside, outside = rgba[(y0 + y1) // 2, (x0 + x1) // 2], rgba[5, 5]
    assert inside[0] == 255 and inside[1] < 64 and inside[3] == 255
    assert outside[3] == 0
    ok_id = push(streams, line_id, "f2", "ok")
    assert _get(ui, f"/api/masks/{line_id}/{ok_id}.png").status_code == 404


def test_events_and_the_last_deployment_job(ui: LiveUi, streams: Streams) -> None:
    job = f"job-{ui.url[-5:]}"
    job_event(streams, job, "IN_PROGRESS", "defect-seg", "4")
    job_event(streams, job, "FAILED", "defect-seg", "4", reason="smoke test failed")
    events = _get(ui, "/api/events", limit=5, type="job_status").json()
    assert events[0]["detail"]["job_id"] == job and events[0]["detail"]["status"] == "FAILED"

    def table_shows_job() -> bool:
        last = _get(ui, "/api/models").json()["last_job"]
        return last is not None and last["job_id"] == job and last["status"] == "FAILED"

    assert wait_until(table_shows_job, 10)
    models = _get(ui, "/api/models").json()
    assert models["agent"] == "not_configured" and models["models"] == []
    assert models["last_job"]["reason"] == "smoke test failed"


def test_lines_lists_configured_lines_and_refuses_others(ui: LiveUi, line_id: str) -> None:
    assert _get(ui, "/api/lines").json() == {"lines": [line_id], "default": line_id}
    refused = _get(ui, "/api/stats", line="not-this-one")
    assert refused.status_code == 404 and "EI_UI_LINES" in refused.json()["hint"]


def test_discovered_lines_come_from_the_lines_set(
    redis_server: RedisServer, streams: Streams, line_id: str
) -> None:
    other = f"{line_id}-b"
    streams.client.sadd(names.lines_key(), line_id)
    push(streams, other, "f1", "ok")
    try:
        with serve_ui(redis_url=redis_server.url, line=line_id) as ui:
            assert wait_until(lambda: {line_id, other} <= set(_get(ui, "/api/lines").json()["lines"]), 10)
            assert _get(ui, "/api/lines").json()["default"] == line_id
    finally:
        streams.client.srem(names.lines_key(), line_id)


def test_health_ready_and_metrics(ui: LiveUi, streams: Streams, line_id: str) -> None:
    push(streams, line_id, "f1", "defect")
    assert _get(ui, "/healthz").json() == {"status": "ok"}
    assert _get(ui, "/readyz").json() == {"ready": True, "checks": {"redis": True}}
    assert wait_until(
        lambda: 'edgeinspect_ui_results_total{verdict="defect"}' in _get(ui, "/metrics").text, 10
    )
    assert "edgeinspect_ui_redis_up 1.0" in _get(ui, "/metrics").text


def test_an_unreachable_agent_is_a_state_of_the_table_not_an_error(
    redis_server: RedisServer, line_id: str
) -> None:
    nowhere = f"{LOOPBACK}:{free_port()}"
    with serve_ui(redis_url=redis_server.url, ui_lines=line_id, agent_addr=nowhere) as ui:
        table = _get(ui, "/api/models")
        assert table.status_code == 200
        assert table.json()["agent"] == "unreachable" and nowhere in table.json()["message"]
        assert "edgeinspect_ui_agent_up 0.0" in _get(ui, "/metrics").text


def test_a_part_is_found_by_its_plc_part_id_and_the_line_io_status_is_shown(
    ui: LiveUi, streams: Streams, line_id: str
) -> None:
    import json
    import time

    from edgeinspect.core.messages import Result

    for n, part in enumerate(["4711", "4712", "4711"]):
        streams.add(
            names.results_stream(line_id),
            Result(f"p{n}", line_id, time.time_ns(), "ok", 0.1, [], 5.0, part_id=part),
        )
    found = _get(ui, "/api/results/search", line=line_id, part_id="4711").json()
    assert [(r["frame_id"], r["part_id"]) for r in found] == [("p2", "4711"), ("p0", "4711")]
    assert _get(ui, "/api/results/search", line=line_id, part_id="9").json() == []
    assert _get(ui, "/api/results/search", line=line_id, part_id="").status_code == 422
    assert _get(ui, "/api/line-io", line=line_id).json() == {
        "line": line_id, "present": False, "state": "", "connections": {}, "counts": {},
        "last_trigger": None, "last_reject": None, "last_missed": None, "updated_ns": 0,
    }  # fmt: skip
    status = {
        "state": "ContinuousExecution",
        "connections": {"redis": True, "output:modbus-client:plc:502": False},
        "counts": {"missed_rejects": 2},
        "last_reject": {"part_id": "4711", "ts_ns": 1, "error_ms": 0.2},
        "updated_ns": 5,
    }
    streams.client.set(names.line_io_status_key(line_id), json.dumps(status))
    body = _get(ui, "/api/line-io", line=line_id).json()
    assert body["present"] and body["state"] == "ContinuousExecution"
    assert (
        body["connections"]["output:modbus-client:plc:502"] is False and body["counts"]["missed_rejects"] == 2
    )
    assert body["last_reject"]["part_id"] == "4711"
