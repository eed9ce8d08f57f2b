"""A capture's files: deterministic bytes, raw frames stored as PNG, unusable ids refused."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from edgeinspect.core.errors import ImageError, MessageError
from edgeinspect.core.hashing import sha256_bytes
from edgeinspect.core.images import decode
from edgeinspect_uploader.layout import Keep
from edgeinspect_uploader.record import capture_files, read_summary

from tests.unit.uploader.captures import make_capture


def test_the_same_capture_always_gives_the_same_bytes() -> None:
    one = make_capture(np.random.default_rng(1), line="l1", frame_id="f1")
    two = make_capture(np.random.default_rng(1), line="l1", frame_id="f1")
    assert capture_files(one).files == capture_files(two).files


def test_defect_capture_has_image_mask_and_result_with_digests() -> None:
    capture = make_capture(np.random.default_rng(2), line="l1", frame_id="f1", kind="defect")
    files = capture_files(capture)
    assert sorted(files.files) == ["image.png", "mask.png", "result.json"]
    assert files.keep is Keep.DEFECT
    body = json.loads(files.files["result.json"])
    assert body["files"]["image.png"]["sha256"] == sha256_bytes(capture.data)
    assert body["verdict"] == "defect" and body["reasons"] == ["defect"]
    summary = read_summary(files.files["result.json"])
    assert (summary.frame_id, summary.ts_ns, summary.keep) == ("f1", capture.ts_ns, Keep.DEFECT)


def test_jpeg_keeps_its_bytes_under_a_jpg_name() -> None:
    capture = make_capture(np.random.default_rng(3), line="l1", frame_id="f1", encoding="jpeg", kind="good")
    files = capture_files(capture).files
    assert files["image.jpg"] == capture.data
    assert "mask.png" not in files


def test_raw_frames_are_stored_as_lossless_png() -> None:
    capture = make_capture(np.random.default_rng(4), line="l1", frame_id="f1", encoding="raw")
    png = capture_files(capture).files["image.png"]
    assert decode(png, "png").tobytes() == capture.data


def test_raw_frame_of_the_wrong_size_is_refused() -> None:
    capture = make_capture(np.random.default_rng(5), line="l1", frame_id="f1", encoding="raw")
    with pytest.raises(ImageError):
        capture_files(dataclasses.replace(capture, data=capture.data[:-1]))


def test_frame_id_that_would_escape_the_folder_is_refused() -> None:
    capture = make_capture(np.random.default_rng(6), line="l1", frame_id="f1")
    with pytest.raises(MessageError):
        capture_files(dataclasses.replace(capture, frame_id="../../etc"))


def test_the_plc_part_id_is_in_the_uploaded_result_json() -> None:
    capture = make_capture(np.random.default_rng(3), line="l1", frame_id="f1", kind="defect")
    tagged = dataclasses.replace(capture, part_id="4711")
    assert json.loads(capture_files(tagged).files["result.json"])["part_id"] == "4711"
    assert read_summary(capture_files(tagged).files["result.json"]).part_id == "4711"  # to the manifest
    assert json.loads(capture_files(capture).files["result.json"])["part_id"] == ""
