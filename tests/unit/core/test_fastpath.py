"""The fast-path wire format: what is encoded decodes to the same thing, and every malformed body is a
FastPathError saying what was wrong (never an IndexError, never a huge allocation)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest
from edgeinspect.core.fastpath import (
    HEADER,
    KIND_PREDICT,
    MAX_INPUTS,
    FastPathError,
    InputRef,
    PredictRequest,
    SealedSegment,
    decode_predict,
    decode_result,
    encode_predict,
    encode_result,
    fast_socket_path,
    header,
    parse_header,
)


def _body(message: bytes) -> bytes:
    return message[HEADER.size :]


def test_a_predict_round_trips() -> None:
    request = PredictRequest(
        "defect-mt",
        "frame-ü",
        (
            InputRef("image", np.dtype(np.uint8), (1, 3, 232, 640), 3, 0),
            InputRef("aux", np.dtype(np.float32), (2,), 4, 4096),
        ),
        wait_shadow=True,
    )
    message = encode_predict(request)
    kind, flags, size = parse_header(message[: HEADER.size], 1 << 16)
    assert (kind, size) == (KIND_PREDICT, len(message) - HEADER.size)
    assert decode_predict(_body(message), flags) == request


def test_outputs_placed_in_the_output_area_are_copied_out_of_it() -> None:
    area = bytearray(256)
    outputs = {"small": np.arange(3, dtype=np.float32), "big": np.arange(100, dtype=np.float32)}

    def place(array: np.ndarray) -> int | None:
        if array.nbytes > 64:
            return None  # does not fit: inline
        area[128 : 128 + array.nbytes] = array.tobytes()
        return 128

    parts = encode_result("m", "1", 1.0, "primary", outputs, None, place)
    result = decode_result(bytearray(b"".join(bytes(p) for p in parts)[HEADER.size :]), memoryview(area))
    for name, value in outputs.items():
        np.testing.assert_array_equal(result.outputs[name], value)
    area[128:140] = bytes(12)  # the caller reuses its area: the result keeps its own copy
    np.testing.assert_array_equal(result.outputs["small"], outputs["small"])
    with pytest.raises(FastPathError, match="outside the output area"):
        decode_result(bytearray(b"".join(bytes(p) for p in parts)[HEADER.size :]), memoryview(area)[:130])


def test_a_result_round_trips_with_its_shadow() -> None:
    rng = np.random.default_rng(0)
    outputs = {"defect_probability": rng.random((1, 1), dtype=np.float32), "mask": rng.random((1, 1, 4, 5))}
    shadow_outputs = {"defect_probability": np.array([[0.25]], dtype=np.float32)}
    parts = encode_result("mt", "7", 12.5, "primary", outputs, ("8", 3.0, shadow_outputs))
    result = decode_result(bytearray(b"".join(bytes(p) for p in parts)[HEADER.size :]))
    assert (result.name, result.version, result.latency_ms, result.role) == ("mt", "7", 12.5, "primary")
    for name, value in outputs.items():
        np.testing.assert_array_equal(result.outputs[name], value)
        assert result.outputs[name].dtype == value.dtype
    assert result.shadow is not None and result.shadow[:2] == ("8", 3.0)
    np.testing.assert_array_equal(result.shadow[2]["defect_probability"], [[0.25]])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"HTTP" + bytes(8), "magic"),
        (struct.pack("<4sBBHI", b"EIFP", 9, KIND_PREDICT, 0, 0), "version 9"),
        (header(KIND_PREDICT, 1 << 20), "larger than the limit"),
    ],
)
def test_bad_headers_are_refused(raw: bytes, expected: str) -> None:
    with pytest.raises(FastPathError, match=expected):
        parse_header(raw, 1 << 16)


def test_every_truncation_of_a_predict_is_a_clear_error() -> None:
    body = _body(encode_predict(PredictRequest("m", "f", (InputRef("x", np.dtype(np.uint8), (2, 3), 1, 0),))))
    for cut in range(len(body)):
        with pytest.raises(FastPathError, match="truncated"):
            decode_predict(body[:cut], 0)
    with pytest.raises(FastPathError, match="after its end"):
        decode_predict(body + b"\0", 0)


def test_hostile_predict_fields_are_refused() -> None:
    too_many = struct.pack("<H", 1) + b"m" + struct.pack("<H", 0) + bytes([MAX_INPUTS + 1])
    with pytest.raises(FastPathError, match="at most"):
        decode_predict(too_many, 0)
    bad_dtype = struct.pack("<H", 1) + b"m" + struct.pack("<H", 0) + b"\x01" + struct.pack("<H", 1) + b"x\x63"
    with pytest.raises(FastPathError, match="data_type"):
        decode_predict(bad_dtype, 0)
    not_utf8 = struct.pack("<H", 2) + b"\xff\xfe"
    with pytest.raises(FastPathError, match="UTF-8"):
        decode_predict(not_utf8, 0)


def test_a_result_whose_sizes_disagree_with_its_shape_is_refused() -> None:
    parts = encode_result("m", "1", 1.0, "", {"y": np.zeros((2, 2), np.float32)}, None)
    raw = bytearray(b"".join(bytes(p) for p in parts)[HEADER.size :])
    raw[-18 - 8 : -18] = struct.pack("<Q", 15)  # its byte count (then placement, shadow flag, 16 bytes)
    with pytest.raises(FastPathError, match="do not fit"):
        decode_result(raw)


def test_the_fast_socket_sits_beside_a_unix_agent_socket_only() -> None:
    assert fast_socket_path("unix:///run/edgeinspect/agent.sock") == Path("/run/edgeinspect/agent.fast.sock")
    assert fast_socket_path("unix:/tmp/a") == Path("/tmp/a.fast.sock")
    assert fast_socket_path("127.0.0.1:50051") is None


@pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="needs Linux memfd")
def test_a_sealed_segment_cannot_shrink_and_refuses_what_does_not_fit() -> None:
    segment = SealedSegment(4096)
    try:
        with pytest.raises(PermissionError):
            os.ftruncate(segment.fd, 16)
        written = segment.write(np.arange(12, dtype=np.float32).reshape(3, 4).T, offset=64)  # any layout
        assert (written.offset, written.shape) == (64, (4, 3))
        np.testing.assert_array_equal(
            segment.view(np.dtype(np.float32), (4, 3), 64), np.arange(12).reshape(3, 4).T
        )
        with pytest.raises(FastPathError, match="does not fit"):
            segment.write(np.zeros(4096, np.uint8), offset=1)
    finally:
        segment.close()
