"""What one capture becomes on disk and in the bucket: ``image.<ext>``, ``mask.png``, ``result.json``.

The files are a pure function of the capture record, so spooling the same stream entry twice, or
uploading the same spooled capture twice, produces byte-identical objects under the same keys.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from edgeinspect.core import attachments
from edgeinspect.core.hashing import sha256_bytes
from edgeinspect.core.images import decode, encode
from edgeinspect.core.messages import Capture

from edgeinspect_uploader.layout import IMAGE_EXT, Keep, check_ids, keep_class, spool_name

RESULT_FILE = "result.json"
MASK_FILE = "mask.png"
RESULT_SCHEMA = 1


@dataclass(frozen=True, slots=True)
class CaptureFiles:
    """A capture ready to be spooled: its identity, eviction class and file contents by name."""

    line: str
    frame_id: str
    ts_ns: int
    keep: Keep
    files: dict[str, bytes]

    @property
    def name(self) -> str:
        return spool_name(self.line, self.frame_id)

    @property
    def size(self) -> int:
        return sum(len(data) for data in self.files.values())


def capture_files(capture: Capture) -> CaptureFiles:
    """The files of ``capture``; ``MessageError``/``ImageError`` when it cannot be stored as is."""
    check_ids(capture.line, capture.frame_id)
    image = _image_bytes(capture)
    image_name = f"image.{IMAGE_EXT[capture.encoding]}"
    files = {image_name: image}
    if capture.mask:
        files[MASK_FILE] = capture.mask
    if capture.attachments:
        files.update(attachments.unpack(capture.attachments))  # names checked: never image/mask/result
    files[RESULT_FILE] = result_json(capture, files)
    return CaptureFiles(
        line=capture.line,
        frame_id=capture.frame_id,
        ts_ns=capture.ts_ns,
        keep=keep_class(capture.verdict, capture.reasons),
        files=files,
    )


def _image_bytes(capture: Capture) -> bytes:
    """PNG/JPEG bytes as they came; raw pixels are encoded to PNG (lossless, and readable by anyone)."""
    if capture.encoding != "raw":
        return capture.data
    pixels = decode(
        capture.data, "raw", height=capture.height, width=capture.width, channels=capture.channels
    )
    return encode(np.ascontiguousarray(pixels), "png")


def result_json(capture: Capture, files: dict[str, bytes]) -> bytes:
    """The capture's metadata and verdict, with the sha256 of its image and mask (sorted keys)."""
    body: dict[str, Any] = {
        "schema": RESULT_SCHEMA,
        "frame_id": capture.frame_id,
        "line": capture.line,
        "camera": capture.camera,
        "source": capture.source,
        "part_id": capture.part_id,
        "ts_ns": capture.ts_ns,
        "encoding": capture.encoding,
        "height": capture.height,
        "width": capture.width,
        "channels": capture.channels,
        "verdict": capture.verdict,
        "score": capture.score,
        "error": capture.error,
        "e2e_ms": capture.e2e_ms,
        "reasons": list(capture.reasons),
        "predictions": [p.to_json() for p in capture.predictions],
        "files": {name: {"size": len(data), "sha256": sha256_bytes(data)} for name, data in files.items()},
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True, slots=True)
class ResultSummary:
    """What the spool index needs from a ``result.json`` when rebuilding after a restart."""

    line: str
    frame_id: str
    ts_ns: int
    keep: Keep
    verdict: str
    reasons: list[str]
    camera: str
    source: str
    encoding: str
    width: int
    height: int
    score: float
    part_id: str = ""


def read_summary(raw: bytes) -> ResultSummary:
    """Parse a spooled ``result.json``; ``ValueError``/``KeyError``/``TypeError`` if it is not one."""
    body = json.loads(raw)
    reasons = [str(r) for r in body["reasons"]]
    return ResultSummary(
        line=str(body["line"]),
        frame_id=str(body["frame_id"]),
        ts_ns=int(body["ts_ns"]),
        keep=keep_class(str(body["verdict"]), reasons),
        verdict=str(body["verdict"]),
        reasons=reasons,
        camera=str(body.get("camera", "")),
        source=str(body.get("source", "")),
        encoding=str(body["encoding"]),
        width=int(body["width"]),
        height=int(body["height"]),
        score=float(body["score"]),
        part_id=str(body.get("part_id", "")),
    )
