"""Inputs by shared memory (``SharedMemoryHandle``): copied out once, safely, from either kind of segment.

``segment_id`` names one of two kinds of segment, told apart by value (the rule is
:func:`edgeinspect.core.tensors.is_posix_segment`):

- below 2**31: a **System V** segment id, as ``shmget`` returns it. This is what SageMaker Edge
  clients send (their C++ example: ``shmget``, write, ``shmctl(IPC_SET)`` read-only, send the id).
  The agent attaches it read-only (``shmat(SHM_RDONLY)``), checks ``offset + size`` against the
  segment's own size (``IPC_STAT``), copies the bytes and detaches at once.
- 2**31 and above: **our POSIX** segment ``EI_SHM_DIR/ei-shm-<id>`` (what the worker writes with
  ``core.tensors.ShmSegment``). It is opened ``O_NOFOLLOW`` (a symlink is refused), must be a regular
  file (a directory, FIFO or device is refused), and is read with ``preadv`` into the agent's own
  buffer.

Why copy instead of mapping: a writer may truncate its POSIX segment while a request is in flight,
and touching a mapping past the new end kills the process with SIGBUS. A ``pread`` of a shrunken file
just returns fewer bytes, which we answer with INVALID_ARGUMENT. One memcpy of a frame costs far less
than the socket copy shared memory saves, and nothing a client does to its segment can crash us.
Every problem is a :class:`~edgeinspect.core.tensors.TensorError` (INVALID_ARGUMENT) naming it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import sys
from pathlib import Path

from edgeinspect.core.tensors import TensorError, is_posix_segment, shm_name

_SHM_RDONLY = 0o10000
_IPC_STAT = 2
_SHMID_DS_BYTES = 256  # >= sizeof(struct shmid_ds) on every 64-bit Linux ABI
_SEGSZ_OFFSET = 48  # offsetof(struct shmid_ds, shm_segsz) after the 48-byte ipc_perm (64-bit Linux)
_FAILED = ctypes.c_void_p(-1).value


def _libc() -> ctypes.CDLL | None:
    """glibc's SysV calls, or ``None`` where this layout is not known (not 64-bit Linux)."""
    if not sys.platform.startswith("linux") or ctypes.sizeof(ctypes.c_void_p) != 8:
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    libc.shmat.restype = ctypes.c_void_p
    libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
    libc.shmdt.restype = ctypes.c_int
    libc.shmdt.argtypes = [ctypes.c_void_p]
    libc.shmctl.restype = ctypes.c_int
    libc.shmctl.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
    return libc


_LIBC = _libc()


class SegmentReader:
    """Copies ``size`` bytes at ``offset`` out of a segment; refuses anything larger than ``max_bytes``."""

    def __init__(self, shm_dir: Path, max_bytes: int) -> None:
        self._dir = shm_dir
        self._max_bytes = max_bytes

    def view(self, segment_id: int, offset: int, size: int) -> memoryview:
        """The bytes, in a buffer the agent owns (a ``core.tensors.ShmResolver``)."""
        if size > self._max_bytes:
            raise TensorError(
                f"shared memory tensor of {size} bytes is larger than this agent accepts "
                f"({self._max_bytes} bytes, EI_MAX_TENSOR_BYTES)",
                hint="send a smaller batch",
            )
        if is_posix_segment(segment_id):
            return memoryview(self._read_posix(segment_id, offset, size))
        return memoryview(_read_sysv(segment_id, offset, size))

    def _read_posix(self, segment_id: int, offset: int, size: int) -> bytearray:
        path = self._dir / shm_name(segment_id)
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            raise TensorError(
                f"shared memory segment {segment_id} ({path}) does not exist",
                hint="ids >= 2**31 name POSIX segments ei-shm-<id> (core.tensors.ShmSegment); "
                "a System V shmid is below 2**31",
            ) from None
        except OSError as exc:
            what = "is a symbolic link" if exc.errno == errno.ELOOP else f"cannot be opened: {exc.strerror}"
            raise TensorError(f"shared memory segment {segment_id} ({path}) {what}") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise TensorError(
                    f"shared memory segment {segment_id} ({path}) is not a regular file",
                    hint="a segment must be a POSIX shared-memory object (shm_open), not a link or folder",
                )
            _check_bounds(segment_id, info.st_size, offset, size)
            return _pread_all(fd, segment_id, offset, size)
        finally:
            os.close(fd)


def _check_bounds(segment_id: int, segment_size: int, offset: int, size: int) -> None:
    if offset + size > segment_size:
        raise TensorError(
            f"shared memory segment {segment_id} has {segment_size} bytes; "
            f"offset {offset} + size {size} runs past its end"
        )


def _pread_all(fd: int, segment_id: int, offset: int, size: int) -> bytearray:
    """Read exactly ``size`` bytes; a segment that shrinks meanwhile is an error, never a crash."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    done = 0
    while done < size:
        got = os.preadv(fd, [view[done:]], offset + done)
        if got <= 0:
            raise TensorError(
                f"shared memory segment {segment_id} shrank while being read "
                f"({offset + done} of {offset + size} bytes present)",
                hint="do not truncate or resize a segment while a request that uses it is in flight",
            )
        done += got
    view.release()
    return buffer


def _read_sysv(segment_id: int, offset: int, size: int) -> bytearray:
    """Attach read-only, check the size, copy, detach (a SysV segment cannot shrink while attached)."""
    if _LIBC is None:
        raise TensorError(
            f"shared memory segment {segment_id} is a System V id, which this agent's platform "
            "does not support",
            hint="send the tensor as byte_data",
        )
    info = ctypes.create_string_buffer(_SHMID_DS_BYTES)
    if _LIBC.shmctl(segment_id, _IPC_STAT, info) != 0:
        raise TensorError(_sysv_failure(segment_id, "cannot be inspected", ctypes.get_errno()))
    segment_size = int.from_bytes(info.raw[_SEGSZ_OFFSET : _SEGSZ_OFFSET + 8], sys.byteorder)
    _check_bounds(segment_id, segment_size, offset, size)
    address = _LIBC.shmat(segment_id, None, _SHM_RDONLY)
    if address is None or address == _FAILED:
        raise TensorError(_sysv_failure(segment_id, "cannot be attached", ctypes.get_errno()))
    try:
        buffer = bytearray(size)
        if size:
            ctypes.memmove((ctypes.c_char * size).from_buffer(buffer), address + offset, size)
        return buffer
    finally:
        _LIBC.shmdt(address)


def _sysv_failure(segment_id: int, what: str, code: int) -> str:
    reason = {
        errno.EINVAL: "no System V segment has this id",
        errno.EIDRM: "the segment was removed",
        errno.EACCES: "the agent's user may not read it (create it with mode 0644, or as the agent's user)",
    }.get(code, os.strerror(code))
    return f"System V shared memory segment {segment_id} {what}: {reason}"
