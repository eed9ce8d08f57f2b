"""docker-compose.yml run for real with podman-compose on the images `make images` built.

Run by `make test-containers` (root, podman, runc; EI_TEST_CONTAINERS=1), skipped by `make test`.
Redis, Mosquitto and MinIO cannot be pulled here: local stand-ins built from Debian's redis-server and
mosquitto packages and the project's S3 test server (moto) take their place through the compose
file's image variables. Everything is checked against the containers only (``podman exec``): a
replayed line gets correct verdicts in ``ei:results:line-1``, the UI's API answers with its token, a
deployment job from the fleet container reaches SUCCEEDED on the model manager, captures arrive in
the bucket, and ``podman-compose down`` leaves nothing behind. If podman cannot run containers the
tests fail, never skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.helpers.models import make_keys, make_package

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("EI_TEST_CONTAINERS") != "1",
        reason="the compose stack runs under `make test-containers` (root, podman)",
    ),
    pytest.mark.timeout(1800),
]

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
STANDINS = {
    "REDIS_IMAGE": "localhost/edgeinspect-redis-standin:bookworm",
    "MOSQUITTO_IMAGE": "localhost/edgeinspect-mosquitto-standin:bookworm",
    "MINIO_IMAGE": "localhost/edgeinspect-s3-standin:bookworm",
    "MINIO_INIT_IMAGE": "localhost/edgeinspect-s3-standin:bookworm",
}
LINE = "line-1"
MODEL = "defect-cls"
# flat frames: bright ones score ~0.99 on the test classifier (defect), dark ones ~0.01 (ok)
FRAMES = {f"bright-{i}.png": 220 for i in range(4)} | {f"dark-{i}.png": 30 for i in range(4)}
TIMEOUT = 240.0


def _podman(*args: str, stdin: bytes | None = None, check: bool = True) -> str:
    result = subprocess.run(["podman", *args], input=stdin, capture_output=True, timeout=600, check=False)
    if check and result.returncode != 0:
        pytest.fail(
            f"podman {' '.join(args[:3])} failed ({result.returncode}): {result.stderr.decode()[-2000:]}"
        )
    return result.stdout.decode()


def _wait(what: str, probe: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(3)
    pytest.fail(f"{what}: not within {timeout:.0f}s (last answer: {last!r})")


def _one_shot_done(project: str, service: str) -> bool:
    """Whether a one-shot service exited 0 (False while it runs; a test failure if it failed).

    Why: with ``--no-deps`` podman-compose starts services in order without waiting for
    ``service_completed_successfully``, so the checks must wait for the bucket themselves.
    """
    status = _podman(
        "ps", "-a", "--filter", f"label=io.podman.compose.project={project}",
        "--filter", f"label=com.docker.compose.service={service}", "--format", "{{.Names}} {{.Status}}",
    ).strip()  # fmt: skip
    if "Exited (0)" in status:
        return True
    if "Exited (" in status:
        name = status.split()[0]
        pytest.fail(f"{service} failed: {status}\n{_podman('logs', name, check=False)[-2000:]}")
    return False


@dataclass
class Stack:
    project: str
    env: dict[str, str]
    compose: list[str]
    token: str
    package: Path

    def container(self, service: str) -> str:
        names = _podman(
            "ps", "--filter", f"label=io.podman.compose.project={self.project}",
            "--filter", f"label=com.docker.compose.service={service}", "--format", "{{.Names}}",
        ).split()  # fmt: skip
        assert names, f"no running container for {service}"
        return names[0]

    def python(self, service: str, code: str, stdin: bytes | None = None) -> str:
        return _podman("exec", "-i", self.container(service), "python", "-c", code, stdin=stdin)

    def get(self, service: str, port: int, path: str, token: str = "") -> tuple[int, str]:
        code = (
            "import sys, urllib.request as u, urllib.error as e\n"
            f"r = u.Request('http://127.0.0.1:{port}{path}')\n"
            f"if {token!r}: r.add_header('Authorization', 'Bearer ' + {token!r})\n"
            "try:\n    x = u.urlopen(r, timeout=5); print(x.status); print(x.read().decode())\n"
            "except e.HTTPError as err:\n    print(err.code)\n"
            "except OSError:\n    print(0)\n"  # not listening yet: 0, and the caller waits
        )
        out = self.python(service, code)
        status, _, body = out.partition("\n")
        return int(status), body


def _write_frames(folder: Path) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    for name, level in FRAMES.items():
        noise = rng.integers(-8, 9, size=(64, 64, 3))
        Image.fromarray(np.clip(level + noise, 0, 255).astype(np.uint8)).save(folder / name)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed: apt-get install -y podman runc (make test-containers needs it)")
    compose_bin = shutil.which("podman-compose") or str(Path(sys.executable).parent / "podman-compose")
    if not Path(compose_bin).exists():
        pytest.fail(
            'podman-compose is not installed: pip install "podman-compose>=1.4" (the dev extra has it)'
        )
    work = tmp_path_factory.mktemp("compose")
    keys = make_keys(work / "keys")
    _write_frames(work / "replay")
    project = f"eitest{uuid.uuid4().hex[:8]}"
    token = uuid.uuid4().hex
    env = {
        **os.environ,
        **STANDINS,
        "EDGEINSPECT_REPLAY_DIR": str(work / "replay"),
        "EDGEINSPECT_KEYS_DIR": str(keys.public_dir),
        "EDGEINSPECT_MQTT_PASSWORD": uuid.uuid4().hex,
        "MINIO_ROOT_PASSWORD": uuid.uuid4().hex,
        "EDGEINSPECT_UI_TOKEN": token,
        "EDGEINSPECT_TRIGGER_TOKEN": uuid.uuid4().hex,
        "EDGEINSPECT_UI_BIND": "127.0.0.1",
        "EDGEINSPECT_FPS": "4",
    }
    compose = [
        compose_bin,
        "-p",
        project,
        "-f",
        str(ROOT / "docker-compose.yml"),
        "-f",
        str(HERE / "podman-override.yml"),
    ]
    # --no-deps: podman 4.3 cannot start a container whose --requires chain holds an exited one-shot
    # (minio-init) ("depends on container ... not found in input list"); podman-compose still starts
    # services in dependency order, and the services retry their connections.
    up = subprocess.run(
        [*compose, "up", "-d", "--no-build", "--no-deps"], env=env, capture_output=True, timeout=900, cwd=ROOT
    )
    package = make_package(work / "packages", MODEL, "1", "classification", keys)
    stack = Stack(project, env, compose, token, package)
    try:
        if up.returncode != 0:
            pytest.fail(f"podman-compose up failed ({up.returncode}):\n{up.stderr.decode()[-4000:]}")
        _wait("minio-init created the bucket", lambda: _one_shot_done(project, "minio-init"))
        yield stack
    finally:
        subprocess.run(
            [*compose, "down", "-v", "-t", "10"], env=env, capture_output=True, timeout=600, cwd=ROOT
        )


def test_every_service_answers_its_health_check(stack: Stack) -> None:
    ports = {
        "agent": 9102,
        "worker": 9103,
        "camera": 9101,
        "model-manager": 9104,
        "uploader": 9105,
        "fleet": 9106,
    }
    for service, port in ports.items():

        def healthy(service: str = service, port: int = port) -> bool:
            return stack.get(service, port, "/healthz")[0] == 200

        _wait(f"{service} /healthz", healthy)
    _wait("ui /healthz", lambda: stack.get("ui", 8080, "/healthz")[0] == 200)


def test_ui_api_answers_with_its_token_only(stack: Stack) -> None:
    _wait("ui /healthz", lambda: stack.get("ui", 8080, "/healthz")[0] == 200)
    assert stack.get("ui", 8080, "/api/lines")[0] == 401
    status, body = stack.get("ui", 8080, "/api/lines", stack.token)
    assert status == 200 and LINE in body


def test_a_deployment_job_from_the_fleet_reaches_succeeded_on_the_model_manager(stack: Stack) -> None:
    register = (
        "import sys, pathlib\n"
        "from edgeinspect_cloud.registry.registry import ModelRegistry\n"
        "path = pathlib.Path('/tmp/pkg.tar.gz'); path.write_bytes(sys.stdin.buffer.read())\n"
        "reg = ModelRegistry.open('s3://edgeinspect/registry', endpoint_url='http://minio:9000')\n"
        f"mv = reg.register({MODEL!r}, lambda n: path)\n"
        f"reg.approve({MODEL!r}, mv.version, by='test-containers', comment='compose smoke test')\n"
        "print(mv.version)\n"
    )
    version = _wait("registry", lambda: stack.python("fleet", register, stack.package.read_bytes()).strip())
    assert version == "1"
    fleet = stack.container("fleet")
    job_id = f"smoke-{uuid.uuid4().hex[:8]}"
    deploy = ["edgeinspect", "deploy", "--model", MODEL, "--version", "1", "--target", "edge-1"]
    _podman("exec", fleet, *deploy, "--job-id", job_id)

    def succeeded() -> bool:
        shown = json.loads(_podman("exec", fleet, "edgeinspect", "jobs", "show", job_id, "--json"))
        text = json.dumps(shown)
        assert "FAILED" not in text, text
        return "SUCCEEDED" in text

    _wait(f"job {job_id} SUCCEEDED", succeeded, timeout=420)
    assert stack.get("model-manager", 9104, "/readyz")[0] == 200


def test_the_replayed_line_gets_correct_verdicts(stack: Stack) -> None:
    read = (
        "import json, redis\n"
        "r = redis.Redis.from_url('redis://redis:6379/0')\n"
        f"entries = r.xrange('ei:frames:{LINE}')\n"
        "frames = {f[b'frame_id'].decode(): f[b'source'].decode() for _, f in entries}\n"
        "out = []\n"
        f"for _, f in r.xrange('ei:results:{LINE}'):\n"
        "    fid = f[b'frame_id'].decode()\n"
        "    out.append([frames.get(fid, ''), f[b'verdict'].decode()])\n"
        "print(json.dumps(out))\n"
    )

    def judged() -> list[list[str]]:
        # Frames replayed before the deployment landed are answered `no_model` (and
        # `error` while it loads): those are right answers for that moment, so only
        # verdicts given by a model are judged, once two replays' worth exist.
        rows = json.loads(stack.python("worker", read))
        verdicts = [row for row in rows if row[1] in ("ok", "defect") and row[0]]
        return verdicts if len(verdicts) >= 2 * len(FRAMES) else []

    rows = _wait("verdicts in ei:results", judged)
    wrong = [(source, verdict) for source, verdict in rows
             if verdict != ("defect" if Path(source).name.startswith("bright") else "ok")]  # fmt: skip
    assert rows and not wrong, wrong


def test_captures_arrive_in_the_bucket(stack: Stack) -> None:
    listing = (
        "import boto3\n"
        "s3 = boto3.client('s3', endpoint_url='http://minio:9000')\n"
        "listed = s3.list_objects_v2(Bucket='edgeinspect', Prefix='captures/')\n"
        "print(len(listed.get('Contents', [])))\n"
    )
    _wait(
        "captures in s3://edgeinspect/captures",
        lambda: int(stack.python("uploader", listing).strip() or 0) > 0,
    )


def test_down_leaves_nothing_running(stack: Stack) -> None:
    down = subprocess.run(
        [*stack.compose, "down", "-v", "-t", "10"], env=stack.env, capture_output=True, timeout=600, cwd=ROOT
    )
    assert down.returncode == 0, down.stderr.decode()[-2000:]
    left = _podman(
        "ps", "-a", "--filter", f"label=io.podman.compose.project={stack.project}", "--format", "{{.Names}}"
    )
    assert left.split() == []
    pods = _podman("pod", "ls", "--format", "{{.Name}}")
    assert f"pod_{stack.project}" not in pods.split()
