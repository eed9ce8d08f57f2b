"""Captured frames in a real capture store, written by the real uploader, for monitor/review/retrain tests.

``store_captures(redis_url, client, store_url, spool, captures)`` runs ``UploaderService`` (the very
service ``edgeinspect-uploader`` runs) until every capture and telemetry event is in the store.
``capture_of(...)`` makes a :class:`Capture` record from pixels, as the worker would for a judged frame.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from edgeinspect.core import images, names
from edgeinspect.core.lifecycle import wait_until
from edgeinspect.core.messages import Capture, Prediction
from edgeinspect.core.streams import Streams
from edgeinspect_uploader.service import UploaderService
from edgeinspect_uploader.settings import UploaderSettings


@contextmanager
def uploader(
    redis_url: str, line: str, store_url: str, spool: Path, **overrides: Any
) -> Iterator[UploaderService]:
    """A running uploader (its threads in this process) until the block ends."""
    settings = UploaderSettings.load(
        redis_url=redis_url, line=line, capture_url=store_url, spool_dir=spool,
        retry_initial_s=0.1, retry_max_s=0.5, stale_claim_ms=1000, **overrides,
    )  # fmt: skip
    stop = threading.Event()
    service = UploaderService.build(settings, stop).start()
    try:
        yield service
    finally:
        stop.set()
        service.join(timeout=30)


def wait_drained(client: redis.Redis, service: UploaderService, timeout: float = 120.0) -> None:
    """Until every capture and event was acknowledged and the spool holds nothing more to upload."""
    streams = Streams(client)

    def drained() -> bool:
        try:
            pending = streams.pending_count(names.capture_stream(), names.UPLOADER_GROUP)
        except redis.ResponseError:  # NOGROUP: the uploader has not created its group yet
            return False
        lag = _lag(client, names.capture_stream()) + _lag(client, names.events_stream())
        telemetry = list((service.settings.spool_dir / "telemetry").glob("*.json"))
        return pending == 0 and lag == 0 and service.spool.stats().captures == 0 and not telemetry

    if not wait_until(drained, timeout, interval=0.2):
        pytest.fail(f"the uploader did not drain: {service.status()}")


def _lag(client: redis.Redis, stream: str) -> int:
    try:
        groups: Any = client.xinfo_groups(stream)
    except redis.ResponseError:
        return 0
    for group in groups:
        name = group.get("name")
        if (name.decode() if isinstance(name, bytes) else name) == names.UPLOADER_GROUP:
            return int(group.get("lag") or 0) + int(group.get("pending") or 0)
    return 0


def capture_of(
    line: str,
    frame_id: str,
    pixels: np.ndarray,
    *,
    ts_ns: int,
    verdict: str = "ok",
    score: float = 0.1,
    mask: np.ndarray | None = None,
    reasons: list[str] | None = None,
    shadow_label: str | None = None,
) -> Capture:
    """A capture as the worker writes it: PNG frame, classifier (and optional shadow) prediction, mask."""
    label = "defect" if verdict == "defect" else "ok"
    predictions = [Prediction("defect-cls", "1", "classification", label, score, 0.5, 3.0)]  # type: ignore[arg-type]
    if shadow_label is not None:
        predictions.append(
            Prediction("defect-cls", "2", "classification", shadow_label, 1 - score, 0.5, 3.0, role="shadow")  # type: ignore[arg-type]
        )
    return Capture(
        frame_id=frame_id,
        line=line,
        ts_ns=ts_ns,
        encoding="png",
        height=pixels.shape[0],
        width=pixels.shape[1],
        channels=pixels.shape[2],
        data=images.encode(pixels, "png"),
        verdict=verdict,  # type: ignore[arg-type]
        score=score,
        predictions=predictions,
        reasons=reasons or ([verdict] if verdict == "defect" else ["sample_good"]),
        mask=images.encode_mask(mask) if mask is not None and mask.any() else None,
        camera="cam-1",
        source=f"{frame_id}.png",
    )


def store_captures(
    redis_url: str, client: redis.Redis, store_url: str, spool: Path, captures: list[Capture]
) -> None:
    """Publish ``captures`` on ``ei:capture`` and let the real uploader put them in the store."""
    client.delete(names.capture_stream())
    streams = Streams(client)
    for capture in captures:
        streams.add(names.capture_stream(), capture)
    line = captures[0].line if captures else "line-1"
    with uploader(redis_url, line, store_url, spool, telemetry_forward=False) as service:
        wait_drained(client, service)
    client.delete(names.capture_stream())
