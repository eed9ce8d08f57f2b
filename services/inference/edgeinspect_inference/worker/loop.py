"""The worker's main loop: read frames in the group, judge up to ``depth`` at once, commit in order.

Reading, judging and committing overlap: while frame N is with the agent, frame N+1 is already being
decoded and preprocessed on another thread (``pipeline_depth`` frames in flight). Results are
committed in the order frames were read, each in one atomic script with its XACK
(:mod:`.commit`), so a crash at any point leaves every frame either pending or finished.

On stop (SIGTERM): no new reads; frames already in flight are finished, committed and acknowledged;
then the loop returns.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import redis
from edgeinspect.core import names
from edgeinspect.core.lifecycle import Backoff
from edgeinspect.core.messages import Capture, Result, now_ns
from edgeinspect.core.observability import get_logger
from edgeinspect.core.streams import Entry, GroupReader, Streams

from edgeinspect_inference.worker.alerts import Alerter, alert_payload
from edgeinspect_inference.worker.capture import CapturePolicy
from edgeinspect_inference.worker.commit import Commit, Committer
from edgeinspect_inference.worker.judge import AgentUnavailable, FrameJudge, Judged
from edgeinspect_inference.worker.metrics import WorkerMetrics
from edgeinspect_inference.worker.telemetry import TelemetryRecorder
from edgeinspect_inference.worker.waiting import ModelPending

log = get_logger(__name__)

_BACKLOG_EVERY_S = 2.0


class Worker:
    """One consumer of one line; ``run(stop)`` until ``stop`` is set, then drain and return."""

    def __init__(
        self,
        streams: Streams,
        judge: FrameJudge,
        committer: Committer,
        policy: CapturePolicy,
        alerter: Alerter,
        metrics: WorkerMetrics,
        *,
        consumer: str,
        depth: int = 2,
        stale_ms: int = 30_000,
        block_ms: int = 500,
        telemetry: TelemetryRecorder | None = None,
        model_retry_s: float = 0.5,
    ) -> None:
        self.line = judge.line
        self._streams = streams
        self._judge = judge
        self._committer = committer
        self._policy = policy
        self._alerter = alerter
        self._metrics = metrics
        self._depth = depth
        self._block_ms = block_ms
        self._telemetry = telemetry
        self._model_retry_s = model_retry_s
        self._reader = GroupReader(
            streams, names.frames_stream(self.line), names.INFERENCE_GROUP, consumer,
            stale_ms=stale_ms, batch=depth, block_ms=block_ms,
        )  # fmt: skip
        self._jobs = ThreadPoolExecutor(max_workers=depth, thread_name_prefix="frame")
        self._window: deque[tuple[Entry, Future[Judged]]] = deque()
        self._backoff = Backoff(initial=0.2, maximum=5.0)
        self._backlog_at = 0.0
        self.committed = 0

    def consuming(self) -> bool:
        """False while the frames stream cannot be read (for ``/readyz``)."""
        return self._reader.consuming

    def run(self, stop: threading.Event) -> None:
        """Process frames until ``stop`` is set; then finish what is in flight and return."""
        self._reader.start()
        log.info("worker_started", line=self.line, consumer=self._reader.consumer, depth=self._depth)
        try:
            while not (stop.is_set() and not self._window):
                read_any = False if stop.is_set() else self._fill(stop)
                if self._window and (len(self._window) >= self._depth or not read_any or stop.is_set()):
                    self._finish_head(stop)
                self._update_backlog()
        finally:
            self._jobs.shutdown(wait=True, cancel_futures=True)
            log.info("worker_stopped", line=self.line, committed=self.committed)

    def _fill(self, stop: threading.Event) -> bool:
        """Read and start new frames while the window has room; True when any were started."""
        if len(self._window) >= self._depth:
            return False
        # Only what fits: a frame read is a frame held (peers of the line cannot take it meanwhile).
        self._reader.batch = self._depth - len(self._window)
        # With frames in flight, only look: a blocking read (even BLOCK 1) on an idle stream returns
        # on Redis's next timer tick, up to 100 ms after the frame in flight was judged.
        self._reader.block_ms = None if self._window else self._block_ms
        try:
            entries = self._reader.next_batch()
        except redis.RedisError as exc:
            self._wait_after("read", exc, stop)  # a lost group is recreated by the reader itself
            return False
        in_flight = {entry.id for entry, _ in self._window}
        started = False
        for entry in entries:
            if entry.id in in_flight:  # own pending entries come back until acked
                continue
            self._window.append((entry, self._jobs.submit(self._judge.judge, entry)))
            in_flight.add(entry.id)
            started = True
        self._metrics.in_flight.labels(self.line).set(len(self._window))
        return started

    def _finish_head(self, stop: threading.Event) -> None:
        """Wait for the oldest frame in flight and commit it (retrying it while the agent is down)."""
        entry, future = self._window[0]
        try:
            judged = future.result()
        except AgentUnavailable as exc:
            self._metrics.errors.labels(self.line, "agent_unavailable").inc()
            self._wait_after("agent", exc, stop)
            if stop.is_set():  # leave it pending: the next worker (or our restart) judges it
                self._window.popleft()
            else:
                self._window[0] = (entry, self._jobs.submit(self._judge.judge, entry))
            return
        except ModelPending:
            self._hold_for_model(entry, stop)
            return
        except Exception as exc:  # a bug must cost one frame (an error result), never the line
            log.exception("judge_failed", entry_id=entry.id, error=str(exc))
            judged = self._judge.internal_error(entry, exc)
        try:
            self._commit(judged)
        except redis.RedisError as exc:
            self._wait_after("commit", exc, stop)
            if stop.is_set():
                self._window.popleft()
            return
        self._window.popleft()
        self._backoff.reset()
        self._metrics.in_flight.labels(self.line).set(len(self._window))

    def _hold_for_model(self, entry: Entry, stop: threading.Event) -> None:
        """Keep the head frame pending while its model may come back, then judge it again."""
        self._judge.wait.held_frames(len(self._window), 0.0)
        started = time.monotonic()
        stop.wait(self._model_retry_s)
        self._judge.wait.held_frames(len(self._window), time.monotonic() - started)
        if stop.is_set():  # leave it pending: our restart (or a peer) judges it
            self._window.popleft()
        else:
            self._window[0] = (entry, self._jobs.submit(self._judge.judge, entry))

    def _commit(self, judged: Judged) -> None:
        result = dataclasses.replace(
            judged.result, e2e_ms=_e2e_ms(judged.result), frame_entry=judged.entry_id
        )
        reasons = self._policy.reasons(result)
        capture = (
            Capture.from_frame_and_result(judged.frame, result, reasons)
            if reasons and judged.frame is not None
            else None
        )
        added = self._committer.commit(Commit(judged.entry_id, result, capture))
        self.committed += 1
        if not added:
            self._metrics.duplicates.labels(self.line).inc()
            log.warning("duplicate_frame", frame_id=result.frame_id, entry_id=judged.entry_id)
            return
        self._observe(result, reasons if capture is not None else [])
        if self._telemetry is not None and result.verdict != "no_model":  # not inspected: no statistics
            pixels = judged.frame.height * judged.frame.width if judged.frame is not None else None
            self._telemetry.observe(result, judged.features, pixels)

    def _observe(self, result: Result, captured: list[str]) -> None:
        self._metrics.frames.labels(self.line, result.verdict).inc()
        self._metrics.e2e.labels(self.line).observe(result.e2e_ms / 1000.0)
        for reason in captured:
            self._metrics.captures.labels(self.line, reason).inc()
        if result.verdict == "defect":
            self._alerter.submit(alert_payload(result))
        if result.verdict == "error":
            log.warning("frame_error", frame_id=result.frame_id, error=result.error)

    def _wait_after(self, what: str, exc: Exception, stop: threading.Event) -> None:
        delay = self._backoff.next_delay()
        log.warning("worker_retrying", what=what, error=str(exc), retry_in_s=round(delay, 2))
        stop.wait(delay)

    def _update_backlog(self) -> None:
        now = time.monotonic()
        if now - self._backlog_at < _BACKLOG_EVERY_S:
            return
        self._backlog_at = now
        try:
            groups: Any = self._streams.client.xinfo_groups(self._reader.stream)
        except redis.RedisError:
            return
        for group in groups:
            if _text(group.get("name")) == names.INFERENCE_GROUP:
                lag = group.get("lag") or 0
                self._metrics.backlog.labels(self.line).set(int(lag) + int(group.get("pending") or 0))


def _e2e_ms(result: Result) -> float:
    return round(max(0.0, (now_ns() - result.ts_ns) / 1e6), 3)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
