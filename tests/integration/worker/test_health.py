"""The worker process's /healthz, /readyz (Redis + agent) and /metrics."""

from __future__ import annotations

import signal

import httpx
from edgeinspect.core.lifecycle import wait_until

from tests.fixtures.servers import free_port
from tests.integration.worker.conftest import LineKit, frame_pixels


def test_ready_when_redis_and_agent_answer_and_metrics_count_frames(line: LineKit) -> None:
    line.deploy()
    port = free_port()
    worker = line.worker_process(consumer="probed", http_port=str(port))
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        assert wait_until(ready, 60), "the worker never became ready"
        assert httpx.get(f"{base}/readyz", timeout=2).json() == {
            "ready": True,
            "checks": {"redis": True, "agent": True, "frames_stream": True},
        }
        assert httpx.get(f"{base}/healthz", timeout=2).status_code == 200
        line.send("bad", frame_pixels("bright"))
        line.wait_results(1)
        metrics = httpx.get(f"{base}/metrics", timeout=2).text
        assert f'ei_worker_frames_total{{line="{line.line}",verdict="defect"}} 1.0' in metrics
        assert "ei_worker_e2e_seconds_bucket" in metrics
        assert 'ei_worker_model_latency_seconds_count{alias="defect-seg",role="primary"} 1.0' in metrics
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=30)
    assert worker.returncode == 0
