"""The good-parts-only (anomaly) model: held-out accuracy, training time and single-frame latency.

Accuracy: the anomaly model (``default`` profile) is fitted on the GOOD frames of a dataset's
``train`` split (its defects are ignored; the calibration reads good validation frames only) and
evaluated the edge's way (core preprocess -> ONNX Runtime -> core postprocess) on the ``test``
split at its shipped thresholds: image AP and AUROC, recall and false-reject rate at the shipped
threshold, pixel AUROC and pixel AP of the anomaly map, Dice of its mask. Lines:

- ``default``: the synthetic generator's line (every surface family mixed, ``--dataset`` or a fresh
  one of ``--count`` frames, ``--seed``);
- one line per ``--families`` name: a line whose parts all have that one surface (the generator's
  family list narrowed to it for that dataset), ``--family-count`` frames, as a new line would be.

Latency: batch 1 on ONNX Runtime's CPU provider, one thread, fp32 (the anomaly model ships fp32),
the fitted network exported at the trained input (256x96, what a 640x232 frame is resized to), at
224x224 and at the full 232x640 frame; p50 over ``--runs`` calls after warm-up, a figure to read
(the load average is printed beside it). Run from the repository root:

    nice -n 10 .venv/bin/python -m bench.anomaly                       # ~10 min on 2 shared cores
    nice -n 10 .venv/bin/python -m bench.anomaly --quick               # smaller lines, fewer runs

The last line printed is one JSON object with every figure; ``bench/out/anomaly/table.md`` keeps the table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from edgeinspect_cloud.data import textures
from edgeinspect_cloud.data.arrays import input_spec
from edgeinspect_cloud.data.dataset import list_split, read_sample
from edgeinspect_cloud.data.synth import write_dataset
from edgeinspect_cloud.evaluation.evaluate import evaluate_samples
from edgeinspect_cloud.evaluation.metrics import roc_auc
from edgeinspect_cloud.evaluation.runner import OnnxModel
from edgeinspect_cloud.evaluation.spec import ModelSpec
from edgeinspect_cloud.training.anomaly import train_anomaly
from edgeinspect_cloud.training.config import default_config
from edgeinspect_cloud.training.export import export_onnx

from bench.report import DEFAULT_OUT, machine, write_report

FIGURES = (
    "image_ap",
    "image_auroc",
    "operating_recall",
    "operating_false_reject_rate",
    "pixel_auroc",
    "pixel_ap",
    "dice",
)
PIXEL_STEP = 4
"""Pixel AUROC reads every 4th row and column of each test frame's map and mask (a fair sample)."""
SIZES = {"trained 256x96": (256, 96), "224x224": (224, 224), "232x640": (640, 232)}


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--dataset", type=Path, help="the default line (else a fresh synthetic one)")
    parser.add_argument("--count", type=int, default=600, help="frames of a fresh default line")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--families", nargs="*", default=["plastic", "brushed"], help="one-surface lines")
    parser.add_argument("--family-count", type=int, default=300)
    parser.add_argument("--runs", type=int, default=40, help="latency calls per size")
    parser.add_argument("--quick", action="store_true", help="200/100-frame lines, 10 latency calls")
    parser.add_argument("--work", type=Path, help="keep datasets and runs here (default: a temp folder)")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"table.md goes to OUT/anomaly (default {DEFAULT_OUT})"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    count, family_count = (200, 100) if args.quick else (args.count, args.family_count)
    runs = 10 if args.quick else args.runs
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="ei-bench-anomaly-") as tmp:
        work = args.work or Path(tmp)
        lines: dict[str, Any] = {}
        default = args.dataset or _dataset(work / "data-default", count, args.seed, None)
        lines["default"], model = measure_line(default, work / "run-default")
        for family in args.families:
            data = _dataset(work / f"data-{family}", family_count, args.seed + 1, family)
            lines[family], _ = measure_line(data, work / f"run-{family}")
        print("accuracy done", file=sys.stderr, flush=True)
        latency = measure_latency(model, work / "latency", runs)
    figures = {"lines": lines, "latency_ms": latency, "runs": runs, **machine(load_before)}
    table = format_table(figures)
    print(table)
    write_report("anomaly", figures, args.out, table)
    print(json.dumps(figures, sort_keys=True))
    return 0


def _dataset(folder: Path, count: int, seed: int, family: str | None) -> Path:
    """A synthetic line at 640x232; ``family`` narrows the generator's surfaces to that one."""
    if (folder / "train").is_dir():
        return folder
    saved = textures.SURFACES
    try:
        if family is not None:
            if family not in saved:
                raise SystemExit(f"unknown surface family {family!r}; the generator has {', '.join(saved)}")
            textures.SURFACES = (family,)
        write_dataset(folder, count=count, seed=seed)
    finally:
        textures.SURFACES = saved
    return folder


def measure_line(dataset: Path, run: Path) -> tuple[dict[str, Any], Any]:
    """Fit on the good training frames, evaluate on the test split at the shipped thresholds."""
    started = time.perf_counter()
    result = train_anomaly(dataset, run, default_config("anomaly").with_overrides(progress=False))
    train_wall = time.perf_counter() - started
    spec = ModelSpec.read(run / "model_spec.json")
    test = list_split(dataset, "test")
    evaluation = evaluate_samples(OnnxModel(result.onnx_path, spec), test, thresholds=spec.thresholds)
    metrics = {**evaluation.metrics, "pixel_auroc": pixel_auroc(OnnxModel(result.onnx_path, spec), test)}
    figures: dict[str, Any] = {k: _round(metrics.get(k)) for k in FIGURES}
    figures.update(
        test_images=len(test),
        test_defective=int(evaluation.labels.sum()),
        good_train=int(result.history[0]["good_train"]),
        fit_s=round(result.train_seconds, 1),
        train_wall_s=round(train_wall, 1),
    )
    return figures, result.model


def pixel_auroc(model: OnnxModel, samples: list[Any]) -> float:
    """AUROC of the anomaly map's pixels against the masks, over every test frame (good ones too)."""
    truths, scores = [], []
    for start in range(0, len(samples), 8):
        chunk = [read_sample(files) for files in samples[start : start + 8]]
        for sample, prediction in zip(chunk, model.predict([s.image for s in chunk]), strict=True):
            assert prediction.probabilities is not None
            truths.append(sample.mask[::PIXEL_STEP, ::PIXEL_STEP].ravel())
            scores.append(prediction.probabilities[::PIXEL_STEP, ::PIXEL_STEP].ravel())
    return roc_auc(np.concatenate(truths), np.concatenate(scores))


def measure_latency(model: Any, folder: Path, runs: int) -> dict[str, float]:
    """p50 ms of one frame at each of :data:`SIZES` (the same fitted network, exported per size)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    figures = {}
    for label, (height, width) in SIZES.items():
        path = export_onnx(
            model, folder / f"{height}x{width}.onnx", input_spec(height, width), ["score", "map"]
        )
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        frame = np.random.default_rng(0).integers(0, 256, (1, 3, height, width), dtype=np.uint8)
        for _ in range(3):
            session.run(None, {"image": frame})
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            session.run(None, {"image": frame})
            times.append((time.perf_counter() - start) * 1000)
        figures[label] = round(statistics.median(times), 2)
    return figures


def _round(value: Any) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 3)


def format_table(figures: dict[str, Any]) -> str:
    header = ["line", *FIGURES, "test (defective)", "good train", "fit s", "train s"]
    rows = [" | ".join(header)]
    for name, line in figures["lines"].items():
        values = [f"{line[k]:.3f}" if line[k] is not None else "-" for k in FIGURES]
        rows.append(
            " | ".join(
                [
                    name,
                    *values,
                    f"{line['test_images']} ({line['test_defective']})",
                    str(line["good_train"]),
                    str(line["fit_s"]),
                    str(line["train_wall_s"]),
                ]
            )
        )
    latency = ", ".join(f"{k} {v} ms" for k, v in figures["latency_ms"].items())
    rows.append(f"latency p50, batch 1, 1 thread, fp32: {latency} (load {figures['loadavg_before']})")
    return "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())
