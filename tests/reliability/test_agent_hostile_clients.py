"""Hostile and careless clients against the real agent: nothing they send may crash it, grow it for
good, or turn a short error into megabytes. Each test reproduces one finding of issue 15.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest
import redis
from edgeinspect.core.agentapi import ext_grpc, ext_pb2, sm_grpc, sm_pb2
from edgeinspect.core.errors import AgentError
from edgeinspect.core.package import build_package
from edgeinspect.core.tensors import POSIX_SEGMENT_MIN, ShmSegment, shm_name, to_tensor

from tests.fixtures.agent import AgentServer
from tests.helpers.models import classifier_onnx, image, manifest_for, run_onnx

SHM_DIR = Path("/dev/shm")
needs_shm = pytest.mark.skipif(not SHM_DIR.is_dir(), reason="needs POSIX shared memory at /dev/shm")


def _segment_id() -> int:
    return POSIX_SEGMENT_MIN + (uuid.uuid4().int & (2**62 - 1))


def _alive(agent: AgentServer) -> bool:
    return agent.proc is not None and agent.proc.poll() is None


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@needs_shm
def test_truncating_a_segment_mid_request_never_crashes_the_agent(agent_server: AgentServer) -> None:
    """Before: SIGBUS within a few requests (the agent read an mmap the client shrank)."""
    client = agent_server.client()
    client.load_version(str(agent_server.package("cls", "1")))
    frames = image(batch=32, level=200)
    codes: list[str] = []
    stop = threading.Event()
    with ShmSegment(_segment_id(), frames.nbytes) as segment:
        ref = segment.write(frames)
        path = SHM_DIR / shm_name(segment.segment_id)

        def shrink_and_grow() -> None:
            fd = os.open(path, os.O_RDWR)
            try:
                while not stop.is_set():
                    os.ftruncate(fd, 4096)
                    time.sleep(0.002)  # long enough for a request to be reading meanwhile
                    os.ftruncate(fd, frames.nbytes)
                    time.sleep(0.001)
            finally:
                os.close(fd)

        saboteur = threading.Thread(target=shrink_and_grow, daemon=True)
        saboteur.start()
        try:
            with grpc.insecure_channel(agent_server.addr) as channel:
                compat = sm_grpc.AgentStub(channel)  # type: ignore[no-untyped-call]
                for index in range(150):
                    try:
                        if index % 3 == 2:
                            compat.CaptureData(
                                sm_pb2.CaptureDataRequest(
                                    model_name="cls",
                                    capture_id=f"c{index}-{uuid.uuid4().hex[:6]}",
                                    input_tensors=[to_tensor("image", ref)],
                                )
                            )
                        else:
                            client.predict("cls", {"image": ref})
                        codes.append("OK")
                    except AgentError as exc:
                        codes.append(exc.code)
                    except grpc.RpcError as exc:
                        codes.append(exc.code().name)
                    assert _alive(agent_server), f"agent died:\n{agent_server.logs()[-3000:]}"
        finally:
            stop.set()
            saboteur.join()
    assert set(codes) <= {"OK", "INVALID_ARGUMENT"}, codes
    assert client.health().serving


@needs_shm
@pytest.mark.parametrize("kind", ["symlink", "directory", "fifo"])
def test_a_link_folder_or_fifo_in_a_segments_place_is_invalid_argument(
    agent_server: AgentServer, tmp_path: Path, kind: str
) -> None:
    """Before: a symlink was followed (the agent read whatever it pointed at); a folder was INTERNAL."""
    client = agent_server.client()
    client.load_version(str(agent_server.package("cls", "1")))
    frame = image(level=235)
    segment_id = _segment_id()
    path = SHM_DIR / shm_name(segment_id)
    target = tmp_path / "target"
    target.write_bytes(frame.tobytes())
    if kind == "symlink":
        path.symlink_to(target)
    elif kind == "directory":
        path.mkdir()
    else:
        os.mkfifo(path)
    handle = sm_pb2.SharedMemoryHandle(size=frame.nbytes, offset=0, segment_id=segment_id)
    metadata = sm_pb2.TensorMetadata(name=b"image", data_type=sm_pb2.UINT8, shape=list(frame.shape))
    request = sm_pb2.PredictRequest(
        name="cls", tensors=[sm_pb2.Tensor(tensor_metadata=metadata, shared_memory_handle=handle)]
    )
    try:
        with grpc.insecure_channel(agent_server.addr) as channel, pytest.raises(grpc.RpcError) as error:
            sm_grpc.AgentStub(channel).Predict(request)  # type: ignore[no-untyped-call]
    finally:
        path.rmdir() if kind == "directory" else path.unlink()
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert ("symbolic link" if kind == "symlink" else "not a regular file") in (error.value.details() or "")


def test_a_valid_60mb_predict_is_refused_by_the_batch_cap_and_leaves_no_growth(
    agent_server: AgentServer,
) -> None:
    """Before: the batch axis had no cap; one 60 MB request left the agent about 1 GB larger for good."""
    client = agent_server.client(max_message_bytes=80 * 1024 * 1024)
    client.load_version(str(agent_server.package("cls", "1")))
    assert agent_server.proc is not None
    pid = agent_server.proc.pid
    client.predict("cls", {"image": image(batch=64, level=30)})  # the cap itself is allowed
    before = _rss_bytes(pid)
    big = np.zeros((5000, 3, 64, 64), np.uint8)  # 61 MB
    for _ in range(3):
        with pytest.raises(AgentError) as error:
            client.predict("cls", {"image": big})
        assert error.value.code == "INVALID_ARGUMENT"
        assert "EI_MAX_BATCH" in error.value.message
    del big
    grown = _rss_bytes(pid) - before
    assert grown < 200 * 1024 * 1024, f"agent grew by {grown / 2**20:.0f} MiB"
    assert client.predict("cls", {"image": image(level=235)}).outputs["defect_probability"][0, 0] > 0.5


def test_a_1mib_model_name_gives_a_short_not_found(agent_server: AgentServer) -> None:
    """Before: the name was echoed whole, the status header was too large: a transport error."""
    name = "m" * (1 << 20)
    with grpc.insecure_channel(agent_server.addr) as channel:
        compat = sm_grpc.AgentStub(channel)  # type: ignore[no-untyped-call]
        ext = ext_grpc.AgentStub(channel)  # type: ignore[no-untyped-call]
        calls: list[Callable[[], object]] = [
            lambda: compat.Predict(sm_pb2.PredictRequest(name=name)),
            lambda: compat.DescribeModel(sm_pb2.DescribeModelRequest(name=name)),
            lambda: compat.UnLoadModel(sm_pb2.UnLoadModelRequest(name=name)),
            lambda: ext.Predict(ext_pb2.PredictRequest(model=name)),
            lambda: ext.GetModelStats(ext_pb2.GetModelStatsRequest(name=name)),
        ]
        for call in calls:
            with pytest.raises(grpc.RpcError) as error:
                call()
            assert error.value.code() == grpc.StatusCode.NOT_FOUND, error.value.details()
            assert len(error.value.details() or "") < 2500
            assert "chars)" in (error.value.details() or "")
    assert "m" * 5000 not in agent_server.logs()


def test_capture_data_is_bounded_while_redis_is_slow(agent_factory: type, redis_client: redis.Redis) -> None:
    """Before: CaptureData queued without bound while Redis was slow (+650 MB)."""
    agent: AgentServer = agent_factory(capture_max_pending=4)
    agent.client().load_version(str(agent.package("cls", "1")))
    frame = np.full((1, 3, 256, 256), 200, np.float32)  # 786 KB a capture
    tensor = to_tensor("input", frame)
    accepted: list[str] = []
    refused: list[str] = []
    redis_client.client_pause(4000, all=False)  # Redis stops taking writes
    try:
        with grpc.insecure_channel(agent.addr) as channel:
            stub = sm_grpc.AgentStub(channel)  # type: ignore[no-untyped-call]
            for index in range(12):
                capture_id = f"slow-{index}-{uuid.uuid4().hex[:6]}"
                try:
                    stub.CaptureData(
                        sm_pb2.CaptureDataRequest(
                            model_name="cls", capture_id=capture_id, input_tensors=[tensor]
                        )
                    )
                    accepted.append(capture_id)
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                    assert "capture queue is full" in (exc.details() or "")
                    refused.append(capture_id)
            assert len(accepted) == 4 and len(refused) == 8
            deadline = time.monotonic() + 30
            statuses: list[int] = []
            while time.monotonic() < deadline:
                statuses = [
                    stub.GetCaptureDataStatus(sm_pb2.GetCaptureDataStatusRequest(capture_id=c)).status
                    for c in accepted
                ]
                if sm_pb2.IN_PROGRESS not in statuses:
                    break
                time.sleep(0.1)
            assert statuses == [sm_pb2.SUCCESS] * 4  # nothing accepted was lost
            retry = sm_pb2.CaptureDataRequest(model_name="cls", capture_id=refused[0], input_tensors=[tensor])
            stub.CaptureData(retry)  # a refused id can be sent again once Redis keeps up
    finally:
        redis_client.client_unpause()


def test_a_signed_manifest_with_a_70mb_field_is_refused_and_not_kept(
    agent_server: AgentServer, tmp_path: Path
) -> None:
    """Before: RESOURCE_EXHAUSTED on load, yet the model stayed loaded and ListVersions failed for all."""
    work = tmp_path / "huge"
    work.mkdir()
    model = work / "model.onnx"
    model.write_bytes(classifier_onnx())
    golden_input = image(level=140, seed=7)
    manifest = manifest_for("huge", "1", "classification", 64, 64).model_copy(
        update={"dataset_fingerprint": "f" * (70 * 1024 * 1024)}
    )
    tar = build_package(
        work,
        manifest,
        model,
        golden_input,
        run_onnx(model.read_bytes(), golden_input),
        agent_server.keys.private_key,
    )
    del manifest
    client = agent_server.client()
    with pytest.raises(AgentError) as error:
        client.load_version(str(tar))
    assert error.value.code in {"FAILED_PRECONDITION", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"}
    assert len(error.value.message) < 2500
    assert client.list_versions() == []  # refused, and not kept: every client can still list
    client.load_version(str(agent_server.package("cls", "1")))
    assert [v.name for v in client.list_versions()] == ["cls"]
    assert _alive(agent_server)
