"""Live sources hand out the newest frame, never a backlog of old ones, and report a silent camera."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from edgeinspect.core.lifecycle import wait_until
from edgeinspect_camera.sources.base import SourceError
from edgeinspect_camera.sources.latest import LatestFrameReader

from tests.unit.camera.helpers import write_video


class _SteppedCamera:
    """A capture that delivers frame ``n`` only when the test releases it (a camera's clock)."""

    def __init__(self) -> None:
        self.allowed = threading.Semaphore(0)
        self.count = 0
        self.delivered = threading.Event()
        self.released = False
        self.stopped = False

    def read(self) -> tuple[bool, Any]:
        if not self.allowed.acquire(timeout=5) or self.stopped:
            return False, None
        self.count += 1
        self.delivered.set()
        return True, np.full((2, 2, 3), self.count, dtype=np.uint8)

    def release(self) -> None:
        self.released = True

    def deliver(self, frames: int) -> None:
        for _ in range(frames):
            self.delivered.clear()
            self.allowed.release()
            assert self.delivered.wait(5)


def test_only_the_newest_frame_is_taken() -> None:
    camera = _SteppedCamera()
    reader = LatestFrameReader(camera, "cam", timeout_s=0.2)
    camera.deliver(5)  # the line was slower than the camera: frames 1-4 are stale
    assert wait_until(lambda: reader.frames_read == 5, 5) and int(reader.take()[0, 0, 0]) == 5
    with pytest.raises(SourceError, match=r"sent no frame for 0\.2 s"):
        reader.take()  # frame 5 is never handed out twice
    camera.deliver(1)
    assert wait_until(lambda: reader.frames_read == 6, 5) and int(reader.take()[0, 0, 0]) == 6
    camera.stopped = True
    camera.allowed.release()
    reader.stop()
    assert camera.released


def test_a_camera_that_stops_is_a_lost_source(tmp_path: Path) -> None:
    path = tmp_path / "three.avi"
    write_video(path, 3)
    reader = LatestFrameReader(cv2.VideoCapture(str(path)), "cam", timeout_s=2.0)
    assert reader.take() is not None
    with pytest.raises(SourceError, match="stopped delivering frames"):
        for _ in range(3):
            reader.take()
    reader.stop()
