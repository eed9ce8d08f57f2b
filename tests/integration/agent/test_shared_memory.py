"""Inputs by POSIX shared memory: the worker writes a frame once, the agent reads it in place."""

from __future__ import annotations

import uuid
from pathlib import Path

import grpc
import numpy as np
import pytest
from edgeinspect.core.agentapi import sm_grpc, sm_pb2
from edgeinspect.core.tensors import ShmSegment, from_tensors, to_tensor

from tests.fixtures.agent import AgentServer
from tests.helpers.models import image

pytestmark = pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="needs POSIX shared memory")


def test_shared_memory_input_gives_the_same_answer_as_bytes(agent_server: AgentServer) -> None:
    client = agent_server.client()
    client.load_version(str(agent_server.package("seg", "1", "segmentation", height=32, width=96)))
    frames = [image(32, 96, level=level, seed=level) for level in (30, 240)]
    with ShmSegment(uuid.uuid4().int & (2**63 - 1), sum(f.nbytes for f in frames)) as segment:
        refs = [segment.write(frames[0]), segment.write(frames[1], offset=frames[0].nbytes)]
        for frame, ref in zip(frames, refs, strict=True):
            by_shm = client.predict("seg", {"image": ref}).outputs["mask_probability"]
            by_bytes = client.predict("seg", {"image": frame}).outputs["mask_probability"]
            np.testing.assert_array_equal(by_shm, by_bytes)
        segment.write(frames[1])  # the writer reuses the region for the next frame
        np.testing.assert_array_equal(
            client.predict("seg", {"image": refs[0]}).outputs["mask_probability"],
            client.predict("seg", {"image": frames[1]}).outputs["mask_probability"],
        )


def test_the_compat_api_accepts_a_shared_memory_handle(agent_server: AgentServer) -> None:
    agent_server.client().load_version(str(agent_server.package("cls", "1")))
    frame = image(level=235)
    with (
        ShmSegment(uuid.uuid4().int & (2**63 - 1), frame.nbytes) as segment,
        grpc.insecure_channel(agent_server.addr) as channel,
    ):
        tensor = to_tensor("image", segment.write(frame))
        assert tensor.shared_memory_handle.size == frame.nbytes
        stub = sm_grpc.AgentStub(channel)  # type: ignore[no-untyped-call]
        response = stub.Predict(sm_pb2.PredictRequest(name="cls", tensors=[tensor]))
    assert from_tensors(response.tensors)["defect_probability"][0, 0] > 0.5
