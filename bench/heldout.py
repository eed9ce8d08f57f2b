"""Unseen surfaces: a model trained on the classic line vs one trained with domain randomisation.

Both arms train the same multi-task model (one network, verdict and mask) with the same settings and
seed; they differ only in what they learn from:

- ``before``: ``data synth --families classic`` (the original generator) and the standard augmentation;
- ``after``: ``data synth --families train`` (twelve surface families, lights, colours, distractors)
  and ``--augment robust``.

Each trained model is compiled (fp32 + static int8, the pipeline's compile step) and evaluated the
edge's way on the HELD-OUT family set (``--families heldout``: surfaces, lights and defect rules
neither arm ever saw) and on the classic line's test split (does robustness cost the original
line?): image AP and AUROC, recall and false-reject rate at the shipped threshold, pixel AP, Dice.
Not part of ``make bench`` (it trains two models); ``--quick`` is a smoke run of the plumbing.

Output: a table, then as the last line one JSON object of the same figures; reports under ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

from edgeinspect_cloud.cli import main as cli

ARMS = {"before": ("classic", "standard"), "after": ("train", "robust")}
FIGURES = ("image_ap", "image_auroc", "operating_recall", "operating_false_reject_rate", "pixel_ap", "dice")


def _cli(args: list[str]) -> None:
    """Run one ``edgeinspect`` command quietly; stop with its output when it fails."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        code = cli(args)
    if code != 0:
        raise SystemExit(f"edgeinspect {' '.join(args)} failed ({code}):\n{buffer.getvalue()[-3000:]}")


def _arm(args: argparse.Namespace, name: str, data: Path, evaluations: dict[str, Path]) -> dict[str, Any]:
    """Train, compile and evaluate one arm; returns {test set: {precision: figures}}."""
    _, augment = ARMS[name]
    run = args.out / f"run-{name}"
    if not (run / "multitask" / "model.onnx").is_file():
        shutil.rmtree(run, ignore_errors=True)
        size = ["--height", str(args.model_height), "--width", str(args.model_width)]
        size += [
            "--base-width",
            str(args.base_width),
            "--epochs",
            str(args.epochs),
            "--patience",
            str(args.epochs),
        ]
        settings = [*size, "--augment", augment, "--no-test", "--no-progress", "--out", str(run)]
        _cli(["train", "--dataset", str(data), "--task", "multitask", *settings])
    pipe = args.out / f"pipe-{name}"
    shutil.rmtree(pipe, ignore_errors=True)
    shutil.copytree(run / "multitask", pipe / "train" / "multitask")
    steps = ["--steps", "data", "compile", "--no-progress"]
    _cli(["pipeline", "run", "--dataset", str(data), "--task", "multitask", "--out", str(pipe), *steps])
    spec = run / "multitask" / "model_spec.json"
    figures: dict[str, Any] = {}
    for label, dataset in evaluations.items():
        for precision, model in (("fp32", "model.onnx"), ("int8", "model.int8.onnx")):
            report = args.out / f"eval-{name}-{label}-{precision}"
            _cli(["evaluate", "--model", str(pipe / "compile" / "multitask" / model), "--spec", str(spec),
                  "--dataset", str(dataset), "--out", str(report), "--no-progress"])  # fmt: skip
            metrics = json.loads((report / "metrics.json").read_text())["metrics"]
            figures.setdefault(label, {})[precision] = {
                k: metrics[k] for k in (*FIGURES, "images", "defective")
            }
    return figures


def _table(results: dict[str, Any]) -> str:
    lines = [
        "| arm | test set | precision | image AP | AUROC | recall @shipped | FRR @shipped | pixel AP "
        "| Dice |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for arm, sets in results.items():
        for label, precisions in sets.items():
            for precision, m in precisions.items():
                cells = " | ".join(f"{m[k]:.3f}" for k in FIGURES)
                lines.append(f"| {arm} | {label} ({int(m['images'])}) | {precision} | {cells} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench/out/heldout"))
    parser.add_argument("--count", type=int, default=600, help="training images per arm (640x232)")
    parser.add_argument("--heldout-count", type=int, default=500, help="held-out images (60%% in test/)")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--model-height", type=int, default=256)
    parser.add_argument("--model-width", type=int, default=96)
    parser.add_argument("--base-width", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny data, 128x48, one epoch")
    args = parser.parse_args(argv)
    frame = ["--height", "640", "--width", "232"]
    if args.quick:
        args.count, args.heldout_count, args.epochs = 40, 30, 1
        args.model_height, args.model_width, args.base_width = 128, 48, 4
        frame = ["--height", "256", "--width", "96"]
    args.out.mkdir(parents=True, exist_ok=True)
    datasets: dict[str, Path] = {}
    heldout = ["--defect-ratio", "0.3", "--test-fraction", "0.6", "--seed", "1000"]
    for label, families, count, extra in (
        ("heldout", "heldout", args.heldout_count, heldout),
        ("classic", "classic", args.count, ["--seed", "0"]),
        ("train", "train", args.count, ["--seed", "0"]),
    ):  # fmt: skip
        folder = args.out / f"data-{label}"
        if not (folder / "synth.json").is_file():
            shutil.rmtree(folder, ignore_errors=True)
            _cli(
                [
                    "data",
                    "synth",
                    "--out",
                    str(folder),
                    "--families",
                    families,
                    "--count",
                    str(count),
                    *frame,
                    *extra,
                ]
            )
        datasets[label] = folder
    evaluations = {"heldout": datasets["heldout"], "classic": datasets["classic"]}
    results = {name: _arm(args, name, datasets[ARMS[name][0]], evaluations) for name in ARMS}
    print(_table(results))
    print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
