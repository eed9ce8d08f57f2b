"""Simulated devices for ``bench.fleet``: many per process, each with the model manager's real jobs code.

Why not one model manager per device: a thousand of them would be a thousand processes with an agent
each, which no laptop (nor a 2-core CI box) runs. What a rollout exercises is the jobs protocol, so
each simulated device keeps exactly that part real and replaces the rest:

- real: :class:`edgeinspect_model_manager.jobs.JobsChannel` (clientToken correlation, ``expectedVersion``,
  the one ``VersionMismatch`` retry, ``JobGoneError``), the payloads of
  :mod:`edgeinspect_model_manager.protocol`, the job document validation of
  :mod:`edgeinspect_model_manager.jobdoc`, and the runner's rules (start-next on connect, on every
  notify-next and after every job; a final status kept and re-sent until the cloud acknowledged it; a
  job the device already finished is re-reported, never run again);
- stubbed: download, verification and the agent: each stage is a short sleep, ``loading`` takes
  ``load_s``; the smoke test fails on the devices told to fail.

Every device has its own MQTT connection, client id (``bench-{thing}``), persistent session and thing
groups, like a real box. The connections are driven by one network thread (``epoll`` over every
socket, paho's external-loop callbacks) instead of two threads per client; each device's job loop is
one small thread, asleep while idle.
"""

from __future__ import annotations

import contextlib
import json
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from edgeinspect.core import topics
from edgeinspect.core.errors import EdgeInspectError, MqttError
from edgeinspect.core.lifecycle import Backoff
from edgeinspect.core.topics import topic_matches
from edgeinspect_model_manager.errors import JobDocumentError
from edgeinspect_model_manager.jobdoc import DeployModel, parse_job_document
from edgeinspect_model_manager.jobs import JobGoneError, JobsChannel, Tracked
from edgeinspect_model_manager.protocol import Execution, Status, status_details
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

Handler = Callable[[str, dict[str, Any]], None]
STAGES = ("downloading", "verifying", "loading", "smoke_testing", "swapping")
SESSION_EXPIRY_S = 3600
POLL_INTERVAL_S = 600.0
"""``EI_JOBS_POLL_INTERVAL_S``'s default: an idle device asks start-next this often."""


class NetLoop(threading.Thread):
    """One thread reading and writing every simulated device's socket (paho's external loop)."""

    def __init__(self) -> None:
        super().__init__(name="sim-net", daemon=True)
        self._epoll = select.epoll()
        self._by_fd: dict[int, paho.Client] = {}
        self._clients: set[paho.Client] = set()
        self._lock = threading.Lock()
        self._halt = threading.Event()

    def attach(self, client: paho.Client) -> None:
        client.on_socket_open = self._opened
        client.on_socket_close = self._closed
        client.on_socket_register_write = self._want_write
        client.on_socket_unregister_write = self._no_write
        with self._lock:
            self._clients.add(client)

    def _opened(self, client: paho.Client, _userdata: object, sock: Any) -> None:
        with self._lock:
            self._by_fd[sock.fileno()] = client
        self._epoll.register(sock.fileno(), select.EPOLLIN)

    def _closed(self, _client: paho.Client, _userdata: object, sock: Any) -> None:
        with self._lock:
            self._by_fd.pop(sock.fileno(), None)
        with contextlib.suppress(OSError, ValueError):
            self._epoll.unregister(sock.fileno())

    def _want_write(self, _client: paho.Client, _userdata: object, sock: Any) -> None:
        self._interest(sock.fileno(), True)

    def _no_write(self, client: paho.Client, _userdata: object, sock: Any) -> None:
        # paho decides "nothing left to write" before it drops its lock, so a publish from a job thread
        # can slip in between and its register call is skipped: look again after unregistering
        self._interest(sock.fileno(), client.want_write())

    def _interest(self, fd: int, write: bool) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._epoll.modify(fd, select.EPOLLIN | (select.EPOLLOUT if write else 0))

    def run(self) -> None:
        next_misc = next_sweep = 0.0
        while not self._halt.is_set():
            for fd, events in self._epoll.poll(0.1):
                with self._lock:
                    client = self._by_fd.get(fd)
                if client is None:
                    continue
                if events & (select.EPOLLIN | select.EPOLLERR | select.EPOLLHUP):
                    client.loop_read()
                if events & select.EPOLLOUT:
                    client.loop_write()
                    if not client.want_write():
                        self._interest(fd, False)
            now = time.monotonic()
            if now < next_sweep:
                continue
            next_sweep = now + 0.05
            with self._lock:
                clients = list(self._clients)
            for client in clients:  # the same race, from the other side: flush what is left waiting
                if client.want_write():
                    client.loop_write()
            if now >= next_misc:  # keepalive pings, timeouts
                next_misc = now + 1.0
                for client in clients:
                    client.loop_misc()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


class SimMqtt:
    """The slice of ``MqttClient`` that :class:`JobsChannel` uses, over one paho client on the NetLoop."""

    def __init__(self, net: NetLoop, host: str, port: int, client_id: str, counter: Callable[[int], None]):
        self.host, self.port = host, port
        self._count = counter
        self._subs: list[tuple[str, Handler]] = []
        self._connected = threading.Event()
        self.on_connected: Callable[[], None] = lambda: None
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5, reconnect_on_failure=False
        )
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        net.attach(self.client)

    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    def subscribe(self, topic_filter: str, handler: Handler) -> None:
        self._subs.append((topic_filter, handler))

    def publish_json(self, topic: str, payload: dict[str, Any], qos: int = 1, retain: bool = False) -> None:
        if not self.is_connected:
            raise MqttError(f"not connected: cannot publish to {topic}", hint="the device is offline")
        info = self.client.publish(topic, json.dumps(payload, separators=(",", ":")), qos=qos, retain=retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise MqttError(f"publish to {topic} failed: rc {info.rc}", hint="the device is offline")
        self._count(1)

    def connect(self) -> None:
        """Open the connection (persistent session); subscriptions are (re)made when the broker answers."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        self.client.connect(self.host, self.port, keepalive=60, clean_start=False, properties=props)

    def disconnect(self) -> None:
        self._connected.clear()
        self.client.disconnect()

    def _on_connect(self, client: paho.Client, _u: object, _f: object, reason: Any, _p: object) -> None:
        if reason.is_failure:
            return
        client.subscribe([(f, paho.SubscribeOptions(qos=1)) for f, _ in self._subs])
        self._connected.set()
        self.on_connected()

    def _on_disconnect(self, *_args: object) -> None:
        self._connected.clear()

    def _on_message(self, _client: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        self._count(1)
        try:
            payload = json.loads(message.payload)
        except ValueError:
            return
        if not isinstance(payload, dict):
            return
        for topic_filter, handler in self._subs:
            if topic_matches(topic_filter, message.topic):
                handler(message.topic, payload)


@dataclass
class JobRecord:
    """The device's own memory of a job (what state.json keeps on a real device)."""

    job_id: str
    status: str
    version: str
    details: dict[str, str]
    execution_number: int | None
    reported: bool = False


@dataclass
class SimDevice:
    """One simulated box; ``serving`` is the version its alias points at (what it really runs)."""

    thing: str
    groups: list[str]
    model: str
    serving: str
    fail_smoke: bool = False
    load_s: float = 0.5
    stage_s: float = 0.02
    jobs: dict[str, JobRecord] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)
    """How many times each job really ran here (a job run twice is a protocol bug)."""
    succeeded_at: dict[str, float] = field(default_factory=dict)

    def document(self, activity: str) -> dict[str, Any]:
        """The retained state document (docs/jobs-protocol.md, "Device state"), reduced to what matters."""
        last = list(self.jobs.values())[-1] if self.jobs else None
        return {
            "thing": self.thing,
            "groups": self.groups,
            "line": self.groups[-1],
            "state": activity,
            "agent": "ok",
            "models": [
                {
                    "name": self.model,
                    "version": self.serving,
                    "task": "classification",
                    "aliases": ["defect-cls"],
                    "role": "primary",
                    "loaded": True,
                }
            ],
            "aliases": {"defect-cls": {"name": self.model, "version": self.serving, "shadow": ""}},
            "last_job": None
            if last is None
            else {"job_id": last.job_id, "status": last.status, "model": self.model, "version": last.version},
            "ts": round(time.time(), 3),
        }


class DeviceRunner:
    """The job loop of one simulated device (model manager's runner.py rules, agent stubbed)."""

    def __init__(
        self,
        device: SimDevice,
        mqtt: SimMqtt,
        prefix: str,
        state_root: str,
        reply_timeout_s: float,
        poll_interval_s: float = POLL_INTERVAL_S,
    ) -> None:
        self.device = device
        self.poll_interval_s = poll_interval_s
        self.mqtt = mqtt
        self.state_topic = topics.device_state(device.thing, root=state_root)
        self.channel = JobsChannel(mqtt, prefix, device.thing, reply_timeout_s)  # type: ignore[arg-type]
        self.channel.subscribe(lambda _execution: self._wake.set())
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.mqtt.on_connected = self._connected
        self.thread = threading.Thread(target=self._loop, name=f"sim-{device.thing}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _connected(self) -> None:
        self._wake.set()  # catch up: start-next after every (re)connect

    def publish_state(self, activity: str) -> None:
        with contextlib.suppress(MqttError):  # published again on the next job or reconnect
            self.mqtt.publish_json(self.state_topic, self.device.document(activity), retain=True)

    def _loop(self) -> None:
        backoff = Backoff(initial=1.0, maximum=self.poll_interval_s)  # as runner.py: up to the poll interval
        announced = False
        while not self._stop.is_set():
            self._wake.wait(self.poll_interval_s)
            self._wake.clear()
            if self._stop.is_set() or not self.mqtt.is_connected:
                announced = False
                continue
            if not announced:
                self.publish_state("idle")
                announced = True
            try:
                self._flush_unreported()
                execution = self.channel.start_next()
            except EdgeInspectError:
                if not self._stop.wait(backoff.next_delay()):
                    self._wake.set()
                continue
            backoff.reset()
            if execution is not None:
                self._handle(execution)
                self._wake.set()

    def _handle(self, execution: Execution) -> None:
        device = self.device
        tracked = Tracked.of(execution)
        known = device.jobs.get(execution.job_id)
        if known is not None and known.status != "IN_PROGRESS":
            self._send_final(tracked, known)  # finished here already: only the report was lost
            return
        try:
            op = parse_job_document(execution.document)
        except JobDocumentError as exc:
            record = JobRecord(execution.job_id, "FAILED", "", {"stage": "validating"}, None)
            record.details["reason"] = exc.message
            self._finish(tracked, record)
            return
        if not isinstance(op, DeployModel):
            return
        device.runs[execution.job_id] = device.runs.get(execution.job_id, 0) + 1
        record = JobRecord(execution.job_id, "IN_PROGRESS", op.version, {}, execution.execution_number)
        device.jobs[execution.job_id] = record
        self.publish_state("deploying")
        try:
            outcome = self._deploy(tracked, op)
        except JobGoneError:
            record.status, record.reported = "CANCELED", True  # the cloud dropped it: serve what we served
            self.publish_state("idle")
            return
        record.status, record.details = outcome
        if record.status == "SUCCEEDED":
            device.serving = op.version
            device.succeeded_at[record.job_id] = time.time()
        self._finish(tracked, record)

    def _deploy(self, tracked: Tracked, op: DeployModel) -> tuple[str, dict[str, str]]:
        for stage in STAGES:
            self._progress(tracked, stage, op.version)
            self._stop.wait(self.device.load_s if stage == "loading" else self.device.stage_s)
            if stage == "smoke_testing" and self.device.fail_smoke:
                reason = (
                    "smoke test failed: output 'defect_probability' differs from the golden output by 0.5"
                )
                return "FAILED", {"stage": stage, "reason": reason}
        return "SUCCEEDED", {
            "stage": "done",
            "alias": "defect-cls",
            "previous": f"{op.name}:{self.device.serving}",
        }

    def _progress(self, tracked: Tracked, stage: str, version: str) -> None:
        details = status_details(stage=stage, model=self.device.model, version=version)
        try:
            self.channel.update(tracked, "IN_PROGRESS", details)
        except JobGoneError:
            raise
        except EdgeInspectError:
            pass  # a lost progress report is only logged on a real device

    def _finish(self, tracked: Tracked, record: JobRecord) -> None:
        self._send_final(tracked, record)
        self.publish_state("idle")

    def _send_final(self, tracked: Tracked, record: JobRecord) -> None:
        status: Status = "SUCCEEDED" if record.status == "SUCCEEDED" else "FAILED"
        details = status_details(model=self.device.model, version=record.version, **record.details)
        try:
            self.channel.update(tracked, status, details)
        except JobGoneError:
            pass  # already terminal in the cloud (a duplicate after a lost reply): known
        except EdgeInspectError:
            return  # kept unreported: sent again before the next start-next
        record.reported = True

    def _flush_unreported(self) -> None:
        for record in list(self.device.jobs.values()):
            if not record.reported and record.status not in ("IN_PROGRESS", "CANCELED"):
                self._send_final(Tracked(record.job_id, None, record.execution_number), record)


class Counter:
    """A thread-safe message counter (what the simulated devices sent and received)."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        with self._lock:
            self.value += n


class Fleet:
    """N simulated devices on one broker; ``start()`` connects them all, ``offline()`` takes some away."""

    def __init__(
        self,
        host: str,
        port: int,
        prefix: str,
        state_root: str,
        devices: list[SimDevice],
        reply_timeout_s: float = 15.0,
    ) -> None:
        self.net = NetLoop()
        self.messages = Counter()
        self.devices = devices
        self.runners: dict[str, DeviceRunner] = {}
        for device in devices:
            mqtt = SimMqtt(self.net, host, port, f"bench-{device.thing}", self.messages.add)
            self.runners[device.thing] = DeviceRunner(device, mqtt, prefix, state_root, reply_timeout_s)

    def start(self, connect_per_s: float = 500.0) -> None:
        threading.stack_size(256 * 1024)  # a thousand idle job threads: keep their stacks small
        self.net.start()
        for index, runner in enumerate(self.runners.values()):
            runner.start()
            runner.mqtt.connect()
            if index % 50 == 49:
                time.sleep(50 / connect_per_s)  # no thundering herd of CONNECTs

    def connected(self) -> int:
        return sum(1 for r in self.runners.values() if r.mqtt.is_connected)

    def offline(self, things: list[str]) -> None:
        for thing in things:
            self.runners[thing].mqtt.disconnect()

    def online(self, things: list[str]) -> None:
        for index, thing in enumerate(things):
            self.runners[thing].mqtt.client.reconnect()
            if index % 50 == 49:
                time.sleep(0.1)

    def stop(self) -> None:
        for runner in self.runners.values():
            runner.stop()
        for runner in self.runners.values():
            if runner.mqtt.is_connected:
                runner.mqtt.disconnect()
        time.sleep(0.5)
        self.net.stop()
