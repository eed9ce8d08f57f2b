"""The documented object key layout and the eviction classes: pure functions, one place.

Keys are relative to the store URL (``EI_CAPTURE_URL``, e.g. ``s3://bucket/captures``)::

    {line}/{yyyy}/{mm}/{dd}/{frame_id}/image.<png|jpg>
    {line}/{yyyy}/{mm}/{dd}/{frame_id}/mask.png            (when the result has a mask)
    {line}/{yyyy}/{mm}/{dd}/{frame_id}/result.json
    {line}/{yyyy}/{mm}/{dd}/_manifest/part-{uploader}-{seq:012d}.jsonl

The date is the capture time (``ts_ns``) in UTC, so a capture's keys never depend on when it was
uploaded: re-uploading writes the same keys. Manifest parts live under ``_manifest/`` because a frame
id must start with a letter or digit, so no frame folder can ever be called that, and a reader lists
only the day's parts, never its millions of capture keys.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from enum import IntEnum

from edgeinspect.core.capture_manifest import MANIFEST_DIR as MANIFEST_DIR  # defined in core, re-exported
from edgeinspect.core.capture_manifest import day_prefix as day_prefix
from edgeinspect.core.capture_manifest import manifest_dir as manifest_dir
from edgeinspect.core.errors import MessageError
from edgeinspect.core.safejson import clip

_FRAME_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
_LINE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
IMAGE_EXT = {"png": "png", "jpeg": "jpg", "raw": "png"}  # raw frames are stored losslessly as PNG
UNCERTAIN_REASONS = frozenset({"near_threshold", "shadow_disagreement"})


class Keep(IntEnum):
    """How much a capture is worth keeping; the spool evicts the lowest class first, oldest first."""

    GOOD = 0
    """A good part sampled for drift monitoring: plentiful, cheap to lose."""
    UNCERTAIN = 1
    """Near a threshold or a shadow disagreement: the most useful frames for retraining."""
    DEFECT = 2
    """A defect or an error verdict: evidence someone must see; evicted last."""


def keep_class(verdict: str, reasons: list[str]) -> Keep:
    """The eviction class of a capture from its verdict and the capture policy's reasons."""
    if verdict in ("defect", "error") or {"defect", "error"} & set(reasons):
        return Keep.DEFECT
    if UNCERTAIN_REASONS & set(reasons):
        return Keep.UNCERTAIN
    return Keep.GOOD


def check_ids(line: str, frame_id: str) -> None:
    """Refuse ids that cannot be a safe path part and object key part (``MessageError`` says which)."""
    if not _LINE.match(line):
        raise MessageError(
            f"capture line {clip(line)} is not a valid line id",
            hint="line ids are 1-63 letters, digits, '_', '.', '-', starting with a letter or digit",
        )
    if not _FRAME_ID.match(frame_id):
        raise MessageError(
            f"capture frame_id {clip(frame_id)} cannot be used in a key",
            hint="frame ids are 1-128 letters, digits, '_', '.', ':', '-', starting with a letter or digit",
        )


def capture_day(ts_ns: int) -> date:
    """The UTC calendar day of a capture time."""
    return _utc(ts_ns).date()


def capture_prefix(line: str, ts_ns: int, frame_id: str) -> str:
    """``{line}/{yyyy}/{mm}/{dd}/{frame_id}``: the folder of one capture's objects."""
    return f"{day_prefix(line, capture_day(ts_ns))}/{frame_id}"


def manifest_part_key(line: str, day: date, uploader: str, seq: int) -> str:
    """One batch's manifest part: unique per uploader and batch, so no write ever replaces another's."""
    return f"{manifest_dir(line, day)}part-{uploader}-{seq:012d}.jsonl"


def spool_name(line: str, frame_id: str) -> str:
    """The spool folder name of a capture (``+`` appears in neither id, so the name is unambiguous)."""
    return f"{line}+{frame_id}"


def iso_utc(ts_ns: int) -> str:
    """A capture time as ISO 8601 UTC with microseconds, for humans reading manifests."""
    return _utc(ts_ns).isoformat(timespec="microseconds")


def _utc(ts_ns: int) -> datetime:
    """Integer arithmetic, so a capture 1 ns before midnight is never rounded into the next day."""
    seconds, rest = divmod(ts_ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, tz=UTC) + timedelta(microseconds=rest // 1000)
