"""GenICam / GigE Vision / USB3 Vision cameras through ``harvesters`` and a vendor's GenTL producer.

Industrial cameras speak GenTL through a producer library (a ``.cti`` file from the camera vendor or
a generic one); ``harvesters`` is the Python consumer. Both are optional: the import happens in
``open()`` only, so the service and its tests run where neither is installed, and a missing piece
becomes a ``SourceError`` that says how to install it.

URL: ``genicam://`` (the first camera found), ``genicam://SERIAL`` (that serial number), optionally
``?cti=/opt/vendor/producer.cti``; otherwise ``EI_GENICAM_CTI``, then every ``*.cti`` in the
directories of the standard ``GENICAM_GENTL64_PATH`` variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np
from edgeinspect.core.images import ImageArray

from edgeinspect_camera.sources.base import FrameUnreadable, Grab, SourceError

INSTALL_HINT = (
    "pip install 'harvesters>=1.4' and install your camera vendor's GenTL producer (.cti), then set "
    "EI_GENICAM_CTI=/path/producer.cti or GENICAM_GENTL64_PATH to its directory"
)
# GenICam names a Bayer pattern by its first two pixels; OpenCV by the second row's, shifted by one.
_BAYER = {
    "BayerRG8": cv2.COLOR_BayerBG2RGB,
    "BayerBG8": cv2.COLOR_BayerRG2RGB,
    "BayerGR8": cv2.COLOR_BayerGB2RGB,
    "BayerGB8": cv2.COLOR_BayerGR2RGB,
}
_MONO_BITS = {"Mono8": 8, "Mono10": 10, "Mono12": 12, "Mono14": 14, "Mono16": 16}


@dataclass(frozen=True, slots=True)
class GenICamTarget:
    """Which camera (``serial`` empty: the first) through which producer files."""

    serial: str
    producers: tuple[Path, ...]


def find_producers(explicit: str, environ: Mapping[str, str]) -> tuple[Path, ...]:
    """``.cti`` files: the one named explicitly, else all in ``GENICAM_GENTL64_PATH`` directories."""
    if explicit:
        return (Path(explicit),)
    found: list[Path] = []
    for directory in environ.get("GENICAM_GENTL64_PATH", "").split(os.pathsep):
        if directory and Path(directory).is_dir():
            found.extend(sorted(Path(directory).glob("*.cti")))
    return tuple(found)


def parse_genicam_url(url: str, cti_setting: str, environ: Mapping[str, str]) -> GenICamTarget:
    """``genicam://SERIAL?cti=...`` -> a target; the URL's ``cti`` wins over the setting."""
    parts = urlsplit(url)
    cti = parse_qs(parts.query).get("cti", [cti_setting])[0]
    return GenICamTarget(serial=parts.netloc, producers=find_producers(cti, environ))


def to_rgb(data: np.ndarray[Any, Any], width: int, height: int, pixel_format: str) -> ImageArray:
    """A GenTL buffer component as an HxWxC uint8 image (grey stays one channel)."""
    if pixel_format in _MONO_BITS:
        plane = data.reshape(height, width)
        shift = _MONO_BITS[pixel_format] - 8
        if shift:
            plane = (plane.astype(np.uint16) >> shift).clip(0, 255)
        return np.ascontiguousarray(plane.astype(np.uint8)[:, :, None])
    if pixel_format in ("RGB8", "RGB8Packed"):
        return np.ascontiguousarray(data.reshape(height, width, 3).astype(np.uint8))
    if pixel_format in ("BGR8", "BGR8Packed"):
        return np.ascontiguousarray(data.reshape(height, width, 3)[:, :, ::-1].astype(np.uint8))
    if pixel_format in _BAYER:
        mosaic = np.ascontiguousarray(data.reshape(height, width).astype(np.uint8))
        return np.ascontiguousarray(cv2.cvtColor(mosaic, _BAYER[pixel_format]))
    raise FrameUnreadable(
        f"{pixel_format} buffer",
        f"pixel format {pixel_format} is not supported",
        hint="set the camera's PixelFormat to Mono8, RGB8 or a Bayer*8 format",
    )


class GenICamSource:
    """One GenTL image acquirer; a fetch timeout or a lost device is a lost source (reconnect)."""

    def __init__(self, target: GenICamTarget, *, timeout_s: float = 5.0) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self._harvester: Any = None
        self._acquirer: Any = None

    @property
    def name(self) -> str:
        return f"genicam://{self.target.serial}"

    @property
    def triggered(self) -> bool:
        """The loop paces reads (``EI_FPS``); this source does not decide when frames come."""
        return False

    @property
    def done(self) -> bool:
        return False

    def open(self) -> None:
        self.close()
        harvester_type = _import_harvester()
        if not self.target.producers:
            raise SourceError("no GenTL producer (.cti) is installed", hint=INSTALL_HINT)
        harvester = harvester_type()
        self._harvester = harvester
        try:
            for producer in self.target.producers:
                harvester.add_file(str(producer))
            harvester.update()
            self._acquirer = self._create_acquirer(harvester)
            self._acquirer.start()
        except SourceError:
            self.close()
            raise
        except Exception as exc:  # harvesters and genicam raise many unrelated types
            self.close()
            raise SourceError(f"cannot start GenICam camera {self.name}: {exc}", hint=INSTALL_HINT) from exc

    def read(self) -> Grab | None:
        if self._acquirer is None:
            raise SourceError(f"{self.name} is not open")
        fetch = getattr(self._acquirer, "fetch", None) or self._acquirer.fetch_buffer
        try:
            with fetch(timeout=self.timeout_s) as buffer:
                component = buffer.payload.components[0]
                image = to_rgb(
                    np.asarray(component.data),
                    int(component.width),
                    int(component.height),
                    str(component.data_format),
                )
        except FrameUnreadable:
            raise
        except Exception as exc:  # a timeout or a lost device: both mean reconnect
            raise SourceError(f"GenICam camera {self.name} stopped delivering: {exc}") from exc
        return Grab(image=image, source=self.name)

    def close(self) -> None:
        acquirer, harvester = self._acquirer, self._harvester
        self._acquirer = self._harvester = None
        for action in (
            getattr(acquirer, "stop", None),
            getattr(acquirer, "destroy", None),
            getattr(harvester, "reset", None),
        ):
            if action is not None:
                try:
                    action()
                except Exception:  # closing a camera that is already gone must not mask the outage
                    continue

    def _create_acquirer(self, harvester: Any) -> Any:
        devices = list(harvester.device_info_list)
        if not devices:
            raise SourceError(
                "the GenTL producer sees no camera", hint="check cabling, power and network/MTU"
            )
        create = getattr(harvester, "create", None) or harvester.create_image_acquirer
        if not self.target.serial:
            return create(0)
        serials = [str(getattr(d, "serial_number", "")) for d in devices]
        if self.target.serial not in serials:
            raise SourceError(
                f"no GenICam camera with serial {self.target.serial}; found {', '.join(serials)}",
                hint="fix the serial in EI_SOURCE",
            )
        return create(serials.index(self.target.serial))


def _import_harvester() -> Any:
    """The ``Harvester`` class, imported only when a GenICam source is actually opened."""
    try:
        from harvesters.core import Harvester  # type: ignore[import-not-found, unused-ignore]
    except ImportError as exc:
        raise SourceError("the harvesters library is not installed", hint=INSTALL_HINT) from exc
    return Harvester
