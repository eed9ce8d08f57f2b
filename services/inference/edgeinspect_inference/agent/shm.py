"""Read-only views of the writers' shared-memory segments (``SharedMemoryHandle`` inputs).

A segment is mapped once and the mapping cached by ``segment_id``; every request re-checks the
segment's inode and size (one ``stat``), so a writer that recreated a segment under the same id is
remapped instead of being read from the stale, unlinked memory. Mappings are ``PROT_READ``: the
agent cannot scribble on a writer's frame, and arrays over them are read-only views (zero copies).
"""

from __future__ import annotations

import mmap
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from edgeinspect.core.tensors import TensorError, shm_name


@dataclass(frozen=True)
class _Mapping:
    inode: int
    size: int
    view: memoryview


class SegmentCache:
    """Maps segments by id on first use; keeps at most ``max_segments`` mapped (least recently used out)."""

    def __init__(self, shm_dir: Path, max_segments: int = 64) -> None:
        self._dir = shm_dir
        self._max = max_segments
        self._maps: OrderedDict[int, _Mapping] = OrderedDict()
        self._lock = threading.Lock()

    def view(self, segment_id: int, offset: int, size: int) -> memoryview:
        """``size`` bytes at ``offset`` of segment ``segment_id``; ``TensorError`` saying what is wrong."""
        path = self._dir / shm_name(segment_id)
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            raise TensorError(
                f"shared memory segment {segment_id} ({path}) does not exist",
                hint="the writer must create it (core.tensors.ShmSegment) before sending the handle",
            ) from None
        mapping = self._mapping(segment_id, path, stat.st_ino, stat.st_size)
        if offset + size > mapping.size:
            raise TensorError(
                f"shared memory segment {segment_id} has {mapping.size} bytes; "
                f"offset {offset} + size {size} runs past its end"
            )
        return mapping.view[offset : offset + size]

    def _mapping(self, segment_id: int, path: Path, inode: int, size: int) -> _Mapping:
        with self._lock:
            cached = self._maps.get(segment_id)
            if cached is not None and cached.inode == inode and cached.size == size:
                self._maps.move_to_end(segment_id)
                return cached
            mapping = _open(segment_id, path, inode, size)
            self._maps[segment_id] = mapping
            self._maps.move_to_end(segment_id)
            while len(self._maps) > self._max:
                # dropped, not closed: arrays still in flight may view it; GC unmaps it after them
                self._maps.popitem(last=False)
            return mapping

    def __len__(self) -> int:
        return len(self._maps)


def _open(segment_id: int, path: Path, inode: int, size: int) -> _Mapping:
    if size == 0:
        raise TensorError(f"shared memory segment {segment_id} ({path}) is empty")
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise TensorError(f"cannot open shared memory segment {segment_id} ({path}): {exc.strerror}") from exc
    try:
        region = mmap.mmap(fd, size, prot=mmap.PROT_READ)
    finally:
        os.close(fd)
    return _Mapping(inode, size, memoryview(region))
