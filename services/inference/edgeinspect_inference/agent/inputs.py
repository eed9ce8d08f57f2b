"""Request tensors -> arrays for both services, with the limits that keep the agent's memory bounded.

Bytes arrive bounded by ``EI_MAX_MESSAGE_BYTES``; a shared-memory handle could name any size, so
each is capped at ``EI_MAX_TENSOR_BYTES`` before a byte is read. The batch cap is the session's
(``EI_MAX_BATCH``). The compat service first applies :mod:`.compat` (shapes with -1, float pixels).
"""

from __future__ import annotations

from typing import Any

from edgeinspect.core.errors import EdgeInspectError
from edgeinspect.core.tensors import from_tensors

from edgeinspect_inference.agent import compat
from edgeinspect_inference.agent.records import Feeds
from edgeinspect_inference.agent.shm import SegmentReader
from edgeinspect_inference.agent.table import ModelTable


class Decoder:
    """Tensors -> arrays, resolving shared-memory handles, counting undecodable requests per model."""

    def __init__(self, table: ModelTable, segments: SegmentReader) -> None:
        self._table = table
        self._segments = segments

    def feeds(self, model: str, tensors: Any) -> Feeds:
        """Exactly what was sent (the extension API: shapes must be concrete, dtypes the model's)."""
        try:
            return from_tensors(tensors, self._segments.view)
        except EdgeInspectError as exc:
            self._table.count_error(model, exc)
            raise

    def compat_feeds(self, model: str, tensors: Any) -> Feeds:
        """What a stock SageMaker Edge client sent, made to fit the model ``model`` resolves to."""
        try:
            specs = self._table.resolve(model)[0].session.inputs
            compat.resolve_shapes(tensors, specs)
            return compat.to_model_dtypes(from_tensors(tensors, self._segments.view), specs)
        except EdgeInspectError as exc:
            self._table.count_error(model, exc)
            raise

    def detach_segments(self) -> None:
        """Detach System V segments (on unload: the application that wrote them is likely done)."""
        self._segments.close()

    def capture_arrays(self, model: str, tensors: Any) -> Feeds:
        """CaptureData tensors as sent (any names and dtypes); -1 resolved when the model is loaded."""
        try:
            loaded = self._table.resolve(model)[0]
        except EdgeInspectError:
            loaded = None
        if loaded is not None:
            compat.resolve_shapes(tensors, [*loaded.session.inputs, *loaded.session.outputs])
        return self.feeds(model, tensors)
