"""Fixtures for model-manager tests: one device (``kit``) on the real broker, agent, S3 and Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from edgeinspect.core.storage import open_store

from tests.fixtures.agent import AgentServer
from tests.fixtures.mqtt_broker import MosquittoBroker
from tests.fixtures.redis_server import RedisServer
from tests.helpers.jobs_cloud import JobsCloud
from tests.integration.model_manager.harness import DeviceKit, base_env


@pytest.fixture
def kit(
    tmp_path: Path,
    agent_server: AgentServer,
    mqtt_broker: MosquittoBroker,
    mqtt_topic_root: str,
    s3_bucket: tuple[str, str],
    redis_server: RedisServer,
    line_id: str,
) -> Iterator[DeviceKit]:
    """A device (thing) with the agent running and a jobs cloud listening; no manager started yet."""
    endpoint, bucket = s3_bucket
    thing = f"press-{uuid.uuid4().hex[:8]}"
    workdir = tmp_path / "device"
    workdir.mkdir()
    env = base_env(
        workdir, thing, agent_server, mqtt_broker.url, mqtt_topic_root, redis_server.url, line_id, endpoint
    )
    client = redis.Redis.from_url(redis_server.url)
    with JobsCloud(mqtt_broker.url, mqtt_topic_root) as cloud:
        kit = DeviceKit(
            thing=thing,
            line=line_id,
            root=mqtt_topic_root,
            workdir=workdir,
            agent_server=agent_server,
            cloud=cloud,
            store=open_store(f"s3://{bucket}", endpoint_url=endpoint),
            bucket=bucket,
            redis_client=client,
            broker_url=mqtt_broker.url,
            env=env,
        )
        try:
            yield kit
        finally:
            for manager in kit.managers:
                manager.stop()
            client.close()
