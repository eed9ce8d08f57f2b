"""One pass vs two models: accuracy on the held-out split, and single-frame latency at 232x640.

Accuracy: the multi-task model the pipeline trained (``--run``: a run folder whose ``train/multitask``
holds ``model.onnx`` and ``model_spec.json``) beside the two-model layout (``--two-models``: a folder
with ``classification/`` and ``segmentation/`` train outputs; default the demo's shipped models,
``cloud/edgeinspect_cloud/stack/demo_models``, trained by the same pipeline with the same ``demo``
profile on the same synthetic line), both evaluated the edge's way (core preprocess -> ONNX Runtime
-> core postprocess) on the ``test`` split of ``--dataset`` at their shipped thresholds. Figures:
image AP and recall of the classification answer, Dice and pixel AP of the mask, and the line's
verdict (rule ``any``: defect when either answer says so) recall and precision.

Latency: batch 1 at 232x640 on ONNX Runtime's CPU provider, fp32 and static int8 (calibrated on
test frames), seeded random weights (cost does not depend on them):

- ``one pass``: the multi-task network at the trained width (``--width``), one ``session.run``;
- ``two models``: ResNet18 at that width and a 4-pool U-Net (base ``--width``), what the demo
  profile trains, run one after the other, and concurrently on two threads (as the worker does);
- ``two models (bench widths)``: ``bench.models``' ResNet18-64 + U-Net-16, what issue 19 measured.

Every latency is a p50 over ``--runs`` calls after warm-up, and a figure to read, never to assert:
the machine's load average is printed beside it. Run from the repository root:

    .venv/bin/python -m bench.multitask --dataset DATA --run RUN_DIR
    .venv/bin/python -m bench.multitask --dataset DATA --run RUN_DIR --quick   # fewer runs

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from edgeinspect.core.preprocess import preprocess

from bench.models import LATENCY_HEIGHT, LATENCY_WIDTH, resnet18_onnx, unet_onnx
from bench.report import machine

SHIPPED = Path("cloud/edgeinspect_cloud/stack/demo_models")


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True, help="dataset folder with a test/ split")
    parser.add_argument("--run", type=Path, required=True, help="pipeline run folder with train/multitask")
    parser.add_argument("--two-models", type=Path, default=SHIPPED, help=f"default {SHIPPED}")
    parser.add_argument("--width", type=int, default=8, help="network width of the trained models (demo: 8)")
    parser.add_argument("--runs", type=int, default=60, help="latency calls per figure")
    parser.add_argument("--quick", action="store_true", help="10 latency calls, no bench-width row")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    runs = 10 if args.quick else args.runs
    load_before = os.getloadavg()
    accuracy = measure_accuracy(args.dataset, args.run, args.two_models)
    print("accuracy done", file=sys.stderr, flush=True)
    latency = measure_latency(args.dataset, args.width, runs, bench_widths=not args.quick)
    figures = {
        "accuracy": accuracy,
        "latency_ms": latency,
        "size": f"{LATENCY_HEIGHT}x{LATENCY_WIDTH}",
        "runs": runs,
        **machine(load_before),
    }
    print(format_table(figures))
    print(json.dumps(figures, sort_keys=True))
    return 0


# --- accuracy ---------------------------------------------------------------------------------


def measure_accuracy(dataset: Path, run: Path, two_models: Path) -> dict[str, dict[str, float]]:
    """Held-out figures of the one-pass model and of the two-model layout (see the module doc)."""
    from edgeinspect_cloud.data.dataset import list_split

    samples = list_split(dataset, "test")
    one = _evaluate(run / "train" / "multitask", samples)
    cls = _evaluate(two_models / "classification", samples)
    seg = _evaluate(two_models / "segmentation", samples)
    labels = one["labels"]
    one_line = _line(labels, one["verdicts"] | one["mask_verdicts"])
    two_line = _line(labels, cls["verdicts"] | seg["verdicts"])
    return {
        "one_pass": {**_headline(one["metrics"], mask=True), **one_line},
        "two_models": {
            **_headline(cls["metrics"], mask=False),
            **{
                k: v
                for k, v in _headline(seg["metrics"], mask=True).items()
                if k.startswith(("dice", "pixel"))
            },
            "mask_image_ap": seg["metrics"]["image_ap"],
            "mask_recall": seg["metrics"].get("operating_recall", float("nan")),
            **two_line,
        },
    }


def _evaluate(folder: Path, samples: list[Any]) -> dict[str, Any]:
    """Evaluate one trained model folder on ``samples`` at its own thresholds, plus per-image verdicts."""
    from edgeinspect_cloud.evaluation.evaluate import evaluate_samples
    from edgeinspect_cloud.evaluation.runner import OnnxModel
    from edgeinspect_cloud.evaluation.spec import ModelSpec

    spec = ModelSpec.read(folder / "model_spec.json")
    assert spec.thresholds is not None, f"{folder} has no thresholds"
    model = OnnxModel(folder / "model.onnx", spec)
    evaluation = evaluate_samples(model, samples, thresholds=spec.thresholds, examples=0)
    verdicts = evaluation.scores >= spec.thresholds.image
    mask_verdicts = np.zeros_like(verdicts)
    if spec.task == "multitask":
        pixel = spec.thresholds.pixel if spec.thresholds.pixel is not None else 0.5
        mask_scores = _mask_scores(model, samples)
        mask_verdicts = mask_scores >= pixel
    return {
        "metrics": evaluation.metrics,
        "labels": evaluation.labels,
        "verdicts": verdicts,
        "mask_verdicts": mask_verdicts,
    }


def _mask_scores(model: Any, samples: list[Any]) -> npt.NDArray[np.float64]:
    from edgeinspect_cloud.data.dataset import read_sample

    scores = []
    for start in range(0, len(samples), 8):
        frames = [read_sample(s).image for s in samples[start : start + 8]]
        scores += [p.mask_score for p in model.predict(frames, with_masks=False)]
    return np.asarray(scores, dtype=np.float64)


def _headline(metrics: dict[str, float], *, mask: bool) -> dict[str, float]:
    keys = ["image_ap", "operating_recall", "operating_precision"]
    if mask:
        keys += ["dice", "pixel_ap", "mask_image_ap", "mask_recall"]
    return {key: round(float(metrics[key]), 4) for key in keys if key in metrics}


def _line(labels: npt.NDArray[np.bool_], verdicts: npt.NDArray[np.bool_]) -> dict[str, float]:
    """The line's verdict (either answer says defect) against the truth."""
    tp = int(np.sum(verdicts & labels))
    fp = int(np.sum(verdicts & ~labels))
    fn = int(np.sum(~verdicts & labels))
    return {
        "line_recall": round(tp / (tp + fn), 4) if tp + fn else float("nan"),
        "line_precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
    }


# --- latency ----------------------------------------------------------------------------------


def measure_latency(
    dataset: Path, width: int, runs: int, *, bench_widths: bool
) -> dict[str, dict[str, float]]:
    """p50 latencies (ms) of one pass vs two models, fp32 and int8 (see the module doc)."""
    frames = _frames(dataset, 8)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="ei-bench-mt-") as work:
        folder = Path(work)
        models = {
            "multitask": _multitask_onnx(folder / "multitask.onnx", width),
            "classifier": _classifier_onnx(folder / "classifier.onnx", width),
            "segmenter": _write(folder / "segmenter.onnx", unet_onnx(240, LATENCY_WIDTH, base=width)),
        }
        if bench_widths:
            models["classifier64"] = _write(folder / "classifier64.onnx", resnet18_onnx())
            segmenter16 = unet_onnx(240, LATENCY_WIDTH, base=16)
            models["segmenter16"] = _write(folder / "segmenter16.onnx", segmenter16)
        for precision in ("fp32", "int8"):
            paths = models if precision == "fp32" else {k: _int8(p, frames) for k, p in models.items()}
            results[precision] = _latencies(paths, frames, runs)
            print(f"latency {precision} done", file=sys.stderr, flush=True)
    return results


def _latencies(paths: dict[str, Path], frames: npt.NDArray[np.uint8], runs: int) -> dict[str, float]:
    two = {name: _session(paths[name], 2) for name in paths}
    one = {name: _session(paths[name], 1) for name in ("classifier", "segmenter")}
    seg_frames = np.pad(frames, ((0, 0), (0, 0), (0, 0), (0, 240 - LATENCY_HEIGHT), (0, 0)))
    feeds = {name: seg_frames if name.startswith("segmenter") else frames for name in paths}
    figures = {
        "one_pass": _p50(lambda i: two["multitask"].run(None, {"image": feeds["multitask"][i]}), runs),
        "classifier": _p50(lambda i: two["classifier"].run(None, {"image": feeds["classifier"][i]}), runs),
        "segmenter": _p50(lambda i: two["segmenter"].run(None, {"image": feeds["segmenter"][i]}), runs),
    }
    figures["two_models_sequential"] = figures["classifier"] + figures["segmenter"]
    with ThreadPoolExecutor(max_workers=2) as pool:

        def both(i: int) -> None:
            jobs = [
                pool.submit(one[n].run, None, {"image": feeds[n][i]}) for n in ("classifier", "segmenter")
            ]
            for job in jobs:
                job.result()

        figures["two_models_concurrent"] = _p50(both, runs)
    if "classifier64" in two:
        figures["two_models_bench_widths_sequential"] = _p50(
            lambda i: two["classifier64"].run(None, {"image": feeds["classifier64"][i]}), runs
        ) + _p50(lambda i: two["segmenter16"].run(None, {"image": feeds["segmenter16"][i]}), runs)
    return {key: round(value, 2) for key, value in figures.items()}


def _p50(call: Any, runs: int, warmup: int = 3) -> float:
    for i in range(warmup):
        call(i % 8)
    times = []
    for i in range(runs):
        start = time.perf_counter()
        call(i % 8)
        times.append((time.perf_counter() - start) * 1000.0)
    return float(statistics.median(times))


def _session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _frames(dataset: Path, count: int) -> npt.NDArray[np.uint8]:
    """``count`` test frames at 232x640, uint8 NCHW batches of one (latency input and calibration)."""
    from edgeinspect.core.package import InputSpec, Normalisation, Resize
    from edgeinspect_cloud.data.dataset import list_split, read_sample

    spec = InputSpec(
        name="image", shape=[1, 3, LATENCY_HEIGHT, LATENCY_WIDTH], dtype="uint8", colour="RGB",
        resize=Resize(height=LATENCY_HEIGHT, width=LATENCY_WIDTH, mode="stretch"),
        normalisation=Normalisation(mean=[0.5] * 3, std=[0.25] * 3), normalisation_in_graph=True,
    )  # fmt: skip
    samples = list_split(dataset, "test")[:count]
    return np.stack([preprocess(read_sample(s).image, spec).tensor for s in samples])


def _int8(path: Path, frames: npt.NDArray[np.uint8]) -> Path:
    from edgeinspect_cloud.compile.optimize import quantize_int8

    calibration = frames[:, 0]
    if "segmenter" in path.name:
        calibration = np.pad(calibration, ((0, 0), (0, 0), (0, 240 - LATENCY_HEIGHT), (0, 0)))
    return quantize_int8(path, path.with_suffix(".int8.onnx"), np.ascontiguousarray(calibration))


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _export(
    model: Any, path: Path, outputs: list[str], size: tuple[int, int] = (LATENCY_HEIGHT, LATENCY_WIDTH)
) -> Path:
    from edgeinspect.core.package import InputSpec, Normalisation, Resize
    from edgeinspect_cloud.training.export import export_onnx

    height, width = size
    spec = InputSpec(
        name="image", shape=[-1, 3, height, width], dtype="uint8", colour="RGB",
        resize=Resize(height=height, width=width, mode="stretch"),
        normalisation=Normalisation(mean=[0.5] * 3, std=[0.25] * 3), normalisation_in_graph=True,
    )  # fmt: skip
    return export_onnx(model.eval(), path, spec, outputs)


def _multitask_onnx(
    path: Path, width: int, views: str = "none", size: tuple[int, int] = (LATENCY_HEIGHT, LATENCY_WIDTH)
) -> Path:
    """The baseline network at ``width`` for a ``size`` input; ``views`` as a recipe's ``views=``."""
    import torch
    from edgeinspect_cloud.training.multitask_arch import parse_arch
    from edgeinspect_cloud.training.multitask_net import ContractMultiTask, MultiTaskNet

    torch.manual_seed(0)
    arch = parse_arch(f"baseline,width={width},views={views}")
    model = ContractMultiTask(MultiTaskNet(arch), [0.5] * 3, [0.25] * 3)
    return _export(model, path, ["defect_probability", "mask_probability"], size)


def _classifier_onnx(path: Path, width: int) -> Path:
    import torch
    from edgeinspect_cloud.training.resnet import ContractClassifier, ResNet18

    torch.manual_seed(0)
    return _export(ContractClassifier(ResNet18(width), [0.5] * 3, [0.25] * 3), path, ["defect_probability"])


# --- report -----------------------------------------------------------------------------------


_COLUMNS = (
    "image_ap", "operating_recall", "operating_precision", "dice", "pixel_ap", "mask_image_ap",
    "mask_recall", "line_recall", "line_precision",
)  # fmt: skip


def format_table(f: dict[str, Any]) -> str:
    acc = f["accuracy"]
    rows = [
        "accuracy on the held-out test split (shipped thresholds)",
        f"{'layout':<12} {'image AP':>9} {'recall':>7} {'prec.':>7} {'Dice':>6} {'pix AP':>7} "
        f"{'mask AP':>8} {'mask rec':>9} {'line rec':>9} {'line prec':>10}",
    ]
    for name in ("one_pass", "two_models"):
        a = {key: acc[name].get(key, float("nan")) for key in _COLUMNS}
        rows.append(
            f"{name:<12} {a['image_ap']:>9.3f} {a['operating_recall']:>7.3f} "
            f"{a['operating_precision']:>7.3f} {a['dice']:>6.3f} {a['pixel_ap']:>7.3f} "
            f"{a['mask_image_ap']:>8.3f} {a['mask_recall']:>9.3f} "
            f"{a['line_recall']:>9.3f} {a['line_precision']:>10.3f}"
        )
    rows += ["", f"latency p50 ms, batch 1, {f['size']}, ONNX Runtime CPU ({f['runs']} calls)"]
    keys = sorted({k for values in f["latency_ms"].values() for k in values})
    rows.append(f"{'':<36}" + "".join(f"{p:>9}" for p in f["latency_ms"]))
    for key in keys:
        rows.append(
            f"{key:<36}"
            + "".join(f"{f['latency_ms'][p].get(key, float('nan')):>9.2f}" for p in f["latency_ms"])
        )
    rows.append(f"load average before {f['loadavg_before']} after {f['loadavg_after']} on {f['cpus']} CPUs")
    return "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())
