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
from collections.abc import Callable
from pathlib import Path

from edgeinspect_cloud.pipeline import STEPS
from edgeinspect_cloud.stack.demo_models import DEMO_LINE_SEED, SHIPPED, seed_run
from edgeinspect_cloud.stack.logfile import RotatingLog
from edgeinspect_cloud.stack.runner import run_stack
from edgeinspect_cloud.stack.scoreboard import LiveScoreboard, Scoreboard, ground_truth
from edgeinspect_cloud.stack.supervisor import Supervisor
from edgeinspect_cloud.stack.topology import StackConfig


class DemoError(RuntimeError):
    """A demo step failed; the message names the step and where its output is."""


def _cli(supervisor: Supervisor, step: str, *argv: str, echo: bool = True) -> str:
    """Run an ``edgeinspect`` subcommand; returns its stdout.

    Everything it prints goes to the step's log file; the console gets its human lines (the pipeline's
    step lines, the registry's answers), not the JSON log lines (one per epoch) nor the final JSON."""
    cmd = [sys.executable, "-m", "edgeinspect_cloud.cli", *argv]
    supervisor.say("demo", f"$ edgeinspect {' '.join(argv)}", 96)
    path = supervisor.log_path(f"demo-{step}")
    log = RotatingLog(path) if path is not None else None
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            lines.append(line)
            if log is not None:
                log.write(line)
            if echo and (log is None or not _is_json(line)):
                supervisor.say(step, line, 96)
    finally:
        if log is not None:
            log.close()
    if proc.wait() != 0:
        tail = "".join(lines[-15:])
        raise DemoError(f"step {step!r} failed (exit {proc.returncode}); its last lines:\n{tail}")
    return "".join(lines)


def _is_json(line: str) -> bool:
    """A JSON log line or summary (for the log file), as opposed to a step line (for people)."""
    text = line.strip()
    if not text.startswith(("{", "[")):
        return False
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _last_json(output: str) -> dict[str, object]:
    for line in reversed(output.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            data: dict[str, object] = json.loads(line)
            return data
    raise DemoError("the pipeline printed no JSON summary line")


def prepare_inputs(cfg: StackConfig, supervisor: Supervisor, images: int) -> None:
    """Signing keys (the device trusts the public one) and the synthetic line the camera replays;
    done before the stack starts so the camera has its folder from the first second."""
    keys = cfg.state_dir / "keys"
    if not (keys / "edgeinspect.key").exists():
        _cli(supervisor, "keys", "keys", "generate", "--out", str(keys))
    cfg.keys_dir.mkdir(parents=True, exist_ok=True)
    for pub in keys.glob("*.pub"):
        shutil.copy2(pub, cfg.keys_dir / pub.name)
    data = cfg.state_dir / "data"
    if not _is_demo_line(data, images):
        shutil.rmtree(data, ignore_errors=True)  # an older demo's line (another seed or size)
        argv = ["--out", str(data), "--count", str(images), "--seed", str(DEMO_LINE_SEED)]
        _cli(supervisor, "data", "data", "synth", *argv)


def _is_demo_line(data: Path, images: int) -> bool:
    """Whether ``data`` holds this demo's line: its seed (no shipped model trained on it) and size."""
    try:
        made = json.loads((data / "synth.json").read_text())
    except (OSError, ValueError):
        return False
    size = int(made.get("train_images", 0)) + int(made.get("test_images", 0))
    return made.get("seed") == DEMO_LINE_SEED and size == images and (data / "test").is_dir()


def prepare_models(cfg: StackConfig, supervisor: Supervisor, train: bool = False) -> dict[str, int]:
    """Both models through the pipeline: evaluation on this line's held-out split, the quality gate,
    compile, packaging signed with this demo's key, registration; then approval.

    The train step's output comes from ``make demo-models`` (see ``demo_models``) unless ``train``:
    then the demo trains from scratch with the same ``demo`` profile (several minutes on 2 cores)."""
    private = cfg.state_dir / "keys" / "edgeinspect.key"
    data = cfg.state_dir / "data"
    registry = f"file://{cfg.state_dir / 'registry'}"
    run_dir = cfg.state_dir / "runs" / time.strftime("%Y%m%d-%H%M%S")
    steps = list(STEPS)
    if not train:
        try:
            seed_run(run_dir)
        except FileNotFoundError as exc:
            raise DemoError(str(exc)) from exc
        steps.remove("train")
        supervisor.say(
            "demo", f"trained models from `make demo-models` ({SHIPPED}); every later step runs now", 92
        )
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
            "--profile",
            "demo",
            "--steps",
            *steps,
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
    """``{"defect-cls": 3, ...}`` from the pipeline's last output line."""
    versions = summary.get("versions")
    if not isinstance(versions, dict) or not versions:
        raise DemoError(f"the pipeline registered no version: {sorted(summary)}")
    return {str(group): int(version) for group, version in versions.items()}


def deploy(cfg: StackConfig, supervisor: Supervisor, versions: dict[str, int]) -> None:
    """One MQTT job per model to the line's thing group, then wait until each SUCCEEDED."""
    registry = f"file://{cfg.state_dir / 'registry'}"
    fleet_db = f"sqlite:///{cfg.state_dir / 'fleet.sqlite3'}"
    jobs = []
    for group, version in versions.items():
        argv = ["--model", group, "--version", str(version), "--target", cfg.lines[0].line]
        argv += ["--registry", registry, "--fleet-db", fleet_db, "--json"]
        out = _cli(supervisor, "deploy", "deploy", *argv, echo=False)
        jobs.append(str(json.loads(out)["jobId"]))
    for job in jobs:
        status = _wait_for_job(job, fleet_db, timeout_s=240)
        supervisor.say("demo", f"job {job}: {status}", 92 if status == "SUCCEEDED" else 91)
        if status != "SUCCEEDED":
            raise DemoError(f"deployment job {job} ended {status}; see {cfg.log_dir / 'model-manager.log'}")


def _wait_for_job(job: str, fleet_db: str, timeout_s: float) -> str:
    """The job's final status (SUCCEEDED, FAILED, CANCELED) or TIMED_OUT."""
    deadline = time.monotonic() + timeout_s
    cmd = [
        sys.executable,
        "-m",
        "edgeinspect_cloud.cli",
        "jobs",
        "show",
        job,
        "--fleet-db",
        fleet_db,
        "--json",
    ]
    while time.monotonic() < deadline:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode == 0:
            job_view = json.loads(done.stdout)
            executions = [str(e.get("status")) for e in job_view.get("executions", [])]
            if executions and all(s in ("SUCCEEDED", "FAILED", "CANCELED", "REJECTED") for s in executions):
                failed = [s for s in executions if s != "SUCCEEDED"]
                return failed[0] if failed else "SUCCEEDED"
        time.sleep(2.0)
    return "TIMED_OUT"


def _wait_for_verdicts(cfg: StackConfig, timeout_s: float = 60.0) -> int:
    """How many recent frames both models judged, waiting until there is at least one."""
    from edgeinspect.core import names
    from edgeinspect.core.messages import Result
    from edgeinspect.core.streams import Streams

    streams = Streams.from_url(cfg.redis_url)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            recent = [e.parse(Result) for e in streams.latest(names.results_stream(cfg.lines[0].line), 50)]
            judged = [r for r in recent if r.verdict != "error" and len(r.predictions) >= 2]
            if judged:
                return len(judged)
            time.sleep(1.0)
        return 0
    finally:
        streams.close()


def _report_to(cfg: StackConfig, supervisor: Supervisor, started: float) -> Callable[[Scoreboard], None]:
    """Print the board on one console line and keep its figures in ``scoreboard.json``."""

    def report(board: Scoreboard) -> None:
        minutes = (time.monotonic() - started) / 60
        supervisor.say("scoreboard", f"{minutes:4.1f} min | {board.line()}", 93)
        figures = {"minutes_since_start": round(minutes, 2), **board.figures()}
        (cfg.state_dir / "scoreboard.json").write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")

    return report


def run_demo(args: argparse.Namespace, cfg: StackConfig) -> int:
    started = time.monotonic()
    boards: list[LiveScoreboard] = []

    def steps(supervisor: Supervisor) -> None:
        supervisor.say("demo", "step 1/3: train, evaluate, gate, package and register both models", 92)
        versions = prepare_models(cfg, supervisor, train=args.train)
        supervisor.say("demo", f"step 2/3: deploying {versions} by MQTT job to {cfg.lines[0].line}", 92)
        deploy(cfg, supervisor, versions)
        truth = ground_truth(cfg.state_dir / "data" / "test")
        report = _report_to(cfg, supervisor, started)
        board = LiveScoreboard(cfg.redis_url, cfg.lines[0].line, truth, report, every_s=args.scoreboard_every)
        board.start()
        boards.append(board)
        judged = _wait_for_verdicts(cfg)
        if not judged:
            raise DemoError(
                f"no frame was judged by both models within a minute; see {cfg.log_dir} (worker, agent)"
            )
        elapsed = time.monotonic() - started
        supervisor.say(
            "demo",
            f"step 3/3: live verdicts and masks at http://localhost:{cfg.ui_port} "
            f"(first verdicts {elapsed:.0f} s after start; a scoreboard against the line's ground truth "
            f"every {args.scoreboard_every:.0f} s)",
            92,
        )
        if args.no_wait:
            time.sleep(min(args.scoreboard_every, 5.0))
            report(board.board)

    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    try:
        prepare_inputs(cfg, Supervisor(log_dir=cfg.log_dir, verbose=cfg.verbose), args.images)
    except DemoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    # a demo watches a new version for 20 s (production default: 5 minutes) before the job succeeds
    cfg.extra_env.setdefault("EI_ROLLBACK_WINDOW_S", "20")
    cfg.extra_env.setdefault("EI_UNLOAD_GRACE_S", "2")
    try:
        return run_stack(cfg, after_start=steps, stop_after_start=args.no_wait)
    finally:
        for board in boards:
            board.stop()
