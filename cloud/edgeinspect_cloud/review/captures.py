"""Captured frames in object storage, as the review page and the drift monitor see them.

The uploader writes ``{line}/{yyyy}/{mm}/{dd}/{frame_id}/{image.png|jpg, mask.png, result.json}`` and
a daily manifest of parts under ``_manifest/`` (:mod:`edgeinspect.core.capture_manifest`). This module
finds the (line, day) manifests, reads their records, and fetches one capture's image, mask and
result on demand. Finding days without ``lines``/``first``/``last`` lists every key of the store
(fine for a folder or a small bucket; name the lines and dates for a big one).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt
from edgeinspect.core import images
from edgeinspect.core.capture_manifest import MANIFEST_DIR, TELEMETRY_DIR, ManifestRecord, read_day
from edgeinspect.core.errors import StorageError
from edgeinspect.core.storage import ObjectStore, open_store


@dataclass(frozen=True, slots=True)
class LineDay:
    """One line's captures of one UTC day."""

    line: str
    day: date


def parse_day_key(key: str, folder: str) -> LineDay | None:
    """``line/yyyy/mm/dd/{folder}/...`` -> LineDay, else None."""
    parts = key.split("/")
    if len(parts) < 6 or parts[4] != folder:
        return None
    try:
        return LineDay(parts[0], date(int(parts[1]), int(parts[2]), int(parts[3])))
    except ValueError:
        return None


def find_days(store: ObjectStore, folder: str = MANIFEST_DIR, lines: Sequence[str] = ()) -> list[LineDay]:
    """Every (line, day) holding a ``folder`` (``_manifest`` or ``_telemetry``), sorted."""
    found: set[LineDay] = set()
    for prefix in [f"{line}/" for line in lines] or [""]:
        for info in store.list(prefix):
            if f"/{folder}/" in info.key and (parsed := parse_day_key(info.key, folder)) is not None:
                found.add(parsed)
    return sorted(found, key=lambda d: (d.line, d.day))


class CaptureStore:
    """Read access to a capture store (``s3://bucket/prefix`` or ``file:///folder``)."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    @classmethod
    def open(cls, url: str, **options: Any) -> CaptureStore:
        return cls(open_store(url, **options))

    @property
    def url(self) -> str:
        return self.store.url

    def days(
        self, lines: Sequence[str] = (), first: date | None = None, last: date | None = None
    ) -> list[LineDay]:
        """The (line, day) pairs with captures, optionally limited to ``lines`` and a date range."""
        return [
            d
            for d in find_days(self.store, MANIFEST_DIR, lines)
            if (first is None or d.day >= first) and (last is None or d.day <= last)
        ]

    def telemetry_days(self, lines: Sequence[str] = ()) -> list[LineDay]:
        """The (line, day) pairs with telemetry summaries."""
        return find_days(self.store, TELEMETRY_DIR, lines)

    def records(self, days: Sequence[LineDay]) -> Iterator[ManifestRecord]:
        """Every capture of ``days``, each frame once per day, in manifest order."""
        for item in days:
            yield from read_day(self.store, item.line, item.day)

    def image(self, record: ManifestRecord) -> npt.NDArray[np.uint8]:
        """The captured frame, decoded to ``HxWx3`` RGB (grey frames repeated to three channels)."""
        data = self.store.get_bytes(self._key(record, "image"))
        pixels = images.decode(data, "jpeg" if record.encoding == "jpeg" else "png")
        return np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels

    def image_bytes(self, record: ManifestRecord) -> tuple[bytes, str]:
        """The image object as stored and its media type (for serving it unchanged)."""
        data = self.store.get_bytes(self._key(record, "image"))
        return data, "image/jpeg" if record.encoding == "jpeg" else "image/png"

    def mask(self, record: ManifestRecord) -> npt.NDArray[np.bool_] | None:
        """The model's mask at frame size, or None when the result carried none (a good part)."""
        if "mask" not in record.objects:
            return None
        return images.decode_mask(self.store.get_bytes(record.objects["mask"].key))

    def result(self, record: ManifestRecord) -> dict[str, Any]:
        """The capture's ``result.json`` (verdict, score, predictions, reasons)."""
        raw = self.store.get_bytes(self._key(record, "result"))
        try:
            body: dict[str, Any] = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise StorageError(
                f"{self.store.url_for(self._key(record, 'result'))} is not JSON: {exc}",
                hint="the capture is damaged; skip it or upload it again",
            ) from exc
        return body

    def _key(self, record: ManifestRecord, role: str) -> str:
        ref = record.objects.get(role)
        if ref is None:
            raise StorageError(
                f"capture {record.line}/{record.frame_id} has no {role} object in its manifest",
                hint="the manifest part is incomplete; check the uploader",
            )
        return ref.key
