"""The agent process as operations see it: health checking, reflection, /metrics, TCP, batching,
settings validation and a graceful SIGTERM that lets a running request finish."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import httpx
import pytest
from edgeinspect.core.agent_client import AgentClient, PredictCall, PredictResult
from edgeinspect.core.errors import AgentError
from edgeinspect.core.lifecycle import EXIT_STOP_OVERRAN, wait_until
from edgeinspect_inference.agent.main import STOP_MARGIN_S
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from tests.fixtures.agent import AgentServer
from tests.helpers.models import image

SERVICES = ("AWS.SageMaker.Edge.Agent", "edgeinspect.agent.v1.Agent")


def test_grpc_health_reports_serving_for_both_services(agent_server: AgentServer) -> None:
    with grpc.insecure_channel(agent_server.addr) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", *SERVICES):
            status = stub.Check(health_pb2.HealthCheckRequest(service=service)).status
            assert status == health_pb2.HealthCheckResponse.SERVING, service


def test_reflection_lists_both_services(agent_server: AgentServer) -> None:
    with grpc.insecure_channel(agent_server.addr) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        assert set(SERVICES) <= set(database.get_services())
        assert database.FindFileContainingSymbol("edgeinspect.agent.v1.PredictRequest") is not None


def test_load_reports_provider_specs_and_manifest_over_tcp(agent_server: AgentServer) -> None:
    client = agent_server.client(tcp=True)
    info = client.load_version(str(agent_server.package("seg", "4", "segmentation", height=32, width=96)))
    assert (info.ref, info.task, info.execution_provider, info.variant) == (
        "seg:4",
        "segmentation",
        "cpu",
        "fp32",
    )
    assert [(t.name, str(t.dtype), t.shape) for t in info.inputs] == [("image", "uint8", (-1, 3, 32, 96))]
    assert [(t.name, t.shape) for t in info.outputs] == [("mask_probability", (-1, 1, 32, 96))]
    assert info.manifest().thresholds.pixel == 0.5
    assert info.load_ms > 0 and len(info.sha256) == 64
    health = client.health()
    assert health.serving and health.models_loaded == 1 and health.execution_providers[-1] == "cpu"


def test_a_batch_comes_back_in_order_with_each_models_outputs(agent_server: AgentServer) -> None:
    client = agent_server.client()
    client.load_version(str(agent_server.package("cls", "1")))
    client.load_version(str(agent_server.package("seg", "1", "segmentation")))
    calls = [
        PredictCall("cls", {"image": image(level=20)}, "f1"),
        PredictCall("seg", {"image": image(level=235)}, "f1"),
        PredictCall("cls", {"image": image(level=235)}, "f2"),
    ]
    results = client.predict_batch(calls)
    assert [r.name for r in results] == ["cls", "seg", "cls"]
    assert (
        results[0].outputs["defect_probability"][0, 0] < 0.5 < results[2].outputs["defect_probability"][0, 0]
    )
    assert results[1].outputs["mask_probability"].shape == (1, 1, 64, 64)


def test_metrics_health_and_readiness_over_http(agent_server: AgentServer) -> None:
    client = agent_server.client()
    client.load_version(str(agent_server.package("cls", "1")))
    client.predict("cls", {"image": image()})
    with pytest.raises(AgentError):
        client.predict("cls", {"image": image(8, 8)})
    metrics = httpx.get(f"{agent_server.http_url}/metrics").text
    assert 'ei_agent_requests_total{model="cls",version="1"} 2.0' in metrics
    assert 'ei_agent_errors_total{code="INVALID_ARGUMENT",model="cls"} 1.0' in metrics
    assert 'ei_agent_latency_seconds_count{model="cls",version="1"} 1.0' in metrics
    assert 'ei_agent_in_flight{model="cls",version="1"} 0.0' in metrics
    assert httpx.get(f"{agent_server.http_url}/healthz").status_code == 200
    assert httpx.get(f"{agent_server.http_url}/readyz").json()["ready"] is True


def test_sigterm_lets_the_request_in_flight_finish_then_exits_cleanly(agent_server: AgentServer) -> None:
    client = agent_server.client()
    client.load_version(str(agent_server.package("slow", "1", busy_iterations=15_000)))
    results: list[PredictResult] = []
    errors: list[BaseException] = []

    def predict() -> None:
        try:
            results.append(client.predict("slow", {"image": image(level=235)}, timeout_s=120))
        except BaseException as exc:  # asserted below
            errors.append(exc)

    thread = threading.Thread(target=predict)
    thread.start()
    assert wait_until(lambda: client.stats("slow")[0].in_flight == 1, timeout=30)
    assert agent_server.proc is not None
    agent_server.proc.send_signal(signal.SIGTERM)
    thread.join(timeout=120)
    assert errors == [] and len(results) == 1
    assert results[0].outputs["defect_probability"][0, 0] > 0.5
    assert agent_server.stop() == 0
    assert not Path(agent_server.addr.removeprefix("unix://")).exists()
    events = [json.loads(line)["event"] for line in agent_server.logs().splitlines() if line.startswith("{")]
    assert events.index("shutdown_requested") < events.index("agent_stopping") < events.index("agent_stopped")


def test_a_stop_held_by_a_call_stuck_in_its_model_ends_with_exit_70_and_every_stack_in_the_log(
    agent_factory,  # type: ignore[no-untyped-def]
) -> None:
    # A call that outlives the drain grace keeps its thread inside ONNX Runtime, where nothing can
    # interrupt it, and the exit waits for that thread: the agent's exit deadline ends it instead.
    agent = agent_factory(shutdown_grace_s=0.2)
    client = agent.client()
    # minutes on a bright frame; the golden input (level 140) runs at once, so the load is quick
    package = agent.package("stuck", "1", busy_iterations=4_000_000, busy_above=0.8)
    client.load_version(str(package))
    thread = threading.Thread(target=_predict_ignoring_errors, args=(client,), daemon=True)
    thread.start()
    assert wait_until(lambda: client.stats("stuck")[0].in_flight == 1, timeout=30)
    code = agent.stop(timeout=90)
    logs = agent.logs()
    assert code == EXIT_STOP_OVERRAN, f"exit {code}; the agent's log ends:\n{logs[-4000:]}"
    overran = next(json.loads(line) for line in logs.splitlines() if '"shutdown_overran"' in line)
    assert overran["deadline_s"] == pytest.approx(0.2 + STOP_MARGIN_S)
    assert any(name.startswith("grpc") for name in overran["threads"])  # the handler still running
    assert "onnxruntime_inference_collection.py" in logs and "in run" in logs  # and where it is


def _predict_ignoring_errors(client: AgentClient) -> None:
    with contextlib.suppress(AgentError):  # cancelled when the grace ends: not what is tested
        client.predict("stuck", {"image": image(level=235)}, timeout_s=120)


def _agent_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EI_")}
    return subprocess.run(
        [sys.executable, "-m", "edgeinspect_inference.agent", *args],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_config_prints_the_settings_and_bad_values_name_their_variable() -> None:
    good = _agent_cli("--check-config", EI_EXECUTION_PROVIDERS="CUDA, cpu", EI_GRPC_THREADS="4")
    assert good.returncode == 0, good.stderr
    shown = json.loads(good.stdout)
    assert shown["execution_providers"] == ["cuda", "cpu"] and shown["grpc_threads"] == 4
    bad = _agent_cli("--check-config", EI_GRPC_THREADS="0")
    assert bad.returncode == 2 and "EI_GRPC_THREADS" in bad.stderr


def test_an_unknown_execution_provider_fails_at_start(tmp_path: Path) -> None:
    result = _agent_cli(EI_EXECUTION_PROVIDERS="tpu,cpu", EI_AGENT_ADDR=f"unix://{tmp_path}/a.sock")
    assert result.returncode == 2 and "EI_EXECUTION_PROVIDERS" in result.stderr and "tpu" in result.stderr
