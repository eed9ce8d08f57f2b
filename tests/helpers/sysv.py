"""A System V shared-memory writer, the way SageMaker Edge's C++ example client did it (via libc).

``shmget(IPC_PRIVATE, size, IPC_CREAT | 0600)``, ``shmat``, copy the bytes, mark the segment
read-only with ``shmctl(IPC_SET)``, detach, and send the id as ``SharedMemoryHandle.segment_id``.
Written from the libc calls, not from the agent's reader, so a test cannot pass by sharing its bugs.
Linux, 64-bit (the ``shmid_ds`` offsets below are those of glibc there).

    with SysVSegment(frame.nbytes) as segment:
        segment.write(frame.tobytes())
        handle = SharedMemoryHandle(size=frame.nbytes, offset=0, segment_id=segment.id)
"""

from __future__ import annotations

import ctypes
import os
import sys

IPC_PRIVATE = 0
IPC_CREAT = 0o1000
IPC_RMID = 0
IPC_SET = 1
IPC_STAT = 2
_MODE_OFFSET = 20  # offsetof(struct ipc_perm, mode) on 64-bit Linux (x86_64 and aarch64)
_DS_BYTES = 256

_libc = ctypes.CDLL(None, use_errno=True)
_libc.shmget.restype = ctypes.c_int
_libc.shmget.argtypes = [ctypes.c_int, ctypes.c_size_t, ctypes.c_int]
_libc.shmat.restype = ctypes.c_void_p
_libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
_libc.shmdt.argtypes = [ctypes.c_void_p]
_libc.shmctl.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p]

AVAILABLE = sys.platform.startswith("linux") and ctypes.sizeof(ctypes.c_void_p) == 8


def _check(result: int, what: str) -> int:
    if result == -1:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")
    return result


class SysVSegment:
    """A private System V segment of ``size`` bytes, removed on ``close``."""

    def __init__(self, size: int, mode: int = 0o600) -> None:
        self.size = size
        self.id = _check(_libc.shmget(IPC_PRIVATE, size, IPC_CREAT | mode), "shmget")

    def write(self, data: bytes, offset: int = 0, *, read_only: bool = True) -> None:
        """Copy ``data`` in at ``offset``, then (like the C++ example) make the segment read-only."""
        address = _libc.shmat(self.id, None, 0)
        if address in (None, ctypes.c_void_p(-1).value):
            _check(-1, "shmat")
        try:
            ctypes.memmove(address + offset, data, len(data))
        finally:
            _libc.shmdt(address)
        if read_only:
            self.set_mode(0o400)

    def set_mode(self, mode: int) -> None:
        """``shmctl(IPC_STAT)``, change ``shm_perm.mode``, ``shmctl(IPC_SET)``."""
        info = ctypes.create_string_buffer(_DS_BYTES)
        _check(_libc.shmctl(self.id, IPC_STAT, info), "shmctl(IPC_STAT)")
        ctypes.memmove(ctypes.addressof(info) + _MODE_OFFSET, mode.to_bytes(2, sys.byteorder), 2)
        _check(_libc.shmctl(self.id, IPC_SET, info), "shmctl(IPC_SET)")

    def close(self) -> None:
        """``shmctl(IPC_RMID)``: the segment goes once nobody has it attached."""
        _libc.shmctl(self.id, IPC_RMID, None)

    def __enter__(self) -> SysVSegment:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
