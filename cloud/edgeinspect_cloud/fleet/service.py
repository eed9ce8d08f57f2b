"""``edgeinspect fleet serve``: AWS IoT Jobs' part of the MQTT protocol, for devices on a plain broker.

What it does, on one MQTT connection (persistent session, so requests sent while it restarts wait):

- answers the devices' jobs requests (``get``, ``start-next``, ``$next/get``, ``{jobId}/get``,
  ``{jobId}/update``) from the fleet store, through :class:`~edgeinspect_cloud.fleet.protocol.JobsResponder`;
- publishes ``notify-next`` (QoS 1) when a thing's next pending execution changed: for new jobs and
  cancels written by the CLI (read from the store's outbox every ``EI_FLEET_POLL_INTERVAL_S``), for
  waves released and for executions that ended (at once, after the update that caused it);
- keeps the device registry: each retained ``{root}/{thing}/state`` and each request's last-seen time.

Lifecycle: SIGTERM/SIGINT mark the service not ready, the poll loop ends, MQTT disconnects (the session
stays on the broker), the database closes, exit 0.
"""

from __future__ import annotations

import threading
from typing import Any

from edgeinspect.core import topics
from edgeinspect.core.errors import MqttError
from edgeinspect.core.lifecycle import install_signal_handlers
from edgeinspect.core.mqtt import MqttClient
from edgeinspect.core.observability import Health, HealthServer, configure_logging, get_logger
from prometheus_client import CollectorRegistry

from edgeinspect_cloud.fleet.errors import FleetDatabaseError
from edgeinspect_cloud.fleet.fleetdb import FleetStore
from edgeinspect_cloud.fleet.metrics import FleetMetrics
from edgeinspect_cloud.fleet.protocol import JobsResponder, Reply, error_payload, notify_next_payload
from edgeinspect_cloud.fleet.records import THING_PATTERN
from edgeinspect_cloud.fleet.settings import FleetSettings

log = get_logger(__name__)


class FleetService:
    """The jobs service over one store and one MQTT client; ``run(stop)`` blocks until ``stop`` is set."""

    def __init__(self, settings: FleetSettings, store: FleetStore, registry: CollectorRegistry) -> None:
        self.settings = settings
        self.store = store
        self.metrics = FleetMetrics(registry)
        self.responder = JobsResponder(store, settings.jobs_prefix)
        store.db.on_statement = self.metrics.statement_seconds.observe
        self.mqtt = MqttClient(
            settings.mqtt_url,
            settings.mqtt_client_id,
            persistent_session=True,
            on_bad_payload=self._on_bad_payload,
            **settings.mqtt_options(),
        )
        self._flush_lock = threading.Lock()
        self._notified: dict[str, str | None] = {}
        self._state_prefix = topics.device_state("x", root=settings.state_topic_root)[: -len("x/state")]

    def add_health_checks(self, health: Health) -> None:
        health.add_check("database", self.store.db.ping)
        health.add_check("mqtt", lambda: self.mqtt.is_connected)

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Create the configured groups, subscribe, and connect in the background (retrying)."""
        for group, things in self.settings.fleet_groups.items():
            added = self.store.devices.add_to_group(group, things, source="settings")
            if added:
                log.info("group_members_added", group=group, things=added)
        prefix = self.settings.jobs_prefix
        for topic_filter in (
            topics.jobs_get_pending(prefix, "+"),
            topics.jobs_start_next(prefix, "+"),
            topics.jobs_describe(prefix, "+", "+"),  # {jobId}/get and $next/get
            topics.jobs_update(prefix, "+", "+"),
        ):
            self.mqtt.subscribe(topic_filter, self._on_request)
        self.mqtt.subscribe(topics.device_state("+", root=self.settings.state_topic_root), self._on_state)
        self.mqtt.start()
        log.info("fleet_started", db=self.store.url, mqtt=self.mqtt.url, jobs_prefix=prefix)

    def run(self, stop: threading.Event) -> None:
        """Poll the outbox and refresh the gauges until ``stop`` is set, then shut down."""
        self.start()
        try:
            while not stop.is_set():
                self.poll()
                stop.wait(self.settings.fleet_poll_interval_s)
        finally:
            self.mqtt.stop()
            self.store.close()
            log.info("fleet_stopped")

    def poll(self) -> None:
        """One round: publish pending notifications, refresh the gauges. Never raises."""
        try:
            self.flush()
            jobs, executions = self.store.jobs.counts()
        except FleetDatabaseError as exc:
            self.metrics.failures.labels("database").inc()
            log.warning("fleet_db_unavailable", error=exc.message)
            return
        for status, count in jobs.items():
            self.metrics.jobs.labels(status).set(count)
        for status, count in executions.items():
            self.metrics.executions.labels(status).set(count)

    # ---- notify-next -------------------------------------------------------------------------

    def flush(self) -> None:
        """Publish ``notify-next`` for every thing in the outbox, then drop what was published.

        A thing whose next pending job is the one it was last told about is not told again (AWS sends
        notify-next only when the next job changes). Unpublished rows stay for the next round.
        """
        if not self.mqtt.is_connected:
            return
        with self._flush_lock:
            batch = self.store.outbox.pending()
            if not batch.ids:
                return
            for thing in batch.things:
                if not self._notify(thing):
                    return
            self.store.outbox.ack(batch.ids)

    def _notify(self, thing: str) -> bool:
        execution = self.store.jobs.next_pending(thing)
        job_id = None if execution is None else execution.job_id
        if thing in self._notified and self._notified[thing] == job_id:
            return True
        document = None if execution is None else self.store.jobs.document(execution.job_id)
        topic = topics.jobs_notify_next(self.settings.jobs_prefix, thing)
        try:
            self.mqtt.publish_json(topic, notify_next_payload(execution, document), qos=1)
        except MqttError as exc:
            self.metrics.failures.labels("mqtt").inc()
            log.warning("notify_next_failed", thing=thing, error=exc.message)
            return False
        self._notified[thing] = job_id
        self.metrics.notifications.inc()
        log.info("notify_next_sent", thing=thing, job_id=job_id)
        return True

    # ---- MQTT handlers (dispatcher thread) ---------------------------------------------------

    def _on_request(self, topic: str, payload: dict[str, Any]) -> None:
        request = self.responder.parse(topic)
        if request is None:
            return
        with self.metrics.request_seconds.labels(request.action).time():
            self._answer(request.action, topic, payload)

    def _answer(self, action: str, topic: str, payload: dict[str, Any]) -> None:
        try:
            reply = self.responder.handle(topic, payload)
        except FleetDatabaseError as exc:
            self.metrics.failures.labels("database").inc()
            log.error("jobs_request_failed", topic=topic, error=exc.message)
            body = error_payload(
                "InternalError", "the jobs database is unavailable", payload.get("clientToken")
            )
            reply = Reply(topics.rejected(topic), body, False)
        if reply is None:
            return
        self._send(action, reply)
        if reply.accepted and action in ("update", "start-next"):
            self.poll()

    def _on_bad_payload(self, topic: str, _raw: bytes, why: str) -> None:
        reply = self.responder.rejected_json(topic, why)
        if reply is not None:
            self._send("invalid", reply)

    def _send(self, action: str, reply: Reply) -> None:
        outcome = "accepted" if reply.accepted else str(reply.payload.get("code", "rejected"))
        self.metrics.requests.labels(action, outcome).inc()
        try:
            self.mqtt.publish_json(reply.topic, reply.payload, qos=1)
        except MqttError as exc:  # the device times out and asks again
            self.metrics.failures.labels("mqtt").inc()
            log.warning("jobs_reply_failed", topic=reply.topic, error=exc.message)
            return
        if not reply.accepted:
            log.info(
                "jobs_request_rejected", topic=reply.topic, code=outcome, message=reply.payload.get("message")
            )

    def _on_state(self, topic: str, payload: dict[str, Any]) -> None:
        thing = topic[len(self._state_prefix) : -len("/state")]
        if not THING_PATTERN.match(thing):
            log.warning("device_state_ignored", topic=topic, reason="not a valid thing name")
            return
        try:
            self.store.devices.record_state(thing, payload)
        except FleetDatabaseError as exc:
            self.metrics.failures.labels("database").inc()
            log.warning("device_state_not_saved", thing=thing, error=exc.message)


def serve(settings: FleetSettings) -> int:
    """Run the service until SIGTERM/SIGINT; returns the exit code (2 when the database cannot be opened)."""
    configure_logging(settings.log_level, service=FleetSettings.service_name)
    health = Health()
    stop = install_signal_handlers(health)
    registry = CollectorRegistry()
    try:
        store = FleetStore.open(settings.fleet_db)
    except FleetDatabaseError as exc:
        log.error("fleet_db_unavailable", error=exc.message, hint=exc.hint)
        return 2
    service = FleetService(settings, store, registry)
    service.add_health_checks(health)
    server = HealthServer(health, settings.http_host, settings.http_port, registry).start()
    log.info("fleet_serving", http_port=server.port)
    try:
        service.run(stop)
    finally:
        server.stop()
    return 0
