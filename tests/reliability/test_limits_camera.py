"""The camera's HTTP trigger against hostile clients: memory, threads and error sizes stay bounded.

Reproduces issue 15: 16 concurrent 7000x7000 PNGs took the camera to 8 GB, 300 half-sent requests
held 300 threads, and error replies echoed whatever the client sent.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pytest
from edgeinspect.core.images import decode as real_decode
from edgeinspect.core.images import encode
from edgeinspect.core.lifecycle import wait_until
from edgeinspect_camera.sources import trigger as trigger_module
from edgeinspect_camera.sources.trigger import TriggerSource

from tests.reliability.hostile import WAIT_S, png_header
from tests.unit.camera.helpers import FakeClock, make_image

MAX_CONNECTIONS = 8


@pytest.fixture
def trigger() -> Iterator[TriggerSource]:
    source = TriggerSource(
        "127.0.0.1",
        0,
        clock=FakeClock(),
        queue_size=64,
        max_bytes=1 << 20,
        max_pixels=4_000_000,
        decode_slots=1,
        max_connections=MAX_CONNECTIONS,
        request_timeout_s=1.0,
    )
    source.open()
    yield source
    source.close()


def _url(source: TriggerSource, route: str) -> str:
    return f"http://127.0.0.1:{source.port}{route}"


def test_a_7000x7000_png_is_refused_from_its_header_with_413(trigger: TriggerSource) -> None:
    reply = httpx.post(_url(trigger, "/frames"), content=png_header(7000, 7000))

    assert reply.status_code == 413
    assert "7000x7000" in reply.json()["error"] and "EI_TRIGGER_MAX_PIXELS" in reply.json()["hint"]
    assert trigger.read() is None


def test_an_image_within_the_limit_is_still_accepted(trigger: TriggerSource) -> None:
    reply = httpx.post(_url(trigger, "/frames"), content=encode(make_image(3), "png"))
    assert reply.status_code == 202


def test_errors_quote_at_most_a_hundred_characters_of_what_the_client_sent(trigger: TriggerSource) -> None:
    long_path = "/" + "x" * 60_000
    reply = httpx.post(_url(trigger, long_path), content=b"x")
    assert reply.status_code == 404 and len(reply.content) < 400

    reply = httpx.post(_url(trigger, "/frames?source=" + "y" * 60_000), content=encode(make_image(3), "png"))
    assert reply.status_code == 202 and len(reply.json()["source"]) <= 100


def test_decodes_run_at_most_decode_slots_at_a_time(
    trigger: TriggerSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    running, peak = [0], [0]
    lock = threading.Lock()

    def counting_decode(*args: Any, **kwargs: Any) -> np.ndarray:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            time.sleep(0.05)
            return real_decode(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(trigger_module, "decode", counting_decode)
    body = encode(make_image(3), "png")
    with ThreadPoolExecutor(6) as pool:
        codes = list(
            pool.map(lambda _: httpx.post(_url(trigger, "/frames"), content=body).status_code, range(6))
        )

    assert codes == [202] * 6
    assert peak[0] == 1


def _half_sent(port: int, body: bool) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
    if body:  # complete headers, then only part of the body it announced
        sock.sendall(b"POST /frames HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"\x89PNG")
    else:  # headers that never end
        sock.sendall(b"POST /frames HTTP/1.1\r\nHost: x\r\nContent-")
    return sock


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        sock.settimeout(WAIT_S)
        while chunk := sock.recv(4096):  # a 503 reply, or nothing: either way the server ends it
            del chunk
        return True
    except OSError:
        return True


def test_300_half_sent_requests_hold_no_more_than_max_connections_threads(trigger: TriggerSource) -> None:
    before = threading.active_count()
    sockets = [_half_sent(trigger.port, body=i % 2 == 0) for i in range(300)]
    try:
        assert threading.active_count() - before <= MAX_CONNECTIONS + 2

        with ThreadPoolExecutor(16) as pool:  # every one is answered 503 or cut off at its deadline
            assert all(pool.map(_closed_by_server, sockets))
    finally:
        for sock in sockets:
            sock.close()

    assert wait_until(lambda: threading.active_count() - before <= 1, timeout=WAIT_S)
    reply = httpx.post(_url(trigger, "/frames"), content=encode(make_image(3), "png"))
    assert reply.status_code == 202
