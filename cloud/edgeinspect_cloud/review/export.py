"""Reviewed captures written as a dataset in the training layout, with provenance.

    DATASET_DIR/train/NNNNN.png (or .jpg)   the captured frame, byte for byte as stored
    DATASET_DIR/train/NNNNN_GT.png          the reviewed mask (0/255); all black for a good part
    DATASET_DIR/provenance.jsonl            one line per decision: source key, frame id, original
                                            verdict and score, label, reviewer, time
    DATASET_DIR/review.json                 capture key -> NNNNN, so a second decision on the same
                                            capture replaces its files instead of adding a duplicate

The folder is a dataset every cloud tool reads (``edgeinspect pipeline run --dataset BASE --dataset
DATASET_DIR``). A defect must come with a non-empty mask: the training layout knows a defect only by
its mask, so a "defect" without one would silently train as a good part.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from edgeinspect.core import images
from edgeinspect.core.capture_manifest import ManifestRecord
from edgeinspect.core.errors import EdgeInspectError

FIRST_NUMBER = 10000
Label = Literal["ok", "defect"]


class ReviewError(EdgeInspectError):
    """A decision that cannot be exported as is (a defect without a mask, a mask of the wrong size)."""


@dataclass(frozen=True)
class Decision:
    """What the reviewer decided about one capture."""

    label: Label
    mask: npt.NDArray[np.bool_]
    reviewer: str


def capture_key(record: ManifestRecord) -> str:
    """A capture's identity: its folder in the store (``line/yyyy/mm/dd/frame_id``)."""
    return record.objects["image"].key.rsplit("/", 1)[0]


class ReviewExport:
    """The dataset folder being written; thread-safe (the web server may run handlers concurrently)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.train = root / "train"
        self._index_path = root / "review.json"
        self._lock = threading.Lock()
        self.train.mkdir(parents=True, exist_ok=True)
        self._index: dict[str, dict[str, Any]] = (
            json.loads(self._index_path.read_text()) if self._index_path.is_file() else {}
        )

    def decided(self, key: str) -> dict[str, Any] | None:
        """The last decision on a capture (label, number, reviewer, time), or None."""
        with self._lock:
            return self._index.get(key)

    def summary(self) -> dict[str, Any]:
        with self._lock:
            labels = [entry["label"] for entry in self._index.values()]
        return {"dir": str(self.root), "reviewed": len(labels), "defective": labels.count("defect")}

    def save(
        self,
        record: ManifestRecord,
        image: bytes,
        decision: Decision,
        model_mask: npt.NDArray[np.bool_] | None = None,
    ) -> dict[str, Any]:
        """Write one decision (image, mask, provenance line, index) and return its index entry.

        ``model_mask`` is the mask the edge reported, to record whether the reviewer changed it.
        """
        mask = self._checked_mask(record, decision)
        model_label = "defect" if record.verdict == "defect" else "ok"
        before = model_mask if model_mask is not None else np.zeros_like(mask)
        changed = before.shape != mask.shape or bool(np.any(before != mask))
        corrected = decision.label != model_label or changed
        key = capture_key(record)
        suffix = ".jpg" if record.encoding == "jpeg" else ".png"
        with self._lock:
            entry = self._index.get(key)
            number = int(entry["number"]) if entry else FIRST_NUMBER + len(self._index)
            image_path = self.train / f"{number:05d}{suffix}"
            mask_path = self.train / f"{number:05d}_GT.png"
            _write(image_path, image)
            _write(mask_path, images.encode_mask(mask))
            now = datetime.now(UTC).isoformat(timespec="seconds")
            entry = {"number": number, "label": decision.label, "reviewer": decision.reviewer, "time": now}
            provenance = {
                "image": image_path.relative_to(self.root).as_posix(),
                "mask": mask_path.relative_to(self.root).as_posix(),
                "source_key": record.objects["image"].key,
                "capture": key,
                "frame_id": record.frame_id,
                "line": record.line,
                "capture_time": record.time,
                "original_verdict": record.verdict,
                "original_score": record.score,
                "reasons": list(record.reasons),
                "label": decision.label,
                "defect_pixels": int(mask.sum()),
                "corrected": corrected,
                "reviewer": decision.reviewer,
                "time": now,
            }
            with open(self.root / "provenance.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(provenance, sort_keys=True) + "\n")
            self._index[key] = entry
            _write(self._index_path, (json.dumps(self._index, indent=2, sort_keys=True) + "\n").encode())
        return entry

    @staticmethod
    def _checked_mask(record: ManifestRecord, decision: Decision) -> npt.NDArray[np.bool_]:
        if decision.mask.shape != (record.height, record.width):
            raise ReviewError(
                f"mask is {decision.mask.shape[1]}x{decision.mask.shape[0]} but frame {record.frame_id} "
                f"is {record.width}x{record.height}",
                hint="send the mask at the frame's size",
            )
        if decision.label == "ok":
            return np.zeros_like(decision.mask)
        if not decision.mask.any():
            raise ReviewError(
                f"frame {record.frame_id} is labelled defect but its mask is empty",
                hint="paint the defect on the image (the training data knows a defect by its mask)",
            )
        return decision.mask


def _write(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically (a crash never leaves half a PNG in the dataset)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
