"""The captures' object layout and daily manifests: one reader for the uploader, review, monitor, retraining.

Keys are relative to the capture store's URL (``EI_CAPTURE_URL``)::

    {line}/{yyyy}/{mm}/{dd}/{frame_id}/image.<png|jpg>, mask.png (optional), result.json
    {line}/{yyyy}/{mm}/{dd}/_manifest/part-{uploader}-{seq:012d}.jsonl     capture manifest parts
    {line}/{yyyy}/{mm}/{dd}/_telemetry/part-{uploader}-{entry}.jsonl       telemetry summary parts

An object store has no append, so the uploader never rewrites a manifest. Each upload batch writes
one immutable *part* per (line, day) it touched; ``seq`` is a per-spool counter that only grows and
the uploader id is unique per spool, so two writes can never share a key and no line is ever lost to
a concurrent or repeated write. A part is written only after every object it lists was confirmed by
the store, and a batch interrupted by a crash is finished from its journal with the *same* part key
and bytes, so a part never lists a capture twice and two parts list the same capture only if it was
re-captured after its dedup marker expired (``read_day`` drops such repeats). A day's manifest is
the union of its parts.

Telemetry parts (one per summary the worker published, named by its ``ei:events`` entry id, so a
re-delivered summary rewrites the same key with the same bytes) hold one JSON summary per line in the
schema of :mod:`edgeinspect.core.telemetry`; :func:`read_telemetry_day` reads them back. Both kinds
live under folders starting with ``_``, which no frame id can (they start with a letter or digit).

Moved here from ``edgeinspect_uploader.manifest`` (which re-exports it) so cloud tools read captures
without importing the uploader.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from edgeinspect.core.errors import MessageError, StorageError
from edgeinspect.core.storage import ObjectStore
from edgeinspect.core.telemetry import TelemetrySummary

MANIFEST_DIR = "_manifest"
TELEMETRY_DIR = "_telemetry"


def day_prefix(line: str, day: date) -> str:
    """``{line}/{yyyy}/{mm}/{dd}``."""
    return f"{line}/{day.year:04d}/{day.month:02d}/{day.day:02d}"


def manifest_dir(line: str, day: date) -> str:
    """The key prefix under which a day's capture manifest parts are listed."""
    return f"{day_prefix(line, day)}/{MANIFEST_DIR}/"


def telemetry_dir(line: str, day: date) -> str:
    """The key prefix under which a day's telemetry parts are listed."""
    return f"{day_prefix(line, day)}/{TELEMETRY_DIR}/"


def utc_day(ts_ns: int) -> date:
    """The UTC calendar day of a time in ns (integer arithmetic: never rounded into the next day)."""
    seconds = ts_ns // 1_000_000_000
    return datetime.fromtimestamp(seconds, tz=UTC).date()


def telemetry_part_key(line: str, ts_ns: int, uploader: str, entry_id: str) -> str:
    """The key of one telemetry summary: its day (``ts_ns``), uploader and stream entry id."""
    return f"{telemetry_dir(line, utc_day(ts_ns))}part-{uploader}-{entry_id.replace('-', '_')}.jsonl"


def list_lines(store: ObjectStore) -> list[str]:
    """Every line folder at the top of the capture store (a listing of all keys: for small stores)."""
    return sorted({info.key.split("/", 1)[0] for info in store.list("") if "/" in info.key})


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
    part_id: str = ""  # the PLC's part id (serial), so a part's image is found from the manifest

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
            "part_id": self.part_id,
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
                part_id=str(body.get("part_id", "")),
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


def read_telemetry_day(store: ObjectStore, line: str, day: date) -> Iterator[TelemetrySummary]:
    """Every telemetry summary of ``line`` stored for ``day`` (UTC), in key order."""
    for info in store.list(telemetry_dir(line, day)):
        if not info.key.endswith(".jsonl"):
            continue
        for number, raw in enumerate(store.get_bytes(info.key).decode("utf-8").splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                yield TelemetrySummary.from_json(json.loads(raw))
            except (ValueError, MessageError) as exc:
                raise StorageError(
                    f"{store.url_for(info.key)} line {number} is not a telemetry summary: {exc}",
                    hint="inspect the part; it was written by an incompatible uploader",
                ) from exc


def read_telemetry_range(
    store: ObjectStore, line: str, first: date, last: date
) -> Iterator[TelemetrySummary]:
    """``read_telemetry_day`` for every day from ``first`` to ``last`` inclusive."""
    day = first
    while day <= last:
        yield from read_telemetry_day(store, line, day)
        day += timedelta(days=1)
