"""A client written only from the SageMaker Edge Agent API description, the way the original sample
application used it: generated ``agent_pb2``/``agent_pb2_grpc`` stubs over the unix socket, nothing
of ours but the socket address. If this passes, such an application works unchanged against us.
"""

from __future__ import annotations

import time

import grpc
import numpy as np
import redis
from edgeinspect.core.agentapi import sm_grpc as agent_pb2_grpc
from edgeinspect.core.agentapi import sm_pb2 as agent_pb2
from edgeinspect.core.messages import Capture
from edgeinspect.core.names import capture_stream

from tests.fixtures.agent import AgentServer

MODEL_NAME = "defect-model"


def _image_tensor(level: int) -> agent_pb2.Tensor:
    """As the sample did: raw C-order bytes plus name, data type and shape."""
    frame = np.full((1, 3, 64, 64), level, dtype=np.uint8)
    metadata = agent_pb2.TensorMetadata(name=b"image", data_type=agent_pb2.UINT8, shape=list(frame.shape))
    return agent_pb2.Tensor(tensor_metadata=metadata, byte_data=frame.tobytes())


def _score(response: agent_pb2.PredictResponse) -> float:
    tensor = response.tensors[0]
    assert tensor.tensor_metadata.name == b"defect_probability"
    assert tensor.tensor_metadata.data_type == agent_pb2.FLOAT32
    return float(np.frombuffer(tensor.byte_data, dtype=np.float32)[0])


def _wait_capture(stub: agent_pb2_grpc.AgentStub, capture_id: str) -> int:
    request = agent_pb2.GetCaptureDataStatusRequest(capture_id=capture_id)
    status = stub.GetCaptureDataStatus(request).status
    deadline = time.monotonic() + 20
    while status == agent_pb2.IN_PROGRESS and time.monotonic() < deadline:
        time.sleep(0.05)
        status = stub.GetCaptureDataStatus(request).status
    return int(status)


def test_sample_app_loads_lists_describes_predicts_and_captures(
    agent_server: AgentServer, redis_client: redis.Redis, line_id: str
) -> None:
    capture_id = f"capture-{line_id}"
    model_dir = agent_server.package_dir("resnet18", "3")
    channel = grpc.insecure_channel(agent_server.addr)
    stub = agent_pb2_grpc.AgentStub(channel)  # type: ignore[no-untyped-call]

    loaded = stub.LoadModel(agent_pb2.LoadModelRequest(url=str(model_dir), name=MODEL_NAME))
    assert loaded.model.name == MODEL_NAME
    assert loaded.model.input_tensor_metadatas[0].name == b"image"

    listed = stub.ListModels(agent_pb2.ListModelsRequest())
    assert [m.name for m in listed.models] == [MODEL_NAME]

    described = stub.DescribeModel(agent_pb2.DescribeModelRequest(name=MODEL_NAME))
    assert described.model.url == str(model_dir)
    assert list(described.model.input_tensor_metadatas[0].shape)[1:] == [3, 64, 64]
    assert described.model.output_tensor_metadatas[0].name == b"defect_probability"

    dark = stub.Predict(agent_pb2.PredictRequest(name=MODEL_NAME, tensors=[_image_tensor(20)]))
    bright = stub.Predict(agent_pb2.PredictRequest(name=MODEL_NAME, tensors=[_image_tensor(235)]))
    assert _score(dark) < 0.5 < _score(bright)

    capture = agent_pb2.CaptureDataRequest(
        model_name=MODEL_NAME,
        capture_id=capture_id,
        inference_timestamp=agent_pb2.Timestamp(seconds=1_700_000_000, nanos=5),
        input_tensors=[_image_tensor(235)],
        output_tensors=list(bright.tensors),
        inputs=[agent_pb2.AuxilaryData(name="line", encoding=agent_pb2.JSON, byte_data=b'{"cell": 3}')],
    )
    stub.CaptureData(capture)
    assert _wait_capture(stub, capture_id) == agent_pb2.SUCCESS
    unknown = stub.GetCaptureDataStatus(agent_pb2.GetCaptureDataStatusRequest(capture_id="never-sent"))
    assert unknown.status == agent_pb2.NOT_FOUND

    stub.UnLoadModel(agent_pb2.UnLoadModelRequest(name=MODEL_NAME))
    assert list(stub.ListModels(agent_pb2.ListModelsRequest()).models) == []
    channel.close()

    entries: list[tuple[bytes, dict[bytes, bytes]]] = redis_client.xrange(capture_stream())  # type: ignore[assignment]
    captures = [Capture.from_fields(fields) for _, fields in entries]
    ours = [c for c in captures if c.frame_id == capture_id]
    assert len(ours) == 1
    assert (ours[0].verdict, ours[0].height, ours[0].width, ours[0].channels) == ("defect", 64, 64, 3)
    assert ours[0].ts_ns == 1_700_000_000 * 10**9 + 5
    assert ours[0].predictions[0].model == MODEL_NAME
    assert ours[0].line == line_id


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
