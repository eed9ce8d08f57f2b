"""Captures flow from ``ei:capture`` through the spool to a real S3 server, in the documented layout."""

from __future__ import annotations

import json
import urllib.request
from datetime import date

from edgeinspect.core import names
from edgeinspect.core.hashing import sha256_bytes
from edgeinspect.core.lifecycle import wait_until
from edgeinspect.core.observability import Health, HealthServer
from edgeinspect.core.storage import open_store
from edgeinspect.core.streams import Streams
from edgeinspect_uploader.manifest import parse_part, read_day

from tests.integration.uploader.conftest import SettingsFactory
from tests.integration.uploader.harness import events_of, pending, publish, running
from tests.unit.uploader.captures import make_captures


def test_captures_reach_the_bucket_in_the_documented_layout_with_a_manifest(
    capture_streams: Streams, make_settings: SettingsFactory, s3_bucket: tuple[str, str], line_id: str
) -> None:
    endpoint, bucket = s3_bucket
    settings = make_settings(capture_url=f"s3://{bucket}/captures", s3_endpoint_url=endpoint)
    captures = make_captures(11, line_id, ["defect", "good", "uncertain", "error", "defect", "good"])
    publish(capture_streams, captures)
    with running(settings) as service:
        assert wait_until(lambda: service.metrics.counts["uploaded_captures"] == 6, timeout=60)
        assert pending(capture_streams) == 0
    store = open_store(f"s3://{bucket}/captures", endpoint_url=endpoint)
    for c in captures:
        prefix = f"{line_id}/2026/01/01/{c.frame_id}"
        assert store.get_bytes(f"{prefix}/image.png") == c.data
        result = json.loads(store.get_bytes(f"{prefix}/result.json"))
        assert (result["frame_id"], result["verdict"], result["ts_ns"]) == (c.frame_id, c.verdict, c.ts_ns)
        assert store.exists(f"{prefix}/mask.png") == (c.mask is not None)
        info = store.head(f"{prefix}/image.png")
        assert info is not None and info.sha256 == sha256_bytes(c.data)
    records = list(read_day(store, line_id, date(2026, 1, 1)))
    assert sorted(r.frame_id for r in records) == [c.frame_id for c in captures]
    by_id = {r.frame_id: r for r in records}
    assert by_id["f0003"].keep == "defect" and by_id["f0001"].keep == "good"
    assert by_id["f0000"].objects["mask"].key == f"{line_id}/2026/01/01/f0000/mask.png"
    parts = list(store.list(f"{line_id}/2026/01/01/_manifest/"))
    assert parts and all(p.key.endswith(".jsonl") for p in parts)
    assert sum(len(parse_part(store.get_bytes(p.key))) for p in parts) == 6
    assert service.spool.stats().captures == 0


def test_malformed_entries_are_kept_announced_counted_and_acknowledged(
    capture_streams: Streams, make_settings: SettingsFactory, line_id: str
) -> None:
    good = make_captures(12, line_id, ["defect"])
    bad_id = make_captures(13, line_id, ["good"])[0].to_fields()
    bad_id["frame_id"] = "../../escape"
    publish(capture_streams, good)
    capture_streams.add(names.capture_stream(), {"v": 1, "kind": "capture", "frame_id": "x", "line": line_id})
    capture_streams.add(names.capture_stream(), bad_id)
    with running(make_settings()) as service:
        assert wait_until(lambda: service.metrics.counts["rejected"] == 2, timeout=30)
        assert wait_until(lambda: service.metrics.counts["uploaded_captures"] == 1, timeout=30)
        assert wait_until(lambda: pending(capture_streams) == 0, timeout=10)
        assert service.spool.rejects.count() == 2
        rejected = events_of(capture_streams, "capture_rejected")
        assert sorted(e["frame_id"] for e in rejected) == ["../../escape", "x"]
        assert all(e["line"] == line_id and e["reason"] for e in rejected)


def test_status_and_metrics_endpoints_show_backlog_and_uploads(
    capture_streams: Streams, make_settings: SettingsFactory, line_id: str
) -> None:
    publish(capture_streams, make_captures(14, line_id, ["defect", "good"]))
    with running(make_settings()) as service:
        assert wait_until(lambda: service.metrics.counts["uploaded_captures"] == 2, timeout=30)
        health = Health()
        service.add_health_checks(health)
        server = HealthServer(health, registry=service.registry, routes=service.routes()).start()
        try:
            base = f"http://127.0.0.1:{server.port}"
            with urllib.request.urlopen(f"{base}/status") as resp:
                status = json.loads(resp.read())
            with urllib.request.urlopen(f"{base}/metrics") as resp:
                metrics = resp.read().decode()
            with urllib.request.urlopen(f"{base}/readyz") as resp:
                ready = json.loads(resp.read())
        finally:
            server.stop()
    assert status["counts"]["uploaded_captures"] == 2
    assert status["backlog"]["captures"] == 0 and status["backlog"]["oldest_pending_age_s"] == 0
    assert status["store_online"] is True and status["uploader"] == service.uploader_id
    assert "ei_uploader_uploaded_bytes_total" in metrics and "ei_uploader_backlog_captures 0.0" in metrics
    assert "ei_uploader_oldest_pending_age_seconds" in metrics
    checks = {"redis": True, "spool": True, "capture_stream": True, "events_stream": True}
    assert ready == {"ready": True, "checks": checks}
