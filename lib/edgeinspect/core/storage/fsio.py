"""Durable local-file primitives: temp files beside their target, fsync, rename, and xattrs.

A power cut on an edge box must never leave a half-written model or capture under its final name, so
every write goes to a temp file in the same folder, is fsynced, renamed (or linked) into place, and the
folder is fsynced so the rename itself survives.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from edgeinspect.core.storage.base import TEMP_PREFIX

XATTR_SHA256 = "user.edgeinspect.sha256"
XATTR_CONTENT_TYPE = "user.edgeinspect.content_type"
XATTR_ETAG = "user.edgeinspect.etag"


def fsync_dir(folder: Path) -> None:
    """Make a rename or link inside ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def temp_beside(target: Path) -> Iterator[tuple[BinaryIO, Path]]:
    """An open temp file in ``target``'s folder, removed on the way out unless already renamed away."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
    fh = open(tmp, "xb")  # noqa: SIM115 - closed below, after the caller has written and synced it
    try:
        yield fh, tmp
    finally:
        fh.close()
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def sync(fh: BinaryIO) -> None:
    """Flush Python's buffer and the kernel's to the disk."""
    fh.flush()
    os.fsync(fh.fileno())


def set_xattr(path: Path, name: str, value: str) -> bool:
    """Record ``value`` on the file if the filesystem supports user xattrs; False where it does not."""
    try:
        os.setxattr(path, name, value.encode("utf-8"))
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM, errno.ENOSPC, errno.E2BIG):
            return False
        raise
    return True


def get_xattr(path: Path, name: str) -> str | None:
    """The xattr's value, or None when unset or unsupported."""
    try:
        return os.getxattr(path, name).decode("utf-8", errors="replace")
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
            return None
        raise
