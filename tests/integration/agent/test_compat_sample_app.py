"""Stock SageMaker Edge clients, as they really behave, against the real agent.

Each client is written from what those applications did, with nothing of ours but the socket
address: generated ``agent_pb2`` stubs; the request's ``TensorMetadata`` copied as is from
``ListModels`` (name, data_type, shape); pixels sent as ``x.astype(np.float32).tobytes()`` of a
resized NCHW image of raw 0-255 values; shared memory as a System V segment made with ``shmget``
and marked read-only (their C++ example); CaptureData with float32 tensors named ``input`` and
``output`` plus auxiliary JSON. The seed application's whole sequence runs: load, list, predict
both models, capture, unload. ``test_compat_node_client.py`` runs the same in Node.js.
"""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
import redis
from edgeinspect.core.agentapi import sm_grpc as agent_pb2_grpc
from edgeinspect.core.agentapi import sm_pb2 as agent_pb2
from edgeinspect.core.messages import Capture
from edgeinspect.core.names import capture_stream

from tests.fixtures.agent import AgentServer
from tests.helpers import sysv

CLS, SEG = "defect-cls", "defect-seg"


@pytest.fixture
def stub(agent_server: AgentServer) -> Iterator[agent_pb2_grpc.AgentStub]:
    with grpc.insecure_channel(agent_server.addr) as channel:
        yield agent_pb2_grpc.AgentStub(channel)  # type: ignore[no-untyped-call]


def _frame(shape: list[int], level: int) -> np.ndarray:
    """The seed app's preprocessing: a resized RGB frame, HWC -> NCHW, as float32 raw 0-255 values."""
    _, channels, height, width = shape
    hwc = np.full((height, width, channels), level, dtype=np.uint8)
    return hwc.transpose(2, 0, 1)[np.newaxis].astype(np.float32)


def _copied_request(model: agent_pb2.Model, level: int) -> agent_pb2.PredictRequest:
    """AWS's Python example: ``Tensor(tensor_metadata=model.input_tensor_metadatas[0], byte_data=...)``."""
    metadata = model.input_tensor_metadatas[0]
    x = _frame(list(metadata.shape), level)
    tensor = agent_pb2.Tensor(tensor_metadata=metadata, byte_data=x.astype(np.float32).tobytes())
    return agent_pb2.PredictRequest(name=model.name, tensors=[tensor])


def _mean_output(response: agent_pb2.PredictResponse) -> float:
    tensor = response.tensors[0]
    assert tensor.tensor_metadata.data_type == agent_pb2.FLOAT32
    return float(np.frombuffer(tensor.byte_data, dtype=np.float32).mean())


def _wait_capture(stub: agent_pb2_grpc.AgentStub, capture_id: str) -> int:
    request = agent_pb2.GetCaptureDataStatusRequest(capture_id=capture_id)
    status = stub.GetCaptureDataStatus(request).status
    deadline = time.monotonic() + 20
    while status == agent_pb2.IN_PROGRESS and time.monotonic() < deadline:
        time.sleep(0.05)
        status = stub.GetCaptureDataStatus(request).status
    return int(status)


def _load_both(agent_server: AgentServer, stub: agent_pb2_grpc.AgentStub) -> dict[str, agent_pb2.Model]:
    cls_dir = agent_server.package_dir("cls", "3")
    seg_dir = agent_server.package_dir("seg", "2", "segmentation")
    stub.LoadModel(agent_pb2.LoadModelRequest(url=str(cls_dir), name=CLS))
    stub.LoadModel(agent_pb2.LoadModelRequest(url=str(seg_dir), name=SEG))
    return {m.name: m for m in stub.ListModels(agent_pb2.ListModelsRequest()).models}


def test_the_seed_application_sequence_works_unchanged(
    agent_server: AgentServer, stub: agent_pb2_grpc.AgentStub, redis_client: redis.Redis, line_id: str
) -> None:
    capture_id = f"capture-{line_id}"
    models = _load_both(agent_server, stub)
    assert sorted(models) == [CLS, SEG]
    for model in models.values():  # what a stock client copies: concrete, float32, sendable as is
        metadata = model.input_tensor_metadatas[0]
        assert (metadata.name, metadata.data_type, list(metadata.shape)) == (
            b"image",
            agent_pb2.FLOAT32,
            [1, 3, 64, 64],
        )
    described = stub.DescribeModel(agent_pb2.DescribeModelRequest(name=CLS)).model
    assert described.input_tensor_metadatas[0] == models[CLS].input_tensor_metadatas[0]

    for model in models.values():
        dark = _mean_output(stub.Predict(_copied_request(model, 20)))
        bright = stub.Predict(_copied_request(model, 235))
        assert dark < 0.5 < _mean_output(bright), model.name
        if model.name == CLS:
            bright_cls = bright

    input_shape = list(models[CLS].input_tensor_metadatas[0].shape)
    output = bright_cls.tensors[0]
    capture = agent_pb2.CaptureDataRequest(
        model_name=CLS,
        capture_id=capture_id,
        inference_timestamp=agent_pb2.Timestamp(seconds=1_700_000_000, nanos=5),
        input_tensors=[
            agent_pb2.Tensor(
                tensor_metadata=agent_pb2.TensorMetadata(
                    name=b"input", data_type=agent_pb2.FLOAT32, shape=input_shape
                ),
                byte_data=_frame(input_shape, 235).tobytes(),
            )
        ],
        output_tensors=[
            agent_pb2.Tensor(
                tensor_metadata=agent_pb2.TensorMetadata(
                    name=b"output", data_type=agent_pb2.FLOAT32, shape=list(output.tensor_metadata.shape)
                ),
                byte_data=output.byte_data,
            )
        ],
        inputs=[agent_pb2.AuxilaryData(name="station", encoding=agent_pb2.JSON, byte_data=b'{"cell": 3}')],
    )
    stub.CaptureData(capture)
    assert _wait_capture(stub, capture_id) == agent_pb2.SUCCESS

    stub.UnLoadModel(agent_pb2.UnLoadModelRequest(name=CLS))
    stub.UnLoadModel(agent_pb2.UnLoadModelRequest(name=SEG))
    assert list(stub.ListModels(agent_pb2.ListModelsRequest()).models) == []

    entries: list[tuple[bytes, dict[bytes, bytes]]] = redis_client.xrange(capture_stream())  # type: ignore[assignment]
    ours = [c for c in (Capture.from_fields(f) for _, f in entries) if c.frame_id == capture_id]
    assert len(ours) == 1
    record = ours[0]
    assert (record.verdict, record.height, record.width, record.channels) == ("defect", 64, 64, 3)
    assert record.ts_ns == 1_700_000_000 * 10**9 + 5 and record.line == line_id
    assert np.frombuffer(record.data, np.uint8).min() == 235  # float pixels became the image
    assert record.attachments is not None
    with zipfile.ZipFile(io.BytesIO(record.attachments)) as archive:
        assert sorted(archive.namelist()) == ["auxiliary.json", "input-input.npy", "output-output.npy"]
        sent = np.load(io.BytesIO(archive.read("input-input.npy")))
        assert sent.dtype == np.float32 and list(sent.shape) == input_shape  # kept exactly as sent
        assert b'"cell": 3' in archive.read("auxiliary.json")


def test_system_v_shared_memory_like_the_cpp_example(
    agent_server: AgentServer, stub: agent_pb2_grpc.AgentStub
) -> None:
    if not sysv.AVAILABLE:
        pytest.skip("System V shared memory helper needs 64-bit Linux")
    model = _load_both(agent_server, stub)[CLS]
    metadata = model.input_tensor_metadatas[0]
    frames = [_frame(list(metadata.shape), level) for level in (20, 235)]
    nbytes = frames[0].nbytes
    with sysv.SysVSegment(2 * nbytes) as segment:
        segment.write(b"".join(f.tobytes() for f in frames))  # then marked read-only (IPC_SET)
        scores = []
        for index in range(2):
            handle = agent_pb2.SharedMemoryHandle(size=nbytes, offset=index * nbytes, segment_id=segment.id)
            tensor = agent_pb2.Tensor(tensor_metadata=metadata, shared_memory_handle=handle)
            scores.append(_mean_output(stub.Predict(agent_pb2.PredictRequest(name=CLS, tensors=[tensor]))))
        by_bytes = [_mean_output(stub.Predict(_copied_request(model, level))) for level in (20, 235)]
        assert scores == by_bytes

        past_end = agent_pb2.SharedMemoryHandle(size=nbytes, offset=nbytes + 4, segment_id=segment.id)
        tensor = agent_pb2.Tensor(tensor_metadata=metadata, shared_memory_handle=past_end)
        with pytest.raises(grpc.RpcError) as error:
            stub.Predict(agent_pb2.PredictRequest(name=CLS, tensors=[tensor]))
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "runs past its end" in (error.value.details() or "")
    removed = agent_pb2.SharedMemoryHandle(size=nbytes, offset=0, segment_id=segment.id)
    tensor = agent_pb2.Tensor(tensor_metadata=metadata, shared_memory_handle=removed)
    with pytest.raises(grpc.RpcError) as error:
        stub.Predict(agent_pb2.PredictRequest(name=CLS, tensors=[tensor]))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "System V" in (error.value.details() or "")


def test_a_dynamic_shape_copied_from_our_own_spec_is_resolved(
    agent_server: AgentServer, stub: agent_pb2_grpc.AgentStub
) -> None:
    """A client that copied the true spec (-1 batch) sends it back; the batch comes from the bytes."""
    _load_both(agent_server, stub)
    spec = agent_server.client().list_versions()[0].inputs[0]
    assert spec.shape[0] == -1  # the extension API keeps the true, dynamic spec
    x = np.concatenate([_frame([1, 3, 64, 64], 20), _frame([1, 3, 64, 64], 235)])
    metadata = agent_pb2.TensorMetadata(name=b"image", data_type=agent_pb2.FLOAT32, shape=[-1, 3, 64, 64])
    request = agent_pb2.PredictRequest(
        name=CLS, tensors=[agent_pb2.Tensor(tensor_metadata=metadata, byte_data=x.tobytes())]
    )
    scores = np.frombuffer(stub.Predict(request).tensors[0].byte_data, np.float32)
    assert scores.shape == (2,) and scores[0] < 0.5 < scores[1]

    request.tensors[0].byte_data = x.tobytes()[:-4]
    with pytest.raises(grpc.RpcError) as error:
        stub.Predict(request)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a whole number" in (error.value.details() or "")


@pytest.mark.parametrize("values", [0.5, 255.5, -1.0, 256.0, float("nan")])
def test_float_pixels_that_are_not_raw_0_255_are_refused_naming_the_rule(
    agent_server: AgentServer, stub: agent_pb2_grpc.AgentStub, values: float
) -> None:
    model = _load_both(agent_server, stub)[CLS]
    request = _copied_request(model, 100)
    x = np.full(list(model.input_tensor_metadatas[0].shape), values, np.float32)
    request.tensors[0].byte_data = x.tobytes()
    with pytest.raises(grpc.RpcError) as error:
        stub.Predict(request)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "whole numbers in 0..255" in (error.value.details() or "")


def test_uint8_bytes_with_uint8_metadata_still_work(
    agent_server: AgentServer, stub: agent_pb2_grpc.AgentStub
) -> None:
    _load_both(agent_server, stub)
    frame = np.full((1, 3, 64, 64), 235, dtype=np.uint8)
    metadata = agent_pb2.TensorMetadata(name=b"image", data_type=agent_pb2.UINT8, shape=[1, 3, 64, 64])
    tensor = agent_pb2.Tensor(tensor_metadata=metadata, byte_data=frame.tobytes())
    assert _mean_output(stub.Predict(agent_pb2.PredictRequest(name=CLS, tensors=[tensor]))) > 0.5


def test_loading_a_taken_name_is_already_exists(agent_server: AgentServer) -> None:
    model_dir = agent_server.package_dir("cls", "1")
    with grpc.insecure_channel(agent_server.addr) as channel:
        stub = agent_pb2_grpc.AgentStub(channel)  # type: ignore[no-untyped-call]
        stub.LoadModel(agent_pb2.LoadModelRequest(url=str(model_dir), name="line-a"))
        try:
            stub.LoadModel(agent_pb2.LoadModelRequest(url=str(model_dir), name="line-a"))
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.ALREADY_EXISTS
            assert "line-a" in (exc.details() or "")
        else:
            raise AssertionError("a second LoadModel under a taken name must fail")
