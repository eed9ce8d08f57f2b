"""``edgeinspect demo``: the whole product on one machine, each step printed as it happens.

1. start the local stack (Redis, MQTT broker, fleet jobs service, agent, model manager, camera,
   worker, uploader, UI) so the page is up at once and says "no model loaded";
2. generate a synthetic KolektorSDD2-style line, train quick classifier and segmenter models, evaluate,
   compile (fp32 + int8), sign, register them; approve both versions;
3. deploy both through real MQTT jobs to this device's thing group and wait for SUCCEEDED;
4. the camera replays the line; verdicts and masks appear live in the UI.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time

from edgeinspect_cloud.stack.runner import run_stack
from edgeinspect_cloud.stack.supervisor import Supervisor
from edgeinspect_cloud.stack.topology import StackConfig


class DemoError(RuntimeError):
    """A demo step failed; the message names the step and where its output is."""


def _cli(supervisor: Supervisor, step: str, *argv: str) -> str:
    """Run an ``edgeinspect`` subcommand, echoing its output; returns its stdout."""
    cmd = [sys.executable, "-m", "edgeinspect_cloud.cli", *argv]
    supervisor.say("demo", f"$ edgeinspect {' '.join(argv)}", 96)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        supervisor.say(step, line, 96)
    if proc.wait() != 0:
        raise DemoError(f"step {step!r} failed (exit {proc.returncode}); its output is above")
    return "".join(lines)


def _last_json(output: str) -> dict[str, object]:
    for line in reversed(output.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            data: dict[str, object] = json.loads(line)
            return data
    raise DemoError("the pipeline printed no JSON summary line")


def prepare_models(cfg: StackConfig, supervisor: Supervisor, images: int) -> dict[str, int]:
    """Keys, synthetic data, quick training, packaging, registration and approval."""
    keys = cfg.state_dir / "keys"
    private = keys / "edgeinspect.key"
    if not private.exists():
        _cli(supervisor, "keys", "keys", "generate", "--out", str(keys))
    cfg.keys_dir.mkdir(parents=True, exist_ok=True)
    for pub in keys.glob("*.pub"):
        shutil.copy2(pub, cfg.keys_dir / pub.name)
    data = cfg.state_dir / "data"
    if not (data / "test").exists():
        _cli(supervisor, "data", "data", "synth", "--out", str(data), "--count", str(images), "--seed", "7")
    registry = f"file://{cfg.state_dir / 'registry'}"
    run_dir = cfg.state_dir / "runs" / time.strftime("%Y%m%d-%H%M%S")
    summary = _last_json(
        _cli(
            supervisor,
            "pipeline",
            "pipeline",
            "run",
            "--dataset",
            str(data),
            "--task",
            "both",
            "--quick",
            "--out",
            str(run_dir),
            "--key",
            str(private),
            "--registry",
            registry,
            "--no-progress",
            "--by",
            "demo",
        )
    )
    versions = _registered_versions(summary)
    for group, version in versions.items():
        _cli(
            supervisor,
            "registry",
            "registry",
            "approve",
            group,
            str(version),
            "--registry",
            registry,
            "--by",
            "demo",
            "--comment",
            "approved by the demo",
        )
    return versions


def _registered_versions(summary: dict[str, object]) -> dict[str, int]:
    registered = summary.get("registered")
    if not isinstance(registered, list) or not registered:
        raise DemoError(f"the pipeline registered no version: {summary}")
    out: dict[str, int] = {}
    for item in registered:
        if isinstance(item, dict):
            out[str(item["group"])] = int(item["version"])
    return out


def deploy(cfg: StackConfig, supervisor: Supervisor, versions: dict[str, int]) -> None:
    registry = f"file://{cfg.state_dir / 'registry'}"
    fleet_db = f"sqlite:///{cfg.state_dir / 'fleet.sqlite3'}"
    for group, version in versions.items():
        _cli(
            supervisor,
            "deploy",
            "deploy",
            "--model",
            group,
            "--version",
            str(version),
            "--target",
            cfg.lines[0].line,
            "--registry",
            registry,
            "--fleet-db",
            fleet_db,
        )


def run_demo(args: argparse.Namespace, cfg: StackConfig) -> int:
    def steps(supervisor: Supervisor) -> None:
        supervisor.say("demo", "step 1/3: quick models for both tasks (a minute or two on 2 cores)", 92)
        versions = prepare_models(cfg, supervisor, args.images)
        supervisor.say("demo", f"step 2/3: deploying {versions} by MQTT job to {cfg.lines[0].line}", 92)
        deploy(cfg, supervisor, versions)
        supervisor.say("demo", f"step 3/3: live verdicts at http://localhost:{cfg.ui_port}", 92)

    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    # a demo watches a new version for 20 s (production default: 5 minutes) before the job succeeds
    cfg.extra_env.setdefault("EI_ROLLBACK_WINDOW_S", "20")
    cfg.extra_env.setdefault("EI_UNLOAD_GRACE_S", "2")
    return run_stack(cfg, after_start=steps, stop_after_start=args.no_wait)
