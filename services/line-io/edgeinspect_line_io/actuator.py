"""One thread per output that performs its writes on time, in time order, and retries an absent PLC.

Each output gets its own ``Actuator`` so a slow or absent PLC never delays another output's pulse.
Jobs are kept in a heap by due time: a ``publish`` is due at once, a pulse's rising edge at the gate
time, its falling edge a pulse width later. The thread sleeps until a job is due (a coarse wait,
then a short spin, so a pulse starts within a fraction of a millisecond of its schedule) and runs it.

A write that fails is retried every ``retry_ns`` until the job's deadline: a rising edge's deadline
is the end of the part's window (a pulse that would start later is a *missed reject*, reported, never
written); a publish's deadline is the same window, a falling edge has none (the reject signal must
never stay raised). Two parts closer than a pulse width get one longer pulse: the signal drops only
when the last raised pulse ends.
"""

from __future__ import annotations

import heapq
import itertools
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from edgeinspect.core.observability import get_logger

from edgeinspect_line_io.outputs.base import Output, OutputRefused, OutputUnavailable
from edgeinspect_line_io.verdicts import PartResult

log = get_logger(__name__)
Kind = Literal["publish", "on", "off"]
SPIN_NS = 2_000_000  # the last 2 ms before a due time are spun, not slept (sleep overshoots)


def realtime(priority: int, what: str) -> bool:
    """Run the calling thread under SCHED_FIFO at ``priority`` (1-99; 0: leave it as it is).

    On a busy box a woken thread waits for the scheduler (several ms at a load of a few per core),
    which no spin can make up; a real-time thread preempts ordinary ones at once. Needs root or
    CAP_SYS_NICE: refused, the thread goes on at normal priority and says so."""
    if priority <= 0:
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))  # 0: this thread (Linux)
    except (OSError, AttributeError) as exc:
        log.warning("realtime_priority_refused", thread=what, priority=priority, error=str(exc),
                    hint="grant CAP_SYS_NICE (or set EI_REALTIME_PRIORITY=0)")  # fmt: skip
        return False
    return True


@dataclass(order=True)
class Job:
    due_ns: int
    seq: int
    kind: Kind = field(compare=False)
    part: PartResult = field(compare=False)
    deadline_ns: int | None = field(compare=False, default=None)


@dataclass
class Report:
    """What the actuator tells the service: a write done (with its timing error) or given up."""

    on_done: Callable[[Output, Job, int], None]  # job, started_ns
    on_expired: Callable[[Output, Job], None]
    on_connection: Callable[[Output, bool], None]


class Actuator:
    """Runs one output's jobs on time on a thread of its own."""

    def __init__(
        self,
        output: Output,
        report: Report,
        *,
        retry_ns: int,
        clock_ns: Callable[[], int] = time.time_ns,
        priority: int = 0,
    ) -> None:
        self.output = output
        self._priority = priority
        self._report = report
        self._retry_ns = retry_ns
        self._clock_ns = clock_ns
        self._jobs: list[Job] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopping = False
        self._connected = False
        self._raised: set[str] = set()  # parts whose pulse is on now (pulses of close parts overlap)
        self._thread = threading.Thread(target=self._run, name=f"actuator-{output.name}", daemon=True)

    # -- the service's side ---------------------------------------------------------------------------

    def start(self) -> bool:
        """Open the output now (a server binds its port here) and start the thread; False when the
        output could not open yet (the thread keeps trying)."""
        opened = self._try_open()
        self._thread.start()
        return opened

    def publish(self, part: PartResult, deadline_ns: int) -> None:
        self._add(Job(self._clock_ns(), next(self._seq), "publish", part, deadline_ns))

    def pulse(self, part: PartResult, deadline_ns: int, width_ns: int) -> None:
        """Schedule the reject pulse: on at the gate time (unless past ``deadline_ns``), off after."""
        self._add(Job(part.gate_ns, next(self._seq), "on", part, deadline_ns))
        self._add(Job(part.gate_ns + width_ns, next(self._seq), "off", part, None))

    def pending(self) -> int:
        with self._cond:
            return len(self._jobs)

    def stop(self, timeout: float = 5.0) -> None:
        """Finish what is due within ``timeout`` (a raised reject is always dropped), then close."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)
        self.output.close()

    @property
    def connected(self) -> bool:
        return self._connected

    # -- the thread -------------------------------------------------------------------------------------

    def _add(self, job: Job) -> None:
        with self._cond:
            heapq.heappush(self._jobs, job)
            self._cond.notify_all()

    def _run(self) -> None:
        realtime(self._priority, self._thread.name)
        while True:
            job = self._next_due()
            if job is None:
                return
            self._execute(job)

    def _try_open(self) -> bool:
        try:
            self.output.open()
        except OutputUnavailable as exc:
            log.warning("output_unavailable", output=self.output.name, error=exc.message)
            self._set_connected(False)
            return False
        self._set_connected(True)
        return True

    def _next_due(self) -> Job | None:
        """Wait until the earliest job is due and pop it; ``None`` once stopping with nothing left
        that is due (falling edges are run at once then, so no reject stays raised)."""
        with self._cond:
            while True:
                if self._stopping:
                    if not self._jobs:
                        return None
                    job = heapq.heappop(self._jobs)
                    if job.kind == "on":
                        continue  # never start a pulse while shutting down; its off edge still runs
                    return job
                if not self._jobs:
                    self._cond.wait(0.5)
                    continue
                wait_ns = self._jobs[0].due_ns - self._clock_ns()
                if wait_ns > SPIN_NS:
                    self._cond.wait((wait_ns - SPIN_NS) / 1e9)
                    continue
                break
            job = heapq.heappop(self._jobs)
        while self._clock_ns() < job.due_ns:
            pass  # the last ~2 ms: spin for an on-time edge
        return job

    def _execute(self, job: Job) -> None:
        while True:
            started = self._clock_ns()
            if job.deadline_ns is not None and started > job.deadline_ns:
                self._report.on_expired(self.output, job)
                return
            try:
                self._write(job)
            except OutputRefused as exc:
                log.error("output_refused", output=self.output.name, kind=job.kind,
                          frame_id=job.part.result_id, error=exc.message, hint=exc.hint)  # fmt: skip
                self._report.on_expired(self.output, job)
                return
            except OutputUnavailable as exc:
                self._set_connected(False)
                log.warning(
                    "output_write_failed",
                    output=self.output.name,
                    kind=job.kind,
                    frame_id=job.part.result_id,
                    error=exc.message,
                )
                if self._stopping and job.kind != "off":
                    return
                time.sleep(self._retry_ns / 1e9)
                self._try_open()
                continue
            self._set_connected(True)
            self._report.on_done(self.output, job, started)
            return

    def _write(self, job: Job) -> None:
        if job.kind == "publish":
            self.output.publish(job.part)
        elif job.kind == "on":
            self.output.set_reject(True, job.part)
            self._raised.add(job.part.result_id)
        else:
            self._raised.discard(job.part.result_id)
            if not self._raised:  # a later part's pulse still on: it keeps the signal raised
                self.output.set_reject(False, job.part)

    def _set_connected(self, connected: bool) -> None:
        if connected != self._connected:
            self._connected = connected
            self._report.on_connection(self.output, connected)
