"""The documented key layout, UTC days, eviction classes and id checks."""

from __future__ import annotations

from datetime import date

import pytest
from edgeinspect.core.errors import MessageError
from edgeinspect.core.storage import validate_key
from edgeinspect_uploader.layout import (
    Keep,
    capture_day,
    capture_prefix,
    check_ids,
    iso_utc,
    keep_class,
    manifest_dir,
    manifest_part_key,
)

from tests.unit.uploader.captures import DAY_NS, T0


def test_capture_keys_follow_line_and_utc_capture_date() -> None:
    assert capture_prefix("line-1", T0 + 5 * DAY_NS + 3_600 * 10**9, "abc") == "line-1/2026/01/06/abc"


def test_one_nanosecond_before_midnight_stays_on_the_earlier_day() -> None:
    assert capture_day(T0 - 1) == date(2025, 12, 31)
    assert capture_day(T0) == date(2026, 1, 1)
    assert iso_utc(T0 - 1) == "2025-12-31T23:59:59.999999+00:00"


def test_manifest_parts_are_listed_apart_from_capture_folders() -> None:
    key = manifest_part_key("l1", date(2026, 2, 3), "u1", 42)
    assert key == "l1/2026/02/03/_manifest/part-u1-000000000042.jsonl"
    assert key.startswith(manifest_dir("l1", date(2026, 2, 3)))
    validate_key(key)


@pytest.mark.parametrize(
    ("verdict", "reasons", "keep"),
    [
        ("ok", ["sample_good"], Keep.GOOD),
        ("ok", [], Keep.GOOD),
        ("ok", ["near_threshold"], Keep.UNCERTAIN),
        ("ok", ["shadow_disagreement"], Keep.UNCERTAIN),
        ("defect", ["defect", "near_threshold"], Keep.DEFECT),
        ("error", ["error"], Keep.DEFECT),
    ],
)
def test_eviction_class_follows_verdict_and_reasons(verdict: str, reasons: list[str], keep: Keep) -> None:
    assert keep_class(verdict, reasons) is keep


def test_good_parts_are_evicted_before_uncertain_before_defects() -> None:
    assert Keep.GOOD < Keep.UNCERTAIN < Keep.DEFECT


@pytest.mark.parametrize("frame_id", ["", "../x", "a/b", "_manifest", "a b", "x" * 200, "a+b"])
def test_frame_ids_unsafe_for_keys_are_refused(frame_id: str) -> None:
    with pytest.raises(MessageError, match="frame_id"):
        check_ids("l1", frame_id)


def test_bad_line_ids_are_refused() -> None:
    with pytest.raises(MessageError, match="line"):
        check_ids("../etc", "f1")
    check_ids("line-1", "0123abcdef:cam.1_x-y")
