"""Keep only the newest frame of a live camera, so pacing below the camera's rate adds no latency.

An RTSP stream or USB camera delivers frames at its own rate whether we read them or not; reading
one every ``1/fps`` seconds from a 25 fps stream would hand out ever older frames from OpenCV's and
the socket's buffers. A thread reads continuously and keeps the last frame; ``take`` returns the
newest one not yet taken (the frames in between are the camera's rate, not the line's, and are not
counted as drops).
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

import numpy as np

from edgeinspect_camera.sources.base import SourceError

BgrArray = np.ndarray[Any, np.dtype[np.uint8]]


class Capture(Protocol):
    """The part of ``cv2.VideoCapture`` used here."""

    def read(self) -> tuple[bool, Any]: ...

    def release(self) -> None: ...


class LatestFrameReader:
    """Reads ``capture`` on a thread; ``take`` waits up to ``timeout_s`` for a frame newer than the last."""

    def __init__(self, capture: Capture, name: str, timeout_s: float) -> None:
        self._capture = capture
        self._name = name
        self._timeout = timeout_s
        self._cond = threading.Condition()
        self._frame: BgrArray | None = None
        self._seq = 0
        self._taken = 0
        self._failed = False
        self._running = True
        self._thread = threading.Thread(target=self._run, name=f"grab-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while self._running:
            ok, frame = self._capture.read()
            with self._cond:
                if not ok or frame is None:
                    self._failed = True
                    self._cond.notify_all()
                    return
                self._frame = frame
                self._seq += 1
                self._cond.notify_all()

    @property
    def frames_read(self) -> int:
        """Frames the camera delivered so far (taken or not)."""
        with self._cond:
            return self._seq

    def take(self) -> BgrArray:
        """The newest frame not yet taken; ``SourceError`` if the camera stopped or went silent."""
        with self._cond:
            self._cond.wait_for(lambda: self._seq > self._taken or self._failed, self._timeout)
            if self._seq > self._taken and self._frame is not None:
                self._taken = self._seq
                return self._frame
            reason = "stopped delivering frames" if self._failed else f"sent no frame for {self._timeout:g} s"
        raise SourceError(
            f"{self._name} {reason}", hint="check the camera, its cable or network, and its power"
        )

    def stop(self) -> None:
        """Stop reading, then release the capture (never while the thread is inside ``read``)."""
        self._running = False
        self._thread.join(self._timeout + 1.0)
        if not self._thread.is_alive():
            self._capture.release()
