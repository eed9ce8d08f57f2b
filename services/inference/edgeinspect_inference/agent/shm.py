"""Inputs by shared memory (``SharedMemoryHandle``): copied out once, safely, from either kind of segment.

``segment_id`` names one of two kinds of segment, told apart by value (the rule is
:func:`edgeinspect.core.tensors.is_posix_segment`):

- below 2**31: a **System V** segment id, as ``shmget`` returns it. This is what SageMaker Edge
  clients send (their C++ example: ``shmget``, write, ``shmctl(IPC_SET)`` read-only, send the id).
  The agent attaches it read-only (``shmat(SHM_RDONLY)``) and keeps it attached for the next
  request (attaching costs a page fault per page on first touch: 5 ms for a 232x640 float frame).
  Every request checks the segment first (``IPC_STAT``): ``offset + size`` against its size, and
  whether its owner removed it (then it is detached and refused). A System V segment cannot shrink
  while attached, so the copy is safe. At most ``max_attached`` stay attached (least recently used
  detached first), and :meth:`SegmentReader.close` (on every unload and on shutdown) detaches all,
  so the agent never keeps a removed segment's memory alive for long.
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
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from edgeinspect.core.tensors import TensorError, is_posix_segment, shm_name

_SHM_RDONLY = 0o10000
_IPC_STAT = 2
_SHMID_DS_BYTES = 256  # >= sizeof(struct shmid_ds) on every 64-bit Linux ABI
_SEGSZ_OFFSET = 48  # offsetof(struct shmid_ds, shm_segsz) after the 48-byte ipc_perm (64-bit Linux)
_MODE_OFFSET = 20  # offsetof(struct ipc_perm, mode) (64-bit Linux: x86_64 and the generic layout)
_SHM_DEST = 0o1000  # mode bit: the owner removed the segment; it lives on only while attached
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

    def __init__(self, shm_dir: Path, max_bytes: int, max_attached: int = 16) -> None:
        self._dir = shm_dir
        self._max_bytes = max_bytes
        self._sysv = _SysVAttachments(max_attached)

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
        return memoryview(self._sysv.read(segment_id, offset, size))

    def close(self) -> None:
        """Detach every System V segment (on unload and shutdown; the reader stays usable)."""
        self._sysv.close()

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


@dataclass
class _Attachment:
    address: int
    users: int = 0
    doomed: bool = False


class _SysVAttachments:
    """Read-only attachments kept by id; one is detached only when no request is copying from it."""

    def __init__(self, max_attached: int) -> None:
        self._max = max_attached
        self._attached: OrderedDict[int, _Attachment] = OrderedDict()
        self._lock = threading.Lock()

    def read(self, segment_id: int, offset: int, size: int) -> bytearray:
        """Check the segment (size, not removed), then copy from its attachment."""
        libc = _require_libc(segment_id)
        segment_size, removed = _stat(libc, segment_id)
        if removed:
            self._drop(segment_id)
            raise TensorError(f"System V shared memory segment {segment_id} was removed by its owner")
        _check_bounds(segment_id, segment_size, offset, size)
        attachment = self._acquire(libc, segment_id)
        try:
            buffer = bytearray(size)
            if size:
                target = (ctypes.c_char * size).from_buffer(buffer)
                ctypes.memmove(target, attachment.address + offset, size)
            return buffer
        finally:
            self._release(libc, attachment)

    def _acquire(self, libc: ctypes.CDLL, segment_id: int) -> _Attachment:
        with self._lock:
            attachment = self._attached.get(segment_id)
            if attachment is None:
                address = libc.shmat(segment_id, None, _SHM_RDONLY)
                if address is None or address == _FAILED:
                    raise TensorError(_sysv_failure(segment_id, "cannot be attached", ctypes.get_errno()))
                attachment = _Attachment(address)
                self._attached[segment_id] = attachment
                while len(self._attached) > self._max:
                    self._doom(libc, self._attached.popitem(last=False)[1])
            self._attached.move_to_end(segment_id)
            attachment.users += 1
            return attachment

    def _release(self, libc: ctypes.CDLL, attachment: _Attachment) -> None:
        with self._lock:
            attachment.users -= 1
            if attachment.doomed and attachment.users == 0:
                libc.shmdt(attachment.address)

    @staticmethod
    def _doom(libc: ctypes.CDLL, attachment: _Attachment) -> None:
        """Detach now if idle, else when the last request copying from it is done (lock held)."""
        attachment.doomed = True
        if attachment.users == 0:
            libc.shmdt(attachment.address)

    def _drop(self, segment_id: int) -> None:
        with self._lock:
            attachment = self._attached.pop(segment_id, None)
            if attachment is not None and _LIBC is not None:
                self._doom(_LIBC, attachment)

    def close(self) -> None:
        if _LIBC is None:
            return
        with self._lock:
            while self._attached:
                self._doom(_LIBC, self._attached.popitem()[1])

    def __len__(self) -> int:
        return len(self._attached)


def _require_libc(segment_id: int) -> ctypes.CDLL:
    if _LIBC is None:
        raise TensorError(
            f"shared memory segment {segment_id} is a System V id, which this agent's platform "
            "does not support",
            hint="send the tensor as byte_data",
        )
    return _LIBC


def _stat(libc: ctypes.CDLL, segment_id: int) -> tuple[int, bool]:
    """``(size, removed)`` of a System V segment, from ``IPC_STAT``."""
    info = ctypes.create_string_buffer(_SHMID_DS_BYTES)
    if libc.shmctl(segment_id, _IPC_STAT, info) != 0:
        raise TensorError(_sysv_failure(segment_id, "cannot be inspected", ctypes.get_errno()))
    size = int.from_bytes(info.raw[_SEGSZ_OFFSET : _SEGSZ_OFFSET + 8], sys.byteorder)
    mode = int.from_bytes(info.raw[_MODE_OFFSET : _MODE_OFFSET + 2], sys.byteorder)
    return size, bool(mode & _SHM_DEST)


def _sysv_failure(segment_id: int, what: str, code: int) -> str:
    reason = {
        errno.EINVAL: "no System V segment has this id",
        errno.EIDRM: "the segment was removed",
        errno.EACCES: "the agent's user may not read it (create it with mode 0644, or as the agent's user)",
    }.get(code, os.strerror(code))
    return f"System V shared memory segment {segment_id} {what}: {reason}"
