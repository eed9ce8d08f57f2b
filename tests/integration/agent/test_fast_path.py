"""The worker fast path (unix socket + sealed memfds): same answers as gRPC, clear errors for hostile
input, and the agent keeps serving whatever a client sends."""

from __future__ import annotations

import array
import os
import socket
import struct
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from edgeinspect.core.errors import AgentError
from edgeinspect.core.fastpath import (
    HEADER,
    KIND_ERROR,
    KIND_PREDICT,
    KIND_REGISTER,
    KIND_REGISTERED,
    FastPathClient,
    InputRef,
    OutputArea,
    PredictRequest,
    SealedSegment,
    decode_error,
    encode_predict,
    fast_socket_path,
    header,
    parse_header,
    recv_exact,
)

from tests.fixtures.agent import AgentServer
from tests.helpers.models import image

pytestmark = pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="needs Linux memfd")


def _fast(agent: AgentServer) -> FastPathClient:
    path = fast_socket_path(agent.addr)
    assert path is not None and path.is_socket(), agent.logs()[-2000:]
    return FastPathClient(path, timeout_s=10)


def _raw(agent: AgentServer) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    path = fast_socket_path(agent.addr)
    assert path is not None
    sock.connect(str(path))
    return sock


def _answer(sock: socket.socket) -> tuple[int, bytearray]:
    kind, _flags, size = parse_header(recv_exact(sock, HEADER.size, "header"), 1 << 30)
    return kind, recv_exact(sock, size, "body")


def _closed(sock: socket.socket) -> bool:
    """The agent closed the connection (a reset when our unread bytes were still in its buffer)."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def _register(sock: socket.socket, fd: int) -> tuple[int, bytearray]:
    sock.sendmsg(
        [header(KIND_REGISTER, 8) + struct.pack("<Q", 0)],
        [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))],
    )
    return _answer(sock)


def test_fast_path_answers_equal_grpc_answers(agent_server: AgentServer) -> None:
    client = agent_server.client()
    client.load_version(str(agent_server.package("mt", "1", "multitask", height=32, width=96)))
    client.set_alias("defect-mt", "mt", "1")
    fast = _fast(agent_server)
    frames = [image(32, 96, level=level, seed=level) for level in (30, 240)]
    segment = SealedSegment(1 << 16)
    try:
        for frame in frames:
            by_grpc = client.predict("defect-mt", {"image": frame}, "f-1")
            for area in (None, (segment, 16384, 1 << 15), (segment, 16384, 64)):  # inline, placed, too small
                by_fast = fast.predict("defect-mt", {"image": segment.write(frame)}, "f-1", output=area)
                assert (by_fast.name, by_fast.version, by_fast.role) == (
                    by_grpc.name,
                    by_grpc.version,
                    "primary",
                )
                assert by_fast.outputs.keys() == by_grpc.outputs.keys()
                for name, value in by_grpc.outputs.items():
                    np.testing.assert_array_equal(by_fast.outputs[name], value)
    finally:
        fast.close()
        segment.close()


def test_agent_refusals_carry_grpc_codes(agent_server: AgentServer) -> None:
    agent_server.client().load_version(str(agent_server.package("cls", "1", height=32, width=32)))
    fast = _fast(agent_server)
    segment = SealedSegment(1 << 16)
    try:
        with pytest.raises(AgentError) as missing:
            fast.predict("nope", {"image": segment.write(image(32, 32))})
        assert missing.value.code == "NOT_FOUND"
        with pytest.raises(AgentError) as wrong:
            fast.predict("cls", {"image": segment.write(image(16, 32))})
        assert wrong.value.code == "INVALID_ARGUMENT" and "shape" in wrong.value.message
        ok = fast.predict("cls", {"image": segment.write(image(32, 32, level=240))})
        assert ok.outputs["defect_probability"][0, 0] > 0.5  # the connection goes on after refusals
    finally:
        fast.close()
        segment.close()


def test_hostile_messages_get_errors_and_the_agent_keeps_serving(agent_server: AgentServer) -> None:
    client = agent_server.client()
    client.load_version(str(agent_server.package("cls", "1", height=32, width=32)))
    frame = image(32, 32, level=240)

    # a bad magic: an error answer, then the connection is closed
    with _raw(agent_server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
        kind, body = _answer(sock)
        assert kind == KIND_ERROR and "magic" in decode_error(body).message
        assert _closed(sock)

    # an oversize body is refused before it is read
    with _raw(agent_server) as sock:
        sock.sendall(header(KIND_PREDICT, 1 << 30))
        kind, body = _answer(sock)
        assert kind == KIND_ERROR and "larger than the limit" in decode_error(body).message

    # a truncated body (header promises more than is sent, then the client hangs up): no crash
    with _raw(agent_server) as sock:
        sock.sendall(header(KIND_PREDICT, 100) + b"\x03\x00cls")

    with _raw(agent_server) as sock:
        # a body that is not what its kind says
        sock.sendall(header(KIND_PREDICT, 4) + b"\xff\xff\x00\x00")
        kind, body = _answer(sock)
        assert kind == KIND_ERROR and "truncated" in decode_error(body).message
        # an unsealed memfd, a regular file, no fd at all
        plain = os.memfd_create("plain")
        os.ftruncate(plain, 4096)
        kind, body = _register(sock, plain)
        os.close(plain)
        assert kind == KIND_ERROR and "F_SEAL_SHRINK" in decode_error(body).message
        with tempfile.TemporaryFile() as regular:  # a plain file: it could be truncated under a mapping
            regular.truncate(4096)
            kind, body = _register(sock, regular.fileno())
        assert kind == KIND_ERROR and "seal" in decode_error(body).message
        sock.sendall(header(KIND_REGISTER, 8) + struct.pack("<Q", 0))
        kind, body = _answer(sock)
        assert kind == KIND_ERROR and "exactly one" in decode_error(body).message
        # a sealed segment, then inputs that do not fit it or name no segment
        segment = SealedSegment(frame.nbytes)
        kind, body = _register(sock, segment.fd)
        assert kind == KIND_REGISTERED
        handle = struct.unpack("<I", body)[0]
        segment.write(frame)
        for ref, expected in (
            (InputRef("image", frame.dtype, frame.shape, handle, 8), "past the end"),
            (InputRef("image", frame.dtype, (1, 3, 64, 64), handle, 0), "past the end"),
            (InputRef("image", frame.dtype, frame.shape, handle + 7, 0), "not registered"),
            (InputRef("image", np.dtype(np.float32), (1, 3, 32, 8), handle, 2), "aligned"),
            (InputRef("image", frame.dtype, (1, 3, 16, 32), handle, 0), "shape"),
        ):
            sock.sendall(encode_predict(PredictRequest("cls", "", (ref,))))
            kind, body = _answer(sock)
            assert kind == KIND_ERROR, ref
            error = decode_error(body)
            assert error.code == "INVALID_ARGUMENT" and expected in error.message, error
        good = InputRef("image", frame.dtype, frame.shape, handle, 0)
        for area, expected in (
            (OutputArea(handle + 9, 0, 64), "not registered"),
            (OutputArea(handle, 64, frame.nbytes), "past the end"),
        ):
            sock.sendall(encode_predict(PredictRequest("cls", "", (good,), output=area)))
            kind, body = _answer(sock)
            assert kind == KIND_ERROR, area
            error = decode_error(body)
            assert error.code == "INVALID_ARGUMENT" and expected in error.message, error
        segment.close()

    # and the agent still answers, on both paths
    fast = _fast(agent_server)
    good = SealedSegment(frame.nbytes)
    try:
        assert fast.predict("cls", {"image": good.write(frame)}).outputs["defect_probability"][0, 0] > 0.5
    finally:
        fast.close()
        good.close()
    assert client.predict("cls", {"image": frame}).outputs["defect_probability"][0, 0] > 0.5
    assert agent_server.proc is not None and agent_server.proc.poll() is None
    assert "fastpath_connection_failed" not in agent_server.logs()  # every case was an answer, no bug


def test_fast_socket_takes_the_grpc_socket_mode(agent_server: AgentServer) -> None:
    path = fast_socket_path(agent_server.addr)
    grpc_socket = agent_server.socket_dir / "agent.sock"
    assert path is not None
    assert path.stat().st_mode & 0o777 == grpc_socket.stat().st_mode & 0o777


def test_no_fast_socket_when_disabled(agent_factory) -> None:  # type: ignore[no-untyped-def]
    agent = agent_factory(fast_path="false")
    path = fast_socket_path(agent.addr)
    assert path is not None and not path.exists()
    with pytest.raises(AgentError) as refused:
        FastPathClient(path).predict("cls", {})
    assert refused.value.code == "UNAVAILABLE"


def test_a_batching_window_gives_each_caller_its_own_answer(agent_factory) -> None:  # type: ignore[no-untyped-def]
    agent: AgentServer = agent_factory(fast_path_batch_window_ms="20")
    client = agent.client()
    client.load_version(str(agent.package("seg", "1", "segmentation", height=32, width=32)))
    frames = [image(32, 32, level=level, seed=level) for level in (20, 90, 160, 240)]
    expected = [client.predict("seg", {"image": f}).outputs["mask_probability"] for f in frames]
    fast = _fast(agent)
    segments = [SealedSegment(1 << 14) for _ in frames]

    def call(index: int) -> np.ndarray:
        answer = fast.predict("seg", {"image": segments[index].write(frames[index])}, f"f{index}")
        return answer.outputs["mask_probability"]

    try:
        with ThreadPoolExecutor(len(frames)) as pool:
            for _round in range(3):
                for got, want in zip(pool.map(call, range(len(frames))), expected, strict=True):
                    np.testing.assert_array_equal(got, want)
    finally:
        fast.close()
        for segment in segments:
            segment.close()


def test_one_bad_frame_in_a_batching_window_fails_only_its_own_call(agent_factory) -> None:  # type: ignore[no-untyped-def]
    # the longest window the agent allows: the four calls share it
    agent: AgentServer = agent_factory(fast_path_batch_window_ms="50")
    client = agent.client()
    client.load_version(str(agent.package("seg", "1", "segmentation", height=32, width=32)))
    frames = [image(32, 32, level=level, seed=level) for level in (20, 90, 160)]
    expected = [client.predict("seg", {"image": f}).outputs["mask_probability"] for f in frames]
    frames.append(image(16, 16, level=200, seed=7))  # another line's camera: the wrong size for this model
    clients = [_fast(agent) for _ in frames]
    segments = [SealedSegment(1 << 14) for _ in frames]
    start = threading.Barrier(len(frames))

    def call(index: int) -> np.ndarray:
        start.wait()
        answer = clients[index].predict("seg", {"image": segments[index].write(frames[index])}, f"f{index}")
        return answer.outputs["mask_probability"]

    try:
        with ThreadPoolExecutor(len(frames)) as pool:
            futures = [pool.submit(call, index) for index in range(len(frames))]
            for future, want in zip(futures[:3], expected, strict=True):
                np.testing.assert_array_equal(future.result(), want)  # the good lines are answered
            with pytest.raises(AgentError) as bad:
                futures[3].result()
        assert bad.value.code == "INVALID_ARGUMENT" and "16" in bad.value.message
    finally:
        for fast in clients:
            fast.close()
        for segment in segments:
            segment.close()
