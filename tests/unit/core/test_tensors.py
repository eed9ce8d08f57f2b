"""numpy <-> agent Tensor conversion, and shared-memory segments read through the agent's reader."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
from edgeinspect.core.agentapi import sm_pb2
from edgeinspect.core.tensors import (
    POSIX_SEGMENT_MIN,
    ShmSegment,
    TensorError,
    data_type_of,
    from_tensor,
    from_tensors,
    shm_name,
    to_tensor,
)
from edgeinspect_inference.agent.shm import SegmentReader

SHM_DIR = Path("/dev/shm")
pytestmark = pytest.mark.skipif(not SHM_DIR.is_dir(), reason="needs POSIX shared memory at /dev/shm")


@pytest.mark.parametrize("dtype", ["uint8", "int16", "int32", "int64", "float16", "float32", "float64"])
def test_every_api_dtype_round_trips_without_copying(dtype: str) -> None:
    array = np.arange(24, dtype=dtype).reshape(2, 3, 4)
    name, back = from_tensor(to_tensor("x", array))
    assert name == "x" and back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)
    assert not back.flags.writeable  # a view over the message bytes


def test_a_non_contiguous_array_is_sent_in_c_order() -> None:
    array = np.arange(12, dtype=np.uint8).reshape(3, 4).T
    np.testing.assert_array_equal(from_tensor(to_tensor("t", array))[1], array)


def test_a_wrong_byte_length_says_expected_and_got() -> None:
    tensor = to_tensor("image", np.zeros((1, 3, 4, 4), np.uint8))
    tensor.byte_data = tensor.byte_data[:-1]
    with pytest.raises(TensorError, match=r"expected 48 bytes for shape \[1, 3, 4, 4\] of UINT8, got 47"):
        from_tensor(tensor)


def test_an_unknown_data_type_or_negative_shape_is_refused() -> None:
    tensor = to_tensor("x", np.zeros(4, np.float32))
    tensor.tensor_metadata.data_type = 42  # type: ignore[assignment]
    with pytest.raises(TensorError, match="unknown tensor data_type 42"):
        from_tensor(tensor)
    negative = sm_pb2.Tensor(tensor_metadata=sm_pb2.TensorMetadata(name=b"x", shape=[-1, 4]), byte_data=b"")
    with pytest.raises(TensorError, match="negative"):
        from_tensor(negative)


def test_bool_cannot_travel() -> None:
    with pytest.raises(TensorError, match="bool"):
        data_type_of(np.bool_)


def test_a_name_given_twice_is_refused() -> None:
    tensor = to_tensor("x", np.zeros(1, np.uint8))
    with pytest.raises(TensorError, match="twice"):
        from_tensors([tensor, tensor])


def test_shared_memory_needs_a_resolver() -> None:
    handle = sm_pb2.SharedMemoryHandle(size=4, offset=0, segment_id=1)
    tensor = sm_pb2.Tensor(
        tensor_metadata=sm_pb2.TensorMetadata(name=b"x", shape=[4]), shared_memory_handle=handle
    )
    with pytest.raises(TensorError, match="does not accept"):
        from_tensor(tensor)


@pytest.fixture
def segment_id() -> int:
    return POSIX_SEGMENT_MIN + (uuid.uuid4().int & (2**62 - 1))


def test_a_shared_memory_tensor_is_copied_out_of_its_segment(segment_id: int) -> None:
    cache = SegmentReader(SHM_DIR, 1 << 20)
    frame = np.random.default_rng(1).integers(0, 256, (1, 3, 32, 32), dtype=np.uint8)
    with ShmSegment(segment_id, 2 * frame.nbytes) as segment:
        ref = segment.write(frame, offset=frame.nbytes)
        tensor = to_tensor("image", ref)
        assert tensor.WhichOneof("data") == "shared_memory_handle"
        assert (SHM_DIR / shm_name(segment_id)).exists()
        _, array = from_tensor(tensor, cache.view)
        np.testing.assert_array_equal(array, frame)
        segment.write(np.zeros_like(frame), offset=frame.nbytes)
        np.testing.assert_array_equal(array, frame)  # a copy: the writer may reuse the region at once


def test_a_recreated_segment_is_read_anew_not_stale(segment_id: int) -> None:
    cache = SegmentReader(SHM_DIR, 1 << 20)
    with ShmSegment(segment_id, 16) as first:
        tensor = to_tensor("x", first.write(np.full(16, 1, np.uint8)))
        assert from_tensor(tensor, cache.view)[1][0] == 1
    with ShmSegment(segment_id, 16) as second:
        second.write(np.full(16, 2, np.uint8))
        assert from_tensor(tensor, cache.view)[1][0] == 2


def test_shared_memory_errors_name_the_problem(segment_id: int) -> None:
    cache = SegmentReader(SHM_DIR, 1 << 20)
    with pytest.raises(TensorError, match="does not exist"):
        cache.view(segment_id, 0, 4)
    with ShmSegment(segment_id, 8) as segment:
        with pytest.raises(TensorError, match="runs past its end"):
            cache.view(segment_id, 6, 4)
        with pytest.raises(TensorError, match="do not fit"):
            segment.write(np.zeros(16, np.uint8))
        bad = to_tensor("x", segment.write(np.zeros(8, np.uint8)))
        bad.shared_memory_handle.size = 7
        with pytest.raises(TensorError, match="size is 7"):
            from_tensor(bad, cache.view)


def test_a_small_id_is_a_system_v_id_not_a_posix_segment() -> None:
    with pytest.raises(TensorError, match="System V"):
        ShmSegment(12345, 16)
    with pytest.raises(TensorError, match="System V"):
        SegmentReader(SHM_DIR, 1 << 20).view(2**31 - 1, 0, 4)
