"""``edgeinspect fleet serve``: AWS IoT Jobs' part of the MQTT protocol, for devices on a plain broker.

What it does, on one MQTT connection (persistent session, so requests sent while it restarts wait):

- answers the devices' jobs requests (``get``, ``start-next``, ``$next/get``, ``{jobId}/get``,
  ``{jobId}/update``) from the fleet store, through :class:`~edgeinspect_cloud.fleet.protocol.JobsResponder`;
- publishes ``notify-next`` (QoS 1) when a thing's next pending execution changed: for new jobs and
  cancels written by the CLI (read from the store's outbox every ``EI_FLEET_POLL_INTERVAL_S``), for
  waves released and for executions that ended (as soon as the update that caused it is answered);
- keeps the device registry: each retained ``{root}/{thing}/state`` and each request's last-seen time;
- serves the fleet page and the probes (:mod:`edgeinspect_cloud.fleet.web`).

How it scales (bench/fleet.py, docs/fleet.md): requests are answered by ``EI_FLEET_WORKERS`` threads,
each with its own database connection; a thing's requests always go to the same worker, so they are
answered in the order they were sent. What needs no answer is batched: state documents (only the
latest per thing) and last-seen times are written by the poll loop, many per transaction, and
notifications go out from there too, woken as soon as an update made some.

Lifecycle: SIGTERM/SIGINT mark the service not ready, the poll loop ends, the workers finish what
they were given, MQTT disconnects (the session stays on the broker, and nothing is acknowledged after
this), the buffered states and last-seen times are written, the databases close, exit 0.
"""

from __future__ import annotations

import queue
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any

from edgeinspect.core import topics
from edgeinspect.core.errors import MqttError
from edgeinspect.core.lifecycle import install_signal_handlers
from edgeinspect.core.mqtt import MqttClient
from edgeinspect.core.mqtt_health import watch_mqtt
from edgeinspect.core.observability import Health, configure_logging, get_logger
from prometheus_client import CollectorRegistry

from edgeinspect_cloud.fleet.errors import FleetDatabaseError
from edgeinspect_cloud.fleet.fleetdb import FleetStore
from edgeinspect_cloud.fleet.metrics import FleetMetrics
from edgeinspect_cloud.fleet.protocol import JobsResponder, Reply, error_payload, notify_next_payload
from edgeinspect_cloud.fleet.records import THING_PATTERN
from edgeinspect_cloud.fleet.settings import FleetSettings

log = get_logger(__name__)

Handler = Callable[[JobsResponder, str, dict[str, Any]], None]
GAUGES_EVERY_S = 5.0
"""The executions-by-status gauges scan the table: refreshed this often, not on every wake-up."""


class _Worker:
    """One thread answering the requests of the things hashed to it, over its own store connection."""

    def __init__(self, index: int, store: FleetStore, handle: Handler, responder: JobsResponder) -> None:
        self.store = store
        self.responder = responder
        self._handle = handle
        self._queue: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=f"fleet-worker-{index}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, topic: str, payload: dict[str, Any]) -> None:
        self._queue.put((topic, payload))

    def stop(self) -> None:
        """Answer what was queued, then end."""
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self._handle(self.responder, *item)
            except Exception:  # one request's bug must not silence every device hashed to this worker
                log.exception("jobs_request_crashed", topic=item[0])


class FleetService:
    """The jobs service over one store and one MQTT client; ``run(stop)`` blocks until ``stop`` is set."""

    def __init__(self, settings: FleetSettings, store: FleetStore, registry: CollectorRegistry) -> None:
        self.settings = settings
        self.store = store
        self.metrics = FleetMetrics(registry)
        store.db.on_statement = self.metrics.statement_seconds.observe
        self.responder = JobsResponder(store, settings.jobs_prefix, self._seen)
        self.mqtt = MqttClient(
            settings.mqtt_url,
            settings.mqtt_client_id,
            persistent_session=True,
            on_bad_payload=self._on_bad_payload,
            **settings.mqtt_options(),
        )
        watch_mqtt(self.mqtt, None, registry, "ei_fleet")
        self._flush_lock = threading.Lock()
        self._notified: dict[str, str | None] = {}
        self._state_prefix = topics.device_state("x", root=settings.state_topic_root)[: -len("x/state")]
        self._buffer_lock = threading.Lock()
        self._seen_buffer: dict[str, float] = {}
        self._states: dict[str, tuple[dict[str, Any] | None, float]] = {}
        self._wake = threading.Event()
        self._gauges_at = 0.0
        self._workers = self._make_workers()

    def _make_workers(self) -> list[_Worker]:
        """One worker per ``EI_FLEET_WORKERS``, each with a connection of its own; SQLite gets one
        worker on the main connection (its writers queue on the file lock anyway)."""
        if self.store.db.dialect == "sqlite":
            return [_Worker(0, self.store, self._answer, self.responder)]
        workers = []
        for index in range(self.settings.fleet_workers):
            store = FleetStore.open(self.settings.fleet_db)  # the poll loop keeps the main connection
            store.db.on_statement = self.metrics.statement_seconds.observe
            responder = JobsResponder(store, self.settings.jobs_prefix, self._seen)
            workers.append(_Worker(index, store, self._answer, responder))
        return workers

    def add_health_checks(self, health: Health) -> None:
        health.add_check("database", self.store.db.ping)
        health.add_check("mqtt", lambda: self.mqtt.is_connected)
        health.add_check("mqtt_dispatcher", lambda: self.mqtt.dispatcher_alive)

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Create the configured groups, subscribe, and connect in the background (retrying)."""
        for group, things in self.settings.fleet_groups.items():
            added = self.store.devices.add_to_group(group, things, source="settings")
            if added:
                log.info("group_members_added", group=group, things=added)
        for worker in self._workers:
            worker.start()
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
        log.info(
            "fleet_started",
            db=self.store.url,
            mqtt=self.mqtt.url,
            jobs_prefix=prefix,
            workers=len(self._workers),
        )

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop`` is set (every ``EI_FLEET_POLL_INTERVAL_S``, sooner when woken), then stop."""
        self.start()
        try:
            while not stop.is_set():
                self.poll()
                self._wake.wait(self.settings.fleet_poll_interval_s)
                self._wake.clear()
        finally:
            for worker in self._workers:
                worker.stop()  # answer what they were given, while replies can still be published
            self.mqtt.stop()  # from here on nothing more is taken (and acknowledged) from the broker
            self.poll()  # so this writes every state document and last-seen time that was acknowledged
            for worker in self._workers:
                if worker.store is not self.store:
                    worker.store.close()
            self.store.close()
            log.info("fleet_stopped")

    def wake(self) -> None:
        """Run the poll loop now (a notification or a state document is waiting)."""
        self._wake.set()

    def poll(self) -> None:
        """One round: write buffered states and last-seen times, publish notifications, refresh the
        gauges now and then. Never raises."""
        try:
            self._write_buffers()
            self.flush()
            if time.monotonic() - self._gauges_at >= GAUGES_EVERY_S:
                self._gauges_at = time.monotonic()
                jobs, executions = self.store.jobs.counts()
                for status, count in jobs.items():
                    self.metrics.jobs.labels(status).set(count)
                for status, count in executions.items():
                    self.metrics.executions.labels(status).set(count)
        except FleetDatabaseError as exc:
            self.metrics.failures.labels("database").inc()
            log.warning("fleet_db_unavailable", error=exc.message)
        except Exception:  # a bug here must not end the loop (and with it every reply and notification)
            self.metrics.failures.labels("internal").inc()
            log.exception("fleet_poll_crashed")

    def _write_buffers(self) -> None:
        with self._buffer_lock:
            states, self._states = self._states, {}
            seen, self._seen_buffer = self._seen_buffer, {}
        try:
            self.store.devices.record_states(dict(sorted(states.items())))
            self.store.devices.seen_many(dict(sorted(seen.items())))
        except FleetDatabaseError:
            with self._buffer_lock:  # keep them for the next round, unless newer ones arrived meanwhile
                for thing, state in states.items():
                    self._states.setdefault(thing, state)
                for thing, at in seen.items():
                    self._seen_buffer.setdefault(thing, at)
            raise

    def _seen(self, thing: str) -> None:
        with self._buffer_lock:
            self._seen_buffer[thing] = time.time()

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

    # ---- MQTT handlers (dispatcher thread), answered on the workers --------------------------

    def _on_request(self, topic: str, payload: dict[str, Any]) -> None:
        request = self.responder.parse(topic)
        if request is None:
            return
        worker = self._workers[zlib.crc32(request.thing.encode()) % len(self._workers)]
        worker.submit(topic, payload)

    def _answer(self, responder: JobsResponder, topic: str, payload: dict[str, Any]) -> None:
        request = responder.parse(topic)
        if request is None:
            return
        with self.metrics.request_seconds.labels(request.action).time():
            try:
                reply = responder.handle(topic, payload)
            except FleetDatabaseError as exc:
                self.metrics.failures.labels("database").inc()
                log.error("jobs_request_failed", topic=topic, error=exc.message)
                body = error_payload(
                    "InternalError", "the jobs database is unavailable", payload.get("clientToken")
                )
                reply = Reply(topics.rejected(topic), body, False)
            if reply is None:
                return
            self._send(request.action, reply)
        if reply.accepted and request.action == "update" and payload.get("status") != "IN_PROGRESS":
            self.wake()  # the outbox has a notify-next for this thing, maybe a whole wave's

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
        with self._buffer_lock:  # only the latest document per thing is written
            self._states[thing] = (payload, time.time())
        self.wake()


def serve(settings: FleetSettings) -> int:
    """Run the service until SIGTERM/SIGINT; returns the exit code (2 when the database cannot be opened)."""
    from edgeinspect_cloud.fleet.web import WebServer, create_fleet_app

    configure_logging(settings.log_level, service=FleetSettings.service_name)
    health = Health()
    stop = install_signal_handlers(health)
    registry = CollectorRegistry()
    try:
        store = FleetStore.open(settings.fleet_db)
        page_store = FleetStore.open(settings.fleet_db)
    except FleetDatabaseError as exc:
        log.error("fleet_db_unavailable", error=exc.message, hint=exc.hint)
        return 2
    service = FleetService(settings, store, registry)
    service.add_health_checks(health)
    server = WebServer(
        create_fleet_app(page_store, health, registry), settings.http_host, settings.http_port
    ).start()
    log.info("fleet_serving", http_port=server.port)
    try:
        service.run(stop)
    finally:
        server.stop()
        page_store.close()
    return 0
