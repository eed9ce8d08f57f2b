"""A stock client's CaptureData reaches the bucket: agent -> ei:capture -> the real uploader -> S3 server.

The client sends what the seed application did (float32 tensors named ``input``/``output``, auxiliary
JSON); the capture lands in the documented layout with the image, ``result.json``, the tensors as
``.npy`` files exactly as sent, ``auxiliary.json``, and a line in the day's manifest.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import date
from pathlib import Path

import grpc
import numpy as np
import redis
from edgeinspect.core import names
from edgeinspect.core.agentapi import sm_grpc, sm_pb2
from edgeinspect.core.lifecycle import wait_until
from edgeinspect.core.storage import open_store
from edgeinspect.core.tensors import to_tensor
from edgeinspect_uploader.manifest import read_day

from tests.fixtures.agent import AgentServer
from tests.fixtures.redis_server import RedisServer
from tests.helpers.captures import uploader, wait_drained

TS = 1_767_225_600  # 2026-01-01T00:00:00Z


def test_a_stock_capture_is_synced_with_its_tensors_beside_the_image(
    agent_server: AgentServer,
    redis_server: RedisServer,
    redis_client: redis.Redis,
    s3_bucket: tuple[str, str],
    tmp_path: Path,
    line_id: str,
) -> None:
    redis_client.delete(names.capture_stream(), names.events_stream())
    endpoint, bucket = s3_bucket
    agent_server.client().load_version(str(agent_server.package("cls", "1")))
    pixels = np.full((1, 3, 64, 64), 235, np.float32)
    scores = np.array([[0.97]], np.float32)
    capture_id = f"stock-{line_id}"
    with grpc.insecure_channel(agent_server.addr) as channel:
        stub = sm_grpc.AgentStub(channel)  # type: ignore[no-untyped-call]
        stub.CaptureData(
            sm_pb2.CaptureDataRequest(
                model_name="cls",
                capture_id=capture_id,
                inference_timestamp=sm_pb2.Timestamp(seconds=TS, nanos=0),
                input_tensors=[to_tensor("input", pixels)],
                output_tensors=[to_tensor("output", scores)],
                inputs=[sm_pb2.AuxilaryData(name="station", encoding=sm_pb2.JSON, byte_data=b'{"cell": 3}')],
            )
        )
    store_url = f"s3://{bucket}/captures"
    with uploader(
        redis_server.url, line_id, store_url, tmp_path / "spool", s3_endpoint_url=endpoint
    ) as service:
        wait_drained(redis_client, service)
    store = open_store(store_url, endpoint_url=endpoint)
    prefix = f"{line_id}/2026/01/01/{capture_id}"
    keys = sorted(info.key.rsplit("/", 1)[1] for info in store.list(f"{prefix}/"))
    assert keys == ["auxiliary.json", "image.png", "input-input.npy", "output-output.npy", "result.json"]
    np.testing.assert_array_equal(np.load(io.BytesIO(store.get_bytes(f"{prefix}/input-input.npy"))), pixels)
    np.testing.assert_array_equal(np.load(io.BytesIO(store.get_bytes(f"{prefix}/output-output.npy"))), scores)
    assert json.loads(store.get_bytes(f"{prefix}/auxiliary.json"))[0]["json"] == {"cell": 3}
    result = json.loads(store.get_bytes(f"{prefix}/result.json"))
    assert result["verdict"] == "defect" and "input-input.npy" in result["files"]
    (record,) = [r for r in read_day(store, line_id, date(2026, 1, 1)) if r.frame_id == capture_id]
    assert record.objects["image"].key == f"{prefix}/image.png"
    assert record.objects["input-input.npy"].key == f"{prefix}/input-input.npy"


def test_a_redis_that_stops_answering_fails_the_capture_and_the_agent_still_stops(
    agent_factory,  # type: ignore[no-untyped-def]
    own_redis: RedisServer,
    line_id: str,
) -> None:
    agent = agent_factory(redis_url=own_redis.url)
    agent.client().load_version(str(agent.package("cls", "1")))
    with grpc.insecure_channel(agent.addr) as channel:
        stub = sm_grpc.AgentStub(channel)  # type: ignore[no-untyped-call]

        def capture(capture_id: str) -> Callable[[], int]:
            stub.CaptureData(
                sm_pb2.CaptureDataRequest(
                    model_name="cls",
                    capture_id=capture_id,
                    input_tensors=[to_tensor("input", np.full((1, 3, 64, 64), 235, np.float32))],
                    output_tensors=[to_tensor("output", np.array([[0.97]], np.float32))],
                )
            )
            request = sm_pb2.GetCaptureDataStatusRequest(capture_id=capture_id)
            return lambda: int(stub.GetCaptureDataStatus(request).status)

        # the agent's connection is up and in use when the server stops answering on it
        before = capture(f"before-{line_id}")
        assert wait_until(lambda: before() == sm_pb2.SUCCESS, timeout=30)
        with own_redis.frozen():
            status = capture(f"frozen-{line_id}")
            # no answer is an outage like a refused connection: the capture fails, saying why
            assert wait_until(lambda: status() == sm_pb2.FAILURE, timeout=60)
            assert agent.stop(timeout=40) == 0  # nothing is left waiting on the silent server
    assert "capture_failed" in agent.logs() and "Timeout" in agent.logs()
