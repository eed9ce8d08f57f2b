"""Messages: every record round-trips its fields, and a malformed entry says what is wrong."""

from __future__ import annotations

import pytest
from edgeinspect.core.errors import MessageError
from edgeinspect.core.messages import Capture, Event, Frame, Prediction, Result
from hypothesis import given
from hypothesis import strategies as st


def make_frame(**overrides: object) -> Frame:
    values: dict[str, object] = dict(
        frame_id="f-1",
        line="l1",
        camera="cam0",
        ts_ns=123,
        encoding="png",
        height=4,
        width=3,
        channels=3,
        data=b"\x89PNG",
        source="00001.png",
    )
    values.update(overrides)
    return Frame(**values)  # type: ignore[arg-type]


def make_result(**overrides: object) -> Result:
    pred = Prediction(
        model="defect-cls",
        version="7",
        task="classification",
        label="defect",
        score=0.9,
        threshold=0.5,
        latency_ms=3.2,
        defect_area_px=12,
        bbox=(1, 2, 3, 4),
    )
    values: dict[str, object] = dict(
        frame_id="f-1",
        line="l1",
        ts_ns=123,
        verdict="defect",
        score=0.9,
        predictions=[pred],
        e2e_ms=12.5,
        mask=b"mask",
    )
    values.update(overrides)
    return Result(**values)  # type: ignore[arg-type]


def as_redis(fields: dict[str, object]) -> dict[bytes, bytes]:
    """What redis-py hands a reader: bytes keys and values."""
    return {k.encode(): v if isinstance(v, bytes) else str(v).encode() for k, v in fields.items()}


def test_frame_round_trips() -> None:
    frame = make_frame()
    assert Frame.from_fields(as_redis(frame.to_fields())) == frame


def test_result_round_trips_with_predictions() -> None:
    result = make_result()
    back = Result.from_fields(as_redis(result.to_fields()))
    assert back == result
    assert back.predictions[0].bbox == (1, 2, 3, 4)


def test_result_without_mask_omits_the_field() -> None:
    result = make_result(mask=None, verdict="ok")
    assert "mask" not in result.to_fields()
    assert Result.from_fields(as_redis(result.to_fields())).mask is None


def test_capture_joins_frame_and_result() -> None:
    capture = Capture.from_frame_and_result(make_frame(), make_result(), ["defect"])
    back = Capture.from_fields(as_redis(capture.to_fields()))
    assert back == capture
    assert back.data == b"\x89PNG" and back.reasons == ["defect"]


def test_event_round_trips() -> None:
    event = Event.new("model_loaded", "agent", line="l1", model="defect-cls", version="7")
    assert Event.from_fields(as_redis(event.to_fields())) == event


def test_missing_field_is_named() -> None:
    fields = as_redis(make_frame().to_fields())
    del fields[b"width"]
    with pytest.raises(MessageError, match="missing field 'width'"):
        Frame.from_fields(fields)


def test_wrong_type_is_named() -> None:
    fields = as_redis(make_frame().to_fields())
    fields[b"height"] = b"tall"
    with pytest.raises(MessageError, match="'height' is not a valid int"):
        Frame.from_fields(fields)


def test_unknown_version_is_refused_with_a_hint() -> None:
    fields = as_redis(make_frame().to_fields())
    fields[b"v"] = b"99"
    with pytest.raises(MessageError, match="schema version '99'") as info:
        Frame.from_fields(fields)
    assert "upgrade" in info.value.hint


def test_missing_version_is_refused() -> None:
    fields = as_redis(make_frame().to_fields())
    del fields[b"v"]
    with pytest.raises(MessageError, match="no schema version"):
        Frame.from_fields(fields)


def test_unknown_verdict_and_encoding_are_refused() -> None:
    with pytest.raises(MessageError, match="unknown verdict"):
        Result.from_fields(as_redis(make_result(verdict="maybe").to_fields()))
    with pytest.raises(MessageError, match="unknown encoding"):
        Frame.from_fields(as_redis(make_frame(encoding="gif").to_fields()))


def test_malformed_predictions_json_is_refused() -> None:
    fields = as_redis(make_result().to_fields())
    fields[b"predictions"] = b'[{"model": 1}]'
    with pytest.raises(MessageError, match="malformed prediction"):
        Result.from_fields(fields)
    fields[b"predictions"] = b"not json"
    with pytest.raises(MessageError, match="predictions"):
        Result.from_fields(fields)


@pytest.mark.parametrize(
    "record",
    [make_result(), Capture.from_frame_and_result(make_frame(), make_result(), ["defect"])],
    ids=["result", "capture"],
)
def test_predictions_that_are_not_a_list_are_refused(record: Result | Capture) -> None:
    fields = as_redis(record.to_fields())
    fields[b"predictions"] = b"5"
    with pytest.raises(MessageError, match="'predictions' must be a JSON list"):
        type(record).from_fields(fields)


@given(
    frame_id=st.text(min_size=1, max_size=40),
    data=st.binary(max_size=256),
    ts_ns=st.integers(min_value=0, max_value=2**63 - 1),
    height=st.integers(min_value=1, max_value=10_000),
)
def test_any_frame_round_trips(frame_id: str, data: bytes, ts_ns: int, height: int) -> None:
    frame = make_frame(frame_id=frame_id, data=data, ts_ns=ts_ns, height=height)
    assert Frame.from_fields(as_redis(frame.to_fields())) == frame


def test_the_part_id_travels_frame_to_result_to_capture_and_old_entries_still_parse() -> None:
    frame = make_frame(part_id="4711")
    assert Frame.from_fields(as_redis(frame.to_fields())).part_id == "4711"
    result = Result.from_fields(as_redis(make_result(part_id="4711").to_fields()))
    assert result.part_id == "4711"
    capture = Capture.from_frame_and_result(frame, make_result(), ["defect"])
    assert Capture.from_fields(as_redis(capture.to_fields())).part_id == "4711"
    old = {k: v for k, v in make_frame().to_fields().items() if k != "part_id"}  # a writer before part ids
    assert Frame.from_fields(as_redis(old)).part_id == ""
