"""Synthetic frames, folders and videos for the camera tests (seeded), and a clock that moves only
when slept on, so pacing is checked by counting frames and timestamps instead of wall time."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from edgeinspect.core.images import ImageArray, encode
from edgeinspect_camera.settings import CameraSettings

START_NS = 1_700_000_000_000_000_000


class FakeClock:
    """``sleep`` advances time instantly; ``monotonic`` and ``time_ns`` read the same timeline."""

    def __init__(self) -> None:
        self._now = 1000.0
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        with self._lock:
            return self._now

    def time_ns(self) -> int:
        with self._lock:
            return START_NS + round((self._now - 1000.0) * 1e9)

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self._now += max(seconds, 0.0)

    def advance(self, seconds: float) -> None:
        self.sleep(seconds)


def make_image(seed: int, height: int = 48, width: int = 64, channels: int = 3) -> ImageArray:
    """A random but reproducible image with a distinct mean per seed."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(height, width, channels), dtype=np.uint8)


def write_folder(root: Path, count: int, *, seed: int = 0, masks: bool = True) -> list[str]:
    """``count`` PNGs named ``img{i}.png`` (and ``img{i}_GT.png`` masks); returns the image names."""
    root.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(count):
        name = f"img{i}.png"
        (root / name).write_bytes(encode(make_image(seed + i), "png"))
        if masks:
            mask = np.zeros((48, 64, 1), dtype=np.uint8)
            (root / f"img{i}_GT.png").write_bytes(encode(mask, "png"))
        names.append(name)
    return names


def write_video(path: Path, count: int, *, fps: float = 10.0, size: tuple[int, int] = (64, 48)) -> list[int]:
    """An MJPG .avi of ``count`` flat grey frames (levels 0, 20, 40...); returns each frame's level."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, size)
    assert writer.isOpened(), "OpenCV cannot write MJPG video here"
    levels = [(20 * i) % 256 for i in range(count)]
    for level in levels:
        writer.write(np.full((size[1], size[0], 3), level, dtype=np.uint8))
    writer.release()
    return levels


def settings(**overrides: Any) -> CameraSettings:
    """Camera settings for a test: fast reconnects, immediate drop events, no environment leaks, and
    no trigger token (every test trigger listens on loopback)."""
    values: dict[str, Any] = {
        "source": "folder:///nonexistent",
        "fps": 0.0,
        "reconnect_initial_s": 0.05,
        "reconnect_max_s": 0.2,
        "drop_event_interval_s": 0.0,
        "read_timeout_s": 2.0,
        "trigger_auth": "none",  # loopback triggers in tests; tests of the auth set it back to bearer
    }
    values.update(overrides)
    return CameraSettings.load(**values)
