"""Video files, RTSP streams and USB/V4L2 cameras, all read through OpenCV's ``VideoCapture``.

OpenCV says little when things fail (``read()`` returns ``False``), so this module decides what a
failure means: the end of a video file is the end of the source (or the next loop), while a live
stream or device that stops delivering is a lost source the capture loop reconnects to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import cv2
import numpy as np
from edgeinspect.core.errors import ConfigError
from edgeinspect.core.settings import redact_url

from edgeinspect_camera.sources.base import Grab, SourceError
from edgeinspect_camera.sources.latest import LatestFrameReader

Kind = Literal["file", "stream", "device"]
_DEV_VIDEO = re.compile(r"^/dev/video(\d+)$")


@dataclass(frozen=True, slots=True)
class Target:
    """What to hand ``cv2.VideoCapture``: a path, a URL or a device index, and how to treat EOF."""

    kind: Kind
    location: str | int
    label: str


def parse_target(url: str) -> Target:
    """``file:///v.mp4``, ``rtsp(s)://...``, ``usb:0`` or ``/dev/video0`` -> a ``Target``."""
    if url.startswith("file://"):
        parts = urlsplit(url)
        path = parts.netloc + parts.path  # file://clip.mp4 is relative, file:///clip.mp4 absolute
        return Target("file", path, f"file://{path}")
    if url.startswith(("rtsp://", "rtsps://")):
        return Target("stream", url, redact_url(url))  # events and logs never hold passwords
    if url.startswith("usb:") and url[4:].isdigit():
        return Target("device", int(url[4:]), url)
    match = _DEV_VIDEO.match(url)
    if match:
        return Target("device", url, url)
    raise ConfigError(
        f"EI_SOURCE {url!r} is not a source this camera knows",
        hint="use folder://, file://, rtsp://, usb:N, /dev/videoN, http://HOST:PORT or genicam://",
    )


class OpenCVSource:
    """One ``VideoCapture``; a video file ends (or loops), a live source that fails is lost.

    Files are read frame by frame (every frame, at the paced rate); live sources through a
    ``LatestFrameReader``, so a slow ``EI_FPS`` always gets the camera's newest frame.
    """

    def __init__(self, target: Target, *, loop: bool = False, timeout_s: float = 5.0) -> None:
        self.target = target
        self.loop = loop
        self.timeout_ms = int(timeout_s * 1000)
        self._capture: Any = None
        self._live: LatestFrameReader | None = None
        self._index = 0
        self._done = False

    @property
    def name(self) -> str:
        return self.target.label

    @property
    def triggered(self) -> bool:
        """The loop paces reads (``EI_FPS``); this source does not decide when frames come."""
        return False

    @property
    def done(self) -> bool:
        return self._done

    def open(self) -> None:
        self.close()
        location = self.target.location
        if self.target.kind == "file" and not Path(str(location)).is_file():
            raise SourceError(f"video file {location} does not exist", hint="check EI_SOURCE and the mount")
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            self.timeout_ms,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            self.timeout_ms,
        ]
        capture = cv2.VideoCapture(location, cv2.CAP_ANY, params)  # type: ignore[call-overload]
        if not capture.isOpened():
            capture.release()
            raise SourceError(
                f"OpenCV cannot open {self.name}",
                hint="check the URL, credentials, device permissions (video group) and codec support",
            )
        self._capture = capture
        self._index = 0
        if self.target.kind != "file":
            self._live = LatestFrameReader(capture, self.name, self.timeout_ms / 1000)

    def read(self) -> Grab | None:
        if self._done:
            return None
        if self._capture is None:
            raise SourceError(f"{self.name} is not open")
        if self._live is not None:
            return self._grab(self._live.take())
        ok, bgr = self._capture.read()
        if ok and bgr is not None:
            return self._grab(bgr)
        if not self.loop:
            self._done = True
            self.close()
            return None
        self.open()  # rewinding by reopening works for every container; raises if the file vanished
        ok, bgr = self._capture.read()
        if not ok or bgr is None:
            raise SourceError(f"video file {self.name} has no readable frames", hint="re-encode the file")
        return self._grab(bgr)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()  # releases the capture once its reader thread is out of read()
        elif self._capture is not None:
            self._capture.release()
        self._live = None
        self._capture = None

    def _grab(self, bgr: np.ndarray[Any, np.dtype[np.uint8]]) -> Grab:
        self._index += 1
        image = (
            bgr[:, :, None] if bgr.ndim == 2 else np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), np.uint8)
        )
        label = (
            f"{Path(str(self.target.location)).name}#{self._index - 1}"
            if self.target.kind == "file"
            else self.name
        )
        return Grab(image=np.ascontiguousarray(image, dtype=np.uint8), source=label)
