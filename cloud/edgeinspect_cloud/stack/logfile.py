"""Bounded log files for the local stack's processes.

An edge box runs for months: a log file that only grows fills the disk as surely as an unbounded
stream fills memory. Each process gets one file that rolls over to a single ``.1`` backup at a size
limit, so the stack's logs never take more than ``2 x max_bytes`` per process.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import IO

DEFAULT_MAX_BYTES = 5 * 1024 * 1024
ERROR_LEVELS = frozenset({"error", "critical", "fatal"})


class RotatingLog:
    """Append-only text file that keeps at most ``max_bytes`` plus one rolled-over backup."""

    def __init__(self, path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] | None = path.open("a", encoding="utf-8")
        self._size = path.stat().st_size

    def write(self, text: str) -> None:
        """Append ``text`` (a whole line), rolling the file over first when it would pass the limit."""
        data = text if text.endswith("\n") else text + "\n"
        with self._lock:
            if self._file is None:
                return
            if self._size + len(data) > self.max_bytes and self._size > 0:
                self._roll()
            assert self._file is not None
            self._file.write(data)
            self._file.flush()
            self._size += len(data)

    def _roll(self) -> None:
        assert self._file is not None
        self._file.close()
        self.path.replace(self.path.with_name(self.path.name + ".1"))
        self._file = self.path.open("a", encoding="utf-8")
        self._size = 0

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def is_error_line(line: str) -> bool:
    """Whether a process's output line reports an error: a JSON log line at error level or above, or a
    Python traceback's first line (what a crash prints before any logging is set up)."""
    text = line.strip()
    if text.startswith("{"):
        try:
            record = json.loads(text)
        except ValueError:
            return False
        return isinstance(record, dict) and str(record.get("level", "")).lower() in ERROR_LEVELS
    return text.startswith("Traceback (most recent call last)")
