"""From a grabbed image to a ``Frame`` record: crop to the region of interest, resize, encode.

Kept apart from the loop so the pixel path is a pure function a unit test can check exactly, and so
the encode time the metrics report is the encode time only.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import cv2
import numpy as np
from edgeinspect.core.errors import ImageError
from edgeinspect.core.images import ImageArray, encode
from edgeinspect.core.messages import Encoding, Frame

from edgeinspect_camera.settings import Box


def new_frame_id() -> str:
    """A globally unique frame id (32 hex characters), known before the frame is published."""
    return uuid.uuid4().hex


def crop(image: ImageArray, box: Box) -> ImageArray:
    """The part of ``image`` inside ``box`` (x, y, w, h), clipped to the image.

    A box that misses the image entirely is an error rather than an empty frame, so a camera
    resolution change shows up as a ``frame_error`` naming the ROI instead of blank frames.
    """
    x, y, w, h = box
    height, width = image.shape[:2]
    x1, y1 = min(x + w, width), min(y + h, height)
    if x >= width or y >= height or x1 <= x or y1 <= y:
        raise ImageError(
            f"region of interest {box} lies outside the {width}x{height} image",
            hint="fix EI_ROI for this camera's resolution",
        )
    return image[y:y1, x:x1]


def resize(image: ImageArray, size: tuple[int, int]) -> ImageArray:
    """Resize to (width, height); area interpolation keeps small defects visible when shrinking."""
    if (image.shape[1], image.shape[0]) == size:
        return image
    out = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
    return out[:, :, None] if out.ndim == 2 else out


@dataclass(frozen=True, slots=True)
class FrameBuilder:
    """The settings of the pixel path, applied to every frame of one camera."""

    line: str
    camera: str
    encoding: Encoding = "png"
    jpeg_quality: int = 90
    png_compression: int = 1
    roi: Box | None = None
    size: tuple[int, int] | None = None

    def prepare(self, image: ImageArray) -> ImageArray:
        """Crop and resize (no encoding)."""
        if self.roi is not None:
            image = crop(image, self.roi)
        if self.size is not None:
            image = resize(image, self.size)
        return np.ascontiguousarray(image)

    def build(
        self, image: ImageArray, *, frame_id: str, ts_ns: int, source: str, part_id: str = ""
    ) -> tuple[Frame, float]:
        """The frame record and how many seconds encoding took (for the encode histogram)."""
        pixels = self.prepare(image)
        started = time.perf_counter()
        data = encode(pixels, self.encoding, quality=self.jpeg_quality, compress_level=self.png_compression)
        took = time.perf_counter() - started
        height, width = pixels.shape[:2]
        channels = pixels.shape[2] if pixels.ndim == 3 else 1
        frame = Frame(
            frame_id=frame_id,
            line=self.line,
            camera=self.camera,
            ts_ns=ts_ns,
            encoding=self.encoding,
            height=int(height),
            width=int(width),
            channels=int(channels),
            data=data,
            source=source,
            part_id=part_id,
        )
        return frame, took
