"""The reviewed dataset: training layout, provenance, one entry per capture, refusals with reasons."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from edgeinspect.core import images
from edgeinspect.core.capture_manifest import ManifestRecord, ObjectRef
from edgeinspect_cloud.data.dataset import list_split, read_labels, read_sample
from edgeinspect_cloud.review.export import Decision, ReviewError, ReviewExport, capture_key

HEIGHT, WIDTH = 24, 16


def record(frame_id: str, verdict: str = "ok", encoding: str = "png") -> ManifestRecord:
    folder = f"line-1/2026/03/04/{frame_id}"
    ext = "jpg" if encoding == "jpeg" else "png"
    return ManifestRecord(
        frame_id=frame_id, line="line-1", ts_ns=1, time="2026-03-04T00:00:00.000000+00:00",
        verdict=verdict, score=0.7 if verdict == "defect" else 0.2, reasons=[verdict], keep=verdict,
        camera="cam", source="", encoding=encoding, width=WIDTH, height=HEIGHT,
        objects={"image": ObjectRef(f"{folder}/image.{ext}", 1, "0" * 64)}, uploader="u", batch=1,
    )  # fmt: skip


def pixels(level: int) -> bytes:
    return images.encode(np.full((HEIGHT, WIDTH, 3), level, np.uint8), "png")


def mask(*box: int) -> np.ndarray:
    out = np.zeros((HEIGHT, WIDTH), bool)
    y0, y1, x0, x1 = box
    out[y0:y1, x0:x1] = True
    return out


def test_decisions_become_a_training_dataset_with_provenance(tmp_path: Path) -> None:
    export = ReviewExport(tmp_path / "ds")
    missed = record("a")
    export.save(missed, pixels(40), Decision("defect", mask(2, 6, 3, 9), "ana"))
    export.save(
        record("b", "defect"), pixels(90), Decision("ok", mask(0, 24, 0, 16), "ana"), mask(1, 5, 1, 5)
    )
    samples = list_split(tmp_path / "ds", "train")
    assert [s.image_path.name for s in samples] == ["10000.png", "10001.png"]
    assert read_labels(samples).tolist() == [True, False]  # an "ok" decision stores an empty mask
    assert read_sample(samples[0]).mask.sum() == 4 * 6
    lines = [json.loads(x) for x in (tmp_path / "ds" / "provenance.jsonl").read_text().splitlines()]
    assert [(p["frame_id"], p["original_verdict"], p["label"], p["corrected"]) for p in lines] == [
        ("a", "ok", "defect", True),
        ("b", "defect", "ok", True),
    ]
    assert lines[0]["source_key"] == "line-1/2026/03/04/a/image.png" and lines[0]["reviewer"] == "ana"
    assert (export.decided(capture_key(missed)) or {}).get("label") == "defect"
    assert export.summary()["reviewed"] == 2 and export.summary()["defective"] == 1


def test_a_second_decision_replaces_the_first_and_survives_a_restart(tmp_path: Path) -> None:
    export = ReviewExport(tmp_path / "ds")
    capture = record("a", "defect")
    export.save(capture, pixels(40), Decision("defect", mask(2, 6, 3, 9), "ana"), mask(2, 6, 3, 9))
    again = ReviewExport(tmp_path / "ds")  # a restarted review app picks up where it was
    entry = again.save(capture, pixels(40), Decision("defect", mask(10, 20, 1, 4), "bo"), mask(2, 6, 3, 9))
    assert entry["number"] == 10000 and entry["reviewer"] == "bo"
    assert [s.image_path.name for s in list_split(tmp_path / "ds", "train")] == ["10000.png"]
    lines = [json.loads(x) for x in (tmp_path / "ds" / "provenance.jsonl").read_text().splitlines()]
    assert [p["corrected"] for p in lines] == [False, True]  # confirmed, then the mask was redrawn


def test_a_jpeg_capture_keeps_its_bytes_and_suffix(tmp_path: Path) -> None:
    export = ReviewExport(tmp_path / "ds")
    jpeg = images.encode(np.full((HEIGHT, WIDTH, 3), 77, np.uint8), "jpeg")
    export.save(record("j", encoding="jpeg"), jpeg, Decision("ok", mask(0, 0, 0, 0), "ana"))
    assert (tmp_path / "ds" / "train" / "10000.jpg").read_bytes() == jpeg


def test_a_defect_needs_a_mask_and_masks_need_the_frame_size(tmp_path: Path) -> None:
    export = ReviewExport(tmp_path / "ds")
    with pytest.raises(ReviewError, match="mask is empty"):
        export.save(record("a"), pixels(1), Decision("defect", mask(0, 0, 0, 0), "ana"))
    with pytest.raises(ReviewError, match="but frame a is 16x24"):
        export.save(record("a"), pixels(1), Decision("defect", np.ones((5, 5), bool), "ana"))
    assert not (tmp_path / "ds" / "provenance.jsonl").exists()
