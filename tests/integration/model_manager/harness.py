"""A device under test: the real model manager as a subprocess, next to the real agent, with helpers.

``DeviceKit`` ties together one thing name, the agent (``agent_server``), the model manager process
(``python -m edgeinspect_model_manager``, the console script's code), the jobs cloud stand-in
(``tests.helpers.jobs_cloud``), a bucket on the real S3 server, and the test's Redis and topic root:

    kit.publish(kit.package("cls", "2", knob=3))            # -> Published(url, sha256, size)
    job = kit.deploy("job-2", published)                     # create the job, wait for its end
    assert job.status == "SUCCEEDED", job.status_details
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import tarfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import redis
from edgeinspect.core import names, topics
from edgeinspect.core.agent_client import AgentClient, AliasInfo
from edgeinspect.core.hashing import sha256_file
from edgeinspect.core.lifecycle import wait_until
from edgeinspect.core.messages import Event
from edgeinspect.core.mqtt import MqttClient
from edgeinspect.core.storage import ObjectStore

from tests.fixtures.agent import AgentServer
from tests.fixtures.servers import LOOPBACK, free_port, read_log, signal_and_wait, spawn_module
from tests.helpers.jobs_cloud import JobExecution, JobsCloud
from tests.helpers.models import image

CLS = "defect-cls"


@dataclass(frozen=True)
class Published:
    """A package in the test bucket, as a job document names it."""

    url: str
    sha256: str
    size: int
    key: str
    name: str
    version: str


@dataclass
class ManagerProcess:
    """One run of the model manager; ``stop()`` sends SIGTERM and returns the exit code."""

    env: dict[str, str]
    log_path: Path
    http_port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    def start(self) -> None:
        self.proc = spawn_module("edgeinspect_model_manager", self.env, self.log_path)
        assert wait_until(self._ready, timeout=60, interval=0.1), f"manager not ready:\n{self.logs()[-4000:]}"

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"manager exited with {self.proc.returncode}:\n{self.logs()[-4000:]}")
        try:
            return httpx.get(f"{self.http_url}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        proc, self.proc = self.proc, None
        return 0 if proc is None else signal_and_wait(proc, sig, timeout)

    def logs(self) -> str:
        return read_log(self.log_path)


@dataclass
class DeviceKit:
    """Everything one model-manager test touches; see the module docstring."""

    thing: str
    line: str
    root: str
    workdir: Path
    agent_server: AgentServer
    cloud: JobsCloud
    store: ObjectStore
    bucket: str
    redis_client: redis.Redis
    broker_url: str
    env: dict[str, str]
    managers: list[ManagerProcess] = field(default_factory=list)

    @property
    def model_dir(self) -> Path:
        return Path(self.env["EI_MODEL_DIR"])

    @property
    def state(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.model_dir / "state.json").read_text())
        return data

    @property
    def manager(self) -> ManagerProcess:
        return self.managers[-1]

    def start_manager(self, **settings: object) -> ManagerProcess:
        env = dict(self.env)
        env.update({f"EI_{key.upper()}": str(value) for key, value in settings.items()})
        index = len(self.managers)
        manager = ManagerProcess(env, self.workdir / f"manager{index}.log", int(env["EI_HTTP_PORT"]))
        self.managers.append(manager)
        manager.start()
        return manager

    def agent(self) -> AgentClient:
        return self.agent_server.client()

    # ---- packages and jobs -----------------------------------------------------------------------

    def package(self, name: str, version: str, **options: Any) -> Path:
        return self.agent_server.package(name, version, **options)

    def publish(self, tar: Path, key: str | None = None) -> Published:
        key = key or f"packages/{tar.name}"
        self.store.put_file(key, tar)
        name, _, version = tar.name.removesuffix(".tar.gz").rpartition("-")
        return Published(
            f"s3://{self.bucket}/{key}", sha256_file(tar), tar.stat().st_size, key, name, version
        )

    def deploy_doc(self, published: Published, **overrides: Any) -> dict[str, Any]:
        model = {
            "name": published.name,
            "version": published.version,
            "url": published.url,
            "sha256": published.sha256,
            "size": published.size,
        }
        model.update(overrides.pop("model", {}))
        return {"operation": "deploy_model", "model": model, "role": "primary", **overrides}

    def run_job(self, job_id: str, document: Any, timeout: float = 90.0) -> JobExecution:
        self.cloud.create_job(job_id, document, [self.thing])
        return self.cloud.wait_terminal(self.thing, job_id, timeout)

    def deploy(self, job_id: str, published: Published, **overrides: Any) -> JobExecution:
        return self.run_job(job_id, self.deploy_doc(published, **overrides))

    # ---- what the device serves ------------------------------------------------------------------

    def alias(self, alias: str = CLS) -> AliasInfo | None:
        return next((a for a in self.agent().list_aliases() if a.alias == alias), None)

    def serving(self, alias: str = CLS) -> str:
        """``name:version`` the agent answers a prediction on ``alias`` with."""
        result = self.agent().predict(alias, {"image": image(level=128)})
        return f"{result.name}:{result.version}"

    def score(self, alias: str = CLS, level: int = 128) -> float:
        result = self.agent().predict(alias, {"image": image(level=level)})
        return float(np.asarray(result.outputs["defect_probability"]).ravel()[0])

    def loaded(self) -> set[str]:
        return {v.ref for v in self.agent().list_versions()}

    def version_dirs(self, name: str) -> list[str]:
        folder = self.model_dir / name
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    def staging(self) -> list[str]:
        folder = self.model_dir / ".staging"
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    def events(self, type_: str | None = None) -> list[Event]:
        raw: Any = self.redis_client.xrange(names.events_stream())
        found = [Event.from_fields(fields) for _, fields in raw]
        return [e for e in found if e.detail.get("thing") == self.thing and type_ in (None, e.type)]

    def retained_state(self, timeout: float = 10.0) -> dict[str, Any]:
        """The retained ``{root}/{thing}/state`` message, as a new subscriber receives it."""
        got: list[dict[str, Any]] = []
        client = MqttClient(self.broker_url, f"state-reader-{uuid.uuid4().hex[:8]}")
        client.subscribe(topics.device_state(self.thing, root=self.root), lambda _t, p: got.append(p))
        client.connect(timeout=10)
        try:
            assert wait_until(lambda: bool(got), timeout), "no retained device state"
        finally:
            client.stop()
        return got[-1]


def tamper(tar: Path, out: Path) -> Path:
    """A copy of a package whose model.onnx was changed after signing (the signature stays valid)."""
    with tarfile.open(tar, "r:gz") as src, tarfile.open(out, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            if data is not None and member.name.endswith("model.onnx"):
                data += b"\x00"
                member.size = len(data)
            dst.addfile(member, None if data is None else io.BytesIO(data))
    return out


def wait_for(predicate: Any, what: str, timeout: float = 30.0) -> None:
    assert wait_until(predicate, timeout, interval=0.1), f"timed out waiting for {what}"


def base_env(
    workdir: Path,
    thing: str,
    agent_server: AgentServer,
    broker_url: str,
    root: str,
    redis_url: str,
    line: str,
    s3_endpoint: str,
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EI_")}
    env.update(
        {
            "EI_THING_NAME": thing,
            "EI_THING_GROUPS": "line-test",
            "EI_MQTT_URL": broker_url,
            "EI_JOBS_PREFIX": root,
            "EI_STATE_TOPIC_ROOT": root,
            "EI_AGENT_ADDR": agent_server.addr,
            "EI_MODEL_DIR": str(workdir / "models"),
            "EI_TRUSTED_KEYS_DIR": str(agent_server.keys.public_dir),
            "EI_REDIS_URL": redis_url,
            "EI_LINE": line,
            "EI_S3_ENDPOINT_URL": s3_endpoint,
            "EI_S3_MAX_ATTEMPTS": "1",
            "EI_HTTP_HOST": LOOPBACK,
            "EI_HTTP_PORT": str(free_port()),
            "EI_ROLLBACK_WINDOW_S": "0.5",
            "EI_WATCH_INTERVAL_S": "0.25",
            "EI_UNLOAD_GRACE_S": "0.2",
            "EI_JOBS_REPLY_TIMEOUT_S": "5",
            "EI_HTTP_TIMEOUT_S": "5",
            "EI_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env
