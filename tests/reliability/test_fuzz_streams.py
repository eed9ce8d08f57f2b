"""Property tests of the records read from Redis streams: any entry is a record or a ``MessageError``
(which the reader dead-letters with its reason), never another exception that would stop a consumer."""

from __future__ import annotations

import json

from edgeinspect.core.errors import MessageError
from edgeinspect.core.messages import Capture, Event, Frame, Prediction, Result, StreamRecord
from hypothesis import given
from hypothesis import strategies as st

from tests.reliability.hostile import BRACKET_BOMB, FUZZ
from tests.reliability.test_fuzz_json import JSON_VALUES

PREDICTION = Prediction("cls", "1", "classification", "ok", 0.1, 0.5, 2.0)
VALID: list[StreamRecord] = [
    Frame("f1", "l1", "cam", 1, "png", 2, 2, 3, b"\x89PNG"),
    Result("f1", "l1", 1, "ok", 0.1, [PREDICTION], 3.0),
    Capture("f1", "l1", 1, "raw", 1, 1, 1, b"\0", "defect", 0.9, [PREDICTION], ["defect"]),
    Event("model_loaded", 1, {"model": "cls", "nested": [1, {"a": None}]}),
]
FIELD_VALUES = (
    st.binary(max_size=64)
    | st.sampled_from([b"", b"1", b"-1", b"nan", b"1e999", b"9" * 5000, b"\xff", BRACKET_BOMB, b"[]", b"{}"])
    | JSON_VALUES.map(lambda v: json.dumps(v).encode())
)


def _parse(record_type: type[StreamRecord], fields: dict[str, bytes]) -> None:
    try:
        record = record_type.from_fields(fields)
    except MessageError as exc:
        assert len(str(exc)) < 2000, str(exc)[:200]
        return
    assert isinstance(record, record_type)


@FUZZ
@given(st.sampled_from(range(len(VALID))), st.data())
def test_one_field_replaced_by_anything_is_a_record_or_a_message_error(
    index: int, data: st.DataObject
) -> None:
    valid = VALID[index]
    fields = {k: v if isinstance(v, bytes) else str(v).encode() for k, v in valid.to_fields().items()}
    name = data.draw(st.sampled_from(sorted(fields)))
    if data.draw(st.booleans()):
        fields[name] = data.draw(FIELD_VALUES)
    else:
        del fields[name]
    _parse(type(valid), fields)


@FUZZ
@given(
    st.sampled_from([Frame, Result, Capture, Event]),
    st.dictionaries(st.text(max_size=12), FIELD_VALUES, max_size=12),
)
def test_any_entry_is_a_record_or_a_message_error(
    record_type: type[StreamRecord], fields: dict[str, bytes]
) -> None:
    _parse(record_type, fields)
