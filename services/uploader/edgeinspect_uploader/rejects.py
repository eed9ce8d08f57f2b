"""``rejected/``: where malformed stream entries and corrupt spool folders go instead of vanishing.

Each rejected stream entry is one JSON file (its fields as text or base64, and the reason), written
durably before the entry is acknowledged. The folder keeps the newest ``keep`` items; older ones are
removed with a log line, so a flood of bad entries cannot fill the disk either.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path

from edgeinspect.core.observability import get_logger
from edgeinspect.core.storage.fsio import fsync_dir

from edgeinspect_uploader.spoolfs import remove_dir, write_file_atomically

log = get_logger(__name__)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class RejectBin:
    """The ``rejected/`` folder, bounded to ``keep`` items."""

    def __init__(self, folder: Path, keep: int) -> None:
        self.folder = folder
        self.keep = keep

    def keep_entry(self, entry_id: str, fields: Mapping[bytes, bytes], reason: str) -> Path:
        """Write the entry and why it was refused; returns the file."""
        body = {
            "entry_id": entry_id,
            "reason": reason,
            "rejected_at_ns": time.time_ns(),
            "fields": {_text(k): _field(v) for k, v in fields.items()},
        }
        path = self.folder / f"{time.time_ns():020d}-{_UNSAFE.sub('_', entry_id)}.json"
        write_file_atomically(path, json.dumps(body, sort_keys=True).encode("utf-8"))
        self._trim()
        return path

    def keep_folder(self, folder: Path, reason: str) -> Path:
        """Move a spool folder aside with a note saying why (a corrupt capture is never deleted blind)."""
        target = self.folder / f"{time.time_ns():020d}-{folder.name}"
        os.rename(folder, target)
        write_file_atomically(target / "REJECTED.txt", reason.encode("utf-8"))
        fsync_dir(self.folder)
        self._trim()
        return target

    def count(self) -> int:
        return sum(1 for p in self.folder.iterdir() if not p.name.startswith("."))

    def _trim(self) -> None:
        items = sorted(p for p in self.folder.iterdir() if not p.name.startswith("."))
        for old in items[: max(0, len(items) - self.keep)]:
            log.warning("rejected_item_removed", path=str(old), reason="rejected/ holds its maximum")
            if old.is_dir():
                remove_dir(old)
            else:
                old.unlink(missing_ok=True)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _field(raw: bytes) -> dict[str, str]:
    try:
        return {"text": raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(raw).decode("ascii")}
