"""The bandwidth limit, measured as bytes stored in a real S3 bucket over simulated time."""

from __future__ import annotations

from edgeinspect.core.lifecycle import wait_until
from edgeinspect.core.streams import Streams
from edgeinspect_uploader.throttle import ManualClock

from tests.fixtures.s3_server import S3Server
from tests.integration.uploader.conftest import SettingsFactory
from tests.integration.uploader.harness import publish, running
from tests.unit.uploader.captures import make_captures

RATE = 200_000  # bytes per second
BURST = 64 * 1024


def stored_bytes(s3: S3Server, bucket: str) -> tuple[int, int]:
    """(total bytes, largest object) of everything in the bucket."""
    sizes = [
        obj["Size"]
        for page in s3.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for obj in page.get("Contents", [])
    ]
    return sum(sizes), max(sizes, default=0)


def test_uploads_never_exceed_the_bandwidth_limit_over_simulated_time(
    capture_streams: Streams,
    make_settings: SettingsFactory,
    s3_server: S3Server,
    s3_bucket: tuple[str, str],
    line_id: str,
) -> None:
    endpoint, bucket = s3_bucket
    captures = make_captures(51, line_id, ["defect", "good", "uncertain"] * 10, height=100, width=120)
    settings = make_settings(
        capture_url=f"s3://{bucket}/c", s3_endpoint_url=endpoint, bandwidth_bytes_per_s=RATE,
        bandwidth_burst_bytes=BURST, batch_max_captures=7,
    )  # fmt: skip
    clock = ManualClock()
    publish(capture_streams, captures)
    with running(settings, clock=clock) as service:
        assert wait_until(lambda: service.metrics.counts["uploaded_captures"] == len(captures), timeout=60)
    total, largest = stored_bytes(s3_server, bucket)
    elapsed = clock.monotonic()  # simulated seconds: only the throttle's waits move this clock
    assert total > 10 * BURST  # far more than one burst, so the limit had to act
    assert total <= RATE * elapsed + BURST + largest
    # and it did not wait more than the limit requires
    assert elapsed <= (total - BURST) / RATE + 1e-6
    assert total / elapsed > 0.9 * RATE
