"""Edge telemetry: rolling quality statistics per line and model set, published every interval.

Every committed frame is counted (on the commit thread, features only, never pixels) into the window
of the primary models that judged it (:mod:`edgeinspect.core.telemetry_window`): score histograms,
defect rates, image brightness / contrast / sharpness (computed by the judge, which has the decoded
frame), mask area, shadow agreement and latency. Every ``EI_TELEMETRY_INTERVAL_S`` a background
thread closes the windows and sends each summary (schema in :mod:`edgeinspect.core.telemetry`):

- on MQTT ``{root}/{thing}/telemetry`` (QoS 1), for live dashboards and the drift monitor;
- on ``ei:events`` as an event of type ``telemetry`` (detail: the summary), which the uploader
  writes to object storage beside the day's capture manifest (``{line}/{yyyy}/{mm}/{dd}/_telemetry/``);
- as Prometheus gauges of the last closed window (``ei_telemetry_*``).

A sink that fails (broker down, Redis down) is logged and counted, keeps the summary for the next
interval (up to a day of them, then the oldest are dropped and counted), and the summary goes on to
the others; telemetry never slows or stops judging. On shutdown the open windows are flushed once more.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import redis
from edgeinspect.core import names, topics
from edgeinspect.core.errors import EdgeInspectError
from edgeinspect.core.messages import Event, Result, now_ns
from edgeinspect.core.mqtt import MqttClient
from edgeinspect.core.observability import get_logger
from edgeinspect.core.streams import Streams
from edgeinspect.core.telemetry import IMAGE_FEATURES, ImageFeatures, TelemetrySummary
from edgeinspect.core.telemetry_window import FrameObservation, ModelAnswer, TelemetryWindows, models_key
from prometheus_client import CollectorRegistry, Counter, Gauge

from edgeinspect_inference.worker.verdict import shadow_disagreements

log = get_logger(__name__)
SERVICE = "inference"
TELEMETRY_EVENT = "telemetry"
_GAUGE_FEATURES = (*IMAGE_FEATURES, "cls_score", "seg_score", "mask_area", "latency_ms")


def observation(result: Result, image: ImageFeatures | None, frame_pixels: int | None) -> FrameObservation:
    """What telemetry keeps of one result: primary answers per task, mask area, shadow agreement."""
    primaries = {p.task: p for p in result.predictions if p.role == "primary"}
    shadows = [p for p in result.predictions if p.role == "shadow"]
    segmenter = primaries.get("segmentation")
    mask_area = None
    if segmenter is not None and frame_pixels:
        mask_area = segmenter.defect_area_px / frame_pixels
    return FrameObservation(
        verdict=result.verdict,
        answers={task: ModelAnswer(p.score, p.label == "defect") for task, p in primaries.items()},
        models={task: f"{p.model}:{p.version}" for task, p in primaries.items()},
        image=image,
        mask_area=mask_area,
        shadow_agreed=(not shadow_disagreements(result.predictions)) if shadows else None,
        latency_ms=result.e2e_ms,
    )


class SummarySink(Protocol):
    """Somewhere a closed window goes; ``send`` raises on failure (the caller logs and counts)."""

    name: str

    def send(self, summary: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class MqttTelemetrySink:
    """Publishes summaries (QoS 1) on ``{root}/{thing}/telemetry``; connects in the background."""

    name = "mqtt"

    def __init__(self, url: str, client_id: str, thing: str, *, root: str = topics.EDGEINSPECT_ROOT) -> None:
        self.topic = topics.device_telemetry(thing, root=root)
        self._client = MqttClient(url, client_id)
        self._client.start()

    def send(self, summary: dict[str, Any]) -> None:
        self._client.publish_json(self.topic, summary, qos=1, timeout=5.0)

    def close(self) -> None:
        self._client.stop()


class EventTelemetrySink:
    """Adds summaries to ``ei:events`` (type ``telemetry``) for the uploader's daily telemetry parts."""

    name = "events"

    def __init__(self, streams: Streams, line: str) -> None:
        self._streams = streams
        self._line = line

    def send(self, summary: dict[str, Any]) -> None:
        event = Event(
            type=TELEMETRY_EVENT, ts_ns=now_ns(), detail=dict(summary), service=SERVICE, line=self._line
        )
        self._streams.add(names.events_stream(), event)

    def close(self) -> None:
        """Nothing to close: the streams belong to the worker."""


class TelemetryMetrics:
    """Gauges of the last closed window per line and model set, and sink outcomes."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["line", "models"]
        self.frames = Gauge("ei_telemetry_frames", "frames in the last window", labels, registry=registry)
        self.rate = Gauge(
            "ei_telemetry_rate", "defect rates (defect_rate, cls_defect_rate, seg_defect_rate) and "
            "shadow_agreement of the last window", [*labels, "rate"], registry=registry,
        )  # fmt: skip
        self.mean = Gauge(
            "ei_telemetry_feature_mean", "mean of a feature (brightness, contrast, sharpness, scores, "
            "mask_area, latency_ms) over the last window", [*labels, "feature"], registry=registry,
        )  # fmt: skip
        self.std = Gauge(
            "ei_telemetry_feature_std", "standard deviation of a feature over the last window",
            [*labels, "feature"], registry=registry,
        )  # fmt: skip
        self.sent = Counter(
            "ei_telemetry_summaries_total", "summaries by sink and outcome (sent, failed, dropped)",
            ["sink", "outcome"], registry=registry,
        )  # fmt: skip

    def update(self, summary: TelemetrySummary) -> None:
        key = (summary.line, models_key(summary.models))
        self.frames.labels(*key).set(summary.frames)
        for name, rate in summary.rates.items():
            if rate.n:
                self.rate.labels(*key, name).set(rate.value)
        if summary.shadow.n:
            self.rate.labels(*key, "shadow_agreement").set(summary.shadow.value)
        for name in _GAUGE_FEATURES:
            hist = summary.features.get(name)
            if hist is not None and hist.n:
                self.mean.labels(*key, name).set(hist.mean)
                self.std.labels(*key, name).set(hist.std)


class TelemetryRecorder:
    """Counts frames into windows and publishes the summaries every ``interval_s`` on its own thread."""

    def __init__(
        self,
        line: str,
        thing: str,
        interval_s: float,
        sinks: list[SummarySink],
        metrics: TelemetryMetrics,
        clock_ns: Callable[[], int] = time.time_ns,
        backlog: int = 288,
    ) -> None:
        self.windows = TelemetryWindows(line, thing)
        self.interval_s = interval_s
        self.sinks = sinks
        self.metrics = metrics
        self._clock_ns = clock_ns
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="telemetry", daemon=True)
        self._unsent: dict[str, deque[dict[str, Any]]] = {s.name: deque(maxlen=backlog) for s in sinks}
        self.published = 0

    def observe(self, result: Result, image: ImageFeatures | None, frame_pixels: int | None) -> None:
        """Count one committed result (cheap: a few histogram increments under a lock)."""
        self.windows.add(observation(result, image, frame_pixels), self._clock_ns())

    def start(self) -> TelemetryRecorder:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the timer, flush the open windows one last time, close the sinks."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.flush()
        for sink in self.sinks:
            sink.close()

    def flush(self) -> list[TelemetrySummary]:
        """Close the open windows now and send their summaries (and any unsent before) to every sink."""
        summaries = self.windows.flush(self._clock_ns())
        for summary in summaries:
            self.metrics.update(summary)
            log.info("telemetry_window", line=summary.line, models=models_key(summary.models),
                     frames=summary.frames)  # fmt: skip
        bodies = [summary.to_json() for summary in summaries]
        for sink in self.sinks:
            self._deliver(sink, bodies)
        self.published += len(summaries)
        return summaries

    def _deliver(self, sink: SummarySink, bodies: list[dict[str, Any]]) -> None:
        """Send what waits for this sink, oldest first; stop at the first failure and keep the rest.

        A sink that is down (broker unreachable) keeps its last ``backlog`` summaries (a day at the
        default 5 minute interval) and gets them in order once it is back; older ones are dropped.
        """
        queue = self._unsent[sink.name]
        for body in bodies:
            if len(queue) == queue.maxlen:
                self.metrics.sent.labels(sink.name, "dropped").inc()
            queue.append(body)
        while queue:
            if not self._send(sink, queue[0]):
                return
            queue.popleft()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.flush()

    def _send(self, sink: SummarySink, body: dict[str, Any]) -> bool:
        try:
            sink.send(body)
        except (EdgeInspectError, redis.RedisError, OSError) as exc:
            self.metrics.sent.labels(sink.name, "failed").inc()
            log.warning(
                "telemetry_not_sent", sink=sink.name, error=str(exc), waiting=len(self._unsent[sink.name])
            )
            return False
        self.metrics.sent.labels(sink.name, "sent").inc()
        return True
