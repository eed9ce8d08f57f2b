"""Multi-task architecture sweep: held-out accuracy and ONNX Runtime latency of each recipe, together.

For every preset of :data:`~edgeinspect_cloud.training.multitask_arch.PRESETS` asked for
(``--presets``, default all): train it with the pipeline's trainer (``train_multitask``) on
``--dataset``'s ``train`` split with the ``--profile`` settings, the SAME reduced budget for every
preset (``--epochs``, ``--max-train-images``: a sweep is a comparison, not a release), then evaluate
the exported model the edge's way on the ``test`` split at its shipped thresholds: image AP, AUROC,
recall, Dice, pixel AP. Latency: batch 1 on ONNX Runtime's CPU provider (2 threads), p50/p99 over
``--runs`` calls, fp32 and static int8 (the compile step's quantiser, calibrated on test frames), at
232x640 (the KolektorSDD2 frame, every recipe alike) and fp32 at the recipe's own model input (what
the edge runs after its resize); seeded random weights, since cost does not depend on them.

Training can run elsewhere than the latency (``--device cuda`` where there is a GPU): ``--skip-latency``
writes the accuracy only, ``--accuracy-json FILE`` reads it back and measures latency here, so the
milliseconds are this machine's. Outputs: a table, a PNG (Dice and image AP against int8 latency,
the Pareto front of Dice vs latency marked) in ``--out`` (default ``bench/out/multitask_sweep``), and
as the last line one JSON object with every figure. Run from the repository root:

    nice -n 10 .venv/bin/python -m bench.multitask_sweep --dataset DATA --epochs 4 --max-train-images 300
    .venv/bin/python -m bench.multitask_sweep --dataset DATA --device cuda --skip-latency > acc.txt
    .venv/bin/python -m bench.multitask_sweep --dataset DATA --accuracy-json acc.json   # latency here
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

OUT = Path("bench/out/multitask_sweep")
SIZE = (232, 640)


def _args(argv: list[str] | None) -> argparse.Namespace:
    from edgeinspect_cloud.training.multitask_arch import PRESETS

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True, help="dataset folder with train/ and test/")
    parser.add_argument("--presets", default=",".join(PRESETS), help="comma-separated (default: all)")
    parser.add_argument("--profile", default="demo", choices=["demo", "default", "quick"])
    parser.add_argument("--epochs", type=int, help="epochs for every preset (default: the profile's)")
    parser.add_argument("--max-train-images", type=int, help="cap the training images (every preset alike)")
    parser.add_argument("--device", default="cpu", help="where to train: cpu, cuda")
    parser.add_argument("--runs", type=int, default=40, help="latency calls per figure")
    parser.add_argument("--skip-latency", action="store_true", help="accuracy only (e.g. on a GPU box)")
    parser.add_argument("--accuracy-json", type=Path, help="accuracy from an earlier run's last line")
    parser.add_argument("--out", type=Path, default=OUT, help=f"runs and plot (default {OUT})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    args.out.mkdir(parents=True, exist_ok=True)
    if args.accuracy_json:
        earlier = json.loads(args.accuracy_json.read_text().strip().splitlines()[-1])
        accuracy, conditions = earlier["accuracy"], earlier["conditions"]
    else:
        accuracy, conditions = {}, {}
        for name in presets:
            accuracy[name] = train_and_score(name, args)
            print(f"{name}: {accuracy[name]}", file=sys.stderr, flush=True)
        conditions = _conditions(args)
    load_before = os.getloadavg()
    latency = {} if args.skip_latency else measure_latency(args.dataset, presets, accuracy, args.runs)
    figures = {
        "accuracy": accuracy,
        "latency_ms": latency,
        "conditions": conditions,
        "latency_conditions": {
            "size": f"{SIZE[0]}x{SIZE[1]}", "runs": args.runs, "threads": 2, "cpus": os.cpu_count(),
            "loadavg_before": [round(v, 2) for v in load_before],
            "loadavg_after": [round(v, 2) for v in os.getloadavg()],
        },
    }  # fmt: skip
    if latency:
        figures["pareto"] = pareto(accuracy, latency)
        plot(figures, args.out / "multitask_sweep.png")
    print(format_table(figures))
    print(json.dumps(figures, sort_keys=True))
    return 0


def _conditions(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    return {
        "dataset": str(args.dataset), "profile": args.profile, "epochs": args.epochs,
        "max_train_images": args.max_train_images, "device": args.device, "torch": torch.__version__,
    }  # fmt: skip


# --- accuracy ---------------------------------------------------------------------------------


def sweep_config(name: str, args: argparse.Namespace) -> Any:
    """The profile's multi-task settings with recipe ``name`` and the sweep's shared budget."""
    from edgeinspect_cloud.training.config import default_config, with_arch

    base = default_config("multitask", profile=args.profile)
    return with_arch(base.with_overrides(width=_profile_width(args.profile)), name).with_overrides(
        epochs=args.epochs, max_train_images=args.max_train_images, device=args.device, progress=False
    )


def _profile_width(profile: str) -> int:
    """The profile's own width (the default preset may have replaced it in ``default_config``)."""
    return {"quick": 4, "demo": 8, "default": 12}[profile]


def train_and_score(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Train recipe ``name`` and score it on the test split at its shipped thresholds."""
    from edgeinspect_cloud.data.dataset import list_split
    from edgeinspect_cloud.evaluation.evaluate import evaluate_samples
    from edgeinspect_cloud.evaluation.runner import OnnxModel
    from edgeinspect_cloud.evaluation.spec import ModelSpec
    from edgeinspect_cloud.training.multitask import train_multitask

    config = sweep_config(name, args)
    started = time.perf_counter()
    train_multitask(args.dataset, args.out / "runs" / name, config)
    seconds = time.perf_counter() - started
    folder = args.out / "runs" / name
    spec = ModelSpec.read(folder / "model_spec.json")
    model = OnnxModel(folder / "model.onnx", spec)
    metrics = evaluate_samples(
        model, list_split(args.dataset, "test"), thresholds=spec.thresholds, examples=0
    ).metrics
    keys = ("image_ap", "image_auroc", "operating_recall", "operating_precision", "dice", "pixel_ap")
    return {
        **{key: round(float(metrics[key]), 4) for key in keys if key in metrics},
        "arch": config.arch, "input": f"{config.height}x{config.img_width}",
        "train_s": round(seconds, 1), "params": _params(config),
    }  # fmt: skip


def _params(config: Any) -> int:
    from edgeinspect_cloud.training.multitask_arch import parse_arch
    from edgeinspect_cloud.training.multitask_net import MultiTaskNet

    net = MultiTaskNet(replace(parse_arch(config.arch), width=config.width))
    return int(sum(p.numel() for p in net.parameters()))


# --- latency ----------------------------------------------------------------------------------


def measure_latency(
    dataset: Path, presets: list[str], accuracy: dict[str, Any], runs: int
) -> dict[str, dict[str, float]]:
    """p50/p99 ms of each recipe: fp32 and int8 at 232x640, fp32 at its model input."""
    from bench.multitask import _frames, _int8

    frames = _frames(dataset, 8)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="ei-bench-mtsweep-") as work:
        for name in presets:
            arch_text = accuracy.get(name, {}).get("arch") or name
            height, width = (int(v) for v in accuracy.get(name, {}).get("input", "256x96").split("x"))
            path = _export(Path(work) / f"{name}.onnx", arch_text, SIZE)
            own = _export(Path(work) / f"{name}-own.onnx", arch_text, (height, width))
            int8 = _int8(path, frames)
            own_frames = np.zeros((8, 1, 3, height, width), np.uint8)
            figures = {}
            for label, model, feed in (
                ("fp32", path, frames),
                ("int8", int8, frames),
                ("fp32_own", own, own_frames),
            ):
                p50, p99 = _p50_p99(model, feed, runs)
                figures[f"{label}_p50"], figures[f"{label}_p99"] = p50, p99
            results[name] = figures
            print(f"latency {name}: {figures}", file=sys.stderr, flush=True)
    return results


def _export(path: Path, arch_text: str, size: tuple[int, int]) -> Path:
    import torch
    from edgeinspect.core.package import InputSpec, Normalisation, Resize
    from edgeinspect_cloud.training.export import export_onnx
    from edgeinspect_cloud.training.multitask_arch import parse_arch
    from edgeinspect_cloud.training.multitask_net import ContractMultiTask, MultiTaskNet

    torch.manual_seed(0)
    arch = parse_arch(arch_text)
    model = ContractMultiTask(MultiTaskNet(replace(arch, width=arch.width or 8)), [0.5] * 3, [0.25] * 3)
    spec = InputSpec(
        name="image", shape=[-1, 3, size[0], size[1]], dtype="uint8", colour="RGB",
        resize=Resize(height=size[0], width=size[1], mode="stretch"),
        normalisation=Normalisation(mean=[0.5] * 3, std=[0.25] * 3), normalisation_in_graph=True,
    )  # fmt: skip
    return export_onnx(model.eval(), path, spec, ["defect_probability", "mask_probability"])


def _p50_p99(path: Path, frames: npt.NDArray[np.uint8], runs: int, warmup: int = 3) -> tuple[float, float]:
    from bench.multitask import _session

    session = _session(path, 2)
    for i in range(warmup):
        session.run(None, {"image": frames[i % len(frames)]})
    times = []
    for i in range(runs):
        start = time.perf_counter()
        session.run(None, {"image": frames[i % len(frames)]})
        times.append((time.perf_counter() - start) * 1000.0)
    p99 = float(np.percentile(times, 99))
    return round(float(statistics.median(times)), 2), round(p99, 2)


# --- report -----------------------------------------------------------------------------------


def pareto(accuracy: dict[str, Any], latency: dict[str, Any]) -> list[str]:
    """Recipes no other beats on both int8 p50 at 232x640 (lower) and Dice (higher)."""
    names = [n for n in latency if n in accuracy]
    front = []
    for name in names:
        lat, dice = latency[name]["int8_p50"], accuracy[name].get("dice", 0.0)
        dominated = any(
            latency[o]["int8_p50"] <= lat and accuracy[o].get("dice", 0.0) >= dice
            and (latency[o]["int8_p50"] < lat or accuracy[o].get("dice", 0.0) > dice)
            for o in names if o != name
        )  # fmt: skip
        if not dominated:
            front.append(name)
    return sorted(front, key=lambda n: latency[n]["int8_p50"])


def plot(figures: dict[str, Any], path: Path) -> None:
    """Dice and image AP against int8 p50 latency; the Dice/latency Pareto front joined by a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    acc, lat, front = figures["accuracy"], figures["latency_ms"], figures["pareto"]
    names = [n for n in lat if n in acc]
    fig, ax = plt.subplots(figsize=(8, 5))
    xs = [lat[n]["int8_p50"] for n in names]
    ax.scatter(xs, [acc[n].get("dice", 0.0) for n in names], label="Dice (test)", marker="o")
    ax.scatter(xs, [acc[n].get("image_ap", 0.0) for n in names], label="image AP (test)", marker="^")
    for name, x in zip(names, xs, strict=True):
        ax.annotate(
            name, (x, acc[name].get("dice", 0.0)), fontsize=8, xytext=(4, 4), textcoords="offset points"
        )
    ax.plot([lat[n]["int8_p50"] for n in front], [acc[n].get("dice", 0.0) for n in front], "k--", lw=1,
            label="Pareto front (Dice vs latency)")  # fmt: skip
    ax.axhline(0.6, color="r", lw=0.8, ls=":", label="Dice gate 0.6")
    ax.set_xlabel(f"int8 p50 ms, batch 1, {figures['latency_conditions']['size']}, ONNX Runtime CPU")
    ax.set_ylabel("held-out figure")
    ax.set_title("multi-task recipes: accuracy vs latency")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def format_table(f: dict[str, Any]) -> str:
    acc, lat = f["accuracy"], f["latency_ms"]
    rows = [
        f"held-out test split, shipped thresholds; training {f['conditions']}",
        f"{'preset':<11} {'AP':>6} {'AUROC':>6} {'recall':>6} {'Dice':>6} {'pixAP':>6} {'params':>7} "
        f"{'train s':>8} {'fp32 p50':>9} {'p99':>7} {'int8 p50':>9} {'p99':>7} {'own fp32':>9}  arch",
    ]
    for name, a in acc.items():
        t = lat.get(name, {})
        rows.append(
            f"{name:<11} {a.get('image_ap', float('nan')):>6.3f} {a.get('image_auroc', float('nan')):>6.3f} "
            f"{a.get('operating_recall', float('nan')):>6.3f} {a.get('dice', float('nan')):>6.3f} "
            f"{a.get('pixel_ap', float('nan')):>6.3f} {a['params']:>7} {a['train_s']:>8.0f} "
            f"{t.get('fp32_p50', float('nan')):>9.1f} {t.get('fp32_p99', float('nan')):>7.1f} "
            f"{t.get('int8_p50', float('nan')):>9.1f} {t.get('int8_p99', float('nan')):>7.1f} "
            f"{t.get('fp32_own_p50', float('nan')):>9.1f}  {a['arch']} @ {a['input']}"
        )
    c = f["latency_conditions"]
    rows.append(
        f"latency: batch 1, {c['size']} (own: the recipe's model input), {c['runs']} calls, "
        f"{c['threads']} threads; load average before {c['loadavg_before']} after {c['loadavg_after']} "
        f"on {c['cpus']} CPUs"
    )
    if f.get("pareto"):
        rows.append(f"Pareto front (Dice vs int8 p50): {', '.join(f['pareto'])}")
    return "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())
