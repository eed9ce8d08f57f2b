"""Versions compare as versions: numerically per segment, never as strings or floats."""

from __future__ import annotations

import pytest
from edgeinspect.core.errors import PackageError
from edgeinspect.core.package import parse_version
from hypothesis import given, settings
from hypothesis import strategies as st

numbers = st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=5)
versions = st.from_regex(r"\A[0-9A-Za-z]{1,4}([.-][0-9A-Za-z]{1,4}){0,3}\Z")


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        ("9", "10"),
        ("1.9", "1.10"),
        ("1.2", "1.10"),
        ("2", "10.0"),
        ("1", "1.0"),
        ("1.a", "1.1"),
        ("2.0-rc1", "2.0-rc2"),
        ("2024-06-01", "2024-06-10"),
        ("1.01", "1.1"),
    ],
)
def test_versions_order_as_versions_not_text_or_floats(lower: str, higher: str) -> None:
    assert parse_version(lower) < parse_version(higher)
    assert parse_version(higher) > parse_version(lower)


def test_versions_are_equal_only_when_their_text_is() -> None:
    assert parse_version("1.10") == parse_version("1.10")
    assert parse_version("1.1") != parse_version("1.10")
    assert parse_version("1.01") != parse_version("1.1")
    assert str(parse_version("1.10")) == "1.10"


@pytest.mark.parametrize("bad", ["", "1..2", ".1", "1.", "1 2", "../1", "1/2", "v1+build", "1_2"])
def test_malformed_version_is_refused_with_a_package_error(bad: str) -> None:
    with pytest.raises(PackageError, match="invalid model version"):
        parse_version(bad)


@settings(derandomize=True)
@given(numbers, numbers)
def test_dotted_numbers_compare_like_integer_lists(a: list[int], b: list[int]) -> None:
    va, vb = parse_version(".".join(map(str, a))), parse_version(".".join(map(str, b)))
    assert (va < vb) == (a < b)
    assert (va == vb) == (a == b)


@settings(derandomize=True)
@given(versions, versions, versions)
def test_order_is_total_and_transitive(a: str, b: str, c: str) -> None:
    va, vb, vc = parse_version(a), parse_version(b), parse_version(c)
    assert sum([va < vb, va == vb, va > vb]) == 1
    assert (va == vb) == (a == b)
    if va <= vb <= vc:
        assert va <= vc


@settings(derandomize=True)
@given(versions)
def test_text_round_trips(text: str) -> None:
    assert str(parse_version(text)) == text
