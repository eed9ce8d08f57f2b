"""Property tests of the one JSON parser for network input (core ``safejson``) and of MQTT decoding."""

from __future__ import annotations

import json
from typing import Any

from edgeinspect.core import safejson
from edgeinspect.core.mqtt_dispatch import decode_json_object
from hypothesis import given
from hypothesis import strategies as st

from tests.reliability.hostile import FUZZ

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)
BRACKETY = st.text(alphabet='[]{}",:\\ 1a', max_size=400)


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


@FUZZ
@given(st.binary(max_size=600))
def test_any_bytes_parse_or_raise_json_input_error(data: bytes) -> None:
    try:
        safejson.loads(data)
    except safejson.JsonInputError as exc:
        assert len(str(exc)) < 400


@FUZZ
@given(BRACKETY)
def test_bracket_soup_never_escapes_as_another_error(text: str) -> None:
    try:
        expected: Any = json.loads(text)
    except (ValueError, RecursionError):
        expected = None
    try:
        got = safejson.loads(text, max_depth=64)
    except safejson.JsonInputError:
        return
    assert got == expected


@FUZZ
@given(JSON_VALUES)
def test_valid_documents_round_trip_and_their_depth_is_counted_exactly(value: Any) -> None:
    data = json.dumps(value).encode()
    assert safejson.nesting_depth(data) == _depth(value)
    assert safejson.loads(data) == value


@FUZZ
@given(st.integers(min_value=65, max_value=5000), st.sampled_from(["[", '{"a":']))
def test_deeper_than_the_limit_is_a_depth_error_whatever_follows(depth: int, opener: str) -> None:
    try:
        safejson.loads(opener * depth + "1")
    except safejson.JsonLimitError as exc:
        assert exc.limit == "depth"
    else:
        raise AssertionError("a document deeper than the limit was parsed")


@FUZZ
@given(st.binary(max_size=600) | JSON_VALUES.map(lambda v: json.dumps(v).encode()))
def test_mqtt_payloads_decode_to_an_object_or_a_reason_never_an_exception(payload: bytes) -> None:
    value, reason = decode_json_object(payload)
    assert (value is None) == bool(reason)
    assert value is None or isinstance(value, dict)
