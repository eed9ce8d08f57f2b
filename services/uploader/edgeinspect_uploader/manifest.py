"""Daily manifests: JSON Lines a retraining job reads instead of listing millions of capture keys.

The record type, the part format and the readers live in :mod:`edgeinspect.core.capture_manifest`
(shared with the cloud's review, monitor and retraining tools); this module re-exports them so the
uploader and its users keep one import path.
"""

from __future__ import annotations

from edgeinspect.core.capture_manifest import (
    MANIFEST_SCHEMA,
    ManifestRecord,
    ObjectRef,
    parse_part,
    part_bytes,
    read_day,
    read_range,
)

__all__ = [
    "MANIFEST_SCHEMA",
    "ManifestRecord",
    "ObjectRef",
    "parse_part",
    "part_bytes",
    "read_day",
    "read_range",
]
