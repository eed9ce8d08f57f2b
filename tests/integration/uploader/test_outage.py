"""The S3 server goes away for a while: captures wait in the spool and all arrive once it is back."""

from __future__ import annotations

import dataclasses
from datetime import date

from edgeinspect.core.lifecycle import wait_until
from edgeinspect.core.storage import open_store
from edgeinspect.core.streams import Streams
from edgeinspect_uploader.manifest import read_day

from tests.fixtures.s3_server import S3Server
from tests.integration.uploader.conftest import SettingsFactory
from tests.integration.uploader.harness import events_of, pending, publish, running
from tests.unit.uploader.captures import make_captures


def test_every_capture_arrives_after_the_s3_server_comes_back(
    capture_streams: Streams,
    make_settings: SettingsFactory,
    s3_server: S3Server,
    s3_bucket: tuple[str, str],
    line_id: str,
) -> None:
    endpoint, bucket = s3_bucket
    settings = make_settings(capture_url=f"s3://{bucket}/c", s3_endpoint_url=endpoint, batch_max_captures=4)
    before = make_captures(21, line_id, ["good", "defect"] * 2)
    kinds = ["defect", "good", "uncertain", "error"] * 5
    later = make_captures(22, line_id, kinds, start_ns=before[-1].ts_ns + 10**9)
    during = [dataclasses.replace(c, frame_id=f"o{i:04d}") for i, c in enumerate(later)]
    with running(settings) as service:
        publish(capture_streams, before)
        assert wait_until(lambda: service.metrics.counts["uploaded_captures"] == 4, timeout=30)

        s3_server.stop()
        publish(capture_streams, during)
        # the captures are safe on disk and acknowledged while the store is down, and retries go on
        assert wait_until(lambda: pending(capture_streams) == 0, timeout=30)
        assert wait_until(lambda: service.metrics.counts["failures"] >= 3, timeout=60)
        assert service.spool.stats().captures == len(during)
        assert service.status()["store_online"] is False
        assert service.metrics.counts["uploaded_captures"] == 4

        s3_server.start()  # moto comes back empty: the bucket must be made again
        s3_server.client().create_bucket(Bucket=bucket)
        done = 4 + len(during)
        assert wait_until(lambda: service.metrics.counts["uploaded_captures"] == done, timeout=90)
        assert service.spool.stats().captures == 0
        assert service.status()["store_online"] is True

    store = open_store(f"s3://{bucket}/c", endpoint_url=endpoint)
    for c in during:
        prefix = f"{line_id}/2026/01/01/{c.frame_id}"
        assert store.get_bytes(f"{prefix}/image.png") == c.data
        assert store.exists(f"{prefix}/result.json")
    manifest = [r.frame_id for r in read_day(store, line_id, date(2026, 1, 1))]
    assert sorted(manifest) == sorted(c.frame_id for c in during)
    assert events_of(capture_streams, "capture_upload_failed")
    assert events_of(capture_streams, "capture_upload_recovered")
