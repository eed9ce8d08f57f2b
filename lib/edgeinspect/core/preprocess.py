"""THE one preprocessing code path: a decoded frame becomes a model's input tensor, numpy only.

The edge worker and the cloud evaluation both call :func:`preprocess` with the ``input`` section of a
package manifest, so a model sees at the edge exactly what evaluation measured (train/deploy parity).
It has no dependency on a training framework, OpenCV or PIL on purpose: the same arithmetic on every
machine, in every container.

The steps, in this fixed order:

1. **Colour** (:func:`convert_colour`): frames arrive RGB (``HxWx3``) or grey (``HxWx1``) from
   :func:`edgeinspect.core.images.decode`. ``BGR`` reverses the channels; ``GRAY`` takes the ITU-R
   BT.601 luma ``(299 R + 587 G + 114 B) / 1000``, rounded; a grey frame for a 3-channel model is
   repeated into three equal channels.
2. **Resize** (:func:`plan`, :func:`resize_to_input`) with the manifest's policy:

   - ``stretch``: scale each axis independently to the input size (aspect ratio is not kept);
   - ``letterbox``: scale both axes by the same factor ``min(H/h, W/w)`` so the frame fits, and
     centre it on a canvas filled with :data:`PAD_VALUE`;
   - ``pad``: no scaling; the frame sits at the top-left corner and the canvas is filled with
     :data:`PAD_VALUE` below and to the right (a frame larger than the input is cropped there), so
     pixel coordinates are unchanged - the "pad, then crop" a 4-pool U-Net needs.

   Scaling is bilinear with half-pixel centres (the convention of OpenCV's ``INTER_LINEAR``); when
   shrinking by 2x or more, the frame is first averaged over whole blocks (an area filter) so small
   defects do not alias away. Results are rounded back to uint8.
3. **Layout**: ``HxWxC`` becomes a contiguous ``1xCxHxW`` array (NCHW, batch of one).
4. **Normalisation** ``(pixel * scale - mean) / std`` per channel, for a float input (``float32`` or
   ``float16``). A ``uint8`` input always receives raw pixels: either the graph normalises itself
   (``normalisation_in_graph``, the contract's default, 4x fewer bytes to move) or the model was trained
   on raw pixels; a uint8 tensor cannot hold normalised values anyway.

The returned :class:`Geometry` records where the frame landed on the canvas; :meth:`Geometry.to_frame`
is its exact inverse for a model-resolution plane (a segmentation mask): crop the frame's region and
scale it back (nearest neighbour) to the frame's resolution.

Example:
    >>> import numpy as np
    >>> from edgeinspect.core.package import InputSpec, Normalisation, Resize
    >>> spec = InputSpec(name="image", shape=[1, 3, 8, 8], dtype="uint8", colour="RGB",
    ...     resize=Resize(height=8, width=8, mode="letterbox"),
    ...     normalisation=Normalisation(mean=[0.0], std=[1.0]), normalisation_in_graph=True)
    >>> out = preprocess(np.zeros((4, 8, 3), np.uint8), spec)
    >>> out.tensor.shape, out.tensor.dtype, out.geometry.top
    ((1, 3, 8, 8), dtype('uint8'), 2)
    >>> out.geometry.to_frame(np.ones((8, 8), bool)).shape
    (4, 8)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from edgeinspect.core.errors import ImageError
from edgeinspect.core.package.manifest import Colour, InputSpec, Normalisation, Resize

ImageArray = npt.NDArray[np.uint8]
ResizeMode = Literal["stretch", "letterbox", "pad"]

PAD_VALUE = 0
"""The value of canvas pixels not covered by the frame (letterbox bars, pad margins): black."""

_LUMA = np.array([299, 587, 114], dtype=np.uint32)


@dataclass(frozen=True, slots=True)
class Geometry:
    """Where a frame's pixels landed on the model's input canvas, so the placement can be undone.

    The frame (``frame_height`` x ``frame_width``) was scaled to ``content_height`` x ``content_width``
    and its top-left corner placed at (``top``, ``left``) of the ``input_height`` x ``input_width``
    canvas; in ``pad`` mode content beyond the canvas is cropped.
    """

    frame_height: int
    frame_width: int
    input_height: int
    input_width: int
    mode: ResizeMode
    content_height: int
    content_width: int
    top: int
    left: int

    @property
    def is_identity(self) -> bool:
        """True when the canvas is the frame itself (no scaling, no padding, no crop)."""
        return (self.frame_height, self.frame_width) == (self.input_height, self.input_width)

    def to_frame(self, plane: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Map an ``input_height x input_width`` plane (a mask) back to the frame's resolution.

        Crops the frame's region out of the canvas (dropping letterbox bars and pad margins) and scales
        it back with nearest neighbour, so a binary mask stays binary. Frame pixels that were cropped
        away in ``pad`` mode come back as zeros (the model never saw them).
        """
        if plane.shape[:2] != (self.input_height, self.input_width):
            raise ImageError(
                f"plane is {plane.shape[0]}x{plane.shape[1]} but the model input is "
                f"{self.input_height}x{self.input_width}",
                hint="pass the model's output at its input resolution",
            )
        if self.is_identity:
            return plane
        if self.mode == "pad":
            out = np.zeros((self.frame_height, self.frame_width, *plane.shape[2:]), dtype=plane.dtype)
            rows, cols = min(self.frame_height, self.input_height), min(self.frame_width, self.input_width)
            out[:rows, :cols] = plane[:rows, :cols]
            return out
        region = plane[self.top : self.top + self.content_height, self.left : self.left + self.content_width]
        return resize_nearest(region, self.frame_height, self.frame_width)


@dataclass(frozen=True, slots=True)
class Preprocessed:
    """A model input (``1xCxHxW``, uint8 or float) and the geometry to map outputs back."""

    tensor: npt.NDArray[Any]
    geometry: Geometry


def preprocess(image: ImageArray, spec: InputSpec) -> Preprocessed:
    """Turn a decoded ``HxWxC`` uint8 frame into the tensor ``spec`` (a manifest's input) asks for."""
    image = _check_image(image)
    geometry = plan(image.shape[0], image.shape[1], spec.resize)
    repeat_after_resize = image.shape[2] == 1 and spec.colour != "GRAY"
    pixels = image if repeat_after_resize else convert_colour(image, spec.colour)
    canvas = resize_to_input(pixels, geometry)
    if repeat_after_resize:  # repeating grey commutes with resizing exactly, and is 3x cheaper after
        canvas = np.repeat(canvas, 3, axis=2)
    tensor: npt.NDArray[Any] = to_nchw(canvas)
    if spec.dtype != "uint8":  # the manifest allows normalisation_in_graph only with uint8 inputs
        tensor = normalise(tensor, spec.normalisation, np.dtype(spec.dtype))
    return Preprocessed(tensor=tensor, geometry=geometry)


def _check_image(image: npt.NDArray[Any]) -> ImageArray:
    if image.dtype != np.uint8:
        raise ImageError(
            f"frames must be uint8, got {image.dtype}", hint="decode with edgeinspect.core.images"
        )
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageError(f"frames must be HxWxC with H, W > 0, got shape {image.shape}")
    if image.shape[2] == 4:  # RGBA from a raw source: the model never sees alpha
        image = image[:, :, :3]
    if image.shape[2] not in (1, 3):
        raise ImageError(
            f"frames must have 1 (grey) or 3 (RGB) channels, got {image.shape[2]}",
            hint="check the camera's pixel format",
        )
    return image


def convert_colour(image: ImageArray, colour: Colour) -> ImageArray:
    """An RGB (``HxWx3``) or grey (``HxWx1``) frame in the model's colour order."""
    image = _check_image(image)
    grey = image.shape[2] == 1
    if colour == "GRAY":
        if grey:
            return image
        luma = (image.astype(np.uint32) @ _LUMA + 500) // 1000
        return luma.astype(np.uint8)[:, :, None]
    if grey:
        return np.repeat(image, 3, axis=2)
    return image[:, :, ::-1] if colour == "BGR" else image


def plan(frame_height: int, frame_width: int, resize: Resize) -> Geometry:
    """Where a frame of this size lands on the model's canvas under ``resize``'s policy."""
    height, width, mode = resize.height, resize.width, resize.mode
    if frame_height <= 0 or frame_width <= 0:
        raise ImageError(f"frame size must be positive, got {frame_height}x{frame_width}")
    if mode == "stretch":
        return Geometry(frame_height, frame_width, height, width, mode, height, width, 0, 0)
    if mode == "pad":
        return Geometry(frame_height, frame_width, height, width, mode, frame_height, frame_width, 0, 0)
    scale = min(height / frame_height, width / frame_width)
    content_h = min(height, max(1, int(frame_height * scale + 0.5)))
    content_w = min(width, max(1, int(frame_width * scale + 0.5)))
    top, left = (height - content_h) // 2, (width - content_w) // 2
    return Geometry(frame_height, frame_width, height, width, mode, content_h, content_w, top, left)


def resize_to_input(image: ImageArray, geometry: Geometry) -> ImageArray:
    """Place ``image`` (at the frame's resolution) on the model's canvas as ``geometry`` says."""
    if geometry.is_identity:
        return image
    if geometry.mode == "stretch":
        return resize_bilinear(image, geometry.input_height, geometry.input_width)
    canvas = np.full((geometry.input_height, geometry.input_width, image.shape[2]), PAD_VALUE, np.uint8)
    if geometry.mode == "pad":
        rows = min(geometry.frame_height, geometry.input_height)
        cols = min(geometry.frame_width, geometry.input_width)
        canvas[:rows, :cols] = image[:rows, :cols]
        return canvas
    content = resize_bilinear(image, geometry.content_height, geometry.content_width)
    canvas[
        geometry.top : geometry.top + geometry.content_height,
        geometry.left : geometry.left + geometry.content_width,
    ] = content
    return canvas


def resize_bilinear(image: ImageArray, height: int, width: int) -> ImageArray:
    """Bilinear resize of an ``HxWxC`` uint8 image (half-pixel centres, area pre-filter when shrinking)."""
    if image.shape[:2] == (height, width):
        return image
    image = _shrink_by_blocks(image, height, width)
    work = image.astype(np.float32)
    # Interpolate the axis that shrinks most first: the second pass then touches fewer pixels.
    if height * image.shape[1] <= image.shape[0] * width:
        work = _lerp_axis(work, height, axis=0)
        work = _lerp_axis(work, width, axis=1)
    else:
        work = _lerp_axis(work, width, axis=1)
        work = _lerp_axis(work, height, axis=0)
    return np.clip(np.rint(work), 0, 255).astype(np.uint8)


def _shrink_by_blocks(image: ImageArray, height: int, width: int) -> ImageArray:
    """Average whole ``fy x fx`` blocks when shrinking by 2x or more (an area filter against aliasing).

    The last ``< fy`` rows and ``< fx`` columns that do not fill a block are dropped: under one block,
    which at this scale is under one pixel of the model's input.
    """
    fy, fx = max(1, image.shape[0] // height), max(1, image.shape[1] // width)
    if fy == 1 and fx == 1:
        return image
    rows, cols = (image.shape[0] // fy) * fy, (image.shape[1] // fx) * fx
    blocks = image[:rows, :cols].reshape(rows // fy, fy, cols // fx, fx, image.shape[2])
    total = blocks.sum(axis=(1, 3), dtype=np.uint32)
    averaged: ImageArray = ((total + (fy * fx) // 2) // (fy * fx)).astype(np.uint8)
    return averaged


def _lerp_axis(work: npt.NDArray[np.float32], size: int, axis: int) -> npt.NDArray[np.float32]:
    """Linear interpolation along one axis to ``size`` samples, half-pixel centres, edges clamped."""
    length = work.shape[axis]
    if length == size:
        return work
    centres = (np.arange(size, dtype=np.float64) + 0.5) * (length / size) - 0.5
    centres = np.clip(centres, 0.0, length - 1)
    low = np.floor(centres).astype(np.intp)
    high = np.minimum(low + 1, length - 1)
    weight = (centres - low).astype(np.float32)
    shape = [1] * work.ndim
    shape[axis] = size
    weight = weight.reshape(shape)
    first: npt.NDArray[np.float32] = np.take(work, low, axis=axis)
    second: npt.NDArray[np.float32] = np.take(work, high, axis=axis)
    blended: npt.NDArray[np.float32] = first + (second - first) * weight
    return blended


def resize_nearest(plane: npt.NDArray[Any], height: int, width: int) -> npt.NDArray[Any]:
    """Nearest-neighbour resize of an ``HxW[xC]`` array of any dtype (keeps binary masks binary).

    Output pixel ``i`` takes source pixel ``floor((i + 0.5) * src / dst)``: for integer ratios this is
    the exact inverse of block replication, and a same-size call returns the input unchanged.
    """
    if plane.shape[:2] == (height, width):
        return plane
    rows = _nearest_indices(plane.shape[0], height)
    cols = _nearest_indices(plane.shape[1], width)
    picked: npt.NDArray[Any] = plane[np.ix_(rows, cols)]
    return picked


def _nearest_indices(length: int, size: int) -> npt.NDArray[np.intp]:
    indices = ((np.arange(size) + 0.5) * (length / size)).astype(np.intp)
    return np.minimum(indices, length - 1)


def to_nchw(image: ImageArray) -> ImageArray:
    """``HxWxC`` to a contiguous ``1xCxHxW`` (one copy; the agent takes it as raw bytes)."""
    return np.ascontiguousarray(image.transpose(2, 0, 1)[None])


def normalise(
    tensor: npt.NDArray[Any], norm: Normalisation, dtype: np.dtype[Any] | None = None
) -> npt.NDArray[Any]:
    """``(pixel * scale - mean) / std`` per channel of an ``NxCxHxW`` tensor, as float32 (or ``dtype``)."""
    channels = tensor.shape[1]
    mean = np.asarray(norm.mean, dtype=np.float32)
    std = np.asarray(norm.std, dtype=np.float32)
    if mean.size not in (1, channels):
        raise ImageError(f"normalisation has {mean.size} values for a {channels}-channel input")
    mean = np.broadcast_to(mean, (channels,)).reshape(1, channels, 1, 1)
    std = np.broadcast_to(std, (channels,)).reshape(1, channels, 1, 1)
    out: npt.NDArray[Any] = (tensor.astype(np.float32) * np.float32(norm.scale) - mean) / std
    return out if dtype is None or dtype == np.float32 else out.astype(dtype)
