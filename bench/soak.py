"""Soak under chaos: one line with both models for ``--duration`` while services are killed at random.

Real processes on loopback: redis-server (append-only file, so a restart keeps the streams),
mosquitto (the worker's alerts), the agent, the inference worker, the camera (a folder of synthetic
frames, looping) and the uploader (spool -> a ``file://`` store). A chaos loop kills one of camera /
worker / agent / uploader with SIGKILL every ``--chaos-min``..``--chaos-max`` seconds and starts it
again; Redis and the broker are each restarted once (at a third and two thirds of the run). After
an agent restart this script does what the model manager's restore does: it loads both packages
again and points the aliases (the worker holds frames meanwhile, ``EI_MODEL_WAIT_S``).

Every frame the camera published is followed through the streams (a plain ``XREAD`` reader beside
the consumer groups): frames sent / results / lost / duplicated / error verdicts; every capture the
worker wrote is looked for in the store: captures spooled / uploaded / lost. The camera's
deliberate, counted drops (backpressure, retention) are reported apart and are not "lost".

Memory must reach a plateau, so the run sets small stream budgets (``--budget-mb`` and
``--max-age``: every service's ``EI_{FRAMES,RESULTS,CAPTURE,EVENTS}_MAX_BYTES`` / ``_MAX_AGE_S``)
that the streams fill during the warm-up (``--warmup``, longer than ``--max-age``); with the services'
own budgets (256 MiB of frames, hours of results) Redis would still be filling at the end of any
short run. The RSS of every process, redis-server and mosquitto included, is sampled every 5 s;
growth is measured per incarnation from its first sample after the warm-up (and after its own
start-up, ``PROCESS_WARMUP_S``) to its last, for incarnations that lived at least ``MIN_SPAN_S`` after
that; the worst incarnation is reported.

    .venv/bin/python -m bench.soak                  # 10 minutes
    .venv/bin/python -m bench.soak --duration 5m

A readable table, then the last line: one JSON object with the same figures. Exit status 1 when a
frame or capture was lost or duplicated.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench`` and the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis
from edgeinspect.core import names
from edgeinspect.core.agent_client import AgentClient
from edgeinspect.core.errors import AgentError
from edgeinspect.core.messages import Event, Result

from bench.models import BenchModel, build_packages
from bench.stack import LOOPBACK, BenchStack, free_port, rss_mb
from bench.throughput import _duration, synthetic_frames

LINE = "soak"
CHAOS_TARGETS = ("camera", "worker", "agent", "uploader")
PROCESS_WARMUP_S = 45.0
"""A fresh process (imports, ONNX sessions, allocator pools) is not measured before this."""
MIN_SPAN_S = 60.0
"""An incarnation measured over less than this tells noise, not growth."""


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=_duration, default=600.0, help="seconds, 90s or 10m (default 10m)")
    parser.add_argument("--fps", type=float, default=3.0, help="camera frame rate")
    parser.add_argument("--chaos-min", type=float, default=30.0, help="shortest pause between two kills")
    parser.add_argument("--chaos-max", type=float, default=60.0, help="longest pause between two kills")
    parser.add_argument("--height", type=int, default=116, help="frame and classifier height")
    parser.add_argument("--width", type=int, default=320, help="frame and classifier width")
    parser.add_argument("--seed", type=int, default=0, help="seed of the chaos loop")
    parser.add_argument(
        "--budget-mb", type=int, default=4,
        help="EI_{FRAMES,RESULTS,CAPTURE,EVENTS}_MAX_BYTES for every service, in MiB (0: the services' "
        "defaults, which a short run never fills)",
    )  # fmt: skip
    parser.add_argument(
        "--max-age", type=float, default=60.0,
        help="EI_{FRAMES,RESULTS,CAPTURE,EVENTS}_MAX_AGE_S, seconds (0: the services' defaults)",
    )  # fmt: skip
    parser.add_argument(
        "--warmup", type=_duration, default=150.0,
        help="seconds before RSS growth is measured: the streams fill their budgets meanwhile",
    )  # fmt: skip
    parser.add_argument(
        "--drain-timeout", type=float, default=240.0, help="longest wait for the line to drain"
    )
    return parser.parse_args(argv)


@dataclass
class Incarnation:
    pid: int
    started: float
    samples: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class Service:
    """One process of the stack and its history (each start is an incarnation)."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    incarnations: list[Incarnation] = field(default_factory=list)
    kills: int = 0

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        self.incarnations.append(Incarnation(self.proc.pid, time.monotonic()))

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 30.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def sample(self) -> None:
        if self.proc is not None and self.proc.poll() is None and self.incarnations:
            self.incarnations[-1].samples.append((time.monotonic(), rss_mb(self.proc.pid)))


def _script(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EI_")}
    env.update({f"EI_{k.upper()}": v for k, v in values.items()})
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Soak:
    """The stack, the chaos loop, the restorer and the bookkeeping of one soak run."""

    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        self.args = args
        self.root = root
        self.rng = random.Random(args.seed)
        self.redis_port, self.mqtt_port = free_port(), free_port()
        self.redis_url = f"redis://{LOOPBACK}:{self.redis_port}/0"
        self.agent_addr = f"unix://{root / 'agent.sock'}"
        self.store = root / "store"
        self.services: dict[str, Service] = {}
        self.models: tuple[BenchModel, BenchModel] | None = None
        self.stop = threading.Event()
        self.chaos_log: list[str] = []
        self.measured_from = time.monotonic() + args.warmup  # set again when the soak starts
        self.restores = 0
        # what the reader saw
        self.frames: set[str] = set()
        self.results: dict[str, int] = {}
        self.verdicts: dict[str, int] = {}
        self.captures: set[str] = set()
        self.dropped: set[str] = set()
        self.positions = {
            names.frames_stream(LINE): "0-0",
            names.results_stream(LINE): "0-0",
            names.capture_stream(): "0-0",
            names.events_stream(): "0-0",
        }

    # --- the stack --------------------------------------------------------------------------
    def define(self, frames_dir: Path, trusted: Path) -> None:
        redis_bin = shutil.which("redis-server")
        mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if redis_bin is None or not Path(mosquitto).exists():
            raise SystemExit(
                "needs redis-server and mosquitto: sudo apt-get install -y redis-server mosquitto"
            )
        conf = self.root / "mosquitto.conf"
        conf.write_text(f"listener {self.mqtt_port} {LOOPBACK}\nallow_anonymous true\npersistence false\n")
        common = {"redis_url": self.redis_url, "line": LINE, "http_port": "0", "log_level": "INFO"}
        for kind in ("frames", "results", "capture", "events"):
            if self.args.budget_mb:
                common[f"{kind}_max_bytes"] = str(self.args.budget_mb << 20)
            if self.args.max_age:
                common[f"{kind}_max_age_s"] = str(self.args.max_age)
        specs: dict[str, tuple[list[str], dict[str, str]]] = {
            "redis": ([redis_bin, "--port", str(self.redis_port), "--bind", LOOPBACK, "--save", "",
                       "--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(self.root)], {}),
            "mqtt": ([mosquitto, "-c", str(conf)], {}),
            "agent": ([_script("edgeinspect-agent")], _env(
                **common, agent_addr=self.agent_addr, model_dir=str(self.root / "models"),
                trusted_keys_dir=str(trusted), intra_op_threads="1")),
            "worker": ([_script("edgeinspect-inference")], _env(
                **common, agent_addr=self.agent_addr, consumer="w1", mqtt_url=f"mqtt://{LOOPBACK}:{self.mqtt_port}",
                capture_good_fraction="1.0", model_wait_s="120", telemetry_interval_s="10")),
            "camera": ([_script("edgeinspect-camera")], _env(
                **common, source=f"folder://{frames_dir}", fps=str(self.args.fps), loop="true",
                max_backlog="512", camera="cam-1", resize=f"{self.args.width}x{self.args.height}")),
            "uploader": ([_script("edgeinspect-uploader")], _env(
                **common, capture_url=f"file://{self.store}", spool_dir=str(self.root / "spool"),
                retry_initial_s="0.2", retry_max_s="2", stale_claim_ms="5000")),
        }  # fmt: skip
        for name, (argv, env) in specs.items():
            self.services[name] = Service(name, argv, env or dict(os.environ), self.root / f"{name}.log")

    def start_all(self) -> None:
        for name in ("redis", "mqtt", "agent"):
            self.services[name].start()
        self._wait_redis()
        self.restore_models(wait=True)
        for name in ("worker", "uploader", "camera"):
            self.services[name].start()

    def _wait_redis(self) -> None:
        client = redis.Redis.from_url(self.redis_url)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return
            except redis.RedisError:
                time.sleep(0.1)
        raise SystemExit("redis-server did not start")

    def restore_models(self, wait: bool = False) -> bool:
        """Load both packages and point the aliases when the agent lacks them (the model manager's job)."""
        assert self.models is not None
        try:
            with AgentClient(self.agent_addr, timeout_s=120) as agent:
                if wait:
                    agent.wait_ready(120)
                aliases = {a.alias for a in agent.list_aliases()}
                if {"defect-cls", "defect-seg"} <= aliases:
                    return False
                for model, alias in zip(self.models, ("defect-cls", "defect-seg"), strict=True):
                    info = agent.load_version(str(model.package))
                    agent.set_alias(alias, info.name, info.version)
        except AgentError:
            return False
        self.restores += 1
        return True

    # --- background loops --------------------------------------------------------------------
    def chaos(self, deadline: float) -> None:
        started = time.monotonic()
        restarted = {
            "redis": started + (deadline - started) / 3,
            "mqtt": started + 2 * (deadline - started) / 3,
        }
        next_kill = started + self.rng.uniform(self.args.chaos_min, self.args.chaos_max)
        while not self.stop.wait(0.5) and time.monotonic() < deadline:
            now = time.monotonic()
            for name, when in list(restarted.items()):
                if now >= when:
                    self._bounce(name, signal.SIGTERM)
                    del restarted[name]
            if now >= next_kill:
                self._bounce(self.rng.choice(CHAOS_TARGETS), signal.SIGKILL)
                next_kill = now + self.rng.uniform(self.args.chaos_min, self.args.chaos_max)

    def _bounce(self, name: str, sig: int) -> None:
        service = self.services[name]
        how = "kill -9" if sig == signal.SIGKILL else "restart"
        self.chaos_log.append(f"{time.strftime('%H:%M:%S')} {how} {name}")
        print(f"chaos: {how} {name}", file=sys.stderr, flush=True)
        service.kill(sig)
        service.kills += 1
        time.sleep(1.0)
        service.start()
        if name == "redis":
            self._wait_redis()

    def restorer(self) -> None:
        while not self.stop.wait(1.0):
            if self.services["agent"].proc is not None:
                self.restore_models()

    def sampler(self) -> None:
        while not self.stop.wait(5.0):
            for service in self.services.values():
                service.sample()

    def reader(self) -> None:
        client = redis.Redis.from_url(self.redis_url, socket_timeout=10)
        while not self.stop.is_set():
            try:
                self.read_once(client, block_ms=500)
            except redis.RedisError:
                time.sleep(0.5)

    def read_once(self, client: redis.Redis, block_ms: int | None) -> int:
        reply: Any = client.xread(dict(self.positions), count=500, block=block_ms)  # type: ignore[arg-type]
        seen = 0
        for stream_raw, entries in reply or []:
            stream = stream_raw.decode()
            for entry_id, fields in entries:
                self.positions[stream] = entry_id.decode()
                self._note(stream, fields)
                seen += 1
        return seen

    def _note(self, stream: str, fields: dict[bytes, bytes]) -> None:
        frame_id = fields.get(b"frame_id", b"").decode()
        if stream == names.frames_stream(LINE):
            self.frames.add(frame_id)
        elif stream == names.results_stream(LINE):
            self.results[frame_id] = self.results.get(frame_id, 0) + 1
            verdict = Result.from_fields(fields).verdict
            self.verdicts[verdict] = self.verdicts.get(verdict, 0) + 1
        elif stream == names.capture_stream():
            self.captures.add(frame_id)
        else:
            try:
                event = Event.from_fields(fields)
            except Exception:  # not ours to judge: every service posts events
                return
            if event.type == "frame_dropped":
                self.dropped.update(str(f) for f in event.detail.get("frame_ids", []))

    # --- the end -----------------------------------------------------------------------------
    def drain(self, timeout: float) -> bool:
        """Stop the camera; wait until every frame has a result and every capture is in the store."""
        self.services["camera"].kill(signal.SIGTERM)
        client = redis.Redis.from_url(self.redis_url, socket_timeout=10)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.services["agent"].proc is not None:
                self.restore_models()
            time.sleep(1.0)
            frames_done = self.frames <= set(self.results) | self.dropped
            if frames_done and self.captures <= self.uploaded() and _group_idle(client):
                return True
        return False

    def uploaded(self) -> set[str]:
        return {p.parent.name for p in self.store.rglob("image.*")}

    def figures(self, drained: bool) -> dict[str, Any]:
        uploaded = self.uploaded()
        judged = set(self.results)
        lost_frames = self.frames - judged - self.dropped
        growth: dict[str, Any] = {}
        for name, service in self.services.items():
            growth[name] = _rss_figures(service, self.measured_from)
        worst = max((g["growth_pct"] for g in growth.values() if g["growth_pct"] is not None), default=0.0)
        return {
            "bench": "soak",
            "duration_s": self.args.duration,
            "fps": self.args.fps,
            "budget_mb": self.args.budget_mb or "default",
            "max_age_s": self.args.max_age or "default",
            "warmup_s": self.args.warmup,
            "frames_sent": len(self.frames),
            "results": sum(self.results.values()),
            "frames_judged": len(judged),
            "frames_lost": len(lost_frames),
            "frames_dropped_counted": len(self.dropped & self.frames),
            "duplicated_results": sum(n - 1 for n in self.results.values() if n > 1),
            "verdicts": dict(sorted(self.verdicts.items())),
            "error_verdicts": self.verdicts.get("error", 0),
            "captures_spooled": len(self.captures),
            "captures_uploaded": len(uploaded & self.captures),
            "captures_lost": len(self.captures - uploaded),
            "kills": {n: s.kills for n, s in self.services.items() if s.kills},
            "model_restores": self.restores,
            "drained": drained,
            "rss": growth,
            "worst_rss_growth_pct": round(worst, 1),
            "lost_frame_ids": sorted(lost_frames)[:20],
        }


def _group_idle(client: redis.Redis) -> bool:
    try:
        for stream, group in ((names.frames_stream(LINE), names.INFERENCE_GROUP),
                              (names.capture_stream(), names.UPLOADER_GROUP)):  # fmt: skip
            for info in client.xinfo_groups(stream):
                if info["name"].decode() == group and (int(info["pending"]) or int(info.get("lag") or 0)):
                    return False
    except redis.RedisError:
        return False
    return True


def _rss_figures(service: Service, measured_from: float) -> dict[str, Any]:
    """RSS at the first and last sample, and the worst growth of an incarnation after the warm-up:
    from its first sample after ``measured_from`` (and its own start-up) to its last."""
    all_samples = [s for inc in service.incarnations for s in inc.samples]
    first = all_samples[0][1] if all_samples else 0.0
    last = all_samples[-1][1] if all_samples else 0.0
    growth: float | None = None
    baseline: float | None = None
    for inc in service.incarnations:
        since = max(measured_from, inc.started + PROCESS_WARMUP_S)
        warm = [(t, rss) for t, rss in inc.samples if t >= since and rss > 0]
        if len(warm) < 2 or warm[-1][0] - warm[0][0] < MIN_SPAN_S:
            continue
        pct = (warm[-1][1] / warm[0][1] - 1) * 100
        if growth is None or pct > growth:
            growth, baseline = pct, warm[0][1]
    return {
        "start_mb": round(first, 1),
        "after_warmup_mb": None if baseline is None else round(baseline, 1),
        "end_mb": round(last, 1),
        "incarnations": len(service.incarnations),
        "growth_pct": None if growth is None else round(growth, 1),
    }


def format_table(f: dict[str, Any]) -> str:
    rows = [
        ("duration / warm-up / fps", f"{f['duration_s']:.0f} s / {f['warmup_s']:.0f} s / {f['fps']:g}"),
        ("stream budget (each stream)", f"{f['budget_mb']} MiB, {f['max_age_s']} s"),
        ("frames sent / judged / results", f"{f['frames_sent']} / {f['frames_judged']} / {f['results']}"),
        ("frames lost / duplicated results", f"{f['frames_lost']} / {f['duplicated_results']}"),
        ("frames dropped on purpose (counted)", str(f["frames_dropped_counted"])),
        ("verdicts", ", ".join(f"{k} {v}" for k, v in f["verdicts"].items()) or "-"),
        ("captures spooled / uploaded / lost",
         f"{f['captures_spooled']} / {f['captures_uploaded']} / {f['captures_lost']}"),
        ("kills and restarts", ", ".join(f"{k} {v}" for k, v in f["kills"].items()) or "-"),
        ("model restores (after agent restarts)", str(f["model_restores"])),
        ("drained at the end", str(f["drained"])),
    ]  # fmt: skip
    for name, rss in f["rss"].items():
        growth = "-" if rss["growth_pct"] is None else f"{rss['growth_pct']:+.1f} %"
        warm = "-" if rss["after_warmup_mb"] is None else f"{rss['after_warmup_mb']:.0f}"
        value = (
            f"{rss['start_mb']:.0f} -> {warm} -> {rss['end_mb']:.0f} MiB ({rss['incarnations']}; {growth})"
        )
        rows.append((f"RSS {name} start -> after warm-up -> end (incarnations; growth)", value))
    width = max(len(name) for name, _ in rows)
    lines = [f"\n{'measure':<{width}}  value\n{'-' * width}  {'-' * 40}"]
    lines += [f"{name:<{width}}  {value}" for name, value in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    keys = BenchStack()  # only for its folder and a signing key the agent trusts
    soak = Soak(args, keys.root)
    try:
        return run(soak, keys)
    finally:
        soak.stop.set()
        for name in ("camera", "worker", "uploader", "agent", "mqtt", "redis"):
            if name in soak.services:
                soak.services[name].kill(signal.SIGTERM)
        shutil.rmtree(keys.root, ignore_errors=True)


def run(soak: Soak, keys: BenchStack) -> int:
    args = soak.args
    key = keys.signing_key()
    print("building the models and packages ...", file=sys.stderr, flush=True)
    soak.models = build_packages(keys.root / "packages", key, args.height, args.width)
    frames_dir = keys.root / "frames"
    frames_dir.mkdir()
    for i, data in enumerate(synthetic_frames(16, "png", seed=args.seed)):
        (frames_dir / f"part-{i:03d}.png").write_bytes(data)
    soak.define(frames_dir, keys.trusted_dir)
    soak.start_all()
    threads = [threading.Thread(target=t, daemon=True) for t in (soak.reader, soak.sampler, soak.restorer)]
    for thread in threads:
        thread.start()
    print(f"soaking for {args.duration:.0f} s ...", file=sys.stderr, flush=True)
    deadline = time.monotonic() + args.duration
    soak.measured_from = time.monotonic() + args.warmup
    soak.chaos(deadline)
    while time.monotonic() < deadline:
        time.sleep(0.5)
    drained = soak.drain(args.drain_timeout)
    time.sleep(2.0)  # the reader's last XREAD
    figures = soak.figures(drained)
    figures["chaos"] = soak.chaos_log
    print(format_table(figures))
    print(json.dumps(figures, separators=(",", ":")))
    bad = figures["frames_lost"] or figures["duplicated_results"] or figures["captures_lost"]
    return 1 if bad or not drained else 0


if __name__ == "__main__":
    sys.exit(main())
