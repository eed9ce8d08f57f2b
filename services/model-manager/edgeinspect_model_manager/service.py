"""The model manager's lifecycle: restore, connect, run jobs until SIGTERM, stop in a fixed order.

Start-up order matters: the local state is restored into the agent *before* the MQTT client starts,
so a device without network serves its models at once. The MQTT client then connects in the
background (retrying with backoff), with a persistent session and its subscriptions made before the
first connect, so nothing queued for it while it was off is lost.

Shutdown: readiness drops (signal handler), the job thread stops at the next safe point (a download
keeps its partial file, a job stays IN_PROGRESS and resumes after the restart), pending unloads run,
the final state is published, then MQTT and the agent channel close.
"""

from __future__ import annotations

import threading

from edgeinspect.core import names
from edgeinspect.core.agent_client import AgentClient
from edgeinspect.core.errors import AgentError
from edgeinspect.core.mqtt import MqttClient
from edgeinspect.core.mqtt_health import watch_mqtt
from edgeinspect.core.observability import Health, get_logger
from edgeinspect.core.streams import Streams
from prometheus_client import CollectorRegistry

from edgeinspect_model_manager.device import Device
from edgeinspect_model_manager.janitor import Janitor
from edgeinspect_model_manager.jobs import JobsChannel
from edgeinspect_model_manager.metrics import ManagerMetrics
from edgeinspect_model_manager.report import Reporter
from edgeinspect_model_manager.restore import restore
from edgeinspect_model_manager.retention import Retention
from edgeinspect_model_manager.runner import JobRunner
from edgeinspect_model_manager.settings import ModelManagerSettings
from edgeinspect_model_manager.thresholds import publish_thresholds

log = get_logger(__name__)


class ModelManagerService:
    """Wires the parts together from settings; ``run()`` blocks until ``stop`` is set."""

    def __init__(
        self,
        settings: ModelManagerSettings,
        *,
        stop: threading.Event,
        registry: CollectorRegistry,
        health: Health,
    ) -> None:
        self.settings = settings
        self.stop = stop
        self.health = health
        self.restored = threading.Event()
        self.metrics = ManagerMetrics(registry)
        self.streams = (
            Streams.from_url(settings.redis_url, settings.stream_maxlen) if settings.redis_url else None
        )
        if self.streams is not None:
            self.streams.retain(names.events_stream(), settings.stream_budget("events"))
        self.reporter = Reporter(
            self.streams, settings.thing_name, settings.line, settings.state_topic_root, self.metrics
        )
        token = settings.agent_token.get_secret_value() if settings.agent_token else ""
        self.agent = AgentClient(
            settings.agent_addr, timeout_s=settings.agent_timeout_s, token=token, tls=settings.agent_tls()
        )
        self.device = Device(settings, self.agent, self.reporter, self.metrics)
        self.janitor = Janitor()
        self.retention = Retention(self.device, self.janitor)
        password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
        self.mqtt = MqttClient(
            settings.mqtt_url,
            settings.client_id,
            tls=settings.mqtt_tls(),
            username=settings.mqtt_username,
            password=password,
            persistent_session=True,
            protocol="5" if settings.mqtt_protocol == "5" else "3.1.1",
            on_connection_change=self._connection_changed,
            on_bad_payload=self._bad_payload,
        )
        self.reporter.attach_mqtt(self.mqtt)
        self.channel = JobsChannel(
            self.mqtt, settings.jobs_prefix, settings.thing_name, settings.jobs_reply_timeout_s
        )
        self.runner = JobRunner(self.device, self.channel, self.retention, stop)
        health.add_check("state_restored", self.restored.is_set)
        health.add_check("agent", self._agent_serving)
        watch_mqtt(self.mqtt, health, registry, "edgeinspect_model_manager")

    def _connection_changed(self, up: bool) -> None:
        self.runner.on_connection(up)

    def _bad_payload(self, topic: str, payload: bytes, reason: str) -> None:
        self.channel.bad_payload(topic, payload, reason)

    def _agent_serving(self) -> bool:
        try:
            return self.agent.health(timeout_s=1.0).serving
        except AgentError:
            return False

    def run(self) -> None:
        self.janitor.start()
        try:
            problems = restore(self.device, self.stop)
            publish_thresholds(self.device)  # the workers apply the line's overrides from the first frame
            self.restored.set()
            self.device.publish_state("idle")
            log.info(
                "model_manager_started",
                thing=self.settings.thing_name,
                restore_problems=problems,
                jobs_prefix=self.settings.jobs_prefix,
                mqtt=self.mqtt.url,
            )
            self.channel.subscribe(self.runner.on_notify)
            self.mqtt.start()
            self.runner.run()
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        log.info("model_manager_stopping")
        self.janitor.close()
        self.device.publish_state("stopping")
        self.mqtt.stop()
        self.agent.close()
        if self.streams is not None:
            self.streams.close()
        log.info("model_manager_stopped")
