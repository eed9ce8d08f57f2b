"""A second-language stock client: Node.js with @grpc/grpc-js and @grpc/proto-loader from npm.

``tests/clients/node/seed_app.js`` loads ``protos/sagemaker_edge_agent.proto`` itself and runs the
seed application's sequence over the unix socket (load, list, predict both models with metadata
copied from ListModels and float32 pixels, predict from a System V segment, capture, unload). The
npm packages are installed on first run with ``npm ci`` from the committed lock file into the
gitignored ``tests/clients/node/node_modules``; without node/npm the test skips, saying what to install.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import redis
from edgeinspect.core.messages import Capture
from edgeinspect.core.names import capture_stream

from tests.fixtures.agent import AgentServer
from tests.helpers import sysv

ROOT = Path(__file__).resolve().parents[3]
CLIENT_DIR = ROOT / "tests" / "clients" / "node"
PROTO = ROOT / "protos" / "sagemaker_edge_agent.proto"
INSTALL = "sudo apt-get install -y nodejs npm   (then: npm ci --prefix tests/clients/node)"


def _node_client() -> str:
    """The node binary, with the client's npm packages installed (``npm ci`` once, from the lock)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip(f"the Node.js client test needs node and npm: {INSTALL}")
    if not (CLIENT_DIR / "node_modules" / "@grpc" / "grpc-js").is_dir():
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=CLIENT_DIR,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"npm ci failed in {CLIENT_DIR}:\n{done.stderr[-3000:]}")
    return node


def test_the_node_client_runs_the_seed_sequence(
    agent_server: AgentServer, redis_client: redis.Redis, line_id: str
) -> None:
    node = _node_client()
    capture_id = f"node-{line_id}"
    env = {
        "PATH": str(Path(node).parent),
        "AGENT_ADDR": agent_server.addr,
        "PROTO": str(PROTO),
        "CLS_DIR": str(agent_server.package_dir("cls", "3")),
        "SEG_DIR": str(agent_server.package_dir("seg", "2", "segmentation")),
        "CAPTURE_ID": capture_id,
    }
    segment = None
    if sysv.AVAILABLE:
        segment = sysv.SysVSegment(3 * 64 * 64 * 4)
        segment.write(np.full((1, 3, 64, 64), 235, np.float32).tobytes())
        env["SYSV_ID"] = str(segment.id)
    try:
        done = subprocess.run(
            [node, str(CLIENT_DIR / "seed_app.js")],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        if segment is not None:
            segment.close()
    assert done.returncode == 0, f"{done.stderr}\nagent log:\n{agent_server.logs()[-3000:]}"
    seen = json.loads(done.stdout.strip().splitlines()[-1])

    assert seen["listed"] == [
        {"name": name, "data_type": "FLOAT32", "shape": [1, 3, 64, 64]}
        for name in ("defect-cls", "defect-seg")
    ]
    for name, scores in seen["scores"].items():
        assert scores["dark"] < 0.5 < scores["bright"], name
    if segment is not None:
        assert seen["shm"] == pytest.approx(seen["scores"]["defect-cls"]["bright"])
    assert seen["capture"] == "SUCCESS"
    assert seen["errors"]["unknown_model"] == "NOT_FOUND"
    assert seen["after_unload"] == 0

    entries: list[tuple[bytes, dict[bytes, bytes]]] = redis_client.xrange(capture_stream())  # type: ignore[assignment]
    ours = [c for c in (Capture.from_fields(f) for _, f in entries) if c.frame_id == capture_id]
    assert len(ours) == 1 and ours[0].verdict == "defect" and ours[0].attachments
