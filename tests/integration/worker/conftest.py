"""A production line for worker tests: the real redis-server, the real agent, synthetic frames.

``line`` gives a :class:`LineKit` bound to the test's line id: ``deploy()`` loads the tiny test models
(``tests.helpers.models``) into the agent and points the aliases at them, ``send()`` XADDs frames,
``results()`` / ``captures()`` read what the worker wrote, and ``worker(**settings)`` runs the very
worker the console script runs (``WorkerService``) on a thread until the test leaves the block.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pytest
import redis
from edgeinspect.core import images, names
from edgeinspect.core.agent_client import AgentClient
from edgeinspect.core.lifecycle import wait_until
from edgeinspect.core.messages import Capture, Frame, Result, now_ns
from edgeinspect.core.streams import Streams
from edgeinspect_inference.worker.alerts import AlertSink
from edgeinspect_inference.worker.metrics import WorkerMetrics
from edgeinspect_inference.worker.service import WorkerService
from edgeinspect_inference.worker.settings import WorkerSettings

from tests.fixtures.agent import AgentServer
from tests.fixtures.redis_server import RedisServer

MODEL_SIZE = 64
FRAME_SIZE = 128
DARK, BRIGHT = 20, 235
PATCH = (32, 64, 48, 80)  # rows 32..64, cols 48..80 of a 128x128 frame: a 32x32 bright defect


def frame_pixels(kind: Literal["dark", "bright", "patch"] | int, size: int = FRAME_SIZE) -> np.ndarray:
    """A 3-channel frame: flat dark (good), flat bright (defect), a dark frame with a bright patch,
    or a flat grey ``level``."""
    level = {"dark": DARK, "bright": BRIGHT, "patch": DARK}.get(kind, kind) if isinstance(kind, str) else kind
    pixels = np.full((size, size, 3), level, dtype=np.uint8)
    if kind == "patch":
        y0, y1, x0, x1 = PATCH
        pixels[y0:y1, x0:x1] = BRIGHT
    return pixels


@dataclass
class LineKit:
    """One test's line: its streams, its agent, and helpers to feed and read it."""

    line: str
    redis_url: str
    client: redis.Redis
    agent: AgentServer
    _workers: list[tuple[threading.Event, threading.Thread, WorkerService]] = field(default_factory=list)

    @property
    def streams(self) -> Streams:
        return Streams(self.client)

    def agent_client(self) -> AgentClient:
        return self.agent.client()

    def deploy(
        self,
        *,
        cls: bool = True,
        seg: bool = True,
        version: str = "1",
        knob: float = 0.0,
        alias: bool = True,
        mt: bool = False,
    ) -> None:
        """Load classifier, segmenter and/or multi-task model ``version``; (unless ``alias=False``)
        point the aliases."""
        client = self.agent_client()
        for wanted, name, task, alias_name in (
            (cls, "cls", "classification", "defect-cls"),
            (seg, "seg", "segmentation", "defect-seg"),
            (mt, "mt", "multitask", "defect-mt"),
        ):
            if not wanted:
                continue
            package = self.agent.package(name, version, task, height=MODEL_SIZE, width=MODEL_SIZE, knob=knob)  # type: ignore[arg-type]
            client.load_version(str(package))
            if alias:
                client.set_alias(alias_name, name, version)

    def send(
        self,
        frame_id: str,
        pixels: np.ndarray | None = None,
        *,
        data: bytes | None = None,
        encoding: Literal["png", "jpeg", "raw"] = "png",
        part_id: str = "",
    ) -> str:
        """XADD one frame (PNG of ``pixels``, or raw ``data`` as given) stamped now."""
        pixels = frame_pixels("dark") if pixels is None else pixels
        payload = data if data is not None else images.encode(pixels, encoding)
        frame = Frame(
            frame_id=frame_id,
            line=self.line,
            camera="cam-1",
            ts_ns=now_ns(),
            encoding=encoding,
            height=pixels.shape[0],
            width=pixels.shape[1],
            channels=pixels.shape[2],
            data=payload,
            part_id=part_id,
            source=f"{frame_id}.png",
        )
        return self.streams.add(names.frames_stream(self.line), frame)

    def results(self) -> list[Result]:
        raw: Any = self.client.xrange(names.results_stream(self.line))
        return [Result.from_fields(fields) for _, fields in raw]

    def captures(self) -> list[Capture]:
        raw: Any = self.client.xrange(names.capture_stream())
        captures = [Capture.from_fields(fields) for _, fields in raw]
        return [c for c in captures if c.line == self.line]

    def wait_results(self, count: int, timeout: float = 60.0) -> list[Result]:
        """Wait until ``count`` results exist (fails with what arrived, not on wall time)."""
        if not wait_until(lambda: len(self.results()) >= count, timeout, interval=0.05):
            pytest.fail(f"expected {count} results, got {len(self.results())}:\n{self.agent.logs()[-3000:]}")
        return self.results()

    def pending(self) -> int:
        return self.streams.pending_count(names.frames_stream(self.line), names.INFERENCE_GROUP)

    def settings(self, **overrides: Any) -> WorkerSettings:
        values: dict[str, Any] = {
            "redis_url": self.redis_url,
            "line": self.line,
            "agent_addr": self.agent.addr,
            "consumer": f"test-{len(self._workers)}",
            "block_ms": 50,
            "catalog_refresh_s": 0.5,
            "capture_good_fraction": 0.0,
        }
        values.update(overrides)
        return WorkerSettings.load(**values)

    @contextmanager
    def worker(self, sinks: list[AlertSink] | None = None, **overrides: Any) -> Iterator[WorkerService]:
        """Run a worker on a thread for the block; on exit stop it (finishing frames in flight)."""
        settings = self.settings(**overrides)
        agent = AgentClient(self.agent.addr, timeout_s=settings.agent_timeout_s)  # outlives agent restarts
        service = WorkerService(settings, Streams(self.client), agent, WorkerMetrics(), sinks)
        stop = threading.Event()
        thread = threading.Thread(target=service.run, args=(stop,), name=f"worker-{settings.consumer}")
        self._workers.append((stop, thread, service))
        thread.start()
        try:
            yield service
        finally:
            stop.set()
            thread.join(timeout=30)
            service.close()
            agent.close()
            assert not thread.is_alive(), "the worker did not stop within 30 s of its stop event"

    def worker_process(self, **env: str) -> subprocess.Popen[bytes]:
        """The worker as its own process (``python -m edgeinspect_inference.worker``)."""
        variables = {k: v for k, v in os.environ.items() if not k.startswith("EI_")}
        variables.update(
            {
                "EI_REDIS_URL": self.redis_url,
                "EI_LINE": self.line,
                "EI_AGENT_ADDR": self.agent.addr,
                "EI_BLOCK_MS": "50",
                "EI_CAPTURE_GOOD_FRACTION": "0",
                "EI_HTTP_HOST": "127.0.0.1",
                "PYTHONUNBUFFERED": "1",
            }
        )
        variables.update({f"EI_{k.upper()}": v for k, v in env.items()})
        return subprocess.Popen(
            [sys.executable, "-m", "edgeinspect_inference.worker"],
            env=variables,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )


@pytest.fixture
def line(
    redis_server: RedisServer, redis_client: redis.Redis, line_id: str, agent_server: AgentServer
) -> LineKit:
    return LineKit(line_id, redis_server.url, redis_client, agent_server)


@pytest.fixture
def by_frame() -> Callable[[list[Result]], dict[str, Result]]:
    """Results keyed by frame id, failing if any frame has more than one result."""

    def index(results: list[Result]) -> dict[str, Result]:
        seen: dict[str, Result] = {}
        for result in results:
            assert result.frame_id not in seen, f"frame {result.frame_id} has two results"
            seen[result.frame_id] = result
        return seen

    return index
