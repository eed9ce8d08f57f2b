"""Frame sources behind one interface (``FrameSource``), chosen by the scheme of ``EI_SOURCE``.

| URL                              | source                                   |
| -------------------------------- | ---------------------------------------- |
| ``folder:///data/line-1``        | ``FolderSource`` (image replay)          |
| ``file:///data/clip.mp4``        | ``OpenCVSource`` (video file)            |
| ``rtsp://user:pw@cam/stream``    | ``OpenCVSource`` (network camera)        |
| ``usb:0`` / ``/dev/video0``      | ``OpenCVSource`` (USB / V4L2 camera)     |
| ``http://0.0.0.0:8090``          | ``TriggerSource`` (listens for triggers) |
| ``genicam://[SERIAL][?cti=...]`` | ``GenICamSource`` (harvesters + GenTL)   |

Adding a source means a class with ``open``/``read``/``close`` and one line here; the capture loop
never changes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from edgeinspect.core.errors import ConfigError
from edgeinspect.core.observability import get_logger
from edgeinspect.core.webguard import announced_secret

from edgeinspect_camera.clock import Clock
from edgeinspect_camera.settings import CameraSettings
from edgeinspect_camera.sources.base import FrameSource, FrameUnreadable, Grab, SourceError
from edgeinspect_camera.sources.folder import FolderSource
from edgeinspect_camera.sources.genicam import GenICamSource, parse_genicam_url
from edgeinspect_camera.sources.opencv import OpenCVSource, parse_target
from edgeinspect_camera.sources.trigger import TriggerSource
from edgeinspect_camera.sources.trigger_http import TriggerGuard

__all__ = ["FrameSource", "FrameUnreadable", "Grab", "SourceError", "make_source"]
log = get_logger(__name__)


def make_source(
    url: str, settings: CameraSettings, clock: Clock, environ: Mapping[str, str] | None = None
) -> FrameSource:
    """The source for ``url``; ``ConfigError`` for a URL no source handles (checked at start-up)."""
    if url.startswith("folder://"):
        return FolderSource(url_path(url), order=settings.order, loop=settings.loop, seed=settings.seed)
    if url.startswith("genicam://"):
        target = parse_genicam_url(url, settings.genicam_cti, os.environ if environ is None else environ)
        return GenICamSource(target, timeout_s=settings.read_timeout_s)
    if url.startswith("http://"):
        return _trigger(url, settings, clock, environ)
    return OpenCVSource(parse_target(url), loop=settings.loop, timeout_s=settings.read_timeout_s)


def url_path(url: str) -> Path:
    """``folder:///abs/dir`` -> ``/abs/dir``; ``folder://rel/dir`` -> ``rel/dir`` (relative to the cwd)."""
    parts = urlsplit(url)
    return Path(parts.netloc + parts.path)


def _trigger(
    url: str, settings: CameraSettings, clock: Clock, environ: Mapping[str, str] | None
) -> TriggerSource:
    parts = urlsplit(url)
    if parts.path not in ("", "/"):
        raise ConfigError(
            f"EI_SOURCE {url!r}: a trigger source is http://HOST:PORT with no path",
            hint="the camera listens there for POST /frames and POST /capture",
        )
    if settings.trigger_source.startswith("http://"):
        raise ConfigError(
            "EI_TRIGGER_SOURCE cannot itself be a trigger", hint="use usb:0, rtsp://... or folder://..."
        )
    capture = (
        make_source(settings.trigger_source, settings, clock, environ) if settings.trigger_source else None
    )
    return TriggerSource(
        parts.hostname or "127.0.0.1",
        parts.port or 0,
        clock=clock,
        capture_source=capture,
        queue_size=settings.trigger_queue,
        max_bytes=settings.trigger_max_bytes,
        max_pixels=settings.trigger_max_pixels,
        decode_slots=settings.trigger_decode_slots,
        max_connections=settings.trigger_max_connections,
        request_timeout_s=settings.trigger_request_timeout_s,
        guard=trigger_guard(settings, parts.hostname or "127.0.0.1"),
    )


def trigger_guard(settings: CameraSettings, host: str) -> TriggerGuard:
    """The trigger's token (``EI_TRIGGER_TOKEN``, or generated once and printed) and Host allow-list."""
    token = ""
    if settings.trigger_token is not None:
        token = settings.trigger_token.get_secret_value()
    elif settings.trigger_auth == "bearer":
        path = settings.trigger_token_file()
        token, created = announced_secret(
            path,
            "edgeinspect-camera",
            "a trigger token",
            "Callers of POST /frames and /capture send `Authorization: Bearer <token>` "
            "(the line I/O: EI_CAMERA_TOKEN).",
        )
        log.info("trigger_token_generated" if created else "trigger_token_loaded", path=str(path))
    return TriggerGuard.of(token, host, settings.trigger_allowed_hosts)
