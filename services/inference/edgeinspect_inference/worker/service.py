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
from edgeinspect.core.streams import Streams

from edgeinspect_inference.worker.agentcalls import AgentModelCaller
from edgeinspect_inference.worker.alerts import Alerter, AlertSink, MqttAlertSink, WebhookAlertSink
from edgeinspect_inference.worker.capture import CapturePolicy
from edgeinspect_inference.worker.catalog import ModelCatalog
from edgeinspect_inference.worker.commit import Committer
from edgeinspect_inference.worker.judge import FrameJudge
from edgeinspect_inference.worker.loop import Worker
from edgeinspect_inference.worker.metrics import WorkerMetrics
from edgeinspect_inference.worker.settings import WorkerSettings
from edgeinspect_inference.worker.shm import ShmInputs


class WorkerService:
    """Everything one worker process owns; ``run(stop)`` blocks, ``close()`` releases in reverse order."""

    def __init__(
        self,
        settings: WorkerSettings,
        streams: Streams,
        agent: AgentClient,
        metrics: WorkerMetrics | None = None,
        sinks: list[AlertSink] | None = None,
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
        caller = AgentModelCaller(
            agent, self.catalog, self.metrics, timeout_s=settings.agent_timeout_s, shm=self.shm
        )
        judge = FrameJudge(
            settings.line,
            (settings.cls_alias, settings.seg_alias),
            self.catalog,
            caller,
            self._models,
            self.metrics,
            settings.verdict_rule,
        )
        committer = Committer(
            streams.client,
            settings.line,
            names.INFERENCE_GROUP,
            results_maxlen=settings.stream_maxlen,
            capture_maxlen=settings.capture_maxlen,
            done_ttl_s=settings.done_ttl_s,
        )
        policy = CapturePolicy(settings.capture_good_fraction, settings.capture_band, settings.capture_seed)
        self.worker = Worker(
            streams, judge, committer, policy, self.alerter, self.metrics,
            consumer=settings.consumer, depth=settings.pipeline_depth,
            stale_ms=settings.stale_ms, block_ms=settings.block_ms,
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
        self.streams.client.sadd(names.lines_key(), self.settings.line)
        self.worker.run(stop)

    def close(self) -> None:
        """Stop alerts (delivering what is queued), then the model threads."""
        self.alerter.stop()
        self._models.shutdown(wait=True)
        self.shm.close()


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
