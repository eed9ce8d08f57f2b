"""The worker's calls to the agent: the fast path when the agent serves one, gRPC otherwise, the same
results either way; frames of a line come out in order, all of them, with several in flight."""

from __future__ import annotations

import os
import signal

import pytest
from edgeinspect.core.fastpath import fast_socket_path
from edgeinspect.core.lifecycle import wait_until
from edgeinspect_inference.worker.service import WorkerService

from tests.fixtures.agent import AgentServer
from tests.fixtures.redis_server import RedisServer
from tests.integration.worker.conftest import LineKit, frame_pixels

pytestmark = pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="needs Linux memfd")


def _calls(service: WorkerService, path: str) -> float:
    return service.metrics.registry.get_sample_value("ei_worker_agent_calls_total", {"path": path}) or 0.0


def _frames(count: int) -> list[str]:
    return ["dark", "patch", "bright"] * (count // 3) + ["dark"] * (count % 3)


def test_fast_path_and_grpc_give_the_same_results(line: LineKit) -> None:
    line.deploy(mt=True, cls=False, seg=False)
    kinds = _frames(6)
    scores = {}
    for transport in ("auto", "off"):
        with line.worker(agent_fast_path=transport, consumer=f"w-{transport}") as service:
            start = len(line.results())
            for i, kind in enumerate(kinds):
                line.send(f"{transport}-{i}", frame_pixels(kind))  # type: ignore[arg-type]
            results = line.wait_results(start + len(kinds))[start:]
            path = "fast" if transport == "auto" else "grpc"
            assert _calls(service, path) == len(kinds)
            assert _calls(service, "grpc" if path == "fast" else "fast") == 0
        scores[transport] = [(r.verdict, r.score, r.mask, [p.score for p in r.predictions]) for r in results]
    assert scores["auto"] == scores["off"]
    assert [s[0] for s in scores["auto"]] == ["ok", "defect", "defect"] * 2


def test_without_a_fast_socket_the_worker_uses_grpc(
    agent_factory,
    redis_server: RedisServer,
    redis_client,
    line_id: str,  # type: ignore[no-untyped-def]
) -> None:
    agent: AgentServer = agent_factory(fast_path="false")
    kit = LineKit(line_id, redis_server.url, redis_client, agent)
    kit.deploy()
    with kit.worker() as service:
        for i in range(3):
            kit.send(f"f{i}", frame_pixels("bright"))
        results = kit.wait_results(3)
        assert _calls(service, "fast") == 0 and _calls(service, "grpc") == 6  # two models per frame
    assert {r.verdict for r in results} == {"defect"}


def test_a_fast_path_that_goes_away_mid_run_falls_back_to_grpc(line: LineKit) -> None:
    line.deploy(mt=True, cls=False, seg=False)
    socket_path = fast_socket_path(line.agent.addr)
    assert socket_path is not None and socket_path.is_socket()
    with line.worker(agent_fast_path_retry_s=60) as service:
        line.send("before", frame_pixels("bright"))
        line.wait_results(1)
        assert _calls(service, "fast") == 1
        socket_path.rename(socket_path.with_name("moved.sock"))  # what a restarting agent looks like
        assert service.fast is not None
        service.fast.client.close()  # and its open connections are gone
        for i in range(3):
            line.send(f"after-{i}", frame_pixels("bright"))
        results = line.wait_results(4)
        assert _calls(service, "grpc") == 3
    assert [r.verdict for r in results] == ["defect"] * 4
    assert line.pending() == 0


def test_frames_of_a_line_come_out_in_order_all_of_them(line: LineKit) -> None:
    line.deploy(mt=True, cls=False, seg=False)
    kinds = _frames(40)
    with line.worker(pipeline_depth=4):
        ids = [line.send(f"f{i:03d}", frame_pixels(kind)) for i, kind in enumerate(kinds)]  # type: ignore[arg-type]
        results = line.wait_results(len(ids))
    assert [r.frame_id for r in results] == [f"f{i:03d}" for i in range(len(kinds))]
    expected = {"dark": "ok", "patch": "defect", "bright": "defect"}
    assert [r.verdict for r in results] == [expected[k] for k in kinds]
    assert line.pending() == 0


def test_sigterm_drains_the_pipeline_on_the_fast_path(line: LineKit) -> None:
    line.deploy(mt=True, cls=False, seg=False)
    worker = line.worker_process(consumer="drain", http_port="0", pipeline_depth="4", log_level="INFO")
    for i in range(30):
        line.send(f"f{i:03d}", frame_pixels("dark"))
    assert wait_until(lambda: len(line.results()) >= 3, 60)
    worker.send_signal(signal.SIGTERM)
    _, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 0, stderr.decode(errors="replace")[-3000:]
    assert b"fast_path_in_use" in stderr
    results = line.results()
    ids = [r.frame_id for r in results]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)  # in order, nothing twice
    assert line.pending() == 0  # every frame it read was finished and acknowledged


def test_an_agent_out_of_fast_connections_costs_speed_not_frames(
    agent_factory,
    redis_server: RedisServer,
    redis_client,
    line_id: str,  # type: ignore[no-untyped-def]
) -> None:
    agent: AgentServer = agent_factory(fast_path_max_connections="1")
    kit = LineKit(line_id, redis_server.url, redis_client, agent)
    kit.deploy()  # two models per frame, called at once: a second connection is refused
    with kit.worker(pipeline_depth=2) as service:
        for i in range(6):
            kit.send(f"f{i}", frame_pixels("bright"))
        results = kit.wait_results(6)
        assert _calls(service, "grpc") > 0
    assert [r.verdict for r in results] == ["defect"] * 6  # no error results
    assert kit.pending() == 0
