"""Telemetry parts beside the capture manifests: keys, days, reading back, refusing a foreign part."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from edgeinspect.core.capture_manifest import (
    read_telemetry_range,
    telemetry_dir,
    telemetry_part_key,
    utc_day,
)
from edgeinspect.core.errors import StorageError
from edgeinspect.core.storage import open_store
from edgeinspect.core.telemetry import TelemetrySummary
from edgeinspect_cloud.review.captures import find_days, parse_day_key

NOON = int(datetime(2026, 3, 4, 12, tzinfo=UTC).timestamp()) * 1_000_000_000


def test_a_part_key_names_the_day_the_uploader_and_the_stream_entry() -> None:
    key = telemetry_part_key("line-1", NOON, "u1", "1772625600000-3")
    assert key == "line-1/2026/03/04/_telemetry/part-u1-1772625600000_3.jsonl"
    assert utc_day(NOON - 12 * 3600 * 10**9 - 1) == date(2026, 3, 3)  # 1 ns before midnight
    assert parse_day_key(key, "_telemetry") == parse_day_key(
        telemetry_dir("line-1", date(2026, 3, 4)) + "x", "_telemetry"
    )
    assert parse_day_key("line-1/2026/03/04/frame-1/image.png", "_telemetry") is None


def test_summaries_are_read_back_across_days_and_a_foreign_part_is_an_error(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}")
    for day, frames in ((NOON, 5), (NOON + 86_400 * 10**9, 7)):
        body = TelemetrySummary(line="line-1", frames=frames, start_ns=day, end_ns=day)
        store.put_bytes(
            telemetry_part_key("line-1", day, "u1", f"{day // 10**6}-0"),
            (json.dumps(body.to_json()) + "\n").encode(),
        )
    found = list(read_telemetry_range(store, "line-1", date(2026, 3, 4), date(2026, 3, 5)))
    assert [s.frames for s in found] == [5, 7]
    assert [d.day for d in find_days(store, "_telemetry")] == [date(2026, 3, 4), date(2026, 3, 5)]
    store.put_bytes("line-1/2026/03/04/_telemetry/part-x-1.jsonl", b'{"schema": "other"}\n')
    with pytest.raises(StorageError, match="not a telemetry summary"):
        list(read_telemetry_range(store, "line-1", date(2026, 3, 4), date(2026, 3, 4)))
