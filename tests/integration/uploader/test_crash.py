"""The real ``edgeinspect-uploader`` process killed mid-upload, stopped by SIGTERM, and restarted:
every capture arrives exactly once, and the manifest lists each exactly once."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edgeinspect.core.hashing import sha256_bytes
from edgeinspect.core.lifecycle import wait_until
from edgeinspect.core.messages import Capture
from edgeinspect.core.storage import open_store
from edgeinspect.core.streams import Streams
from edgeinspect_uploader.manifest import parse_part

from tests.fixtures.redis_server import RedisServer
from tests.fixtures.s3_server import S3Server
from tests.fixtures.servers import free_port
from tests.integration.uploader.harness import pending, publish
from tests.unit.uploader.captures import T0, make_captures

MIB = 1 << 20
SCRIPT = str(Path(sys.executable).with_name("edgeinspect-uploader"))


@contextmanager
def uploader(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        proc = subprocess.Popen([SCRIPT], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def status(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=2) as resp:
            body: dict[str, Any] = json.loads(resp.read())
            return body
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def multipart_in_flight(s3: S3Server, bucket: str, seen: set[str]) -> bool:
    """True once an upload id not seen before is open (a new multipart upload is under way)."""
    uploads = {u["UploadId"] for u in s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])}
    fresh = uploads - seen
    seen |= uploads
    return bool(fresh)


def test_killed_and_stopped_mid_upload_then_restarted_loses_and_duplicates_nothing(
    capture_streams: Streams,
    redis_server: RedisServer,
    s3_server: S3Server,
    s3_bucket: tuple[str, str],
    tmp_path: Path,
    line_id: str,
) -> None:
    endpoint, bucket = s3_bucket
    port = free_port()
    env = dict(os.environ)
    env.update(
        EI_REDIS_URL=redis_server.url, EI_LINE=line_id, EI_CAPTURE_URL=f"s3://{bucket}/cap",
        EI_S3_ENDPOINT_URL=endpoint, EI_SPOOL_DIR=str(tmp_path / "spool"), EI_HTTP_PORT=str(port),
        EI_BANDWIDTH_BYTES_PER_S=str(1 * MIB), EI_BATCH_MAX_CAPTURES="5", EI_RETRY_INITIAL_S="0.1",
        EI_RETRY_MAX_S="0.5", EI_S3_MULTIPART_THRESHOLD_BYTES=str(5 * MIB), EI_STALE_CLAIM_MS="1000",
    )  # fmt: skip
    small = make_captures(31, line_id, ["defect", "uncertain", "good", "error"] * 6, height=120, width=160)
    (big,) = make_captures(32, line_id, ["good"], start_ns=T0 + 10**12, height=1500, width=1400)
    big = dataclasses.replace(big, frame_id="big0")  # the newest good part: it goes up last
    later = make_captures(33, line_id, ["defect", "good"] * 5, start_ns=T0 + 2 * 10**12)
    wave2 = [dataclasses.replace(c, frame_id=f"w{i}") for i, c in enumerate(later)]
    everything = [*small, big, *wave2]
    assert len(big.data) > 5 * MIB  # an S3 multipart upload
    seen: set[str] = set()
    log = tmp_path / "uploader.log"

    publish(capture_streams, [*small, big])
    with uploader(env, log) as first:
        assert wait_until(lambda: multipart_in_flight(s3_server, bucket, seen), timeout=60), log.read_text()
        publish(capture_streams, wave2)  # arriving while the process dies: some spooled, some not
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)

    with uploader(env, log) as second:
        assert wait_until(lambda: multipart_in_flight(s3_server, bucket, seen), timeout=60), log.read_text()
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0  # graceful: the throttled upload gives up at once

    env["EI_BANDWIDTH_BYTES_PER_S"] = "0"
    with uploader(env, log) as third:

        def drained() -> bool:
            body = status(port)
            return body is not None and body["backlog"]["captures"] == 0 and pending(capture_streams) == 0

        assert wait_until(drained, timeout=120), log.read_text()[-3000:]
        third.send_signal(signal.SIGTERM)
        assert third.wait(timeout=30) == 0

    store = open_store(f"s3://{bucket}/cap", endpoint_url=endpoint)
    lines = [r for info in store.list(f"{line_id}/") if "/_manifest/" in info.key
             for r in parse_part(store.get_bytes(info.key))]  # fmt: skip
    assert sorted(r.frame_id for r in lines) == sorted(c.frame_id for c in everything)  # once each
    for c in everything:
        image = store.head(f"{lines[0].line}/{_day(c)}/{c.frame_id}/image.png")
        assert image is not None and image.sha256 == sha256_bytes(c.data) and image.size == len(c.data)
    captures = [i.key for i in store.list(f"{line_id}/") if i.key.endswith("/result.json")]
    assert len(captures) == len(everything)
    assert list((tmp_path / "spool" / "ready").iterdir()) == []
    assert list((tmp_path / "spool" / "state" / "batches").iterdir()) == []
    events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    resumed = [e for e in events if e["event"] == "batch_uploaded" and e["resumed"]]
    assert resumed, "the batch interrupted by the kill was finished from its journal"


def _day(capture: Capture) -> str:
    from edgeinspect_uploader.layout import capture_day

    day = capture_day(capture.ts_ns)
    return f"{day.year:04d}/{day.month:02d}/{day.day:02d}"
