"""The camera's settings (``EI_`` environment variables), validated once at start-up.

A wrong value fails fast with the variable's name (``ServiceSettings.load``), so a line technician
sees ``EI_ROI: ...`` instead of a stack trace from the first frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal
from urllib.parse import urlsplit

from edgeinspect.core import names
from edgeinspect.core.messages import Encoding
from edgeinspect.core.settings import ServiceSettings
from edgeinspect.core.webguard import is_loopback
from pydantic import Field, SecretStr, field_validator, model_validator

DropPolicy = Literal["drop_oldest", "drop_newest"]
Order = Literal["name", "shuffle"]
Box = tuple[int, int, int, int]


def parse_roi(text: str) -> Box | None:
    """``"x,y,w,h"`` in pixels of the source image -> a box; ``""`` -> no crop."""
    if not text.strip():
        return None
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        raise ValueError(f"{text!r} is not 'x,y,width,height' in whole pixels, e.g. '0,0,640,480'")
    x, y, w, h = (int(p) for p in parts)
    if w == 0 or h == 0:
        raise ValueError(f"{text!r} has a zero width or height")
    return x, y, w, h


def parse_size(text: str) -> tuple[int, int] | None:
    """``"WxH"`` -> (width, height); ``""`` -> keep the size."""
    if not text.strip():
        return None
    parts = text.lower().replace(" ", "").split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"{text!r} is not 'WIDTHxHEIGHT' in pixels, e.g. '640x480'")
    return int(parts[0]), int(parts[1])


class CameraSettings(ServiceSettings):
    """Everything the camera service reads from the environment (see the service README)."""

    service_name: ClassVar[str] = "camera"

    source: str = Field(
        description="folder:///dir, file:///video.mp4, rtsp://..., usb:0, /dev/video0, "
        "http://HOST:PORT (trigger server) or genicam://[SERIAL]"
    )
    camera: str = Field(default="cam-1", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    fps: float = Field(default=5.0, ge=0.0, le=1000.0, description="0: as fast as the line consumes")
    encoding: Encoding = "png"
    jpeg_quality: int = Field(default=90, ge=1, le=100)
    png_compression: int = Field(default=1, ge=0, le=9, description="zlib level; 1 is fast")
    roi: str = Field(default="", description="crop 'x,y,width,height' before resizing")
    resize: str = Field(default="", description="'WIDTHxHEIGHT' after the crop")
    drop_policy: DropPolicy = "drop_oldest"
    max_backlog: int = Field(default=32, ge=1, description="unconsumed frames allowed in the stream")
    backlog_group: str = Field(default=names.INFERENCE_GROUP, description="consumer group whose lag counts")
    order: Order = "name"
    loop: bool = True
    seed: int = 0
    trigger_source: str = Field(default="", description="source that POST /capture grabs from")
    trigger_queue: int = Field(default=64, ge=1, description="posted frames waiting to be published")
    trigger_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    trigger_max_pixels: int = Field(
        default=25_000_000, ge=1, description="posted images declaring more pixels get 413 before decoding"
    )
    trigger_decode_slots: int = Field(default=2, ge=1, description="posted images decoded at once")
    trigger_max_connections: int = Field(
        default=32, ge=1, description="HTTP connections served at once; more get 503"
    )
    trigger_request_timeout_s: float = Field(
        default=10.0, gt=0.0, description="time a client has to send a whole request"
    )
    trigger_auth: Literal["bearer", "none"] = Field(
        default="bearer",
        description="bearer (default; a token is generated when EI_TRIGGER_TOKEN is unset) or none "
        "(only when the trigger listens on loopback)",
    )
    trigger_token: SecretStr | None = Field(
        default=None, description="the bearer token callers send; unset: one is generated once"
    )
    trigger_state_dir: Path = Field(
        default=Path("~/.local/state/edgeinspect/camera"),
        description="where a generated token is kept (file trigger-token, mode 0600) so restarts reuse it",
    )
    trigger_allowed_hosts: str = Field(
        default="",
        description="comma-separated Host names the trigger answers to besides loopback and its listen "
        "address; * turns the check off",
    )
    reconnect_initial_s: float = Field(default=0.5, gt=0.0)
    reconnect_max_s: float = Field(default=30.0, gt=0.0)
    read_timeout_s: float = Field(default=5.0, gt=0.0, description="OpenCV/GenICam open and read timeout")
    drop_event_interval_s: float = Field(default=1.0, ge=0.0, description="batching of frame_dropped")
    genicam_cti: str = Field(default="", description="GenTL producer (.cti) file; else GENICAM_GENTL64_PATH")

    @field_validator("roi")
    @classmethod
    def _check_roi(cls, value: str) -> str:
        parse_roi(value)
        return value

    @field_validator("resize")
    @classmethod
    def _check_resize(cls, value: str) -> str:
        parse_size(value)
        return value

    @model_validator(mode="after")
    def _check_backlog(self) -> CameraSettings:
        if self.max_backlog >= self.stream_maxlen:
            raise ValueError(
                f"EI_MAX_BACKLOG ({self.max_backlog}) must be below EI_STREAM_MAXLEN ({self.stream_maxlen}), "
                "or MAXLEN trimming would drop unconsumed frames uncounted"
            )
        return self

    @model_validator(mode="after")
    def _check_trigger_auth(self) -> CameraSettings:
        if self.trigger_auth == "none" and self.source.startswith("http://"):
            host = urlsplit(self.source).hostname or ""
            if not is_loopback(host):
                raise ValueError(
                    f"EI_TRIGGER_AUTH=none is allowed only when the trigger listens on loopback, not on "
                    f"{host or 'every interface'!r} (EI_SOURCE={self.source}): use bearer (the default; "
                    "a token is generated) or listen on 127.0.0.1"
                )
        return self

    def trigger_token_file(self) -> Path:
        """Where a generated trigger token lives (``~`` expanded)."""
        return self.trigger_state_dir.expanduser() / "trigger-token"

    @property
    def roi_box(self) -> Box | None:
        return parse_roi(self.roi)

    @property
    def resize_to(self) -> tuple[int, int] | None:
        return parse_size(self.resize)
