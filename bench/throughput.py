"""Throughput and end-to-end latency of one line with verdict and mask, at the KolektorSDD2 size (640 x 232).

Two layouts (``--layout``): ``multitask`` (default; one model, ``defect-mt``, one call per frame for
both answers, int8 unless ``--no-int8``; ``--views`` its mirrored views, by default what the default
recipe ships) and ``two-model`` (``defect-cls`` + ``defect-seg``, the bench widths issue 19
measured, both called concurrently per frame). Frames are 640 high and 232 wide, as KolektorSDD2's;
the table says whether the worker resized them whole or cut them into tiles. ``--transport`` picks how the
worker reaches the agent (``fast``: the fast path, ``grpc``: gRPC only). Every figure is printed with
the machine's load average (a shared 2-core box: read figures beside it).

What it measures, in one run, on one machine (redis-server, agent and worker as real processes):

1. **bare**: ``session.run`` p50/p99 of each model in this process, with the agent's session options
   (the floor nothing can beat);
2. **end to end**: one frame at a time, from the camera's XADD to the result being readable in Redis
   (XREAD BLOCK on the results stream), p50/p99; ``e2e_overhead_ratio`` = e2e p50 / (bare cls p50 +
   bare seg p50) (target <= 1.25: decode, preprocess, gRPC, postprocess, mask PNG, Redis all together
   must cost under a quarter of the inference). Bare runs and frames are interleaved (one of each
   model, then one frame), so both see the same machine even when its load drifts;
3. **throughput**: the camera keeps a small backlog topped up for ``--seconds``; then it stops and the
   worker drains. ``fps`` = results per second over the measured window, and the run fails loudly if
   any frame is left unprocessed or pending;
4. **memory**: resident (and peak) memory of the agent and the worker during the throughput phase,
   and Redis's ``used_memory`` plus every process's RSS (redis-server, agent, worker) at the start
   and the end of that phase. The bench camera bounds the frames stream as the camera service does
   (``EI_FRAMES_MAX_BYTES`` / ``EI_FRAMES_MAX_AGE_S``, ``edgeinspect.core.retention``), so a long run
   shows whether Redis stays within its budget.

    .venv/bin/python bench/throughput.py                   # 10 minutes of throughput (the soak figure)
    .venv/bin/python bench/throughput.py --duration 2m     # a shorter run
    .venv/bin/python bench/throughput.py --quick           # a smoke run

The last line printed is one JSON object with every figure; ``--out`` (default ``bench/out``) gets
``throughput/table.md`` and a PNG plot (``bench.report``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench`` and the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import onnxruntime as ort
import redis
from edgeinspect.core import images, names
from edgeinspect.core.agent_client import AgentClient
from edgeinspect.core.messages import Encoding, Frame, Result, now_ns
from edgeinspect.core.observability import percentile
from edgeinspect.core.settings import ServiceSettings
from edgeinspect.core.streams import Streams
from edgeinspect.core.tiling import TilingConfig, decide
from edgeinspect_cloud.training.multitask_arch import DEFAULT_PRESET, VIEWS, parse_arch, parse_size

from bench.models import FRAME_HEIGHT, FRAME_WIDTH, BenchModel, build_multitask_package, build_packages
from bench.report import DEFAULT_OUT, write_report
from bench.stack import BenchStack, rss_mb

LINE = "bench"


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (about a minute)")
    parser.add_argument(
        "--duration", "--seconds", dest="seconds", type=_duration, default=600.0,
        help="length of the throughput phase: seconds, or 90s / 10m (default 10m)",
    )  # fmt: skip
    parser.add_argument(
        "--latency-frames", type=int, default=30, help="frames timed one at a time (each after one bare run)"
    )
    parser.add_argument("--depth", type=int, default=2, help="EI_PIPELINE_DEPTH of the worker")
    parser.add_argument("--threads", type=int, default=0, help="EI_INTRA_OP_THREADS of the agent (0: auto)")
    parser.add_argument("--encoding", choices=("png", "jpeg"), default="png", help="how frames are encoded")
    parser.add_argument(
        "--layout", choices=("multitask", "two-model"), default="multitask", help="models the line uses"
    )
    parser.add_argument(
        "--int8", action=argparse.BooleanOptionalAction, default=True, help="multitask: int8 variant"
    )
    parser.add_argument(
        "--views", choices=VIEWS, default=parse_arch(DEFAULT_PRESET).views,
        help="multitask: mirrored views in the graph (default: what the default recipe ships)",
    )  # fmt: skip
    parser.add_argument("--width", type=int, default=8, help="multitask: network width (demo profile: 8)")
    parser.add_argument(
        "--model-input", type=_size, default=(FRAME_HEIGHT, FRAME_WIDTH),
        help="multitask: model input HEIGHTxWIDTH (default the whole frame; the default profile: 320x112)",
    )  # fmt: skip
    parser.add_argument(
        "--transport", choices=("fast", "grpc"), default="fast", help="worker -> agent: fast path or gRPC"
    )
    parser.add_argument(
        "--lines", type=int, default=1, help="lines on the box (one worker each), sharing the agent"
    )
    parser.add_argument(
        "--batch-window-ms", type=float, default=0.0, help="EI_FAST_PATH_BATCH_WINDOW_MS of the agent"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where <out>/throughput/ goes")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.latency_frames = 12.0, 8
    return args


def _size(text: str) -> tuple[int, int]:
    """``320x112`` -> ``(320, 112)``."""
    try:
        size = parse_size(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size: use HEIGHTxWIDTH, e.g. 320x112") from None
    if min(size) < 16:
        raise argparse.ArgumentTypeError(f"{text!r}: both sides must be at least 16 pixels")
    return size


def _duration(text: str) -> float:
    """``600``, ``600s`` or ``10m`` -> seconds."""
    value = text.strip().lower()
    scale = 60.0 if value.endswith("m") else 1.0
    try:
        seconds = float(value.rstrip("ms")) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: use seconds, 90s or 10m") from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the duration must be positive")
    return seconds


def memory_snapshot(client: redis.Redis, pids: dict[str, int]) -> dict[str, float]:
    """Redis ``used_memory`` and the RSS of every process of the stack, in MiB."""
    info: Any = client.info("memory")
    snapshot = {"redis_used_memory_mb": round(int(info["used_memory"]) / 2**20, 1)}
    snapshot.update({f"{name}_rss_mb": round(rss_mb(pid), 1) for name, pid in pids.items()})
    return snapshot


def synthetic_frames(count: int, encoding: str, seed: int = 0) -> list[bytes]:
    """Textured grey frames, 640 high and 232 wide (brushed metal with noise), like KolektorSDD2's parts."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(count):
        rows = np.linspace(60, 140, FRAME_HEIGHT)[:, None] + rng.normal(0, 6, (FRAME_HEIGHT, FRAME_WIDTH))
        grey = np.clip(rows + 10 * np.sin(np.arange(FRAME_WIDTH) / 7.0)[None, :], 0, 255).astype(np.uint8)
        frames.append(images.encode(np.repeat(grey[:, :, None], 3, axis=2), encoding))
    return frames


class BareModel:
    """One model in this process with the session options the agent uses (same threads, spinning on)."""

    def __init__(self, model: BenchModel, threads: int) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(model.onnx_bytes, options, providers=["CPUExecutionProvider"])
        shape = (1, 3, model.height, model.width)
        self.feed = {"image": np.random.default_rng(1).integers(0, 256, shape, np.uint8)}
        self.timings: list[float] = []
        self.run(record=False)

    def run(self, record: bool = True) -> None:
        started = time.perf_counter()
        self.session.run(None, self.feed)
        if record:
            self.timings.append((time.perf_counter() - started) * 1000)


class Camera:
    """XADDs frames to the line and reads results back; a frame id is ``b{n}``."""

    def __init__(
        self, client: redis.Redis, frames: list[bytes], encoding: Encoding, line: str = LINE
    ) -> None:
        self.client = client
        self.line = line
        self.streams = Streams(client)
        # bounded like the camera service bounds it (the budget's defaults, or EI_FRAMES_MAX_*)
        budget = ServiceSettings.load().stream_budget("frames")
        self.retention = self.streams.retain(names.frames_stream(line), budget, group=names.INFERENCE_GROUP)
        self.frames = frames
        self.encoding = encoding
        self.sent = 0
        self.results: dict[str, Result] = {}
        self._last_id = "0-0"

    def send(self) -> str:
        frame_id = f"b{self.sent}"
        data = self.frames[self.sent % len(self.frames)]
        frame = Frame(
            frame_id, self.line, "cam", now_ns(), self.encoding, FRAME_HEIGHT, FRAME_WIDTH, 3, data, "bench"
        )
        self.streams.add(names.frames_stream(self.line), frame)
        self.sent += 1
        return frame_id

    def collect(self, block_ms: int) -> list[Result]:
        reply: Any = self.client.xread(
            {names.results_stream(self.line): self._last_id}, count=100, block=block_ms
        )
        got: list[Result] = []
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                self._last_id = entry_id.decode()
                result = Result.from_fields(fields)
                self.results[result.frame_id] = result
                got.append(result)
        return got


def measure_latency(
    camera: Camera, frames: int, bare: list[BareModel], warmup: int = 3
) -> tuple[list[float], list[float]]:
    """One frame at a time: XADD -> result readable (bench clock), and the worker's own ``e2e_ms``.

    Each frame is preceded by one bare ``session.run`` of each model, so floor and end to end are
    measured under the same conditions even on a machine whose load changes during the run.
    """
    seen, reported = [], []
    for i in range(frames + warmup):
        for model in bare:
            model.run(record=i >= warmup)
        started = time.perf_counter()
        frame_id = camera.send()
        while frame_id not in camera.results:
            if not camera.collect(block_ms=30_000):
                raise SystemExit(f"no result for {frame_id} within 30 s")
        if i >= warmup:
            seen.append((time.perf_counter() - started) * 1000)
            reported.append(camera.results[frame_id].e2e_ms)
        if camera.results[frame_id].verdict == "error":
            raise SystemExit(f"frame {frame_id} got an error result: {camera.results[frame_id].error}")
    return seen, reported


def measure_throughput(
    cameras: list[Camera], seconds: float, backlog: int, pids: dict[str, int]
) -> dict[str, Any]:
    """Keep ``backlog`` frames outstanding per line for ``seconds``, then drain; count and sample memory."""
    memory: dict[str, list[float]] = {name: [] for name in pids}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.5):
            for name, pid in pids.items():
                memory[name].append(rss_mb(pid))

    def done() -> int:
        return sum(len(c.results) for c in cameras)

    def sent() -> int:
        return sum(c.sent for c in cameras)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    done_before, sent_before = done(), sent()
    wait_ms = max(1, 1000 // len(cameras))
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for camera in cameras:
            while camera.sent - len(camera.results) < backlog:
                camera.send()
            camera.collect(block_ms=wait_ms)
    window = time.perf_counter() - started
    done_in_window = done() - done_before
    drain_started = time.perf_counter()
    while done() < sent() and time.perf_counter() - drain_started < 120:
        for camera in cameras:
            camera.collect(block_ms=wait_ms)
    stop.set()
    sampler.join()
    pending = sum(
        int(c.client.xpending(names.frames_stream(c.line), names.INFERENCE_GROUP)["pending"])  # type: ignore[index]
        for c in cameras
    )
    errors = sum(1 for c in cameras for r in c.results.values() if r.verdict == "error")
    return {
        "fps": done_in_window / window,
        "frames_sent": sent() - sent_before,
        "frames_processed": done() - done_before,
        "frames_unprocessed": sent() - done(),
        "frames_pending": pending,
        "error_results": errors,
        "memory": {name: (max(v) if v else 0.0, rss_mb(pids[name], "VmHWM")) for name, v in memory.items()},
    }


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    stack = BenchStack(
        agent_settings={
            "intra_op_threads": str(args.threads),
            "fast_path_batch_window_ms": str(args.batch_window_ms),
        }
    )
    try:
        return run(args, stack)
    finally:
        stack.close()


def run(args: argparse.Namespace, stack: BenchStack) -> int:
    key = stack.signing_key()
    print(f"building benchmark models and packages ({args.layout}) ...", file=sys.stderr)
    loads = _models(args, stack.root / "packages", key)
    stack.start()
    with AgentClient(stack.agent_addr, timeout_s=120) as agent:
        for model, alias, variant in loads:
            info = agent.load_version(str(model.package), variant=variant)
            agent.set_alias(alias, info.name, info.version)
        versions = agent.list_versions()
        provider = versions[0].execution_provider
        variant = "/".join(v.variant or "fp32" for v in versions)
        chosen = "/".join(str(v.tuning.intra_op_threads) if v.tuning else "?" for v in versions)
    bare_models = {model.task: BareModel(model, args.threads) for model, _, _ in loads}
    lines = [LINE] if args.lines == 1 else [f"{LINE}-{i}" for i in range(args.lines)]
    workers = [
        stack.start_worker(
            f"worker-{i}" if i else "worker",
            line=line,
            pipeline_depth=str(args.depth),
            agent_fast_path="auto" if args.transport == "fast" else "off",
        )
        for i, line in enumerate(lines)
    ]
    worker = workers[0]
    client = redis.Redis.from_url(stack.redis_url, socket_timeout=60)  # XREAD BLOCK waits up to 30 s
    frames = synthetic_frames(8, args.encoding)
    cameras = [Camera(client, frames, args.encoding, line) for line in lines]
    camera = cameras[0]
    print("bare session.run and end-to-end latency, interleaved, one frame at a time ...", file=sys.stderr)
    load_latency = os.getloadavg()
    seen, reported = measure_latency(camera, args.latency_frames, list(bare_models.values()))
    bare: dict[str, list[float]] = {task: model.timings for task, model in bare_models.items()}
    del bare_models  # free their memory and threads before the throughput phase
    print(f"throughput for {args.seconds:.0f} s ...", file=sys.stderr)
    pids = {"agent": stack.procs["agent"].pid, "worker": worker.pid}
    everyone = {"redis": stack.procs["redis"].pid, **pids}
    at_start = memory_snapshot(client, everyone)
    load_flow = os.getloadavg()
    flow = measure_throughput(cameras, args.seconds, backlog=2 * args.depth + 2, pids=pids)
    at_end = memory_snapshot(client, everyone)
    figures = _figures(args, provider, bare, seen, reported, flow)
    figures["variant"] = variant
    figures["frame_path"] = "; ".join(f"{alias}: {frame_path(model)}" for model, alias, _ in loads)
    figures["agent_intra_op_threads"] = chosen
    figures["loadavg_latency"] = [round(v, 2) for v in load_latency]
    figures["loadavg_throughput_start"] = [round(v, 2) for v in load_flow]
    figures["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    figures.update({f"start_{k}": v for k, v in at_start.items()})
    figures.update({f"end_{k}": v for k, v in at_end.items()})
    figures["frames_stream_entries"] = int(client.xlen(names.frames_stream(LINE)))
    figures["frames_budget_mb"] = round(camera.retention.budget.max_bytes / 2**20, 1)
    worker_log = stack.log_tail("worker", 10**6)
    if args.transport == "fast" and "fast_path_unavailable" not in worker_log:
        figures["worker_inputs"] = "fast path (sealed memfd)"
    else:
        figures["worker_inputs"] = "gRPC + " + ("bytes" if "shared_memory_disabled" in worker_log else "shm")
    table = format_table(figures)
    print(table)
    folder = write_report("throughput", figures, args.out, table)
    print(f"wrote table and plots to {folder}", file=sys.stderr, flush=True)
    print(json.dumps(figures, separators=(",", ":")))
    return 0 if figures["frames_unprocessed"] == 0 and figures["frames_pending"] == 0 else 1


_SHORT = {"classification": "cls", "segmentation": "seg", "multitask": "mt"}


def _models(args: argparse.Namespace, out: Path, key: Any) -> list[tuple[BenchModel, str, str]]:
    """``(model, alias, variant)`` to load for the layout."""
    if args.layout == "multitask":
        model, variant = build_multitask_package(
            out, key, int8=args.int8, views=args.views, width=args.width, size=args.model_input
        )
        return [(model, "defect-mt", variant)]
    cls, seg = build_packages(out, key)
    return [(cls, "defect-cls", ""), (seg, "defect-seg", "")]


def frame_path(model: BenchModel) -> str:
    """What the worker does with a bench frame for ``model`` (its own rule, default settings).

    Printed so a run says what it measured: a model input the frame does not fit, in shape, makes the
    worker cut it into tiles, one model run each, and the figures are then those of a tiled line.
    """
    plan = decide(FRAME_HEIGHT, FRAME_WIDTH, model.input, TilingConfig())
    if plan is None:
        return f"whole frame to {model.input.resize.height}x{model.input.resize.width}"
    return f"{len(plan.tiles)} tiles of {plan.tile_height}x{plan.tile_width}"


def _figures(args: argparse.Namespace, provider: str, bare: dict[str, list[float]], seen: list[float],
             reported: list[float], flow: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    bare_p50 = {task: percentile(timings, 50) for task, timings in bare.items()}
    bare_sum = sum(bare_p50.values())
    e2e_p50 = percentile(seen, 50)
    memory = flow["memory"]
    per_model: dict[str, Any] = {}
    for task, timings in bare.items():
        per_model[f"bare_{_SHORT[task]}_p50_ms"] = round(bare_p50[task], 2)
        per_model[f"bare_{_SHORT[task]}_p99_ms"] = round(percentile(timings, 99), 2)
    return {
        "bench": "throughput",
        "layout": args.layout,
        "views": args.views if args.layout == "multitask" else None,
        "model": f"width {args.width}, input {args.model_input[0]}x{args.model_input[1]}"
        if args.layout == "multitask"
        else "bench widths",
        "lines": args.lines,
        "transport": args.transport,
        "batch_window_ms": args.batch_window_ms,
        "frame": f"{FRAME_HEIGHT}x{FRAME_WIDTH}",  # height x width
        "encoding": args.encoding,
        "execution_provider": provider,
        "intra_op_threads": args.threads,
        "pipeline_depth": args.depth,
        **per_model,
        "bare_sum_p50_ms": round(bare_sum, 2),
        "e2e_p50_ms": round(e2e_p50, 2),
        "e2e_p99_ms": round(percentile(seen, 99), 2),
        "e2e_worker_reported_p50_ms": round(percentile(reported, 50), 2),
        "e2e_overhead_ratio": round(e2e_p50 / bare_sum, 3),
        "fps": round(flow["fps"], 2),
        "bare_sequential_fps": round(1000.0 / bare_sum, 2),
        "throughput_seconds": args.seconds,
        "frames_sent": flow["frames_sent"],
        "frames_processed": flow["frames_processed"],
        "frames_unprocessed": flow["frames_unprocessed"],
        "frames_pending": flow["frames_pending"],
        "error_results": flow["error_results"],
        "agent_rss_mb": round(memory["agent"][0], 1),
        "agent_peak_rss_mb": round(memory["agent"][1], 1),
        "worker_rss_mb": round(memory["worker"][0], 1),
        "worker_peak_rss_mb": round(memory["worker"][1], 1),
    }


def format_table(f: dict[str, Any]) -> str:
    """The readable table (blank lines around it), as printed and as written to ``table.md``."""
    rows = [
        ("layout / transport", f"{f.get('layout', 'two-model')} ({f.get('variant', 'fp32')}, "
                               f"{f.get('model', 'bench widths')}, views {f.get('views') or 'none'}), "
                               f"{f.get('transport', 'grpc')}, batch window {f.get('batch_window_ms', 0)}"),
        ("frame (height x width) / encoding", f"{f['frame']} {f['encoding']}, "
                             f"provider {f['execution_provider']}, threads {f['intra_op_threads'] or 'auto'} "
                             f"(agent chose {f.get('agent_intra_op_threads', '?')}), "
                             f"depth {f['pipeline_depth']}"),
    ]  # fmt: skip
    if "frame_path" in f:
        rows.append(("what the worker does with a frame", f["frame_path"]))
    for short in ("cls", "seg", "mt"):
        if f"bare_{short}_p50_ms" in f:
            p50, p99 = f[f"bare_{short}_p50_ms"], f[f"bare_{short}_p99_ms"]
            rows.append((f"bare session.run {short} p50 / p99", f"{p50:.1f} / {p99:.1f} ms"))
    rows += [
        ("bare sum p50", f"{f['bare_sum_p50_ms']:.1f} ms"),
        ("end to end p50 / p99 (XADD -> result)", f"{f['e2e_p50_ms']:.1f} / {f['e2e_p99_ms']:.1f} ms"),
        ("end to end p50 as the worker saw it", f"{f['e2e_worker_reported_p50_ms']:.1f} ms"),
        ("e2e overhead ratio (target <= 1.25)", f"{f['e2e_overhead_ratio']:.3f}"),
        ("lines sharing the agent", str(f.get("lines", 1))),
        ("sustained throughput, all lines",
         f"{f['fps']:.2f} frames/s (bare sequential {f['bare_sequential_fps']:.2f})"),
        ("frames sent / processed / unprocessed / pending",
         f"{f['frames_sent']} / {f['frames_processed']} / {f['frames_unprocessed']} / {f['frames_pending']}"),
        ("error results", str(f["error_results"])),
        ("worker -> agent inputs", f.get("worker_inputs", "?")),
        ("agent RSS / peak", f"{f['agent_rss_mb']:.0f} / {f['agent_peak_rss_mb']:.0f} MiB"),
        ("worker RSS / peak", f"{f['worker_rss_mb']:.0f} / {f['worker_peak_rss_mb']:.0f} MiB"),
    ]  # fmt: skip
    for key in ("loadavg_latency", "loadavg_throughput_start", "loadavg_end"):
        if key in f:
            rows.append((f"load average ({key.removeprefix('loadavg_')})", " ".join(map(str, f[key]))))
    for name in ("redis_used_memory", "redis_rss", "agent_rss", "worker_rss"):
        if f"start_{name}_mb" in f:
            rows.append((f"{name.replace('_', ' ')} start -> end",
                         f"{f[f'start_{name}_mb']:.0f} -> {f[f'end_{name}_mb']:.0f} MiB"))  # fmt: skip
    if "frames_stream_entries" in f:
        budget = f"{f['frames_stream_entries']} entries (budget {f['frames_budget_mb']:.0f} MiB)"
        rows.append(("frames stream after the run", budget))
    width = max(len(name) for name, _ in rows)
    lines = [f"\n{'measure':<{width}}  value\n{'-' * width}  {'-' * 40}"]
    lines += [f"{name:<{width}}  {value}" for name, value in rows]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
