"""A size rule for the local stack's folder object store, as an S3 lifecycle rule is for a bucket.

``edgeinspect up`` stands in for the cloud with a folder (``file://``): the uploader syncs captures and
telemetry into it for as long as the line runs. A real bucket is kept in check by the store's lifecycle
rules; a folder on a small box needs the same, or the demo left running for a week fills the disk.
The rule deletes the oldest objects first, down to 90% of the limit, and never touches anything
newer than ``min_age_s`` (an upload in progress, or a capture someone is about to review).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

LOW_WATER = 0.9


@dataclass(frozen=True)
class Trimmed:
    """What one pass removed."""

    files: int
    bytes: int
    total_after: int


def _files_oldest_first(root: Path) -> tuple[list[tuple[float, int, Path]], int]:
    found: list[tuple[float, int, Path]] = []
    total = 0
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            try:
                stat = path.stat()
            except FileNotFoundError:  # removed under us (the uploader replaces temp files)
                continue
            found.append((stat.st_mtime, stat.st_size, path))
            total += stat.st_size
    found.sort()
    return found, total


def trim_folder(root: Path, max_bytes: int, min_age_s: float = 300.0, now: float | None = None) -> Trimmed:
    """Delete the oldest files under ``root`` until it holds at most 90% of ``max_bytes``."""
    if not root.is_dir():
        return Trimmed(0, 0, 0)
    files, total = _files_oldest_first(root)
    if total <= max_bytes:
        return Trimmed(0, 0, total)
    target = int(max_bytes * LOW_WATER)
    cutoff = (time.time() if now is None else now) - min_age_s
    removed = removed_bytes = 0
    for mtime, size, path in files:
        if total <= target or mtime > cutoff:
            break
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        total -= size
        removed += 1
        removed_bytes += size
    return Trimmed(removed, removed_bytes, total)


class FolderLifecycle:
    """Applies :func:`trim_folder` every ``every_s`` seconds on a daemon thread until stopped; each
    pass that removed something is reported as one JSON line to ``note``."""

    def __init__(
        self,
        root: Path,
        max_bytes: int,
        note: Callable[[str], None],
        every_s: float = 60.0,
        min_age_s: float = 300.0,
    ) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.every_s = every_s
        self.min_age_s = min_age_s
        self._note = note
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="folder-lifecycle", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                trimmed = trim_folder(self.root, self.max_bytes, self.min_age_s)
            except OSError as exc:
                self._note(json.dumps({"level": "warning", "event": "lifecycle_failed", "error": str(exc)}))
                continue
            if trimmed.files:
                record = {"level": "info", "event": "lifecycle_trimmed", "root": str(self.root)}
                self._note(json.dumps({**record, **asdict(trimmed)}))
