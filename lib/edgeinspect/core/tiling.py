"""Tiling a frame larger than the model's input, and stitching the tiles' masks back: pure geometry.

A factory camera's frame (5-20 MP) resized to a 224-pixel model input loses a 2-pixel crack: the
area filter of :mod:`edgeinspect.core.preprocess` averages it into the surface. Tiling instead cuts
the frame into overlapping tiles of the size the model was trained at, runs the model on every tile
and maps the answers back to full-frame pixels:

- :func:`tile_grid` covers the whole frame with tiles of one size; consecutive tiles overlap by at
  least the requested number of pixels, and the last tile of a row/column is shifted inward so it
  ends exactly at the frame's edge (never padded with pixels the camera did not see). An axis the
  frame is not longer than the tile on gets one tile of the frame's length (no tiling there).
- :class:`Stitcher` accumulates each tile's mask plane (raw model values, at the tile's frame
  resolution) into one full-frame plane: ``max`` (a defect any tile saw is kept; the default) or
  ``mean``, a blend weighted towards tile centres (a tile's border has the least context).
- :func:`decide` says whether a frame is tiled at all, from the line's setting and the package's
  ``tiling`` hint (:class:`~edgeinspect.core.package.manifest.TilingHint`), and refuses frames over
  a pixel bound with :class:`FrameTooLarge` (the stitched plane is 4 bytes a pixel).

Every function is numpy only and deterministic, so the worker and the benchmark tile identically.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from edgeinspect.core.errors import ImageError
from edgeinspect.core.images import MAX_PIXELS
from edgeinspect.core.package.manifest import InputSpec, TilingHint

Blend = Literal["max", "mean"]
Mode = Literal["auto", "on", "off"]

DEFAULT_OVERLAP = 0.125
"""Overlap between neighbouring tiles as a fraction of the tile: a defect cut by one tile's edge lies
well inside its neighbour."""
DEFAULT_MIN_SCALE = 4.0
"""``auto`` tiles a frame at least this many tiles long on either axis: "much larger" than the model
input, so a frame only a little larger than the input (resized as the model was trained) is not."""
DEFAULT_MAX_PIXELS = MAX_PIXELS
"""Frames above this are refused when tiling is possible (the stitched plane alone is 200 MB here);
by default what decoding accepts, so no frame judged before tiling existed is refused now."""
_MIN_WEIGHT = 1e-3


class FrameTooLarge(ImageError):
    """The frame has more pixels than the worker may tile (its memory bound)."""


@dataclass(frozen=True, slots=True)
class Tile:
    """One tile: its top-left corner and size in frame pixels."""

    top: int
    left: int
    height: int
    width: int

    @property
    def bottom(self) -> int:
        return self.top + self.height

    @property
    def right(self) -> int:
        return self.left + self.width

    def crop(self, image: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """This tile's pixels of an ``HxW[xC]`` frame (a view, no copy)."""
        return image[self.top : self.bottom, self.left : self.right]


@dataclass(frozen=True, slots=True)
class TilingConfig:
    """The line's tiling settings; a package's ``tiling`` hint fills in what the line leaves to it.

    ``mode``: ``off`` never tiles, ``on`` tiles every frame larger than a tile, ``auto`` follows the
    package's hint, else tiles frames at least ``min_scale`` tiles long on an axis. ``overlap`` and
    ``min_scale`` set to None defer to the hint (then the defaults).
    """

    mode: Mode = "auto"
    overlap: float | None = None
    min_scale: float | None = None
    blend: Blend | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS


@dataclass(frozen=True, slots=True)
class TilePlan:
    """How one frame is tiled: the tiles (row-major), the blend, and the tile size in frame pixels."""

    tiles: tuple[Tile, ...]
    tile_height: int
    tile_width: int
    blend: Blend


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of ``tile`` pixels covering ``length`` with at least ``overlap`` shared.

    The fewest tiles that fit, spread evenly: the first starts at 0, the last ends at ``length``
    exactly, and no gap between consecutive starts exceeds ``tile - overlap``.
    """
    if length <= 0 or tile <= 0:
        raise ImageError(f"cannot tile a length of {length} with tiles of {tile}")
    if length <= tile:
        return [0]
    overlap = max(0, min(overlap, tile - 1))
    stride = tile - overlap
    count = math.ceil((length - tile) / stride) + 1
    span = length - tile
    return [(i * span + (count - 1) // 2) // (count - 1) for i in range(count)]


def tile_grid(
    frame_height: int, frame_width: int, tile_height: int, tile_width: int, overlap: float
) -> tuple[Tile, ...]:
    """Row-major tiles covering a ``frame_height x frame_width`` frame; ``overlap`` is a fraction."""
    if not 0.0 <= overlap < 1.0:
        raise ImageError(f"tile overlap must be a fraction in [0, 1), got {overlap}")
    height, width = min(tile_height, frame_height), min(tile_width, frame_width)
    rows = tile_starts(frame_height, height, round(overlap * height))
    cols = tile_starts(frame_width, width, round(overlap * width))
    return tuple(Tile(top, left, height, width) for top in rows for left in cols)


def decide(
    frame_height: int, frame_width: int, spec: InputSpec, config: TilingConfig, hint: TilingHint | None = None
) -> TilePlan | None:
    """The tile plan for this frame and model, or None when the frame goes whole through the model.

    The line's ``mode`` wins over the package's, except ``auto``, which defers to the package. Raises
    :class:`FrameTooLarge` for a frame over ``config.max_pixels`` unless tiling is off.
    """
    mode: Mode = config.mode if config.mode != "auto" or hint is None else hint.mode
    if mode == "off":
        return None
    pixels = frame_height * frame_width
    if pixels > config.max_pixels:
        raise FrameTooLarge(
            f"frame is {frame_height}x{frame_width} ({pixels} pixels), over the tiling bound of "
            f"{config.max_pixels} pixels",
            hint="lower the camera's resolution or crop to the part, or raise EI_TILING_MAX_PIXELS "
            "if the box has the memory (about 4 bytes a pixel while stitching)",
        )
    tile_height = (hint.tile_height if hint else None) or spec.resize.height
    tile_width = (hint.tile_width if hint else None) or spec.resize.width
    scale = max(frame_height / tile_height, frame_width / tile_width)
    if scale <= 1.0:
        return None  # the frame fits one tile: nothing to tile
    min_scale = _first(config.min_scale, hint.min_scale if hint else None, DEFAULT_MIN_SCALE)
    if mode == "auto" and scale < min_scale:
        return None
    overlap = _first(config.overlap, hint.overlap if hint else None, DEFAULT_OVERLAP)
    blend: Blend = config.blend or (hint.blend if hint else None) or "max"
    tiles = tile_grid(frame_height, frame_width, tile_height, tile_width, overlap)
    return TilePlan(tiles, min(tile_height, frame_height), min(tile_width, frame_width), blend)


def _first(*values: float | None) -> float:
    """The first value that is set (the last argument is the default and always set)."""
    return next(float(v) for v in values if v is not None)


def centre_weights(height: int, width: int) -> npt.NDArray[np.float32]:
    """A tile's blend weights: 1 in the middle, falling linearly towards every border (never 0)."""
    rows = np.minimum(np.arange(1, height + 1), np.arange(height, 0, -1)) / max(1.0, height / 2)
    cols = np.minimum(np.arange(1, width + 1), np.arange(width, 0, -1)) / max(1.0, width / 2)
    weights = np.minimum(np.minimum(rows[:, None], cols[None, :]), 1.0)
    return np.maximum(weights, _MIN_WEIGHT).astype(np.float32)


class Stitcher:
    """Accumulates per-tile planes (raw mask values at tile resolution) into one full-frame plane.

    ``max`` keeps, per pixel, the highest value any tile gave it; ``mean`` averages the tiles that
    cover a pixel, weighted by :func:`centre_weights`. Values are the model's own (probabilities or
    logits): both rules commute with the threshold the same way for every tile.
    """

    def __init__(self, height: int, width: int, blend: Blend = "max") -> None:
        self.height, self.width, self.blend = height, width, blend
        fill = -np.inf if blend == "max" else 0.0
        self._plane = np.full((height, width), fill, np.float32)
        self._weight = np.zeros((height, width), np.float32) if blend == "mean" else None
        self._weights: dict[tuple[int, int], npt.NDArray[np.float32]] = {}

    def add(self, tile: Tile, plane: npt.NDArray[Any]) -> None:
        """Fold one tile's ``tile.height x tile.width`` plane into the frame."""
        if plane.shape != (tile.height, tile.width):
            raise ImageError(
                f"tile plane is {plane.shape}, expected {(tile.height, tile.width)}",
                hint="map the model's output back to the tile's size before stitching",
            )
        if tile.top < 0 or tile.left < 0 or tile.bottom > self.height or tile.right > self.width:
            raise ImageError(f"tile {tile} lies outside the {self.height}x{self.width} frame")
        region = self._plane[tile.top : tile.bottom, tile.left : tile.right]
        if self._weight is None:
            np.maximum(region, plane, out=region)
            return
        weights = self._weights.get((tile.height, tile.width))
        if weights is None:
            weights = self._weights[(tile.height, tile.width)] = centre_weights(tile.height, tile.width)
        region += weights * plane
        self._weight[tile.top : tile.bottom, tile.left : tile.right] += weights

    def result(self) -> npt.NDArray[np.float32]:
        """The stitched ``height x width`` plane; ``ImageError`` if some pixel no tile covered."""
        if self._weight is None:
            if not np.all(np.isfinite(self._plane)):
                raise ImageError("stitched plane has pixels no tile covered", hint="tile with tile_grid")
            return self._plane
        if not np.all(self._weight > 0):
            raise ImageError("stitched plane has pixels no tile covered", hint="tile with tile_grid")
        out: npt.NDArray[np.float32] = self._plane / self._weight
        return out
