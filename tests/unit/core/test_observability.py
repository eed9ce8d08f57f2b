"""Observability: JSON log lines with ids, and the health server's three endpoints."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request

import pytest
from edgeinspect.core.observability import Health, HealthServer, JsonFormatter, get_logger, percentile
from prometheus_client import CollectorRegistry, Counter


def test_log_lines_are_json_with_ids(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    get_logger("edgeinspect.test").info("frame_done", frame_id="f-9", ms=3.5)
    line = JsonFormatter().format(caplog.records[-1])
    entry = json.loads(line)
    assert entry["event"] == "frame_done" and entry["frame_id"] == "f-9" and entry["ms"] == 3.5


def test_fields_named_like_record_attributes_are_kept_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    # logging raises KeyError for extra={"message": ...} in the caller, only when the level is enabled:
    # a rejected jobs request (message=...) once killed the fleet's request thread that way
    caplog.set_level(logging.INFO)
    get_logger("edgeinspect.test").info("rejected", message="stale version", name="j1", args=[1], code=3)
    entry = json.loads(JsonFormatter().format(caplog.records[-1]))
    assert entry["event"] == "rejected" and entry["code"] == 3
    assert (entry["field_message"], entry["field_name"], entry["field_args"]) == ("stale version", "j1", [1])


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_health_server_reports_readiness_and_metrics() -> None:
    registry = CollectorRegistry()
    Counter("ei_test_things", "things", registry=registry).inc()
    health = Health()
    dependency_up = {"redis": True}
    health.add_check("redis", lambda: dependency_up["redis"])
    server = HealthServer(health, registry=registry).start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        assert _get(base + "/healthz")[0] == 200
        assert _get(base + "/readyz")[0] == 200
        dependency_up["redis"] = False
        status, body = _get(base + "/readyz")
        assert status == 503 and json.loads(body)["checks"] == {"redis": False}
        dependency_up["redis"] = True
        health.mark_stopping()
        assert _get(base + "/readyz")[0] == 503
        assert b"ei_test_things_total 1.0" in _get(base + "/metrics")[1]
    finally:
        server.stop()


def test_percentile_interpolates() -> None:
    assert percentile([], 50) == 0.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 99) == 5.0


def test_health_server_serves_extra_json_routes_and_lists_paths_on_404() -> None:
    server = HealthServer(Health(), registry=CollectorRegistry(), routes={"/status": lambda: (200, {"n": 3})})
    base = f"http://127.0.0.1:{server.start().port}"
    try:
        assert _get(base + "/status?verbose=1") == (200, b'{"n": 3}')
        status, body = _get(base + "/nope")
        assert status == 404 and json.loads(body)["paths"] == ["/healthz", "/readyz", "/metrics", "/status"]
    finally:
        server.stop()
