"""Upload batches and their journal: what makes a crash mid-upload lose nothing and duplicate nothing.

A batch is decided, numbered and written to ``state/batches/{seq}.json`` *before* its first byte is
sent: the captures it holds, every file's key, size and digests, and the manifest lines it will
publish. After a crash the batch is finished from the journal exactly as planned: objects the store
already has (same size and digest) are skipped, the manifest parts are written under the same keys
with the same bytes, and only then are the spool folders deleted and the journal closed.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeinspect.core.errors import ConfigError
from edgeinspect.core.hashing import CHUNK_BYTES

from edgeinspect_uploader.layout import capture_day, capture_prefix, iso_utc
from edgeinspect_uploader.manifest import ManifestRecord, ObjectRef
from edgeinspect_uploader.record import RESULT_FILE, read_summary
from edgeinspect_uploader.spoolfs import write_file_atomically

_ROLE_OF = {"mask.png": "mask", RESULT_FILE: "result"}


def _role_of(file: str) -> str:
    """``image``, ``mask``, ``result``; an attachment (``input-x.npy``) is listed under its own name."""
    return _ROLE_OF.get(file, "image" if file.startswith("image.") else file)


@dataclass(frozen=True, slots=True)
class FileRef:
    """One file of a capture as planned: local name, object key, size and digests."""

    file: str
    key: str
    size: int
    sha256: str
    md5: str


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One capture of a batch and the manifest line it will get."""

    name: str
    files: list[FileRef]
    record: ManifestRecord


@dataclass(frozen=True, slots=True)
class Batch:
    seq: int
    uploader: str
    items: list[BatchItem]

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "uploader": self.uploader,
            "items": [
                {
                    "name": item.name,
                    "files": [vars_of(f) for f in item.files],
                    "record": item.record.to_json(),
                }
                for item in self.items
            ],
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Batch:
        items = [
            BatchItem(
                name=str(raw["name"]),
                files=[FileRef(**f) for f in raw["files"]],
                record=ManifestRecord.from_json(raw["record"]),
            )
            for raw in body["items"]
        ]
        return cls(seq=int(body["seq"]), uploader=str(body["uploader"]), items=items)


def vars_of(ref: FileRef) -> dict[str, Any]:
    return {"file": ref.file, "key": ref.key, "size": ref.size, "sha256": ref.sha256, "md5": ref.md5}


def plan_item(folder: Path, uploader: str, seq: int) -> BatchItem:
    """Read a spooled capture folder and plan its upload (raises ``OSError``/``ValueError`` if unreadable)."""
    summary = read_summary((folder / RESULT_FILE).read_bytes())
    prefix = capture_prefix(summary.line, summary.ts_ns, summary.frame_id)
    files = [_file_ref(path, f"{prefix}/{path.name}") for path in sorted(folder.iterdir())]
    objects = {_role_of(f.file): ObjectRef(f.key, f.size, f.sha256) for f in files}
    record = ManifestRecord(
        frame_id=summary.frame_id,
        line=summary.line,
        ts_ns=summary.ts_ns,
        time=iso_utc(summary.ts_ns),
        verdict=summary.verdict,
        score=summary.score,
        reasons=summary.reasons,
        keep=summary.keep.name.lower(),
        camera=summary.camera,
        source=summary.source,
        encoding=summary.encoding,
        width=summary.width,
        height=summary.height,
        objects=objects,
        uploader=uploader,
        batch=seq,
        part_id=summary.part_id,
    )
    return BatchItem(name=folder.name, files=files, record=record)


def _file_ref(path: Path, key: str) -> FileRef:
    sha, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            sha.update(chunk)
            md5.update(chunk)
            size += len(chunk)
    return FileRef(path.name, key, size, sha.hexdigest(), md5.hexdigest())


def day_groups(batch: Batch) -> dict[tuple[str, Any], list[ManifestRecord]]:
    """The batch's manifest lines grouped by (line, UTC day): one part per group."""
    groups: dict[tuple[str, Any], list[ManifestRecord]] = {}
    for item in batch.items:
        groups.setdefault((item.record.line, capture_day(item.record.ts_ns)), []).append(item.record)
    return groups


class Journal:
    """``state/``: the uploader id, the batch counter and the open batches."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.batches = state / "batches"

    def open(self) -> None:
        self.batches.mkdir(parents=True, exist_ok=True)

    def uploader_id(self, configured: str = "") -> str:
        """``configured`` if set, else a random id made once for this spool and kept in ``state/``."""
        if configured:
            return configured
        path = self.state / "uploader-id"
        if path.exists():
            return path.read_text().strip()
        new = f"u{secrets.token_hex(6)}"
        write_file_atomically(path, new.encode())
        return new

    def next_seq(self) -> int:
        """A batch number never used before by this spool (persisted before it is handed out)."""
        path = self.state / "seq"
        last = int(path.read_text()) if path.exists() else 0
        opened = [int(p.stem) for p in self.batches.glob("*.json")]
        seq = max([last, *opened]) + 1
        write_file_atomically(path, str(seq).encode())
        return seq

    def write(self, batch: Batch) -> None:
        write_file_atomically(self._path(batch.seq), json.dumps(batch.to_json()).encode("utf-8"))

    def open_batches(self) -> list[Batch]:
        """Batches begun but not finished, oldest first."""
        out: list[Batch] = []
        for path in sorted(self.batches.glob("*.json")):
            try:
                out.append(Batch.from_json(json.loads(path.read_bytes())))
            except (ValueError, KeyError, TypeError) as exc:
                raise ConfigError(
                    f"the upload journal {path} is unreadable: {exc}",
                    hint="the spool's state/ folder was damaged; move the file away to drop that batch",
                ) from exc
        return out

    def close(self, seq: int) -> None:
        self._path(seq).unlink(missing_ok=True)

    def _path(self, seq: int) -> Path:
        return self.batches / f"{seq:012d}.json"
