"""Large frames: resize-only vs tiling, through a real agent, with models the project's pipeline trained.

A factory camera's frame is several megapixels; the models are trained at a fixed pixel scale. This
benchmark renders large KolektorSDD2-style frames with the project's own generator
(``edgeinspect_cloud.data.synth.render_sample``, default 3200 x 1160, 3.7 MP; half of them with
2-3 pixel thin cracks and scratches) and judges each one twice through a real ``edgeinspect-agent``
subprocess, with the worker's own code paths:

- **resize-only**: the whole frame preprocessed to the model input (``AgentModelCaller``), what the
  worker did before tiling;
- **tiled**: ``TiledCaller`` - overlapping tiles of the training frame size (640 x 232, the
  package's ``tiling`` hint), every tile preprocessed as training preprocessed a frame, answers
  stitched back to full-frame pixels.

The models are the committed demo models (``cloud/edgeinspect_cloud/stack/demo_models``: the
pipeline's ``demo`` profile, a ResNet18-style classifier and a U-Net segmenter trained on whole
640 x 232 frames stretched to 256 x 96; see its ``provenance.json``). No training happens here.

Per mode and model it reports image AP and AUROC, recall and false-reject rate at the shipped
threshold, the segmenter's Dice (pooled over the defective frames, at full resolution), per-frame
latency p50/p99 (preprocess + agent + stitch, wall clock in this process), tiles per frame, and peak
memory (this process's numpy allocations during one frame, by ``tracemalloc``; the agent's peak RSS).
Run from the repository root (minutes; rendering a frame takes seconds on a shared core):

    nice -n 10 .venv/bin/python -m bench.tiling              # 24 frames of 4000 x 1160
    .venv/bin/python -m bench.tiling --quick                 # smoke run: 4 frames of 1920 x 696

A table, then as the last line one JSON object with every figure; ``--out`` (default ``bench/out``)
gets ``tiling/table.md``, ``figures.json`` and ``tiling.png``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
from edgeinspect.core.agent_client import AgentClient
from edgeinspect.core.package import (
    Framework,
    Manifest,
    TilingHint,
    build_package,
    load_private_key,
    utc_now,
    write_keypair,
)
from edgeinspect.core.preprocess import preprocess
from edgeinspect.core.tiling import TilingConfig
from edgeinspect_cloud.data.synth import render_sample
from edgeinspect_cloud.evaluation.metrics import average_precision, confusion, roc_auc
from edgeinspect_cloud.evaluation.spec import ModelSpec
from edgeinspect_inference.worker.agentcalls import AgentModelCaller
from edgeinspect_inference.worker.catalog import ModelCatalog, Target
from edgeinspect_inference.worker.judge import Answer
from edgeinspect_inference.worker.metrics import WorkerMetrics
from edgeinspect_inference.worker.tiles import TiledCaller

from bench.agent_latency import start_agent
from bench.report import DEFAULT_OUT, write_report

ROOT = Path(__file__).resolve().parent.parent
DEMO_MODELS = ROOT / "cloud" / "edgeinspect_cloud" / "stack" / "demo_models"
TRAIN_FRAME = (640, 232)
"""The frame size the demo models were trained on (the generator's KolektorSDD2 default)."""
ALIASES = {"classification": "defect-cls", "segmentation": "defect-seg"}
KINDS = ("crack", "scratch")
MODES = ("resize", "tiled")


@dataclass
class Tally:
    """What one mode and one model gave on every frame."""

    scores: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    overlap: int = 0
    predicted: int = 0
    truth: int = 0
    tiles: list[int] = field(default_factory=list)
    peak_mb: float = 0.0


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=24, help="frames judged (half defective)")
    parser.add_argument("--height", type=int, default=4000, help="frame height in pixels")
    parser.add_argument("--width", type=int, default=1160, help="frame width in pixels")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--overlap", type=float, default=0.125, help="tile overlap (fraction of a tile)")
    parser.add_argument("--batch", type=int, default=8, help="tiles per PredictBatch request")
    parser.add_argument("--threads", type=int, default=1, help="the agent's intra-op threads")
    parser.add_argument("--quick", action="store_true", help="4 frames of 1920 x 696 (smoke run)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.quick:
        args.frames, args.height, args.width = 4, 1920, 696
    return args


def build_packages(work: Path) -> tuple[list[Path], Path]:
    """Signed packages of the demo classifier and segmenter, with the training frame as tiling hint."""
    private_path, public_path = write_keypair(work / "keys", "bench")
    key = load_private_key(private_path)
    trusted = work / "trusted"
    trusted.mkdir()
    (trusted / public_path.name).write_bytes(public_path.read_bytes())
    # Trained on whole frames: any frame well beyond the training size is tiled at the training size.
    hint = TilingHint(tile_height=TRAIN_FRAME[0], tile_width=TRAIN_FRAME[1], min_scale=1.5)
    packages = []
    for task in ALIASES:
        folder = DEMO_MODELS / task
        spec = ModelSpec.read(folder / "model_spec.json")
        manifest = Manifest.model_validate(
            {
                "name": f"bench-{task[:3]}",
                "version": "1",
                "task": spec.task,
                "framework": Framework(name="onnx", version=onnx.__version__),
                "created_at": utc_now(),
                "input": spec.input,
                "outputs": spec.outputs,
                "thresholds": spec.thresholds,
                "dataset_fingerprint": "demo-models",
                "tiling": hint,
            }
        )
        _, _, height, width = spec.input.shape
        golden_in = np.random.default_rng(0).integers(0, 256, (1, 3, height, width), dtype=np.uint8)
        session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        golden = dict(zip(names, session.run(names, {spec.input.name: golden_in}), strict=True))
        packages.append(
            build_package(work / "packages", manifest, folder / "model.onnx", golden_in, golden, key)
        )
    return packages, trusted


def render(
    seed: int, index: int, height: int, width: int
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.bool_]]:
    """Frame ``index``: every odd one carries thin cracks/scratches drawn by the generator."""
    rng = np.random.default_rng([seed, index])
    image, mask = render_sample(rng, height, width, index % 2 == 1, defect_kinds=KINDS)
    return image, mask > 0


def judge(
    mode: str, target: Target, image: npt.NDArray[np.uint8], plain: AgentModelCaller, tiled: TiledCaller
) -> tuple[Answer, int]:
    """One model's answer on one frame in ``mode``, and how many inputs the agent ran for it."""
    if mode == "tiled":
        plan = tiled.plan(target, image)
        if plan is not None:
            return tiled(target, image, plan, "bench"), len(plan.tiles)
    return plain(target, preprocess(image, target.manifest.input), "bench"), 1


def run(args: argparse.Namespace, addr: str) -> tuple[dict[str, dict[str, Tally]], list[bool]]:
    """Judge every frame in both modes with both models; interleaved so load drift hits both alike."""
    client = AgentClient(addr, timeout_s=120.0)
    catalog = ModelCatalog(client, refresh_s=3600.0)
    metrics = WorkerMetrics()
    plain = AgentModelCaller(client, catalog, metrics, timeout_s=120.0)
    tiled = TiledCaller(
        client, plain, metrics, TilingConfig(overlap=args.overlap), batch=args.batch, timeout_s=120.0
    )
    targets = {task: catalog.target(alias) for task, alias in ALIASES.items()}
    tallies = {mode: {task: Tally() for task in ALIASES} for mode in MODES}
    labels: list[bool] = []
    warm, _ = render(args.seed, 10_000, args.height, args.width)
    for mode in MODES:  # warm-up (sessions, arenas), not counted
        for target in targets.values():
            assert target is not None
            judge(mode, target, warm, plain, tiled)
    for index in range(args.frames):
        image, truth = render(args.seed, index, args.height, args.width)
        labels.append(bool(truth.any()))
        print(f"frame {index + 1}/{args.frames}", file=sys.stderr, flush=True)
        for mode in MODES:
            for task, target in targets.items():
                assert target is not None
                tally = tallies[mode][task]
                traced = index == 1  # the first defective frame: memory, traced once per mode
                if traced:
                    tracemalloc.start()
                started = time.perf_counter()
                answer, tiles = judge(mode, target, image, plain, tiled)
                elapsed = (time.perf_counter() - started) * 1000.0
                if traced:
                    tally.peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
                    tracemalloc.stop()
                else:
                    tally.latency_ms.append(elapsed)
                tally.tiles.append(tiles)
                tally.scores.append(answer.primary.prediction.score)
                mask = answer.primary.mask
                if task == "segmentation" and mask is not None and truth.any():
                    tally.overlap += int(np.count_nonzero(mask & truth))
                    tally.predicted += int(np.count_nonzero(mask))
                    tally.truth += int(np.count_nonzero(truth))
        del image, truth
    client.close()
    return tallies, labels


def figures(
    tallies: dict[str, dict[str, Tally]], truth: list[bool], thresholds: dict[str, float]
) -> list[dict[str, Any]]:
    """One row per mode and model: accuracy at the shipped threshold, latency, tiles, memory."""
    rows = []
    labels = np.asarray(truth, bool)
    for mode, by_task in tallies.items():
        for task, tally in by_task.items():
            scores = np.asarray(tally.scores, np.float64)
            point = confusion(labels, scores, thresholds[task])
            defective, good = int(labels.sum()), int((~labels).sum())
            row: dict[str, Any] = {
                "mode": mode,
                "model": task,
                "frames": len(labels),
                "ap": round(average_precision(labels, scores), 4),
                "auroc": round(roc_auc(labels, scores), 4),
                "recall": round(point.tp / defective, 4) if defective else None,
                "false_reject_rate": round(point.fp / good, 4) if good else None,
                "threshold": round(thresholds[task], 4),
                "dice": None,
                "latency_p50_ms": round(float(np.percentile(tally.latency_ms, 50)), 1),
                "latency_p99_ms": round(float(np.percentile(tally.latency_ms, 99)), 1),
                "tiles_per_frame": round(float(np.mean(tally.tiles)), 1),
                "peak_mb": round(tally.peak_mb, 1),
            }
            if task == "segmentation" and tally.truth:
                row["dice"] = round(2.0 * tally.overlap / (tally.predicted + tally.truth), 4)
            rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    header = (
        f"{'mode':7} {'model':15} {'AP':>6} {'AUROC':>6} {'recall':>6} {'FRR':>6} {'Dice':>6} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'tiles':>6} {'peak MB':>8}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        dice = "-" if r["dice"] is None else f"{r['dice']:.3f}"
        lines.append(
            f"{r['mode']:7} {r['model']:15} {r['ap']:6.3f} {r['auroc']:6.3f} {_num(r['recall'])} "
            f"{_num(r['false_reject_rate'])} {dice:>6} {r['latency_p50_ms']:8.1f} {r['latency_p99_ms']:8.1f} "
            f"{r['tiles_per_frame']:6.1f} {r['peak_mb']:8.1f}"
        )
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "     -" if value is None else f"{value:6.3f}"


def plot(rows: list[dict[str, Any]], folder: Path) -> Path:
    """Accuracy and latency side by side, resize-only vs tiled, per model."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4))
    FigureCanvasAgg(fig)
    accuracy, latency = fig.subplots(1, 2)
    names = [f"{r['model'][:3]} {m}" for r in rows for m in ["ap", "recall", "dice"] if r[m] is not None]
    colours = {"resize": "#7f8c8d", "tiled": "#2e86de"}
    bars = [(r, m) for r in rows for m in ["ap", "recall", "dice"] if r[m] is not None]
    order = list(dict.fromkeys(names))
    for offset, mode in ((-0.2, "resize"), (0.2, "tiled")):
        values = {f"{r['model'][:3]} {m}": r[m] for r, m in bars if r["mode"] == mode}
        accuracy.bar(
            np.arange(len(order)) + offset,
            [values.get(n, 0.0) for n in order],
            0.4,
            label=mode,
            color=colours[mode],
        )
    accuracy.set_xticks(np.arange(len(order)), order, rotation=30, ha="right")
    accuracy.set_ylim(0, 1.05)
    accuracy.set_title("accuracy (recall at the shipped threshold)")
    accuracy.legend()
    models = sorted({r["model"] for r in rows})
    for offset, mode in ((-0.2, "resize"), (0.2, "tiled")):
        p50 = [
            next(r["latency_p50_ms"] for r in rows if r["mode"] == mode and r["model"] == m) for m in models
        ]
        latency.bar(np.arange(len(models)) + offset, p50, 0.4, label=mode, color=colours[mode])
    latency.set_xticks(np.arange(len(models)), models)
    latency.set_ylabel("ms per frame (p50)")
    latency.set_title("latency per frame")
    latency.legend()
    fig.tight_layout()
    path = folder / "tiling.png"
    fig.savefig(path, dpi=110)
    return path


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    work = Path(tempfile.mkdtemp(prefix="ei-bench-tiling-"))
    agent: subprocess.Popen[bytes] | None = None
    try:
        packages, trusted = build_packages(work)
        agent, addr = start_agent(work, trusted, args.threads, spin=False)
        with AgentClient(addr) as client:
            for package, alias in zip(packages, ALIASES.values(), strict=True):
                info = client.load_version(str(package))
                client.set_alias(alias, info.name, info.version)
        thresholds = {}
        for task in ALIASES:
            spec = ModelSpec.read(DEMO_MODELS / task / "model_spec.json")
            assert spec.thresholds is not None
            thresholds[task] = spec.thresholds.image
        tallies, truth = run(args, addr)
        agent_peak_mb = _peak_rss_mb(agent.pid)
    finally:
        if agent is not None:
            agent.send_signal(signal.SIGTERM)
            agent.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    rows = figures(tallies, truth, thresholds)
    text = table(rows) + (
        f"\nframes {args.height}x{args.width}, tiles {TRAIN_FRAME[0]}x{TRAIN_FRAME[1]} "
        f"at {args.overlap:g} overlap; "
        f"agent peak RSS {agent_peak_mb:.0f} MB; models: the demo models (pipeline, demo profile)"
    )
    folder = write_report("tiling", rows, args.out, text)
    plot(rows, folder)
    print(text)
    summary = {
        "frames": args.frames,
        "frame_height": args.height,
        "frame_width": args.width,
        "tile": list(TRAIN_FRAME),
        "overlap": args.overlap,
        "agent_peak_rss_mb": round(agent_peak_mb, 1),
        "models": "demo models (cloud/edgeinspect_cloud/stack/demo_models)",
        "rows": rows,
    }
    print(json.dumps(summary, sort_keys=True))
    return 0


def _peak_rss_mb(pid: int) -> float:
    """A process's peak resident memory (``VmHWM``), in MB; 0 where /proc does not say."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


if __name__ == "__main__":
    raise SystemExit(main())
