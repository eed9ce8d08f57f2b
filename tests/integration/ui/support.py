"""Run the UI for real (uvicorn on a free loopback port, in a thread) and write what the other
services would write: frames, results with masks, events. Shared by the integration and browser tests,
whose conftests both import the ``streams`` and ``ui`` fixtures from here."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import uvicorn
from edgeinspect.core import names
from edgeinspect.core.messages import Event, Frame, Prediction, Result
from edgeinspect.core.streams import Streams
from edgeinspect_ui.app import create_app
from edgeinspect_ui.settings import UiSettings
from fastapi import FastAPI
from PIL import Image

from tests.fixtures.redis_server import RedisServer
from tests.fixtures.servers import LOOPBACK, free_port

WIDTH, HEIGHT = 160, 120
MASK_BOX = (60, 40, 100, 80)  # x0, y0, x1, y1 of the synthetic defect
GREY = 90


@dataclass
class LiveUi:
    """A UI being served: its base URL and app (``app.state.ui`` holds its parts)."""

    url: str
    app: FastAPI
    server: uvicorn.Server


@contextmanager
def serve_ui(**overrides: Any) -> Iterator[LiveUi]:
    """Serve ``create_app(UiSettings(**overrides))`` until the block ends (graceful stop); on loopback,
    so without authentication unless ``ui_auth`` says otherwise."""
    overrides.setdefault("ui_auth", "none")
    settings = UiSettings.load(**overrides)
    app = create_app(settings)
    port = free_port()
    config = uvicorn.Config(app, host=LOOPBACK, port=port, log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="ui-under-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the UI did not start; see the log above")
        time.sleep(0.02)
    try:
        yield LiveUi(url=f"http://{LOOPBACK}:{port}", app=app, server=server)
    finally:
        app.state.ui.begin_shutdown()
        server.should_exit = True
        thread.join(15)


@pytest.fixture
def streams(redis_server: RedisServer) -> Iterator[Streams]:
    client = Streams.from_url(redis_server.url)
    yield client
    client.close()


@pytest.fixture
def ui(redis_server: RedisServer, line_id: str) -> Iterator[LiveUi]:
    """The UI showing only this test's line (the session's Redis holds other tests' lines too)."""
    with serve_ui(redis_url=redis_server.url, ui_lines=line_id, line=line_id) as live:
        yield live


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def grey_frame() -> np.ndarray:
    return np.full((HEIGHT, WIDTH, 3), GREY, dtype=np.uint8)


def box_mask() -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    x0, y0, x1, y1 = MASK_BOX
    mask[y0:y1, x0:x1] = 255
    return mask


def prediction(
    score: float, *, model: str = "defect-seg", version: str = "3", role: str = "primary"
) -> Prediction:
    return Prediction(
        model=model,
        version=version,
        task="segmentation",
        label="defect" if score >= 0.5 else "ok",
        score=score,
        threshold=0.5,
        latency_ms=4.0,
        role=role,  # type: ignore[arg-type]
    )


def push(
    streams: Streams,
    line: str,
    frame_id: str,
    verdict: str = "ok",
    *,
    score: float | None = None,
    e2e_ms: float = 20.0,
    with_frame: bool = True,
    encoding: str = "png",
    part_id: str = "",
    stamp_entry: bool = True,
    skew_ms: int = 0,
) -> str:
    """Write a frame (grey) and its result (with the box mask when a defect); returns the result id.

    The result names its frame's entry as the worker does (``stamp_entry=False``: as a worker from
    before ``frame_entry`` did); ``skew_ms`` sets the capture clock that far from Redis's.
    """
    ts = time.time_ns() + skew_ms * 1_000_000
    frame_entry = ""
    if with_frame:
        pixels = grey_frame()
        data = pixels.tobytes() if encoding == "raw" else png(pixels)
        frame = Frame(
            frame_id=frame_id,
            line=line,
            camera="cam0",
            ts_ns=ts,
            encoding=encoding,  # type: ignore[arg-type]
            height=HEIGHT,
            width=WIDTH,
            channels=3,
            data=data,
            source=f"{frame_id}.png",
            part_id=part_id,
        )
        added = streams.add(names.frames_stream(line), frame)
        frame_entry = added if stamp_entry else ""
    value = score if score is not None else (0.93 if verdict == "defect" else 0.04)
    result = Result(
        frame_id=frame_id,
        line=line,
        ts_ns=ts,
        verdict=verdict,  # type: ignore[arg-type]
        score=value,
        predictions=[] if verdict == "error" else [prediction(value)],
        e2e_ms=e2e_ms,
        mask=png(box_mask()) if verdict == "defect" else None,
        error="cannot decode frame" if verdict == "error" else "",
        source=f"{frame_id}.png",
        part_id=part_id,
        frame_entry=frame_entry,
    )
    return streams.add(names.results_stream(line), result)


def job_event(streams: Streams, job_id: str, status: str, model: str, version: str, reason: str = "") -> None:
    event = Event.new(
        "job_status",
        "model-manager",
        job_id=job_id,
        status=status,
        model=model,
        version=version,
        reason=reason,
    )
    streams.add(names.events_stream(), event)


class SseReader:
    """Reads ``event:``/``data:`` pairs from an open ``/api/stream`` response (httpx streaming)."""

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines

    def next_event(self) -> tuple[str, str]:
        kind, data = "message", ""
        for line in self._lines:
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif line == "" and data:
                return kind, data
        raise EOFError("the stream ended")

    def until(self, wanted: str, predicate: Any = lambda _data: True, limit: int = 500) -> Any:
        """Skip events until one of kind ``wanted`` whose JSON satisfies ``predicate``."""
        for _ in range(limit):
            kind, data = self.next_event()
            if kind == wanted:
                payload = json.loads(data)
                if predicate(payload):
                    return payload
        raise AssertionError(f"no {wanted!r} event matched within {limit} events")
