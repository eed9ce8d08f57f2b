"""The vision system's state machine, modelled on OPC 40100-1 (``VisionStateMachineType`` and its
automatic-mode sub-machine), flattened to the states an integrator's PLC program looks at:

    Preoperational -> Initialized -> Ready <-> SingleExecution
                                      Ready <-> ContinuousExecution
    any state -> Error (Redis or the camera lost) -> Reset -> Initialized -> Ready

In ``ContinuousExecution`` PLC triggers (Modbus, OPC UA tags, GPIO) are honoured; in ``Ready`` only the
``StartSingleJob`` method takes a frame. Verdicts and reject pulses are never gated by the state: a bad
part on the belt is rejected whatever mode the line is in.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from enum import IntEnum

from edgeinspect.core.errors import EdgeInspectError


class VisionState(IntEnum):
    """The states and the numbers the Modbus map and ``CurrentStateNumber`` use."""

    PREOPERATIONAL = 0
    INITIALIZED = 1
    READY = 2
    SINGLE_EXECUTION = 3
    CONTINUOUS_EXECUTION = 4
    ERROR = 5

    @property
    def label(self) -> str:
        """The OPC 40100 browse name of the state (``SingleExecution``)."""
        return "".join(part.capitalize() for part in self.name.split("_"))


class StateError(EdgeInspectError):
    """A method was called in a state that does not allow it."""


Listener = Callable[[VisionState, VisionState], None]


class StateMachine:
    """Thread-safe transitions; listeners (the OPC UA variables, the status) hear each change.

    A transition and the calls to its listeners happen under one lock, so listeners hear the changes
    in the order they were made: without it, a single job whose result arrives while the method is
    still reporting ``SingleExecution`` could leave the OPC UA variable showing ``SingleExecution``
    after the machine was back in ``Ready``.
    """

    def __init__(self) -> None:
        self._state = VisionState.PREOPERATIONAL
        self._lock = threading.RLock()
        self._listeners: list[Listener] = []
        self.single_job: str | None = None
        self._early: set[str] = set()  # results that arrived while the single job's id was not yet known
        self.error_reason = ""

    @property
    def state(self) -> VisionState:
        return self._state

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def accepts_plc_triggers(self) -> bool:
        return self._state is VisionState.CONTINUOUS_EXECUTION

    def _move(self, allowed: tuple[VisionState, ...], target: VisionState, what: str) -> None:
        with self._lock:
            before = self._state
            if before not in allowed:
                raise StateError(
                    f"cannot {what} in state {before.label}",
                    hint=f"allowed in {', '.join(s.label for s in allowed)}",
                )
            self._state = target
            if before is not target:
                for listener in self._listeners:
                    listener(before, target)

    def initialized(self) -> None:
        self._move(
            (VisionState.PREOPERATIONAL, VisionState.INITIALIZED), VisionState.INITIALIZED, "initialize"
        )

    def ready(self) -> None:
        self._move((VisionState.INITIALIZED, VisionState.READY), VisionState.READY, "become ready")

    def start_single(self, job_id: str | None = None) -> None:
        """Ready -> SingleExecution; ``job_id`` may follow with ``single_started`` once it is known
        (the camera names the frame only when it has taken it)."""
        with self._lock:
            self._move((VisionState.READY,), VisionState.SINGLE_EXECUTION, "start a single job")
            self.single_job = job_id
            self._early.clear()

    def single_started(self, job_id: str) -> None:
        """The single job's id is known now; back to Ready at once if its result already came."""
        with self._lock:
            if self._state is not VisionState.SINGLE_EXECUTION or self.single_job is not None:
                return
            self.single_job = job_id
            if job_id in self._early:
                self._finish_single()

    def single_done(self, job_id: str) -> bool:
        """A result arrived (or the single job timed out): back to Ready when it is the single job's.
        False when not (another part, or no single job running)."""
        if self._state is not VisionState.SINGLE_EXECUTION:
            return False  # the common case, decided without the lock
        with self._lock:
            if self._state is not VisionState.SINGLE_EXECUTION:
                return False
            if self.single_job is None:  # the result beat the camera's answer: remember it
                if len(self._early) < 1024:
                    self._early.add(job_id)
                return False
            if self.single_job != job_id:
                return False
            self._finish_single()
            return True

    def single_aborted(self) -> None:
        """The single job could not start (the camera refused): back to Ready."""
        with self._lock:
            if self._state is VisionState.SINGLE_EXECUTION and self.single_job is None:
                self._finish_single()

    def _finish_single(self) -> None:
        self.single_job = None
        self._early.clear()
        self._move((VisionState.SINGLE_EXECUTION,), VisionState.READY, "finish the single job")

    def start_continuous(self) -> None:
        self._move(
            (VisionState.READY, VisionState.CONTINUOUS_EXECUTION),
            VisionState.CONTINUOUS_EXECUTION,
            "start continuous mode",
        )

    def stop_continuous(self) -> None:
        self._move(
            (VisionState.CONTINUOUS_EXECUTION, VisionState.READY), VisionState.READY, "stop continuous mode"
        )

    def error(self, reason: str) -> None:
        with self._lock:
            self.error_reason = reason
            self._move(tuple(VisionState), VisionState.ERROR, "enter Error")

    def reset(self) -> None:
        """Error -> Initialized (the service moves on to Ready once its connections are back)."""
        with self._lock:
            if self._state in (VisionState.ERROR, VisionState.INITIALIZED):
                self.error_reason = ""
                self.single_job = None
            self._move((VisionState.ERROR, VisionState.INITIALIZED), VisionState.INITIALIZED, "reset")
