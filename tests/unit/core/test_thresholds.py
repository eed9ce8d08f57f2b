"""A line's threshold overrides: values checked, keys checked, layering and the effective thresholds."""

from __future__ import annotations

import math

import pytest
from edgeinspect.core.thresholds import (
    Override,
    OverrideTable,
    ThresholdError,
    check_threshold,
    parse_threshold_text,
    split_key,
)


@pytest.mark.parametrize("value", [0, 0.0, 0.35, 1, 1.0])
def test_probabilities_are_thresholds(value: float) -> None:
    assert check_threshold(value) == float(value)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (-0.01, "between 0 and 1"),
        (1.5, "between 0 and 1"),
        (math.nan, "between 0 and 1"),
        (math.inf, "between 0 and 1"),
        (True, "must be a number"),
        ("0.3", "must be a number"),
        (None, "must be a number"),
    ],
)
def test_anything_else_is_refused_saying_what_is_allowed(value: object, says: str) -> None:
    with pytest.raises(ThresholdError, match=says) as caught:
        check_threshold(value, "image threshold")
    assert "image threshold" in caught.value.message and caught.value.hint


def test_text_thresholds() -> None:
    assert parse_threshold_text("0.25") == 0.25
    for bad in ("abc", "nan", "2"):
        with pytest.raises(ThresholdError):
            parse_threshold_text(bad)


def test_keys_are_a_model_or_a_model_version() -> None:
    assert split_key("defect-cls") == ("defect-cls", "")
    assert split_key("defect-cls:1.10") == ("defect-cls", "1.10")
    for bad in ("", "bad name", "cls:", "cls:../x", "-cls"):
        with pytest.raises(ThresholdError, match="MODEL or MODEL:VERSION"):
            split_key(bad)


def test_without_overrides_the_manifest_decides() -> None:
    used = OverrideTable().effective("cls", "7", 0.5, None)
    assert (used.image, used.pixel, used.overridden, used.by) == (0.5, None, False, None)


def test_the_version_key_wins_over_the_model_key_field_by_field() -> None:
    overrides = OverrideTable.from_json(
        {"seg": {"image": 0.3, "pixel": 0.4}, "seg:7": {"pixel": 0.6}}, source="job", what="test"
    )
    seven = overrides.effective("seg", "7", 0.5, 0.5)
    assert (seven.image, seven.pixel, seven.image_source, seven.pixel_source) == (0.3, 0.6, "job", "job")
    assert seven.by == overrides.entries["seg:7"]
    eight = overrides.effective("seg", "8", 0.5, 0.5)
    assert (eight.image, eight.pixel) == (0.3, 0.4)
    other = overrides.effective("cls", "7", 0.5, None)
    assert not other.overridden


def test_a_pixel_override_means_nothing_to_a_classifier() -> None:
    overrides = OverrideTable.from_json({"cls": {"pixel": 0.2}}, source="job", what="test")
    used = overrides.effective("cls", "1", 0.5, None)
    assert (used.pixel, used.overridden) == (None, False)


def test_a_job_wins_over_the_setting_for_the_same_key() -> None:
    setting = OverrideTable.from_json({"cls": {"image": 0.2, "pixel": 0.1}}, source="setting", what="s")
    jobs = OverrideTable.from_json({"cls": {"image": 0.4}}, source="job", what="j")
    merged = setting.layered(jobs)
    assert merged.entries["cls"].values() == {"image": 0.4, "pixel": 0.1}
    assert merged.effective("cls", "1", 0.5, None).image_source == "job"
    assert setting.layered(OverrideTable()) == setting


def test_empty_entries_are_dropped_and_tables_round_trip() -> None:
    overrides = OverrideTable({"cls": Override(), "seg": Override(image=0.3, set_by="ana", set_at=5.0)})
    assert list(overrides.entries) == ["seg"]
    again = OverrideTable.from_json(overrides.to_bytes(), source=None, what="redis")
    assert again == overrides and again.entries["seg"].set_by == "ana"


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("{", "is not JSON"),
        ("[1]", "must be a JSON object"),
        ('{"cls": 0.3}', "must map to an object"),
        ('{"cls": {"image": 2}}', "between 0 and 1"),
        ('{"cls": {"image": "high"}}', "must be a number"),
        ('{"cls": {"imgae": 0.3}}', "Extra inputs"),
        ('{"no such/model": {"image": 0.3}}', "MODEL or MODEL:VERSION"),
    ],
)
def test_a_bad_table_names_the_key_and_the_problem(raw: str, says: str) -> None:
    with pytest.raises(ThresholdError, match=says) as caught:
        OverrideTable.from_json(raw, source="setting", what="EI_THRESHOLD_OVERRIDES")
    assert "EI_THRESHOLD_OVERRIDES" in caught.value.message


def test_an_empty_setting_is_no_override() -> None:
    assert OverrideTable.from_json("", source="setting", what="s") == OverrideTable()
    assert not OverrideTable.from_json("  ", source="setting", what="s")
