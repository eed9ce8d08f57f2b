"""Digital I/O on the box (libgpiod v2 Python bindings): a thin adapter, untested here.

No GPIO chip exists on the build and test machines, so this module is kept to the few calls that
cannot be wrong in more than one way: request one output line for the reject, one input line
(edge events) for the trigger. ``gpiod`` is not a dependency of the image: install the bindings
matching the board's kernel (``pip install gpiod``) and grant the container the chip device.
"""

from __future__ import annotations

import threading
from typing import Any

from edgeinspect_line_io.inputs.base import Fire
from edgeinspect_line_io.outputs.base import OutputUnavailable
from edgeinspect_line_io.verdicts import PartResult


def _gpiod() -> Any:
    try:
        import gpiod
    except ImportError as exc:
        raise OutputUnavailable(
            "the gpiod Python bindings are not installed",
            hint="pip install gpiod (libgpiod v2) in the image, and map the chip device into the container",
        ) from exc
    return gpiod


class GpiodOutput:
    """Drives output line ``offset`` of ``chip`` high for the reject pulse."""

    def __init__(self, chip: str, offset: int) -> None:
        self._chip, self._offset = chip, offset
        self._request: Any = None

    @property
    def name(self) -> str:
        return f"gpiod:{self._chip}:{self._offset}"

    def open(self) -> None:
        gpiod = _gpiod()
        try:
            settings = gpiod.LineSettings(direction=gpiod.line.Direction.OUTPUT)
            self._request = gpiod.request_lines(
                self._chip, consumer="edgeinspect-line-io", config={self._offset: settings}
            )
        except OSError as exc:
            raise OutputUnavailable(f"cannot drive {self.name}: {exc}", hint="check EI_GPIOD_CHIP") from exc

    def connected(self) -> bool:
        return self._request is not None

    def publish(self, part: PartResult) -> None:
        return  # a digital output carries only the reject

    def set_reject(self, on: bool, part: PartResult) -> None:
        if self._request is None:
            self.open()
        value = _gpiod().line.Value.ACTIVE if on else _gpiod().line.Value.INACTIVE
        self._request.set_value(self._offset, value)

    def close(self) -> None:
        if self._request is not None:
            self._request.release()
            self._request = None


class GpiodInput:
    """Fires on each rising edge of input line ``offset`` of ``chip`` (no part id on a wire)."""

    def __init__(self, chip: str, offset: int) -> None:
        self._chip, self._offset = chip, offset
        self._stop = threading.Event()
        self._request: Any = None

    @property
    def name(self) -> str:
        return f"gpiod:{self._chip}:{self._offset}"

    def start(self, fire: Fire) -> None:
        gpiod = _gpiod()
        settings = gpiod.LineSettings(
            direction=gpiod.line.Direction.INPUT, edge_detection=gpiod.line.Edge.RISING
        )
        self._request = gpiod.request_lines(
            self._chip, consumer="edgeinspect-line-io", config={self._offset: settings}
        )
        threading.Thread(target=self._run, args=(fire,), name="gpiod-input", daemon=True).start()

    def _run(self, fire: Fire) -> None:
        while not self._stop.is_set():
            if self._request.wait_edge_events(0.2):
                for _event in self._request.read_edge_events():
                    fire("")

    def connected(self) -> bool:
        return self._request is not None

    def close(self) -> None:
        self._stop.set()
        if self._request is not None:
            self._request.release()
            self._request = None
