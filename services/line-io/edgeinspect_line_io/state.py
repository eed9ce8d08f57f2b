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
    """Thread-safe transitions; listeners (the OPC UA variables, the status) hear each change."""

    def __init__(self) -> None:
        self._state = VisionState.PREOPERATIONAL
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self.single_job: str | None = None
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

    def start_single(self, job_id: str) -> None:
        self._move((VisionState.READY,), VisionState.SINGLE_EXECUTION, "start a single job")
        self.single_job = job_id

    def single_done(self, job_id: str) -> bool:
        """The single job's result arrived (or timed out): back to Ready. False if not that job."""
        if self._state is not VisionState.SINGLE_EXECUTION or self.single_job != job_id:
            return False
        self.single_job = None
        self._move((VisionState.SINGLE_EXECUTION,), VisionState.READY, "finish the single job")
        return True

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
        self.error_reason = reason
        self._move(tuple(VisionState), VisionState.ERROR, "enter Error")

    def reset(self) -> None:
        """Error -> Initialized (the service moves on to Ready once its connections are back)."""
        self.error_reason = ""
        self.single_job = None
        self._move((VisionState.ERROR, VisionState.INITIALIZED), VisionState.INITIALIZED, "reset")
