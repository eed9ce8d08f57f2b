"""Model inputs by shared memory: write the tensor once, send the agent a handle instead of the bytes.

A 232 x 640 RGB input is 445 KB; as bytes it is copied into the protobuf, through the socket and out
again, twice per frame (two models). Through a POSIX shared-memory slot (``/dev/shm/ei-shm-<id>``,
the naming rule of :mod:`edgeinspect.core.tensors`) the agent reads it in place.

Each call leases a slot for its duration (the agent reads the slot during ``session.run``; a slot is
never rewritten while a request using it is in flight). Small tensors travel as bytes anyway. If the
agent cannot see our segments (another IPC namespace, no shared ``/dev/shm``), :meth:`ShmInputs.disable`
switches to bytes for good, so a deployment mistake costs speed, never frames.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing import shared_memory
from typing import Any

import numpy as np
import numpy.typing as npt
from edgeinspect.core.fastpath import SealedSegment, SegmentTensor
from edgeinspect.core.observability import get_logger
from edgeinspect.core.tensors import POSIX_SEGMENT_MIN, SharedTensor, ShmSegment, shm_name

log = get_logger(__name__)

MIN_SHM_BYTES = 256 * 1024
"""Tensors below this travel as bytes: for them a socket copy is cheaper than the bookkeeping."""


class ShmInputs:
    """A fixed pool of shared-memory slots, one per model call that can be in flight at once."""

    def __init__(self, slots: int, *, enabled: bool = True, min_bytes: int = MIN_SHM_BYTES) -> None:
        self.enabled = enabled
        self._min_bytes = min_bytes
        self._free: queue.Queue[int] = queue.Queue()
        for slot in range(slots):
            self._free.put(slot)
        self._segments: dict[int, ShmSegment] = {}
        self._lock = threading.Lock()
        # unique per worker process (low bits number the slots), in the POSIX range of segment ids
        self._base = POSIX_SEGMENT_MIN + (os.getpid() << 16)

    @contextmanager
    def lease(self, array: npt.NDArray[Any]) -> Iterator[npt.NDArray[Any] | SharedTensor]:
        """What to send for ``array``: a handle to a slot holding it, or the array itself as bytes."""
        if not self.enabled or array.nbytes < self._min_bytes:
            yield array
            return
        slot = self._free.get()
        try:
            yield self._segment(slot, array.nbytes).write(np.ascontiguousarray(array))
        finally:
            self._free.put(slot)

    def _segment(self, slot: int, size: int) -> ShmSegment:
        with self._lock:
            segment = self._segments.get(slot)
            if segment is not None and segment.size >= 2 * size:
                return segment
            if segment is not None:  # a bigger input than before (a new model version): grow the slot
                segment.close()
            segment = _create(self._base + slot, max(size, 1 << 20))
            self._segments[slot] = segment
            return segment

    def disable(self, reason: str) -> None:
        """Send bytes from now on (the agent cannot read our segments); logged once."""
        if self.enabled:
            self.enabled = False
            log.warning("shared_memory_disabled", reason=reason)

    def close(self) -> None:
        """Remove every segment (the agent drops its mappings when they are gone or replaced)."""
        with self._lock:
            for segment in self._segments.values():
                segment.close()
            self._segments.clear()


def _create(segment_id: int, size: int) -> ShmSegment:
    """A new segment; one left behind by a killed process that had our pid is removed first."""
    try:
        return ShmSegment(segment_id, size)
    except FileExistsError:
        stale = shared_memory.SharedMemory(name=shm_name(segment_id))
        stale.close()
        stale.unlink()
        return ShmSegment(segment_id, size)


class FastSlots:
    """Sealed memfd slots for the fast path (:mod:`edgeinspect.core.fastpath`), one per call in flight.

    The preprocessed tensor is written straight into the slot (``np.copyto`` from whatever layout
    preprocessing produced: the NCHW transpose lands in shared memory, no staging copy) and the agent
    runs the model on a view of it; the rest of the slot is the output area the agent writes the
    outputs into (a 232x640 mask crosses no socket). A slot is reused only after its call returned.
    Pages of a memfd are allocated when first touched, so an ample slot costs only what is used.
    """

    def __init__(self, slots: int, min_size: int = 8 << 20) -> None:
        self._free: queue.Queue[int] = queue.Queue()
        for slot in range(slots):
            self._free.put(slot)
        self._segments: dict[int, SealedSegment] = {}
        self._min_size = min_size
        self._lock = threading.Lock()

    @contextmanager
    def lease(
        self, array: npt.NDArray[Any]
    ) -> Iterator[tuple[SegmentTensor, tuple[SealedSegment, int, int]]]:
        """``array`` written into a free slot, and the slot's output area, for the duration of one call."""
        slot = self._free.get()
        try:
            segment = self._segment(slot, array.nbytes)
            start = -(-array.nbytes // 64) * 64
            yield segment.write(array), (segment, start, segment.size - start)
        finally:
            self._free.put(slot)

    def _segment(self, slot: int, size: int) -> SealedSegment:
        with self._lock:
            segment = self._segments.get(slot)
            if segment is not None and segment.size >= 2 * size:
                return segment
            if segment is not None:  # a bigger input (a new model version): a new, bigger slot
                segment.close()
            segment = SealedSegment(max(4 * size, self._min_size), name=f"ei-fast-{slot}")
            self._segments[slot] = segment
            return segment

    def close(self) -> None:
        with self._lock:
            for segment in self._segments.values():
                segment.close()
            self._segments.clear()
