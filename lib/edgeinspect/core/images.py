"""Image codecs shared by camera, worker, uploader and UI: bytes <-> ``numpy`` HxWxC uint8 RGB.

Decoding checks the declared size before pixels are decompressed, so a corrupt or hostile frame
(a decompression bomb, a truncated PNG) becomes an ``ImageError`` with a reason, never a crash.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import numpy.typing as npt
from PIL import Image

from edgeinspect.core.errors import ImageError

MAX_PIXELS = 50_000_000


class ImageTooLarge(ImageError):
    """The image's header declares more pixels than may be decoded."""


ImageArray = npt.NDArray[np.uint8]


def decode(
    data: bytes,
    encoding: str,
    *,
    height: int | None = None,
    width: int | None = None,
    channels: int | None = None,
    max_pixels: int = MAX_PIXELS,
) -> ImageArray:
    """Decode ``png``/``jpeg``/``raw`` bytes to an HxWxC uint8 array (RGB, or HxWx1 for grey)."""
    if not data:
        raise ImageError("image data is empty", hint="check the camera source")
    if encoding == "raw":
        return _decode_raw(data, height, width, channels)
    if encoding not in ("png", "jpeg"):
        raise ImageError(f"unknown image encoding {encoding!r}", hint="use png, jpeg or raw")
    return _decode_compressed(data, encoding, max_pixels)


def _decode_raw(data: bytes, height: int | None, width: int | None, channels: int | None) -> ImageArray:
    if not height or not width or not channels:
        raise ImageError("raw frames need height, width and channels", hint="set them on the frame record")
    expected = height * width * channels
    if len(data) != expected:
        raise ImageError(
            f"raw frame has {len(data)} bytes; {height}x{width}x{channels} uint8 needs {expected}",
            hint="check the camera's resolution and pixel format settings",
        )
    return np.frombuffer(data, dtype=np.uint8).reshape(height, width, channels)


def _decode_compressed(data: bytes, encoding: str, max_pixels: int) -> ImageArray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > max_pixels:
                raise ImageError(
                    f"image is {image.width}x{image.height}, over the limit of {max_pixels} pixels",
                    hint="lower the camera resolution or raise the limit",
                )
            image.load()
    except ImageError:
        raise
    except Exception as exc:  # hostile bytes make Pillow's parsers raise anything (struct.error, ...)
        raise ImageError(
            f"cannot decode {encoding} image ({len(data)} bytes): {exc}",
            hint="the file is corrupt or truncated; check the source",
        ) from exc
    if image.mode in ("L", "I;16", "I", "F"):
        return np.asarray(image.convert("L"), dtype=np.uint8)[:, :, None]
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def dimensions(data: bytes, formats: tuple[str, ...] | None = None) -> tuple[int, int]:
    """``(width, height)`` read from the image's header, without decompressing a pixel.

    For callers that must refuse an oversize image before spending memory on it (the camera's HTTP
    trigger); ``formats`` (Pillow names, e.g. ``("PNG", "JPEG")``) limits which parsers may look at
    untrusted bytes at all. ``ImageError`` when the header cannot be read.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=formats) as image:
                return int(image.width), int(image.height)
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"image is too large to decode: {exc}", hint="send a smaller image") from exc
    except Exception as exc:  # hostile bytes make Pillow's parsers raise anything (struct.error, ...)
        raise ImageError(f"cannot decode the image header: {exc}", hint="send a PNG or JPEG file") from exc


def encode(image: ImageArray, encoding: str, *, quality: int = 90, compress_level: int = 1) -> bytes:
    """Encode an HxWxC (or HxW) uint8 array; ``compress_level`` 1 keeps PNG fast on the hot path."""
    array = np.ascontiguousarray(image)
    if array.dtype != np.uint8:
        raise ImageError(f"images must be uint8, got {array.dtype}")
    if encoding == "raw":
        return array.tobytes()
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    pil = Image.fromarray(array)
    buf = io.BytesIO()
    if encoding == "png":
        pil.save(buf, format="PNG", compress_level=compress_level)
    elif encoding == "jpeg":
        pil.save(buf, format="JPEG", quality=quality)
    else:
        raise ImageError(f"unknown image encoding {encoding!r}", hint="use png, jpeg or raw")
    return buf.getvalue()


def encode_mask(mask: npt.NDArray[np.bool_] | ImageArray) -> bytes:
    """A binary mask as a 0/255 greyscale PNG (the format of ``_GT.png`` files and of results)."""
    values = np.where(np.greater(mask, 0), 255, 0).astype(np.uint8)
    if values.ndim == 3:
        values = values[:, :, 0]
    return encode(values, "png", compress_level=1)


def decode_mask(data: bytes) -> npt.NDArray[np.bool_]:
    """A PNG mask back to an HxW boolean array (any non-zero pixel is defect)."""
    plane: ImageArray = decode(data, "png")[:, :, 0]
    return np.greater(plane, 0)
