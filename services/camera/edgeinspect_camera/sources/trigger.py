"""Trigger mode: a PLC or line controller decides when a frame is taken, over HTTP.

``POST /frames`` with an image body (PNG/JPEG/BMP/TIFF) or ``POST /capture`` ("capture now" from
``EI_TRIGGER_SOURCE``) answers ``202 {"frame_id", "ts_ns"}`` at once; the frame joins a bounded queue
that the capture loop drains, so the controller never waits for encoding or Redis. A corrupt body is
refused with 400 and a reason before anything is queued; an image that declares more than
``max_pixels`` is refused with 413 from its header, before a pixel is decompressed; and at most
``decode_slots`` images are decoded at once (a request waits up to ``DECODE_WAIT_S`` for a slot, then
gets 503), so 16 concurrent 7000x7000 PNGs cannot take the camera to gigabytes.
"""

from __future__ import annotations

import queue
import threading

from edgeinspect.core.errors import ImageError
from edgeinspect.core.images import ImageTooLarge, decode, dimensions
from edgeinspect.core.observability import get_logger

from edgeinspect_camera.clock import Clock
from edgeinspect_camera.frames import new_frame_id
from edgeinspect_camera.sources.base import FrameSource, FrameUnreadable, Grab, SourceError
from edgeinspect_camera.sources.trigger_http import (
    DecoderBusy,
    FrameTooLarge,
    NoCaptureSource,
    QueueFull,
    TriggerGuard,
    TriggerServer,
)

log = get_logger(__name__)
POLL_S = 0.2
DECODE_WAIT_S = 5.0
TRIGGER_FORMATS = ("PNG", "JPEG", "BMP", "TIFF")


class TriggerSource:
    """A frame source fed by HTTP requests; ``read`` waits briefly for the next posted frame."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        clock: Clock,
        capture_source: FrameSource | None = None,
        queue_size: int = 64,
        max_bytes: int = 64 * 1024 * 1024,
        max_pixels: int = 25_000_000,
        decode_slots: int = 2,
        max_connections: int = 32,
        request_timeout_s: float = 10.0,
        guard: TriggerGuard | None = None,
    ) -> None:
        self.host = host
        self.guard = guard
        self.requested_port = port
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.max_connections = max_connections
        self.request_timeout_s = request_timeout_s
        self._decode_slots = threading.BoundedSemaphore(decode_slots)
        self._clock = clock
        self._capture = capture_source
        self._capture_open = False
        self._capture_lock = threading.Lock()
        self._queue: queue.Queue[Grab] = queue.Queue(maxsize=queue_size)
        self._server: TriggerServer | None = None

    @property
    def name(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def port(self) -> int:
        """The port actually listened on (useful when 0 asked for a free one)."""
        return self._server.port if self._server is not None else self.requested_port

    @property
    def triggered(self) -> bool:
        """Frames come when a caller asks, so the loop neither paces nor waits for room."""
        return True

    @property
    def done(self) -> bool:
        return False

    def open(self) -> None:
        """Start listening (once; a reconnect keeps the server and its queue)."""
        if self._server is not None:
            return
        try:
            self._server = TriggerServer(
                self,
                self.host,
                self.requested_port,
                max_connections=self.max_connections,
                request_timeout_s=self.request_timeout_s,
                guard=self.guard,
            ).start()
        except OSError as exc:
            raise SourceError(
                f"cannot listen for triggers on {self.host}:{self.requested_port}: {exc.strerror or exc}",
                hint="pick a free port in EI_SOURCE (http://HOST:PORT)",
            ) from exc
        auth = "none" if self.guard is None or not self.guard.token else "bearer"
        log.info("trigger_listening", host=self.host, port=self.port, auth=auth)

    def read(self) -> Grab | None:
        """The next accepted frame; after ``close`` still returns those already queued, then None."""
        try:
            if self._server is None:
                return self._queue.get_nowait()
            return self._queue.get(timeout=POLL_S)
        except queue.Empty:
            return None

    def close(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        with self._capture_lock:
            if self._capture is not None:
                self._capture.close()
            self._capture_open = False

    def submit_image(self, body: bytes, source: str, part_id: str = "") -> Grab:
        """Decode a posted image (``FrameUnreadable`` if it is not one) and queue it."""
        ts_ns = self._clock.time_ns()
        try:
            self._check_pixels(body, source)
            if not self._decode_slots.acquire(timeout=DECODE_WAIT_S):
                raise DecoderBusy(
                    f"every decode slot stayed busy for {DECODE_WAIT_S}s",
                    hint="retry; or slow the trigger rate, or raise EI_TRIGGER_DECODE_SLOTS",
                )
            try:
                image = decode(body, "png", max_pixels=self.max_pixels)
            finally:
                self._decode_slots.release()
        except ImageError as exc:
            raise FrameUnreadable(
                source or "posted image",
                exc.message,
                hint="POST the bytes of a PNG, JPEG, BMP or TIFF file as the request body",
            ) from exc
        return self._enqueue(
            Grab(
                image=image,
                source=source or "http-post",
                ts_ns=ts_ns,
                frame_id=new_frame_id(),
                part_id=part_id,
            )
        )

    def _check_pixels(self, body: bytes, source: str) -> None:
        """Refuse an image over ``max_pixels`` from its header alone; a header that is not PNG, JPEG,
        BMP or TIFF is refused here too (``ImageError``), so no other parser sees the bytes."""
        try:
            width, height = dimensions(body, TRIGGER_FORMATS)
        except ImageTooLarge as exc:
            raise FrameTooLarge(
                exc.message, hint="send a smaller image, or raise EI_TRIGGER_MAX_PIXELS"
            ) from exc
        if width * height > self.max_pixels:
            raise FrameTooLarge(
                f"{source or 'posted image'} is {width}x{height}, over the limit of {self.max_pixels} pixels",
                hint="send a smaller image, or raise EI_TRIGGER_MAX_PIXELS",
            )

    def capture_now(self, part_id: str = "") -> Grab:
        """Grab one frame from the capture source at this moment and queue it."""
        if self._capture is None:
            raise NoCaptureSource(
                "POST /capture needs a capture source and none is configured",
                hint="set EI_TRIGGER_SOURCE (usb:0, rtsp://..., folder:///...) or POST an image to /frames",
            )
        with self._capture_lock:
            grab = self._grab_from(self._capture)
        stamped = Grab(
            image=grab.image,
            source=grab.source,
            ts_ns=self._clock.time_ns(),
            frame_id=new_frame_id(),
            part_id=part_id,
        )
        return self._enqueue(stamped)

    def _grab_from(self, source: FrameSource) -> Grab:
        if not self._capture_open:
            source.open()
            self._capture_open = True
        try:
            grab = source.read()
        except SourceError:
            source.close()
            self._capture_open = False
            raise
        if grab is None:
            raise SourceError(
                f"capture source {source.name} has no frame to give", hint="check EI_TRIGGER_SOURCE"
            )
        return grab

    def _enqueue(self, grab: Grab) -> Grab:
        try:
            self._queue.put_nowait(grab)
        except queue.Full as exc:
            raise QueueFull(
                f"{self._queue.maxsize} triggered frames are already waiting to be published",
                hint="slow the trigger rate, or raise EI_TRIGGER_QUEUE",
            ) from exc
        return grab
