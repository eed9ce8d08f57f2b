"""The line I/O service: results in, verdicts and reject pulses out, PLC triggers to the camera.

Three flows, each on its own thread so none waits for another:

* **results**: a consumer group (``line-io``) on ``ei:results:{line}``; each result becomes a
  ``PartResult`` (``verdicts.decide``), is published to every output at once and, when it rejects
  and is not late, scheduled as a pulse on every output's ``Actuator``. A late reject is counted,
  raised as a ``missed_reject`` event on ``ei:events`` and never actuated. The entry is acknowledged
  once its jobs are handed to the actuators.
* **triggers**: every input calls ``trigger`` with the PLC's part id; the camera takes exactly one
  frame. Frames we triggered are watched: one without a verdict at its gate time gets the fail-safe.
* **status**: every second (and on a change) the status goes to ``ei:line-io:{line}:status`` for the UI.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import redis
from edgeinspect.core import names
from edgeinspect.core.errors import AgentError, EdgeInspectError, MessageError
from edgeinspect.core.lifecycle import Backoff
from edgeinspect.core.messages import Event, Result
from edgeinspect.core.observability import Health, get_logger
from edgeinspect.core.streams import Entry, GroupReader, Streams
from prometheus_client import CollectorRegistry

from edgeinspect_line_io.actuator import Actuator, Job, Report, realtime
from edgeinspect_line_io.inputs.base import Input
from edgeinspect_line_io.metrics import LineIoMetrics
from edgeinspect_line_io.outputs.base import LineInfo, Output, OutputUnavailable
from edgeinspect_line_io.recipes import RecipeSwitch
from edgeinspect_line_io.settings import LineIoSettings
from edgeinspect_line_io.state import StateError, StateMachine, VisionState
from edgeinspect_line_io.trigger import CameraTrigger, Triggered, TriggerFailed
from edgeinspect_line_io.verdicts import PartResult, RejectTiming, decide, no_verdict

log = get_logger("edgeinspect_line_io")
SERVICE = "line-io"
STATUS_TTL_S = 30
RUNNING = (VisionState.READY, VisionState.SINGLE_EXECUTION, VisionState.CONTINUOUS_EXECUTION)
WATCH_LEAD_NS = 1_000_000  # the no-verdict check runs 1 ms before the gate, so its pulse is on time


class LineIoService:
    """Everything of one line's I/O; ``start`` runs it on background threads, ``stop`` ends it."""

    def __init__(
        self,
        settings: LineIoSettings,
        *,
        outputs: Sequence[Output] = (),
        inputs: Sequence[Input] = (),
        streams: Streams | None = None,
        registry: CollectorRegistry | None = None,
        camera: CameraTrigger | None = None,
        info: LineInfo | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.settings = settings
        self.line = settings.line
        self.streams = streams or Streams.from_url(settings.redis_url, settings.stream_maxlen)
        self.registry = registry or CollectorRegistry()
        self.metrics = LineIoMetrics(self.registry, self.line)
        self.camera = camera or CameraTrigger(
            settings.camera_url, settings.trigger_timeout_s, settings.camera_token.get_secret_value()
        )
        self.timing = RejectTiming.from_ms(
            settings.reject_delay_ms,
            settings.reject_width_ms,
            settings.reject_tolerance_ms,
            settings.fail_safe,
        )
        self.state = StateMachine()
        self.info = info or LineInfo()
        self.state.subscribe(lambda _before, after: setattr(self.info, "state", int(after)))
        self.recipe = self.info.recipe = settings.recipes[0]
        self.recipes = RecipeSwitch(
            settings.agent_addr,
            settings.recipe_targets,
            token=settings.agent_token.get_secret_value(),
            tls=settings.agent_tls(),
        )
        self._recipe_known = False  # the agent told us which recipe the targets point at
        self._recipe_error = ""
        self._recipe_lock = threading.Lock()
        self.clock_ns = clock_ns
        self.stop_event = threading.Event()
        report = Report(self._done, self._expired, self._connection)
        retry_ns = int(settings.plc_retry_ms * 1_000_000)
        self.actuators = [
            Actuator(o, report, retry_ns=retry_ns, clock_ns=clock_ns, priority=settings.realtime_priority)
            for o in outputs
        ]
        self.inputs = list(inputs)
        self._reader = GroupReader(
            self.streams,
            names.results_stream(self.line),
            names.LINE_IO_GROUP,
            f"{socket.gethostname()}-{os.getpid()}",
            stale_ms=5_000,
            block_ms=500,
        )
        self._seq = 0
        self._watch: dict[str, Triggered] = {}
        self._watch_heap: list[tuple[int, str]] = []
        self._fail_safed: dict[str, str] = {}  # frame id -> the action the fail-safe took
        self._watch_cond = threading.Condition()
        self._redis_up = False
        self._threads: list[threading.Thread] = []
        self._listeners: list[Callable[[PartResult], None]] = []

    # -- life ---------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start actuators, inputs and the three loops; the state goes Initialized -> Ready (->
        ContinuousExecution with ``EI_START_CONTINUOUS``)."""
        self.state.initialized()
        for actuator in self.actuators:
            if not actuator.start() and getattr(actuator.output, "serves", False):
                raise OutputUnavailable(
                    f"{actuator.output.name} could not start serving", hint="see the log line above"
                )
        for source in self.inputs:
            source.start(self._fire_for(source.name))
            self.metrics.connection(f"input:{source.name}", source.connected())
        for target, name in ((self._results_loop, "results"), (self._watch_loop, "watch"),
                             (self._status_loop, "status")):  # fmt: skip
            thread = threading.Thread(target=target, name=f"line-io-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self.state.ready()
        if self.settings.start_continuous:
            self.state.start_continuous()
        log.info("line_io_started", line=self.line, outputs=[a.output.name for a in self.actuators],
                 inputs=[i.name for i in self.inputs], state=self.state.state.label)  # fmt: skip

    def stop(self) -> None:
        """Inputs first (no new frames), then the loops, then the actuators (raised rejects dropped)."""
        for source in self.inputs:
            source.close()
        self.stop_event.set()
        with self._watch_cond:
            self._watch_cond.notify_all()
        for thread in self._threads:
            thread.join(5)
        for actuator in self.actuators:
            actuator.stop()
        self.camera.close()
        self._publish_status()
        self.recipes.close()

    def add_health_checks(self, health: Health) -> None:
        """Ready when Redis answers and the vision system is up (its servers serving, not in Error)."""
        health.add_check("redis", self.streams.ping)
        health.add_check("vision_system", lambda: self.state.state in RUNNING)

    def on_result(self, listener: Callable[[PartResult], None]) -> None:
        """Hear every part as it is published (the OPC UA server's single-job bookkeeping uses it)."""
        self._listeners.append(listener)

    # -- triggers -----------------------------------------------------------------------------------

    def _fire_for(self, origin: str) -> Callable[[str], None]:
        return lambda part_id: self._plc_trigger(origin, part_id)

    def _plc_trigger(self, origin: str, part_id: str) -> None:
        if not self.state.accepts_plc_triggers():
            self.metrics.trigger(origin, "ignored")
            log.warning("trigger_ignored", input=origin, part_id=part_id, state=self.state.state.label)
            return
        try:
            self.trigger(origin, part_id)
        except TriggerFailed:
            return  # already counted, logged and raised as an event

    def trigger(self, origin: str, part_id: str) -> Triggered:
        """Exactly one camera frame for the PLC's part now; watched for a verdict until its gate."""
        try:
            shot = self.camera.capture(part_id)
        except TriggerFailed as exc:
            self.metrics.trigger(origin, "failed")
            log.error("trigger_failed", input=origin, part_id=part_id, error=exc.message)
            self._event("trigger_failed", "error", input=origin, part_id=part_id, error=exc.message,
                        hint=exc.hint)  # fmt: skip
            raise
        self.metrics.trigger(
            origin,
            "ok",
            {"input": origin, "part_id": part_id, "frame_id": shot.frame_id, "ts_ns": shot.ts_ns},
        )
        log.info("triggered", input=origin, part_id=part_id, frame_id=shot.frame_id)
        if self.settings.watch_triggers:
            with self._watch_cond:
                self._watch[shot.frame_id] = shot
                heapq.heappush(
                    self._watch_heap, (self.timing.gate_ns(shot.ts_ns) - WATCH_LEAD_NS, shot.frame_id)
                )
                self._watch_cond.notify_all()
        return shot

    # -- results --------------------------------------------------------------------------------------

    def _results_loop(self) -> None:
        realtime(self.settings.realtime_priority, "line-io-results")  # a verdict waits for no one
        backoff = Backoff(0.2, 5.0)
        while not self.stop_event.is_set():
            try:
                if not self._redis_up:
                    self.streams.ensure_group(names.results_stream(self.line), names.LINE_IO_GROUP, "$")
                    self._reader.start()
                    self._redis_changed(True)
                batch = self._reader.next_batch()  # blocks in XREADGROUP until a result arrives
                for entry in batch:
                    self.handle(entry)
                if batch:  # one XACK per batch, after every part of it is handed to the actuators
                    self._reader.ack(*(entry.id for entry in batch))
                backoff.reset()
            except redis.RedisError as exc:
                if self._redis_up:
                    log.error("redis_unavailable", error=str(exc))
                self._redis_changed(False)
                self.stop_event.wait(backoff.next_delay())

    def _redis_changed(self, up: bool) -> None:
        if up == self._redis_up:
            return
        self._redis_up = up
        self.metrics.connection("redis", up)
        try:
            if not up:
                self.state.error("redis unavailable")
            elif self.state.state is VisionState.ERROR:
                self.state.reset()
                self.state.ready()
                if self.settings.start_continuous:
                    self.state.start_continuous()
        except StateError as exc:
            log.warning("state_unchanged", error=exc.message)

    def handle(self, entry: Entry) -> PartResult | None:
        """Act on one result entry (public for tests and the bench)."""
        now = self.clock_ns()
        try:
            result = entry.parse(Result)
        except MessageError as exc:
            self.metrics.bump("malformed")
            log.error("malformed_result", entry_id=entry.id, error=exc.message)
            return None
        with self._watch_cond:
            self._watch.pop(result.frame_id, None)
            fail_safe_action = self._fail_safed.pop(result.frame_id, None)
        part = decide(result, self.timing, now)
        if fail_safe_action is not None:
            # the fail-safe acted at the gate: the part is gone, this verdict can only be recorded
            part = replace(part, late=True, reason=f"{part.reason}:after_fail_safe")
        self._act(part, missed=fail_safe_action != "reject")
        return part

    def _act(self, part: PartResult, *, missed: bool = True) -> None:
        self._seq += 1
        part = part.numbered(self._seq)
        self.metrics.result(part.action, part.reason)
        if part.late:
            self.metrics.bump("late_results")
            if part.action == "reject" and missed:
                self._missed(part, "late_verdict", late_ms=round((part.received_ns - part.gate_ns) / 1e6, 3))
        self.state.single_done(part.result_id)  # Ready again before the result-ready event goes out
        # a late part is still published (the PLC sees "reject missed"), for a second at most
        publish_deadline = max(self.timing.deadline_ns(part.capture_ns), part.received_ns + 1_000_000_000)
        for actuator in self.actuators:
            actuator.publish(part, publish_deadline)
            if part.actuates:
                actuator.pulse(part, self.timing.deadline_ns(part.capture_ns), self.timing.width_ns)
        for listener in self._listeners:
            listener(part)

    def _missed(self, part: PartResult, cause: str, **extra: Any) -> None:
        detail = {"frame_id": part.result_id, "part_id": part.part_id, "cause": cause,
                  "gate_ns": part.gate_ns, "ts_ns": self.clock_ns(), **extra}  # fmt: skip
        self.info.missed_rejects += 1
        self.metrics.missed(cause, detail)
        log.error("missed_reject", **detail)
        self._event("missed_reject", "error", **detail)

    # -- the no-verdict watch ---------------------------------------------------------------------------

    def _watch_loop(self) -> None:
        # the fail-safe of a part without a verdict is due 1 ms before its gate
        realtime(self.settings.realtime_priority, "line-io-watch")
        while not self.stop_event.is_set():
            with self._watch_cond:
                if not self._watch_heap:
                    self._watch_cond.wait(0.5)
                    continue
                due, frame_id = self._watch_heap[0]
                wait_ns = due - self.clock_ns()
                if wait_ns > 0:
                    self._watch_cond.wait(wait_ns / 1e9)
                    continue
                heapq.heappop(self._watch_heap)
                shot = self._watch.pop(frame_id, None)
                if shot is None:
                    continue  # its verdict came in time
                part = no_verdict(
                    shot.frame_id, shot.part_id, self.line, shot.ts_ns, self.timing, self.clock_ns()
                )
                if len(self._fail_safed) > 10_000:
                    self._fail_safed.clear()
                self._fail_safed[frame_id] = part.action
            self.metrics.bump("no_verdict")
            log.warning("no_verdict", frame_id=frame_id, part_id=shot.part_id, action=part.action)
            self._event("no_verdict", "warning", frame_id=frame_id, part_id=shot.part_id, action=part.action)
            self._act(part)

    # -- actuator reports -------------------------------------------------------------------------------

    def _done(self, output: Output, job: Job, started_ns: int) -> None:
        now = self.clock_ns()
        if job.kind == "publish":
            self.metrics.written(output.name, (now - job.part.received_ns) / 1e9)
        elif job.kind == "on":
            self.metrics.pulsed(
                output.name,
                (started_ns - job.due_ns) / 1e9,
                {"frame_id": job.part.result_id, "part_id": job.part.part_id, "output": output.name,
                 "ts_ns": started_ns, "error_ms": round((started_ns - job.due_ns) / 1e6, 3)},
            )  # fmt: skip

    def _expired(self, output: Output, job: Job) -> None:
        self.metrics.expired(output.name)
        log.error("write_expired", output=output.name, kind=job.kind, frame_id=job.part.result_id)
        if job.kind == "on":
            self._missed(job.part, "output_unavailable", output=output.name)

    def _connection(self, output: Output, connected: bool) -> None:
        self.metrics.connection(f"output:{output.name}", connected)
        self._event("plc_connected" if connected else "plc_disconnected", "info" if connected else "warning",
                    output=output.name)  # fmt: skip

    # -- events and status ------------------------------------------------------------------------------

    def _event(self, type_: str, level: str, **detail: Any) -> None:
        try:
            self.streams.add(
                names.events_stream(), Event.new(type_, SERVICE, line=self.line, level=level, **detail)
            )
        except redis.RedisError as exc:
            log.warning("event_not_published", type=type_, error=str(exc))

    def status(self) -> dict[str, Any]:
        """The ``/status`` body and the UI's ``ei:line-io:{line}:status`` value."""
        for source in self.inputs:
            self.metrics.connection(f"input:{source.name}", source.connected())
        body = self.metrics.status()
        body.update(
            line=self.line,
            state=self.state.state.label,
            recipe=self.recipe,
            recipe_error=self._recipe_error,
            fail_safe=self.settings.fail_safe,
            reject_delay_ms=self.settings.reject_delay_ms,
            reject_width_ms=self.settings.reject_width_ms,
            updated_ns=self.clock_ns(),
        )
        return body

    def _publish_status(self) -> None:
        with contextlib.suppress(redis.RedisError):  # the results loop reports Redis outages
            self.streams.client.set(
                names.line_io_status_key(self.line), json.dumps(self.status(), default=str), ex=STATUS_TTL_S
            )

    def _status_loop(self) -> None:
        self._follow_recipe()
        while not self.stop_event.wait(1.0):
            self._follow_recipe()
            self._publish_status()

    # -- the vision system's methods (OPC UA) -------------------------------------------------------------

    def start_single(self, part_id: str) -> str:
        """StartSingleJob: one frame for ``part_id`` now, in Ready only; returns the job (frame) id.

        SingleExecution lasts until that frame's result is published (or ``EI_SINGLE_JOB_TIMEOUT_S``):
        the result may even arrive before the camera's answer names the frame, which the state
        machine remembers, so the job still ends exactly once."""
        self.state.start_single()
        try:
            shot = self.trigger("opcua-method", part_id)
        except TriggerFailed:
            self.state.single_aborted()
            raise
        self.state.single_started(shot.frame_id)
        timer = threading.Timer(self.settings.single_job_timeout_s, self.state.single_done, (shot.frame_id,))
        timer.daemon = True
        timer.start()
        return shot.frame_id

    def start_continuous(self) -> None:
        self.state.start_continuous()

    def stop_continuous(self) -> None:
        self.state.stop_continuous()

    def reset(self) -> None:
        """Error -> Ready (Ready again at once when Redis answers; else the results loop retries)."""
        self.state.reset()
        if self._redis_up:
            self.state.ready()

    def select_recipe(self, recipe: str) -> None:
        """SelectRecipe: point the worker's aliases at the recipe's models (``recipes``); refused
        when the recipe is not configured or the agent lacks one of its aliases."""
        if recipe not in self.settings.recipes:
            raise StateError(f"unknown recipe {recipe!r}", hint=f"configured: {list(self.settings.recipes)}")
        with self._recipe_lock:
            models = self.recipes.apply(recipe)
            self.recipe, self._recipe_known, self._recipe_error = recipe, True, ""
            self.info.recipe = recipe
        log.info("recipe_selected", recipe=recipe, models=models)
        self._event("recipe_selected", "info", recipe=recipe, models=models)

    def _follow_recipe(self) -> None:
        """Keep the targets on the active recipe (every second): at start learn which recipe they
        are on (or apply the first), later re-point a target that drifted (an agent restart)."""
        if not self.recipes.targets:
            return
        with self._recipe_lock:
            try:
                if not self._recipe_known:
                    self.recipe = self.info.recipe = self.recipes.active(self.settings.recipes) or self.recipe
                self.recipes.apply(self.recipe)
                self._recipe_known = True
                self._recipe_error = ""
            except (AgentError, EdgeInspectError) as exc:
                if exc.message != self._recipe_error:
                    log.warning("recipe_not_applied", recipe=self.recipe, error=exc.message, hint=exc.hint)
                self._recipe_error = exc.message
