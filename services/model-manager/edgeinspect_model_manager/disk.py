"""Free-space checks before a deployment writes anything.

A package needs room three times over at the worst moment (the download, its unpacked copy being
verified, and the folder it is renamed to shares the blocks of that copy, plus slack for the tar's
overhead), so the manager asks for ``size * EI_DISK_SPACE_FACTOR + EI_DISK_RESERVE_BYTES`` free before
it starts. ENOSPC can still happen (another process fills the disk meanwhile); that is caught where it
happens (``errors.is_disk_full``) and reported the same way.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from edgeinspect_model_manager.errors import DiskFullError


def free_bytes(folder: Path) -> int:
    """Bytes available to us on the filesystem holding ``folder`` (its nearest existing parent)."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def require_free(folder: Path, size: int, factor: float, reserve: int) -> None:
    """Raise ``DiskFullError`` unless ``size * factor + reserve`` bytes are free under ``folder``."""
    needed = int(size * factor) + reserve
    free = free_bytes(folder)
    if free < needed:
        raise DiskFullError(
            f"not enough disk space in {folder}: {free} bytes free, the {size}-byte package needs {needed}",
            hint="remove unused model versions (remove_model) or free space on the device",
        )


def disk_full_reason(folder: Path, stage: str) -> str:
    """The reason reported when a write hit ENOSPC."""
    return f"disk full while {stage} in {folder} ({free_bytes(folder)} bytes free); nothing was changed"
