"""The one interface every frame source implements, and the errors the capture loop tells apart.

The loop treats two failures differently, so sources must raise the right one:
``SourceError`` means the source itself is gone (camera unplugged, RTSP stream dropped, folder
removed): the loop reports ``source_down`` and reconnects with backoff. ``FrameUnreadable`` means
one frame is bad (a corrupt PNG in a replay folder): the loop reports ``frame_error`` and goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from edgeinspect.core.errors import EdgeInspectError, ImageError
from edgeinspect.core.images import ImageArray


class SourceError(EdgeInspectError):
    """The source cannot be opened or stopped delivering; the capture loop reconnects."""


class FrameUnreadable(ImageError):
    """One frame could not be read or decoded; ``name`` says which (a file name, a frame index)."""

    def __init__(self, name: str, reason: str, *, hint: str = "") -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"cannot read frame {name}: {reason}", hint=hint)


@dataclass(frozen=True, slots=True)
class Grab:
    """One captured image (HxWxC uint8 RGB, or HxWx1 grey) and where it came from.

    ``ts_ns`` and ``frame_id`` are set by sources that stamp frames themselves (the HTTP trigger
    answers the caller with the id before the frame is published); otherwise the loop stamps them.
    ``part_id`` is what a PLC called the part in front of the camera (a trigger's ``?part_id=``).
    """

    image: ImageArray
    source: str
    ts_ns: int | None = None
    frame_id: str | None = None
    part_id: str = ""  # the PLC's part id a trigger sent with the request (empty: none)


class FrameSource(Protocol):
    """A camera, a video, a folder or a trigger: ``open``, then ``read`` until ``done``, then ``close``."""

    @property
    def name(self) -> str:
        """What to call the source in events and logs (credentials removed)."""
        ...

    @property
    def triggered(self) -> bool:
        """True when an outside caller decides when frames come (no pacing, no waiting for room)."""
        ...

    @property
    def done(self) -> bool:
        """True when a finite source (a replay without loop, a video file) has no more frames."""
        ...

    def open(self) -> None:
        """Connect; raises ``SourceError`` when the source is not there (the loop retries)."""
        ...

    def read(self) -> Grab | None:
        """The next frame, or ``None`` when there is none right now (see ``done``).

        Raises ``SourceError`` when the source is lost and ``FrameUnreadable`` for one bad frame.
        """
        ...

    def close(self) -> None:
        """Release the device or file; safe to call twice or after a failed ``open``."""
        ...
