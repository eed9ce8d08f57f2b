"""What the device tells others: ``ei:events`` for the local UI, a retained MQTT state for the cloud.

Events (``Event`` records, service ``model-manager``):

- ``job_status``: ``job_id``, ``status`` (IN_PROGRESS/SUCCEEDED/FAILED), ``model``, ``version``,
  ``reason``, ``stage``, ``thing`` (the UI shows the newest one per model);
- ``device_state``: ``state`` (restoring/idle/deploying/watching/stopping), ``thing``, ``models``,
  ``aliases``, ``last_job`` (the same document as the retained MQTT message);
- ``threshold_set``: a ``set_threshold`` job changed a model's thresholds on this device: ``key``,
  ``model``, ``version``, ``old_image``/``new_image``, ``old_pixel``/``new_pixel`` (null: the
  manifest's), ``set_by``, ``set_at``, ``job_id``, ``reason``;
- ``swap``, ``shadow_set``, ``model_rolled_back``, ``rollback_impossible``, ``model_unloaded``,
  ``model_removed``, ``restore_problem``, ``alias_restored``: model lifecycle, so the UI refreshes its
  model table.

The device's threshold overrides also go to Redis (``ei:thresholds``, JSON), where the inference
workers read them; they are written again between jobs, so a Redis restart loses them for seconds.

Neither Redis nor the broker is allowed to fail a job: a publish that fails is logged and counted, and
the retained state is published again on the next (re)connect.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import redis
from edgeinspect.core import names, topics
from edgeinspect.core.errors import EdgeInspectError
from edgeinspect.core.messages import Event, now_ns
from edgeinspect.core.mqtt import MqttClient
from edgeinspect.core.observability import get_logger
from edgeinspect.core.streams import Streams

from edgeinspect_model_manager.metrics import ManagerMetrics

log = get_logger(__name__)
SERVICE = "model-manager"
REDIS_PAUSE_S = 10.0
"""After a failed event, events are dropped (and counted) for this long instead of each waiting on Redis."""


class Reporter:
    """Publishes events and the device's retained state; safe to call from any thread."""

    def __init__(
        self,
        streams: Streams | None,
        thing: str,
        line: str,
        state_topic_root: str,
        metrics: ManagerMetrics,
    ) -> None:
        self._streams = streams
        self._mqtt: MqttClient | None = None
        self.thing = thing
        self.line = line
        self.state_topic = topics.device_state(thing, root=state_topic_root)
        self._metrics = metrics
        self._lock = threading.Lock()
        self._latest: dict[str, Any] | None = None
        self._published: dict[str, Any] | None = None
        self._redis_retry_at = 0.0

    def attach_mqtt(self, mqtt: MqttClient) -> None:
        self._mqtt = mqtt

    def event(self, type_: str, level: str = "info", **detail: Any) -> None:
        """Add one event to ``ei:events``; never raises."""
        if self._streams is None:
            return
        if time.monotonic() < self._redis_retry_at:
            self._metrics.publish_failures.labels("redis").inc()
            return
        try:
            body = {"thing": self.thing, **detail}  # built here: a detail may be named "line" or "thing"
            event = Event(type_, now_ns(), body, SERVICE, self.line, level)  # type: ignore[arg-type]
            self._streams.add(names.events_stream(), event)
        except (redis.RedisError, EdgeInspectError, OSError) as exc:
            self._metrics.publish_failures.labels("redis").inc()
            self._redis_retry_at = time.monotonic() + REDIS_PAUSE_S  # a job must not wait on a dead Redis
            log.warning("event_not_published", type=type_, error=str(exc), paused_s=REDIS_PAUSE_S)

    def thresholds(self, table: bytes) -> bool:
        """Write the override table for the workers; False (logged, counted) when Redis refused."""
        if self._streams is None or time.monotonic() < self._redis_retry_at:
            return False
        try:
            self._streams.client.set(names.threshold_overrides_key(), table)
        except (redis.RedisError, OSError) as exc:
            self._metrics.publish_failures.labels("redis").inc()
            self._redis_retry_at = time.monotonic() + REDIS_PAUSE_S
            log.warning("thresholds_not_published", error=str(exc), paused_s=REDIS_PAUSE_S)
            return False
        return True

    def job_status(self, job_id: str, status: str, model: str, version: str, reason: str, stage: str) -> None:
        level = "error" if status == "FAILED" else "info"
        self.event(
            "job_status",
            level,
            job_id=job_id,
            status=status,
            model=model,
            version=version,
            reason=reason,
            stage=stage,
        )

    def device_state(self, document: dict[str, Any]) -> None:
        """Publish the device state as an event and (retained) on MQTT when connected."""
        with self._lock:
            self._latest = document
        self.event("device_state", **document)
        self.flush()

    def flush(self) -> None:
        """Publish the latest state on MQTT if it has not been yet (called after every reconnect too)."""
        mqtt = self._mqtt
        with self._lock:
            latest = self._latest
            if latest is None or mqtt is None or latest is self._published or not mqtt.is_connected:
                return
        try:
            mqtt.publish_json(self.state_topic, latest, qos=1, retain=True)
        except EdgeInspectError as exc:
            self._metrics.publish_failures.labels("mqtt").inc()
            log.warning("state_not_published", topic=self.state_topic, error=str(exc))
            return
        with self._lock:
            if self._latest is latest:
                self._published = latest

    def reconnected(self) -> None:
        """After a reconnect the broker may have lost the retained message (no persistence): send again."""
        with self._lock:
            self._published = None
