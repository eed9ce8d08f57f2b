"""Durable writes for the spool: a capture appears under its final name complete, or not at all.

A capture's files are written into a temp folder under ``incoming/``, each fsynced, the folder fsynced,
then the folder is renamed into ``ready/`` (one atomic rename, since both live on one filesystem) and
``ready/`` is fsynced so the rename survives a power cut. A crash before the rename leaves only a temp
folder, which start-up removes; the stream entry is still unacknowledged then, so it is read again.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
from pathlib import Path

from edgeinspect.core.storage.fsio import fsync_dir

TEMP_PREFIX = ".ei-tmp-"


def write_file(path: Path, data: bytes) -> None:
    """Write ``data`` and fsync it (the caller makes the folder entry durable)."""
    with open(path, "xb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def write_file_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: temp file beside it, fsync, rename, fsync the folder."""
    tmp = path.with_name(f"{TEMP_PREFIX}{path.name}-{secrets.token_hex(4)}")
    try:
        write_file(tmp, data)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    fsync_dir(path.parent)


def publish_dir(incoming: Path, final: Path, files: dict[str, bytes]) -> bool:
    """Write ``files`` into a fresh temp folder in ``incoming`` and rename it to ``final``.

    Returns False, and leaves nothing behind, when ``final`` already exists (a duplicate delivery).
    """
    tmp = incoming / f"{TEMP_PREFIX}{final.name}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        for name, data in files.items():
            write_file(tmp / name, data)
        fsync_dir(tmp)
        try:
            os.rename(tmp, final)
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                return False
            raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    fsync_dir(final.parent)
    return True


def remove_dir(path: Path) -> None:
    """Remove a capture folder (missing is fine: deletion is idempotent)."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path)


def clear_temp(folder: Path) -> int:
    """Remove every leftover temp entry in ``folder`` (half-written by a crash); returns how many."""
    removed = 0
    for child in folder.iterdir():
        if child.name.startswith(TEMP_PREFIX):
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
            removed += 1
    return removed


def touch_durably(folder: Path, names: list[str]) -> None:
    """Create empty marker files and make them durable with one folder fsync."""
    for name in names:
        (folder / name).touch()
    if names:
        fsync_dir(folder)
