"""Model inputs by shared memory: same answers as bytes; an agent that cannot see them gets bytes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from edgeinspect.core.agent_client import AgentClient
from edgeinspect.core.preprocess import preprocess
from edgeinspect_inference.worker.agentcalls import AgentModelCaller
from edgeinspect_inference.worker.catalog import ModelCatalog
from edgeinspect_inference.worker.metrics import WorkerMetrics
from edgeinspect_inference.worker.shm import ShmInputs

from tests.fixtures.agent import AgentServer
from tests.integration.worker.conftest import MODEL_SIZE, frame_pixels


def _deploy(agent: AgentServer) -> AgentClient:
    client = AgentClient(agent.addr)
    package = agent.package("seg", "1", "segmentation", height=MODEL_SIZE, width=MODEL_SIZE)
    client.load_version(str(package))
    client.set_alias("defect-seg", "seg", "1")
    return client


def _judge_one(client: AgentClient, shm: ShmInputs) -> float:
    catalog = ModelCatalog(client)
    caller = AgentModelCaller(client, catalog, WorkerMetrics(), shm=shm)
    target = catalog.target("defect-seg")
    assert target is not None
    pre = preprocess(frame_pixels("bright"), target.manifest.input)
    answer = caller(target, pre, "f1")
    assert answer.primary.prediction.defect_area_px == pre.geometry.frame_height * pre.geometry.frame_width
    return answer.primary.prediction.score


def test_inputs_sent_by_shared_memory_get_the_same_answer_as_bytes(agent_server: AgentServer) -> None:
    client = _deploy(agent_server)
    shm = ShmInputs(2, min_bytes=0)
    try:
        by_shm = _judge_one(client, shm)
        assert shm.enabled
        by_bytes = _judge_one(client, ShmInputs(0, enabled=False))
    finally:
        shm.close()
        client.close()
    assert by_shm == pytest.approx(by_bytes)
    assert by_shm > 0.5  # a bright frame is a defect either way


def test_an_agent_that_cannot_map_our_segments_makes_the_worker_fall_back_to_bytes(
    agent_factory: Callable[..., AgentServer], tmp_path: Path
) -> None:
    elsewhere = tmp_path / "not-dev-shm"
    elsewhere.mkdir()
    agent = agent_factory(shm_dir=str(elsewhere))  # the agent looks for segments where we write none
    client = _deploy(agent)
    shm = ShmInputs(2, min_bytes=0)
    try:
        _judge_one(client, shm)
        assert not shm.enabled
        _judge_one(client, shm)  # and keeps working with bytes
    finally:
        shm.close()
        client.close()
