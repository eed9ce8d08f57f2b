"""Wiring: settings + Redis + agent client -> a ready-to-run :class:`Worker`, and its orderly shutdown.

Kept apart from ``main()`` so tests and benchmarks build the very same worker in-process (with their
own Redis and agent) that the console script runs.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from edgeinspect.core import names
from edgeinspect.core.agent_client import AgentClient
from edgeinspect.core.errors import AgentError
from edgeinspect.core.fastpath import FastPathClient
from edgeinspect.core.retention import StreamRetention, trimmed_counter
from edgeinspect.core.streams import Streams

from edgeinspect_inference.worker.agentcalls import AgentModelCaller, FastPath
from edgeinspect_inference.worker.alerts import Alerter, AlertSink, MqttAlertSink, WebhookAlertSink
from edgeinspect_inference.worker.capture import CapturePolicy
from edgeinspect_inference.worker.catalog import ModelCatalog
from edgeinspect_inference.worker.commit import Committer
from edgeinspect_inference.worker.judge import FrameJudge
from edgeinspect_inference.worker.loop import Worker
from edgeinspect_inference.worker.metrics import WorkerMetrics
from edgeinspect_inference.worker.overrides import ThresholdOverrides, announce_setting
from edgeinspect_inference.worker.settings import WorkerSettings
from edgeinspect_inference.worker.shm import FastSlots, ShmInputs
from edgeinspect_inference.worker.telemetry import (
    EventTelemetrySink,
    MqttTelemetrySink,
    SummarySink,
    TelemetryMetrics,
    TelemetryRecorder,
)
from edgeinspect_inference.worker.tiles import TiledCaller
from edgeinspect_inference.worker.waiting import ModelWait


class WorkerService:
    """Everything one worker process owns; ``run(stop)`` blocks, ``close()`` releases in reverse order."""

    def __init__(
        self,
        settings: WorkerSettings,
        streams: Streams,
        agent: AgentClient,
        metrics: WorkerMetrics | None = None,
        sinks: list[AlertSink] | None = None,
        telemetry_sinks: list[SummarySink] | None = None,
    ) -> None:
        self.settings = settings
        self.streams = streams
        self.agent = agent
        self.metrics = metrics or WorkerMetrics()
        self.catalog = ModelCatalog(agent, refresh_s=settings.catalog_refresh_s)
        self.alerter = Alerter(
            sinks if sinks is not None else alert_sinks(settings), self.metrics, settings.alert_queue_size
        )
        # Two model calls per frame in flight, each on its own thread (classification + segmentation).
        self._models = ThreadPoolExecutor(max_workers=2 * settings.pipeline_depth, thread_name_prefix="model")
        self.shm = ShmInputs(2 * settings.pipeline_depth, enabled=settings.use_shm)
        self.overrides = ThresholdOverrides(
            streams.client, settings.line, settings.override_table(), refresh_s=settings.catalog_refresh_s
        )
        self.fast = fast_path(settings)
        caller = AgentModelCaller(
            agent,
            self.catalog,
            self.metrics,
            timeout_s=settings.agent_timeout_s,
            shm=self.shm,
            overrides=self.overrides,
            fast=self.fast,
        )
        judge = FrameJudge(
            settings.line,
            (settings.cls_alias, settings.seg_alias),
            self.catalog,
            caller,
            self._models,
            self.metrics,
            settings.verdict_rule,
            features=settings.telemetry_interval_s > 0 and settings.telemetry_images,
            wait=ModelWait(settings.line, settings.model_wait_s, self.metrics.registry),
            multitask_alias=settings.mt_alias,
            tiler=TiledCaller(
                agent,
                caller,
                self.metrics,
                settings.tiling_config(),
                batch=settings.tiling_batch,
                timeout_s=settings.agent_timeout_s,
            ),
        )
        committer = Committer(
            streams.client,
            settings.line,
            names.INFERENCE_GROUP,
            results_maxlen=settings.stream_maxlen,
            capture_maxlen=settings.capture_maxlen,
            done_ttl_s=settings.done_ttl_s,
            results_retention=StreamRetention(
                streams.client, names.results_stream(settings.line), settings.stream_budget("results")
            ),
            capture_retention=StreamRetention(
                streams.client,
                names.capture_stream(),
                settings.stream_budget("capture"),
                group=names.UPLOADER_GROUP,
                counter=trimmed_counter(self.metrics.registry),
            ),
        )
        streams.retain(names.events_stream(), settings.stream_budget("events"))
        policy = CapturePolicy(settings.capture_good_fraction, settings.capture_band, settings.capture_seed)
        self.telemetry = telemetry_recorder(settings, streams, self.metrics, telemetry_sinks)
        self.worker = Worker(
            streams, judge, committer, policy, self.alerter, self.metrics,
            consumer=settings.consumer, depth=settings.pipeline_depth,
            stale_ms=settings.stale_ms, block_ms=settings.block_ms, telemetry=self.telemetry,
            model_retry_s=settings.model_retry_s,
        )  # fmt: skip

    def agent_ready(self) -> bool:
        """Readiness check: the agent answers Health and serves."""
        try:
            return self.agent.health(timeout_s=1.0).serving
        except AgentError:
            return False

    def run(self, stop: threading.Event) -> None:
        """Judge frames until ``stop`` is set, then finish the frames in flight."""
        self.alerter.start()
        if self.telemetry is not None:
            self.telemetry.start()
        self.streams.client.sadd(names.lines_key(), self.settings.line)
        announce_setting(self.streams, self.settings.line, self.settings.override_table())
        self.overrides.start()  # publishes what this line applies before the first frame
        self.worker.run(stop)

    def close(self) -> None:
        """Stop alerts (delivering what is queued) and telemetry (a last summary), then the model threads."""
        self.alerter.stop()
        self.overrides.stop()
        if self.telemetry is not None:
            self.telemetry.stop()
        self._models.shutdown(wait=True)
        self.shm.close()
        if self.fast is not None:
            self.fast.close()


def fast_path(settings: WorkerSettings) -> FastPath | None:
    """The fast path to the agent, when the settings allow one (used only while its socket exists)."""
    socket_path = settings.fast_path_socket
    if socket_path is None:
        return None
    client = FastPathClient(socket_path, timeout_s=settings.agent_timeout_s)
    return FastPath(client, FastSlots(2 * settings.pipeline_depth), retry_s=settings.agent_fast_path_retry_s)


def alert_sinks(settings: WorkerSettings) -> list[AlertSink]:
    """The alert sinks the settings ask for (MQTT and/or webhook; none when both are empty)."""
    sinks: list[AlertSink] = []
    if settings.mqtt_url:
        client_id = f"edgeinspect-inference-{settings.consumer}"
        sinks.append(
            MqttAlertSink(settings.mqtt_url, client_id, settings.line, root=settings.mqtt_topic_root)
        )
    if settings.webhook_url:
        sinks.append(WebhookAlertSink(settings.webhook_url, settings.webhook_timeout_s))
    return sinks


def telemetry_recorder(
    settings: WorkerSettings,
    streams: Streams,
    metrics: WorkerMetrics,
    sinks: list[SummarySink] | None = None,
) -> TelemetryRecorder | None:
    """The telemetry recorder the settings ask for (None when ``EI_TELEMETRY_INTERVAL_S`` is 0).

    Summaries go to ``ei:events`` always and to MQTT when ``EI_MQTT_URL`` is set; ``sinks`` replaces
    both (tests).
    """
    if settings.telemetry_interval_s <= 0:
        return None
    thing = settings.thing_name or settings.line
    if sinks is None:
        sinks = [EventTelemetrySink(streams, settings.line)]
        if settings.mqtt_url:
            client_id = f"edgeinspect-inference-{settings.consumer}-telemetry"
            sinks.append(
                MqttTelemetrySink(settings.mqtt_url, client_id, thing, root=settings.mqtt_topic_root)
            )
    return TelemetryRecorder(
        settings.line, thing, settings.telemetry_interval_s, sinks, TelemetryMetrics(metrics.registry)
    )
