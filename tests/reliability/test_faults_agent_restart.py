"""The agent restarts (kill -9) under a running worker: frames wait for the models to come back.

Before: for the ~12 s until the model manager restored the aliases, every frame became
``verdict=error`` (71 of 100 in the issue's run). Now the worker holds them, bounded by
``EI_MODEL_WAIT_S`` and visible in its metrics, and judges each one once the models are back: no frame
lost, none judged twice, none an error.
"""

from __future__ import annotations

import signal
import time
from collections import Counter

import pytest
import redis
from edgeinspect.core.lifecycle import wait_until

from tests.fixtures.agent import AgentServer
from tests.fixtures.redis_server import RedisServer
from tests.integration.worker.conftest import LineKit, frame_pixels

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def line(
    redis_server: RedisServer, redis_client: redis.Redis, line_id: str, agent_server: AgentServer
) -> LineKit:
    return LineKit(line_id, redis_server.url, redis_client, agent_server)


def test_frames_wait_for_models_an_agent_restart_took_away(line: LineKit) -> None:
    line.deploy()
    with line.worker(model_wait_s=60, model_retry_s=0.05, agent_timeout_s=2) as service:
        for i in range(5):
            line.send(f"before-{i}", frame_pixels("bright" if i % 2 else "dark"))
        line.wait_results(5)

        line.agent.stop(signal.SIGKILL)
        line.agent.start()  # a fresh agent serves no model until the model manager restores them
        for i in range(20):
            line.send(f"gap-{i}", frame_pixels("bright" if i % 2 else "dark"))
        metrics = service.metrics.registry
        labels = {"line": line.line}
        assert wait_until(lambda: metrics.get_sample_value("ei_worker_waiting_for_model", labels) == 1, 30)
        time.sleep(1.0)  # the restore takes a while; frames must not be judged meanwhile
        assert len(line.results()) == 5
        line.deploy()  # what the model manager's restore does
        results = line.wait_results(25)
        assert metrics.get_sample_value("ei_worker_waiting_for_model", labels) == 0
        assert (metrics.get_sample_value("ei_worker_model_wait_seconds_total", labels) or 0) >= 1.0
    frames = Counter(r.frame_id for r in results)
    assert len(frames) == 25 and set(frames.values()) == {1}  # none lost, none twice
    verdicts = {r.frame_id: r.verdict for r in results}
    assert [verdicts[f"gap-{i}"] for i in range(20)] == ["defect" if i % 2 else "ok" for i in range(20)]
    assert line.pending() == 0


def test_after_the_bound_frames_become_an_explicit_counted_outcome(line: LineKit) -> None:
    line.deploy()
    with line.worker(model_wait_s=1.0, model_retry_s=0.05, agent_timeout_s=2) as service:
        line.send("before", frame_pixels("dark"))
        line.wait_results(1)
        line.agent.stop(signal.SIGKILL)
        line.agent.start()
        for i in range(4):
            line.send(f"gap-{i}", frame_pixels("dark"))
        results = line.wait_results(5)
        frames = service.metrics.registry.get_sample_value(
            "ei_worker_frames_total", {"line": line.line, "verdict": "no_model"}
        )
    assert [r.verdict for r in results[1:]] == ["no_model"] * 4
    assert frames == 4
