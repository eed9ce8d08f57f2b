"""Days offline: the spool fills to its quota and evicts by the documented priority, counting each."""

from __future__ import annotations

from datetime import date

from edgeinspect.core.lifecycle import wait_until
from edgeinspect.core.storage import open_store
from edgeinspect.core.streams import Streams
from edgeinspect_uploader.manifest import read_day
from edgeinspect_uploader.record import capture_files

from tests.fixtures.servers import free_port
from tests.integration.uploader.conftest import SettingsFactory
from tests.integration.uploader.harness import events_of, pending, publish, running
from tests.unit.uploader.captures import make_captures

KINDS = ["defect", "good", "uncertain", "good", "defect", "uncertain", "good", "error", "uncertain", "good"]


def test_quota_eviction_order_is_respected_and_counted_then_survivors_upload(
    capture_streams: Streams, make_settings: SettingsFactory, s3_bucket: tuple[str, str], line_id: str
) -> None:
    captures = make_captures(41, line_id, KINDS, mask=True)
    sizes = [capture_files(c).size for c in captures]
    assert 6 * min(sizes) > 5 * max(sizes)  # the quota below holds exactly five captures
    nowhere = f"http://127.0.0.1:{free_port()}"  # an S3 endpoint nobody answers: the line is offline
    offline = make_settings(
        capture_url="s3://offline/c", s3_endpoint_url=nowhere, spool_quota_bytes=5 * max(sizes),
        batch_max_captures=1, read_batch=100,
    )  # fmt: skip
    with running(offline) as service:
        publish(capture_streams, captures)
        assert wait_until(lambda: service.metrics.counts["spooled"] + service.metrics.counts["evictions"]
                          >= len(captures) + 4 and pending(capture_streams) == 0, timeout=30)  # fmt: skip
        assert wait_until(lambda: service.metrics.counts["failures"] >= 1, timeout=30)
        counts = dict(service.metrics.counts)
        by_class = dict(service.metrics.evictions_by_class)
        survivors = service.spool.names()
        status = service.status()

    # good parts first (oldest first), then the oldest uncertain; the last good one is dropped on arrival
    evicted = events_of(capture_streams, "capture_evicted")
    assert [e["frame_id"] for e in evicted] == ["f0001", "f0003", "f0006", "f0002", "f0009"]
    assert [e["keep"] for e in evicted] == ["good", "good", "good", "uncertain", "good"]
    assert all(e["line"] == line_id for e in evicted)
    assert counts["evictions"] == 5 and by_class == {"good": 4, "uncertain": 1}
    assert counts["spooled"] == 9 and counts["uploaded_captures"] == 0
    assert [n.split("+")[1] for n in survivors] == ["f0000", "f0004", "f0005", "f0007", "f0008"]
    assert status["evictions_by_class"] == {"good": 4, "uncertain": 1}
    assert status["backlog"]["captures"] == 5 and status["backlog"]["bytes"] <= 5 * max(sizes)

    endpoint, bucket = s3_bucket  # the network comes back (here: the same spool, a reachable store)
    online = make_settings(capture_url=f"s3://{bucket}/c", s3_endpoint_url=endpoint)
    with running(online) as service:
        assert wait_until(lambda: service.spool.stats().captures == 0, timeout=60)
    store = open_store(f"s3://{bucket}/c", endpoint_url=endpoint)
    uploaded = sorted(r.frame_id for r in read_day(store, line_id, date(2026, 1, 1)))
    assert uploaded == ["f0000", "f0004", "f0005", "f0007", "f0008"]
