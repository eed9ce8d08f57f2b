"""Daily manifests: JSON Lines a retraining job reads instead of listing millions of capture keys.

An object store has no append, so the uploader never rewrites a manifest. Each upload batch writes
one immutable *part* per (line, day) it touched::

    {line}/{yyyy}/{mm}/{dd}/_manifest/part-{uploader}-{seq:012d}.jsonl

``seq`` is a per-spool counter that only grows and the uploader id is unique per spool, so two
writes can never share a key and no line is ever lost to a concurrent or repeated write. A part is
written only after every object it lists was confirmed by the store, and a batch interrupted by a
crash is finished from its journal with the *same* part key and bytes, so a part never lists a
capture twice and two parts list the same capture only if it was re-captured after its dedup marker
expired (``read_day`` drops such repeats). A day's manifest is the union of its parts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from edgeinspect.core.errors import StorageError
from edgeinspect.core.storage import ObjectStore

from edgeinspect_uploader.layout import manifest_dir

MANIFEST_SCHEMA = 1


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """One uploaded object of a capture: its key (relative to the store URL), size and sha256."""

    key: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class ManifestRecord:
    """One manifest line: a capture, its verdict and where its objects are."""

    frame_id: str
    line: str
    ts_ns: int
    time: str
    verdict: str
    score: float
    reasons: list[str]
    keep: str
    camera: str
    source: str
    encoding: str
    width: int
    height: int
    objects: dict[str, ObjectRef]
    uploader: str
    batch: int

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "schema": MANIFEST_SCHEMA,
            "frame_id": self.frame_id,
            "line": self.line,
            "ts_ns": self.ts_ns,
            "time": self.time,
            "verdict": self.verdict,
            "score": self.score,
            "reasons": list(self.reasons),
            "keep": self.keep,
            "camera": self.camera,
            "source": self.source,
            "encoding": self.encoding,
            "width": self.width,
            "height": self.height,
            "objects": {
                role: {"key": ref.key, "size": ref.size, "sha256": ref.sha256}
                for role, ref in sorted(self.objects.items())
            },
            "uploader": self.uploader,
            "batch": self.batch,
        }
        return body

    @classmethod
    def from_json(cls, body: Any) -> ManifestRecord:
        """Parse one line; ``ValueError`` names what is wrong with it."""
        if not isinstance(body, dict):
            raise ValueError(f"a manifest line must be a JSON object, got {type(body).__name__}")
        try:
            objects = {
                str(role): ObjectRef(str(o["key"]), int(o["size"]), str(o["sha256"]))
                for role, o in body["objects"].items()
            }
            return cls(
                frame_id=str(body["frame_id"]),
                line=str(body["line"]),
                ts_ns=int(body["ts_ns"]),
                time=str(body["time"]),
                verdict=str(body["verdict"]),
                score=float(body["score"]),
                reasons=[str(r) for r in body["reasons"]],
                keep=str(body["keep"]),
                camera=str(body.get("camera", "")),
                source=str(body.get("source", "")),
                encoding=str(body["encoding"]),
                width=int(body["width"]),
                height=int(body["height"]),
                objects=objects,
                uploader=str(body["uploader"]),
                batch=int(body["batch"]),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed manifest line: {exc!r}") from exc


def part_bytes(records: Iterable[ManifestRecord]) -> bytes:
    """A part's content: one JSON object per line, ordered by capture time (deterministic bytes)."""
    ordered = sorted(records, key=lambda r: (r.ts_ns, r.frame_id))
    lines = [json.dumps(r.to_json(), sort_keys=True, separators=(",", ":")) for r in ordered]
    return ("\n".join(lines) + "\n").encode("utf-8") if lines else b""


def parse_part(data: bytes, where: str = "manifest part") -> list[ManifestRecord]:
    """Every line of a part; ``StorageError`` naming the part and line number if one is malformed."""
    out: list[ManifestRecord] = []
    for number, raw in enumerate(data.decode("utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            out.append(ManifestRecord.from_json(json.loads(raw)))
        except ValueError as exc:
            raise StorageError(f"{where} line {number} is malformed: {exc}", hint="inspect the part") from exc
    return out


def read_day(store: ObjectStore, line: str, day: date) -> Iterator[ManifestRecord]:
    """Every capture of ``line`` uploaded for ``day`` (UTC), each frame id once, in part order.

    Lists only the day's ``_manifest/`` prefix (one key per upload batch), never the capture keys.
    """
    seen: set[str] = set()
    for info in store.list(manifest_dir(line, day)):
        if not info.key.endswith(".jsonl"):
            continue
        for record in parse_part(store.get_bytes(info.key), store.url_for(info.key)):
            if record.frame_id not in seen:
                seen.add(record.frame_id)
                yield record


def read_range(store: ObjectStore, line: str, first: date, last: date) -> Iterator[ManifestRecord]:
    """``read_day`` for every day from ``first`` to ``last`` inclusive (a retraining window)."""
    day = first
    while day <= last:
        yield from read_day(store, line, day)
        day += timedelta(days=1)
