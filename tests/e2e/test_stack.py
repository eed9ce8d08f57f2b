"""End to end: ``edgeinspect up`` as users run it, a model deployed by a real MQTT job, a line replayed,
verdicts read from Redis and from the UI API, a swap mid-stream, captures in the bucket, clean stop.

Models are the tiny real ONNX models of ``tests/helpers/models.py`` (bright part = defect) so the test
exercises the product's plumbing, not training; the demo trains real ones.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
from edgeinspect.core import images, names
from edgeinspect.core.lifecycle import wait_until
from edgeinspect.core.messages import Event, Frame, Result
from edgeinspect_cloud.registry import ModelRegistry

from tests.fixtures.servers import free_port
from tests.helpers.models import TestKeys, make_keys, make_package

pytestmark = pytest.mark.slow
LINE = "line-1"
CLI = [sys.executable, "-m", "edgeinspect_cloud.cli"]


def _write_line(folder: Path) -> dict[str, str]:
    """Dark parts are good, bright parts defective (what the tiny models judge)."""
    folder.mkdir(parents=True)
    truth = {}
    for i, level in enumerate([20, 235, 20, 20, 235, 20]):
        name = f"{i:05d}.png"
        (folder / name).write_bytes(images.encode(np.full((64, 64, 3), level, np.uint8), "png"))
        truth[name] = "defect" if level > 128 else "ok"
    return truth


def _cli(*argv: str) -> str:
    done = subprocess.run([*CLI, *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"edgeinspect {' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


class Stack:
    def __init__(self, state: Path, ui_port: int) -> None:
        self.state = state
        self.ui_port = ui_port
        self.log = state / "up.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*CLI, "up", "--state-dir", str(self.state), "--ui-port", str(self.ui_port), "--fps", "8",
                 "--group", LINE, "--line", f"{LINE}=folder://{self.state / 'line'}"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "EI_ROLLBACK_WINDOW_S": "6", "EI_UNLOAD_GRACE_S": "1"},
            )  # fmt: skip
        ready = wait_until(lambda: "UI: http://localhost" in self.text() or self.proc.poll() is not None, 180)
        assert ready and self.proc.poll() is None, f"the stack did not start:\n{self.text()[-4000:]}"

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def redis_url(self) -> str:
        for line in self.text().splitlines():
            if "| redis redis://" in line:
                return line.split("| redis ", 1)[1].split(" |", 1)[0]
        raise AssertionError("the stack printed no redis URL")

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=90)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Stack, TestKeys, dict[str, str]]]:
    state = tmp_path / "state"
    truth = _write_line(state / "line")
    keys = make_keys(tmp_path / "keys")
    trusted = state / "keys" / "trusted"
    trusted.mkdir(parents=True)
    for pub in keys.public_dir.iterdir():
        shutil.copy2(pub, trusted / pub.name)
    running = Stack(state, free_port())
    running.start()
    yield running, keys, truth
    if running.proc is not None and running.proc.poll() is None:
        try:
            running.stop()  # the supervisor stops its children in order
        except subprocess.TimeoutExpired:
            os.killpg(running.proc.pid, signal.SIGKILL)
    for pid in _stack_pids(state):  # whatever a failed test left behind: never leak processes
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _register(tmp_path: Path, registry: str, keys: TestKeys, group: str, task: str, knob: float) -> int:
    reg = ModelRegistry.open(registry)
    version = reg.register(
        group,
        lambda n: make_package(tmp_path / "pkgs", group, str(n), task, keys, knob=knob),  # type: ignore[arg-type]
    ).version
    reg.approve(group, version, by="test")
    return int(version)


def _deploy(state: Path, registry: str, group: str, version: int) -> str:
    fleet_db = f"sqlite:///{state / 'fleet.sqlite3'}"
    out = _cli("deploy", "--model", group, "--version", str(version), "--target", LINE,
               "--registry", registry, "--fleet-db", fleet_db, "--json")  # fmt: skip
    return str(json.loads(out)["jobId"])


def _job_succeeded(state: Path, job_id: str) -> bool:
    out = _cli("jobs", "show", job_id, "--fleet-db", f"sqlite:///{state / 'fleet.sqlite3'}", "--json")
    return '"SUCCEEDED"' in out and "FAILED" not in out


def _results(client: redis.Redis) -> list[Result]:
    return [Result.from_fields(fields) for _, fields in client.xrange(names.results_stream(LINE))]


def _dropped_by_the_camera(client: redis.Redis) -> set[str]:
    """Frame ids the camera reported dropping (``frame_dropped`` events); only its own policy drops."""
    dropped: set[str] = set()
    for _, fields in client.xrange(names.events_stream()):
        event = Event.from_fields(fields)
        if event.type == "frame_dropped":
            assert event.detail["reason"] == "drop_oldest", event
            assert not event.detail.get("frame_ids_truncated"), event
            dropped.update(event.detail["frame_ids"])
    return dropped


def _frames(client: redis.Redis) -> list[Frame]:
    return [Frame.from_fields(fields) for _, fields in client.xrange(names.frames_stream(LINE))]


def test_up_deploys_by_job_judges_the_line_swaps_and_stops_clean(
    stack: tuple[Stack, TestKeys, dict[str, str]], tmp_path: Path
) -> None:
    running, keys, truth = stack
    state = running.state
    registry = f"file://{tmp_path / 'registry'}"
    client = redis.Redis.from_url(running.redis_url())

    # 1. deploy a classifier and a segmenter through real MQTT jobs
    jobs = [
        _deploy(
            state,
            registry,
            "defect-cls",
            _register(tmp_path, registry, keys, "defect-cls", "classification", 0),
        ),
        _deploy(
            state,
            registry,
            "defect-seg",
            _register(tmp_path, registry, keys, "defect-seg", "segmentation", 0),
        ),
    ]
    assert wait_until(lambda: all(_job_succeeded(state, j) for j in jobs), 180), running.text()[-4000:]

    # 2. verdicts from both models are right for every replayed part
    def judged_by_both() -> list[Result]:
        return [r for r in _results(client) if r.verdict != "error" and len(r.predictions) == 2]

    assert wait_until(lambda: len(judged_by_both()) >= 12, 120), running.text()[-4000:]
    for result in judged_by_both():
        assert result.verdict == truth[result.source], result
    defect = next(r for r in judged_by_both() if r.verdict == "defect")
    assert defect.mask is not None and images.decode_mask(defect.mask).any()

    # 3. the UI's API shows the same verdicts
    with urllib.request.urlopen(
        f"http://127.0.0.1:{running.ui_port}/api/results/recent?line={LINE}&limit=5"
    ) as r:
        recent = json.loads(r.read())
    assert recent and {item["verdict"] for item in recent} <= {"ok", "defect", "error", "no_model"}

    # 4. swap the classifier to version 2 mid-stream: no frame lost, version 2 answers afterwards
    v2 = _register(tmp_path, registry, keys, "defect-cls", "classification", 2)
    job = _deploy(state, registry, "defect-cls", v2)
    assert wait_until(lambda: _job_succeeded(state, job), 180), running.text()[-4000:]
    assert wait_until(
        lambda: any(p.model == "defect-cls" and p.version == str(v2) for r in _results(client)[-5:]
                    for p in r.predictions), 60)  # fmt: skip

    # 5. no frame lost across deployments and the swap: every frame older than a few seconds has a
    # result, except those the camera's backpressure dropped on purpose (drop_oldest beyond its backlog,
    # while the worker held frames for the models still being deployed), each named in an event
    time.sleep(3.0)
    horizon = time.time_ns() - 3_000_000_000
    judged = {r.frame_id for r in _results(client)}
    dropped = _dropped_by_the_camera(client)
    published = [f.frame_id for f in _frames(client) if f.ts_ns < horizon]
    assert published and not [f for f in published if f not in judged and f not in dropped]

    # 6. captures (defects at least) reached the bucket
    captures = state / "bucket" / "captures" / LINE
    assert wait_until(lambda: any(captures.rglob("result.json")), 60), "no capture reached the bucket"

    # 7. stop cleanly: exit 0, no process of the stack left behind
    pids_before = _stack_pids(state)
    assert running.stop() == 0, running.text()[-3000:]
    assert wait_until(lambda: not (_stack_pids(state) & pids_before), 10), _stack_pids(state)


def _stack_pids(state: Path) -> set[int]:
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if str(state).encode() in environ or str(state).encode() in cmdline:
            found.add(int(proc.name))
    return found
