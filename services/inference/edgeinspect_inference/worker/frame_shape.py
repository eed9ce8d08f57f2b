"""Frames far from the shape a model learnt from: counted every time, said once.

The worker fits whatever frame arrives to the model's input: stretched whole, or cut into tiles of
the training frame's size that are then stretched. A frame turned on its side (a camera mounted
rotated, a line sending landscape frames to a model trained on portrait ones) comes out squeezed on
one axis and stretched on the other, and the model judges the distorted part as confidently as any
other: nothing in the verdicts shows it. :class:`ShapeCheck` compares the piece of frame the model
is shown with the shape it learnt from and warns, so the cause is found at the first frame rather
than after a shift of wrong verdicts. Judging goes on: the frame may be right and the model wrong.
A frame large enough to be cut into tiles of the training frame's shape passes whichever way up it
is: its tiles have the right shape and only their content is turned, which no shape can tell.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from edgeinspect.core.observability import get_logger
from edgeinspect.core.package import Manifest
from edgeinspect.core.tiling import TilePlan

if TYPE_CHECKING:  # the metrics module reads STRETCH_LIMIT from here for its help text
    from edgeinspect_inference.worker.catalog import Target
    from edgeinspect_inference.worker.metrics import WorkerMetrics

log = get_logger(__name__)

STRETCH_LIMIT = 1.5
"""How much more one axis may be scaled than the other before a frame is reported: a 4:3 frame for a
16:9 model (1.33x) passes; a frame on its side (KolektorSDD2's 640x232: 7.6x) does not."""


def trained_shape(manifest: Manifest) -> tuple[int, int]:
    """(height, width) of the frames the model learnt from: the package's tiling hint names them for
    a model trained on frames shrunk to its input; otherwise the input itself."""
    hint = manifest.tiling
    if hint is not None and hint.tile_height and hint.tile_width:
        return hint.tile_height, hint.tile_width
    return manifest.input.resize.height, manifest.input.resize.width


def stretch(shown: tuple[int, int], trained: tuple[int, int]) -> float:
    """How much more one axis of ``shown`` is scaled than the other to take ``trained``'s shape (>= 1)."""
    ratio = (shown[0] / shown[1]) / (trained[0] / trained[1])
    return max(ratio, 1.0 / ratio)


class ShapeCheck:
    """Per line: each frame's shape against the model's; a warning once per model and frame shape."""

    def __init__(self, line: str, metrics: WorkerMetrics) -> None:
        self.line = line
        self._metrics = metrics
        self._said: set[tuple[str, str, int, int]] = set()
        self._lock = threading.Lock()

    def check(self, target: Target, height: int, width: int, plan: TilePlan | None, frame_id: str) -> float:
        """The stretch the model's input puts on this frame (1.0 when its resize keeps the aspect)."""
        manifest = target.manifest
        if manifest.input.resize.mode != "stretch":
            return 1.0  # letterbox and pad keep the frame's proportions
        shown = (plan.tile_height, plan.tile_width) if plan is not None else (height, width)
        trained = trained_shape(manifest)
        factor = stretch(shown, trained)
        if factor <= STRETCH_LIMIT:
            return factor
        self._metrics.shape_mismatch.labels(self.line, target.alias).inc()
        key = (target.alias, target.version, height, width)
        with self._lock:
            if key in self._said:
                return factor
            self._said.add(key)
        log.warning(
            "frame_shape_mismatch", line=self.line, alias=target.alias, version=target.version,
            frame_id=frame_id, frame=f"{height}x{width}", shown=f"{shown[0]}x{shown[1]}",
            trained=f"{trained[0]}x{trained[1]}", stretch=round(factor, 2),
            hint=f"the model learnt from frames {trained[0]} high and {trained[1]} wide, and this "
            f"frame is {height}x{width}: check the camera's orientation and crop, or train the model "
            "on this line's frames; judging goes on",
        )  # fmt: skip
        return factor
