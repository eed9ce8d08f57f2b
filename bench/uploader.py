"""Uploader benchmark: spool write rate (captures/s) and sustained upload throughput (MB/s) on loopback.

    .venv/bin/python -m bench.uploader [--spool-seconds 12] [--upload-seconds 20] [--large-seconds 15]
    .venv/bin/python -m bench.uploader --quick    # a smoke run: 3 / 5 / 5 seconds

Starts moto's S3 server as a subprocess on a free loopback port (no AWS, nothing off the machine),
then measures, with the uploader's own classes and unlimited bandwidth:

1. spool: ``Spool.put(capture_files(...))`` of KolektorSDD2-sized frames (232x640 RGB PNG + mask) --
   everything the receiver does per capture except reading Redis: JSON, sha256, four fsyncs, a rename;
2. upload: ``Syncer.run_once()`` draining that spool into the bucket in journaled batches of 50
   (put, verify, manifest part, delete) -- captures/s and MB/s of payload;
3. large: 8 MiB images, which go up as S3 multipart uploads (threshold 5 MiB).

Images are seeded noise, so PNG cannot shrink them and the byte counts are the worst case. MB is
10^6 bytes. moto is a Python server and shares the CPU with the uploader, so on loopback it is the
bottleneck: a real S3 or MinIO endpoint is faster per connection, and a factory uplink far slower.
Prints a table, then, as the very last line, one JSON object of the same figures; ``--out`` (default
``bench/out``) gets ``uploader/table.md`` and a PNG plot (``bench.report``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import numpy as np
from edgeinspect.core.images import encode, encode_mask
from edgeinspect.core.messages import Capture, Prediction
from edgeinspect.core.storage import open_store
from edgeinspect_uploader.events import EventSink
from edgeinspect_uploader.journal import Journal
from edgeinspect_uploader.metrics import UploaderMetrics
from edgeinspect_uploader.record import capture_files
from edgeinspect_uploader.spool import Spool
from edgeinspect_uploader.sync import Syncer
from edgeinspect_uploader.throttle import RealClock, TokenBucket
from prometheus_client import CollectorRegistry

from bench.report import DEFAULT_OUT, write_report

MB = 1_000_000
MIB = 1 << 20
T0 = 1_767_225_600 * 1_000_000_000
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def moto_server(logdir: Path) -> Iterator[str]:
    """moto's S3 server on a free loopback port; yields its endpoint URL, stops it afterwards."""
    exe = Path(sys.executable).with_name("moto_server")
    command = [str(exe)] if exe.exists() else [shutil.which("moto_server") or "moto_server"]
    port = free_port()
    with open(logdir / "moto.log", "wb") as log:
        proc = subprocess.Popen([*command, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"moto_server did not start; see {logdir / 'moto.log'}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def frames(seed: int, count: int, height: int, width: int) -> list[Capture]:
    """``count`` distinct defect captures (noise image + mask), one second apart."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        pred = Prediction("seg", "1", "segmentation", "defect", 0.9, 0.5, 3.0, defect_area_px=120)
        out.append(
            Capture(
                frame_id=f"p{seed}-{i:06d}",
                line="bench",
                ts_ns=T0 + i * 10**9,
                encoding="png",
                height=height,
                width=width,
                channels=3,
                data=encode(pixels, "png"),
                verdict="defect",
                score=0.9,
                predictions=[pred],
                reasons=["defect"],
                mask=encode_mask(pixels[:, :, 0] > 250),
            )
        )
    return out


def syncer_for(
    spool: Spool, url: str, endpoint: str, threshold: int, concurrency: int
) -> tuple[Syncer, UploaderMetrics]:
    journal = Journal(spool.state)
    journal.open()
    stop = threading.Event()
    store = open_store(url, endpoint_url=endpoint, multipart_threshold=threshold, max_attempts=3)
    metrics = UploaderMetrics(CollectorRegistry())
    bucket = TokenBucket(0, 1, RealClock(stop))
    syncer = Syncer(
        spool, journal, store, metrics, EventSink(None), bucket, uploader=journal.uploader_id(), stop=stop,
        batch_max_captures=50, concurrency=concurrency, single_put_max=threshold,
    )  # fmt: skip
    return syncer, metrics


def bench_spool(spool: Spool, pool: list[Capture], seconds: float) -> dict[str, Any]:
    """Spool copies of ``pool`` (fresh frame ids) for ``seconds``."""
    done, nbytes, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        capture = dataclasses.replace(pool[done % len(pool)], frame_id=f"s{done:07d}")
        files = capture_files(capture)
        spool.put(files)
        done += 1
        nbytes += files.size
    elapsed = time.perf_counter() - start
    return {"captures": done, "bytes": nbytes, "seconds": elapsed}


def bench_upload(syncer: Syncer, metrics: UploaderMetrics, spool: Spool, seconds: float) -> dict[str, Any]:
    """Drain the spool through ``syncer`` for at most ``seconds`` (whole batches)."""
    start = time.perf_counter()
    while spool.stats().captures and time.perf_counter() - start < seconds:
        syncer.run_once()
    elapsed = time.perf_counter() - start
    return {"captures": metrics.counts["uploaded_captures"], "bytes": metrics.counts["uploaded_bytes"],
            "seconds": elapsed}  # fmt: skip


def rates(fig: dict[str, Any]) -> dict[str, float]:
    secs = max(fig["seconds"], 1e-9)
    return {
        "captures": fig["captures"],
        "mb": round(fig["bytes"] / MB, 2),
        "seconds": round(secs, 2),
        "captures_per_s": round(fig["captures"] / secs, 1),
        "mb_per_s": round(fig["bytes"] / MB / secs, 2),
    }


def run(args: argparse.Namespace, tmp: Path, endpoint: str) -> dict[str, Any]:
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
    pool = frames(1, 40, 232, 640)
    spool = Spool(tmp / "spool", 50 * 1024 * MIB)
    spool.open()
    spool_fig = rates(bench_spool(spool, pool, args.spool_seconds))
    syncer, metrics = syncer_for(spool, "s3://bench/frames", endpoint, 64 * MIB, args.concurrency)
    upload_fig = rates(bench_upload(syncer, metrics, spool, args.upload_seconds))

    large_spool = Spool(tmp / "large", 50 * 1024 * MIB)
    large_spool.open()
    big = frames(2, 3, 1536, 1820)  # 8.4 MB noise PNG each
    for i in range(24):
        large_spool.put(capture_files(dataclasses.replace(big[i % 3], frame_id=f"L{i:04d}")))
    syncer, metrics = syncer_for(large_spool, "s3://bench/large", endpoint, 5 * MIB, args.concurrency)
    large_fig = rates(bench_upload(syncer, metrics, large_spool, args.large_seconds))
    return {
        "spool_write": spool_fig,
        "upload_frames": upload_fig,
        "upload_multipart": large_fig,
        "frame_bytes": len(capture_files(pool[0]).files["image.png"]),
        "large_bytes": len(big[0].data),
    }


def table(figures: dict[str, Any]) -> str:
    rows = [
        ("spool write (232x640 frames, fsync)", figures["spool_write"]),
        ("upload to S3, 232x640 frames", figures["upload_frames"]),
        (f"upload to S3, {figures['large_bytes'] / MB:.1f} MB multipart", figures["upload_multipart"]),
    ]
    lines = [f"{'phase':<40} {'captures':>9} {'MB':>9} {'s':>7} {'captures/s':>11} {'MB/s':>8}"]
    for name, f in rows:
        lines.append(
            f"{name:<40} {f['captures']:>9} {f['mb']:>9.1f} {f['seconds']:>7.1f} "
            f"{f['captures_per_s']:>11.1f} {f['mb_per_s']:>8.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spool-seconds", type=float, default=12.0)
    parser.add_argument("--upload-seconds", type=float, default=20.0)
    parser.add_argument("--large-seconds", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=4, help="EI_UPLOAD_CONCURRENCY")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 3 s spool, 5 s per upload phase")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where <out>/uploader/ goes")
    args = parser.parse_args(argv)
    if args.quick:
        args.spool_seconds, args.upload_seconds, args.large_seconds = 3.0, 5.0, 5.0
    os.environ.update(CREDENTIALS)  # dummy credentials for moto; set at run time, never on import
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    with tempfile.TemporaryDirectory(prefix="ei-bench-uploader-") as tmp:
        os.environ["AWS_CONFIG_FILE"] = os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(Path(tmp) / "none")
        with moto_server(Path(tmp)) as endpoint:
            figures = run(args, Path(tmp), endpoint)
    text = table(figures)
    print(text)
    folder = write_report("uploader", figures, args.out, text)
    print(f"wrote table and plots to {folder}", file=sys.stderr, flush=True)
    summary = {
        "spool_captures_per_s": figures["spool_write"]["captures_per_s"],
        "spool_mb_per_s": figures["spool_write"]["mb_per_s"],
        "upload_mb_per_s": figures["upload_frames"]["mb_per_s"],
        "upload_captures_per_s": figures["upload_frames"]["captures_per_s"],
        "multipart_upload_mb_per_s": figures["upload_multipart"]["mb_per_s"],
        "frame_bytes": figures["frame_bytes"],
        "large_bytes": figures["large_bytes"],
    }
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
