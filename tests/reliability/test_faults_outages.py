"""Outages under a running line of real processes: the broker down, the S3 server down, the spool's
disk full. The line keeps judging; captures wait (in the spool, or pending in Redis when the disk is
full) and every one arrives once the outage ends.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from edgeinspect.core.lifecycle import wait_until

from tests.fixtures.mqtt_broker import MosquittoBroker
from tests.fixtures.s3_server import S3Server
from tests.reliability.edge import EdgeLine, send_frames

pytestmark = pytest.mark.timeout(240)


def _s3_uploads(server: S3Server, bucket: str) -> Counter[str]:
    client = server.client()
    found: Counter[str] = Counter()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            parts = item["Key"].split("/")
            if parts[-1].startswith("image."):
                found[parts[-2]] += 1
    return found


def _on_s3(edge: EdgeLine, s3_server: S3Server, bucket: str, **extra: str) -> None:
    edge.settings["uploader"] = {
        "capture_url": f"s3://{bucket}/c", "s3_endpoint_url": s3_server.endpoint_url, "s3_max_attempts": "1",
        "s3_connect_timeout_s": "1", "s3_read_timeout_s": "5", **extra,
    }  # fmt: skip
    edge.uploaded = lambda: _s3_uploads(s3_server, bucket)  # type: ignore[method-assign]


def test_the_broker_down_stops_no_verdict(edge: EdgeLine, mqtt_broker: MosquittoBroker) -> None:
    if mqtt_broker.external:
        pytest.skip("EI_TEST_MQTT_URL points at an external broker, which tests cannot stop")
    edge.settings["worker"] = {"mqtt_url": mqtt_broker.url, "mqtt_topic_root": f"t/{uuid.uuid4().hex[:8]}"}
    edge.kit.deploy()
    edge.start("worker")
    edge.start("uploader")
    expected = send_frames(edge, "a", 6)
    assert wait_until(lambda: len(edge.results()) >= 6, 60), edge.logs("worker")
    mqtt_broker.stop()
    try:
        expected |= send_frames(edge, "b", 10)  # five defects: five alerts that cannot be delivered
        edge.wait_done(set(expected))
    finally:
        mqtt_broker.start()
    expected |= send_frames(edge, "c", 4)
    edge.wait_done(set(expected))
    edge.check(set(expected), expected)


def test_the_s3_server_down_loses_no_capture(
    edge: EdgeLine, s3_server: S3Server, s3_bucket: tuple[str, str]
) -> None:
    if s3_server.external:
        pytest.skip("EI_TEST_S3_URL points at an external server, which tests cannot stop")
    _endpoint, bucket = s3_bucket
    _on_s3(edge, s3_server, bucket)
    edge.kit.deploy()
    edge.start("worker")
    edge.start("uploader")
    expected = send_frames(edge, "a", 6)
    edge.wait_done(set(expected))
    s3_server.stop()
    try:
        expected |= send_frames(edge, "b", 10)
        assert wait_until(lambda: len(edge.results()) >= 16, 60), edge.logs("worker")
    finally:
        s3_server.start()  # moto comes back empty: the bucket must be made again
        s3_server.client().create_bucket(Bucket=bucket)
    during = {f for f in expected if f.startswith("b-")}  # moto forgot what it held before the outage
    edge.wait_done(set(expected), captures=during)
    edge.check(set(expected), expected, captures=during)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 96 KiB tmpfs for the spool (root only): the disk fills long before the quota."""
    folder = tmp_path / "small"
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs for the disk-full test needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(folder)], check=False)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (no mount capability)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_spool_disk_loses_no_capture(
    edge: EdgeLine, s3_server: S3Server, s3_bucket: tuple[str, str], small_disk: Path
) -> None:
    if s3_server.external:
        pytest.skip("EI_TEST_S3_URL points at an external server, which tests cannot stop")
    _endpoint, bucket = s3_bucket
    _on_s3(
        edge,
        s3_server,
        bucket,
        spool_dir=str(small_disk / "spool"),
        read_batch="4",
        spool_reserve_bytes="24576",
    )
    edge.kit.deploy()
    edge.start("worker")
    edge.start("uploader")
    s3_server.stop()  # nothing leaves the spool: the disk fills up
    try:
        expected = send_frames(edge, "a", 80)
        assert wait_until(lambda: len(edge.results()) >= 80, 90), edge.logs("worker")
        assert wait_until(lambda: "No space left on device" in edge.logs("uploader"), 60), edge.logs(
            "uploader"
        )
    finally:
        s3_server.start()
        s3_server.client().create_bucket(Bucket=bucket)
    edge.wait_done(set(expected), timeout=180)
    edge.check(set(expected), expected)
    assert "capture_evicted" not in edge.logs("uploader")  # waited in Redis, not evicted
