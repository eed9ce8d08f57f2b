"""Property-based fuzzing of gRPC tensors and shared-memory handles against the real agent.

Hypothesis builds tensors no honest client sends (any name bytes, data_type values outside the enum,
negative and huge dimensions, byte lengths that disagree, handles with any offset, size and id: real
POSIX and System V segments, removed ones, ids that name nothing) and sends them to compat Predict,
extension Predict and CaptureData. The property: every answer is OK or a client error with a short
message (never INTERNAL, UNKNOWN or a dropped connection), and the agent is alive and serving after.
Runs are short and deterministic (``derandomize``): the same examples on every run.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import grpc
import pytest
from edgeinspect.core.agentapi import ext_grpc, ext_pb2, sm_grpc, sm_pb2
from edgeinspect.core.tensors import POSIX_SEGMENT_MIN, ShmSegment
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fixtures.agent import AgentServer
from tests.helpers import sysv
from tests.helpers.models import image

CLIENT_ERRORS = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.FAILED_PRECONDITION,
}
FUZZ = settings(
    max_examples=120,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FRAME = image(level=200)


@dataclass
class Target:
    """One agent with a loaded classifier, its stubs, and real segments holding a frame."""

    agent: AgentServer
    compat: Any
    ext: Any
    segment_ids: list[int]


@pytest.fixture
def target(agent_server: AgentServer) -> Iterator[Target]:
    agent_server.client().load_version(str(agent_server.package("cls", "1")))
    posix = ShmSegment(POSIX_SEGMENT_MIN + (uuid.uuid4().int & (2**62 - 1)), 2 * FRAME.nbytes)
    posix.write(FRAME)
    ids = [posix.segment_id, posix.segment_id + 1]  # the second names nothing
    system_v = None
    if sysv.AVAILABLE:
        system_v = sysv.SysVSegment(2 * FRAME.nbytes)
        system_v.write(FRAME.tobytes())
        ids.append(system_v.id)
    with grpc.insecure_channel(agent_server.addr) as channel:
        yield Target(agent_server, sm_grpc.AgentStub(channel), ext_grpc.AgentStub(channel), ids)  # type: ignore[no-untyped-call]
    posix.close()
    if system_v is not None:
        system_v.close()


def dims() -> st.SearchStrategy[list[int]]:
    near = st.sampled_from([1, 3, 64, -1, 0])
    anything = st.integers(min_value=-(2**31), max_value=2**31 - 1)
    return st.one_of(
        st.just([1, 3, 64, 64]),
        st.just([-1, 3, 64, 64]),
        st.lists(st.one_of(near, anything), max_size=6),
    )


@st.composite
def tensors(draw: st.DrawFn, segment_ids: list[int]) -> sm_pb2.Tensor:
    name = draw(st.one_of(st.just(b"image"), st.binary(max_size=40)))
    data_type = draw(
        st.one_of(st.sampled_from([sm_pb2.UINT8, sm_pb2.FLOAT32, sm_pb2.FLOAT16]), st.integers(-3, 12))
    )
    # out-of-range enum numbers on purpose: the agent must refuse them, so the stubs' type is bypassed
    metadata = sm_pb2.TensorMetadata(name=name, data_type=cast(Any, data_type), shape=draw(dims()))
    if draw(st.booleans()):
        length = draw(st.sampled_from([0, 1, FRAME.nbytes, FRAME.nbytes * 4, 77]))
        return sm_pb2.Tensor(tensor_metadata=metadata, byte_data=bytes(length))
    u64 = st.integers(min_value=0, max_value=2**64 - 1)
    handle = sm_pb2.SharedMemoryHandle(
        size=draw(st.one_of(st.sampled_from([FRAME.nbytes, FRAME.nbytes * 4, 0, 1]), u64)),
        offset=draw(st.one_of(st.sampled_from([0, FRAME.nbytes, 3]), u64)),
        segment_id=draw(st.one_of(st.sampled_from(segment_ids), u64)),
    )
    return sm_pb2.Tensor(tensor_metadata=metadata, shared_memory_handle=handle)


def _code(call: Any, request: Any) -> grpc.StatusCode:
    try:
        call(request, timeout=30)
    except grpc.RpcError as exc:
        assert len(exc.details() or "") < 2500, "error messages stay short"
        return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def _still_serving(target: Target) -> None:
    assert target.agent.proc is not None and target.agent.proc.poll() is None, target.agent.logs()[-3000:]
    assert target.ext.Health(ext_pb2.HealthRequest(), timeout=30).serving


def test_fuzzed_tensors_and_handles_get_client_errors_never_a_crash(target: Target) -> None:
    @FUZZ
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        batch = data.draw(st.lists(tensors(target.segment_ids), min_size=0, max_size=2))
        model = data.draw(st.sampled_from(["cls", "cls:1", "nope", "n" * 20_000]))  # 20 KB: over a header
        method = data.draw(st.sampled_from(["compat", "ext", "capture"]))
        if method == "compat":
            code = _code(target.compat.Predict, sm_pb2.PredictRequest(name=model, tensors=batch))
        elif method == "ext":
            code = _code(target.ext.Predict, ext_pb2.PredictRequest(model=model, tensors=batch))
        else:
            request = sm_pb2.CaptureDataRequest(
                model_name=model, capture_id=f"f-{uuid.uuid4().hex}", input_tensors=batch
            )
            code = _code(target.compat.CaptureData, request)
        # RESOURCE_EXHAUSTED only from a full capture queue: a Predict this small has no resource to
        # exhaust, and a transport error (an echoed 20 KB name overflowing the status header) reads the same
        allowed = (
            CLIENT_ERRORS if method == "capture" else CLIENT_ERRORS - {grpc.StatusCode.RESOURCE_EXHAUSTED}
        )
        assert code in allowed, f"{method} answered {code.name}"

    check()
    _still_serving(target)


def test_a_segment_removed_under_a_handle_is_invalid_argument(target: Target) -> None:
    segment = ShmSegment(POSIX_SEGMENT_MIN + (uuid.uuid4().int & (2**62 - 1)), FRAME.nbytes)
    handle = sm_pb2.SharedMemoryHandle(size=FRAME.nbytes, offset=0, segment_id=segment.segment_id)
    segment.close()
    metadata = sm_pb2.TensorMetadata(name=b"image", data_type=sm_pb2.UINT8, shape=list(FRAME.shape))
    request = sm_pb2.PredictRequest(
        name="cls", tensors=[sm_pb2.Tensor(tensor_metadata=metadata, shared_memory_handle=handle)]
    )
    assert _code(target.compat.Predict, request) == grpc.StatusCode.INVALID_ARGUMENT
    _still_serving(target)
