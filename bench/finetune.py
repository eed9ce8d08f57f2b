"""Fine-tuning a default-pipeline classifier on 30 labelled frames of a new line, against a retrain.

What ``pipeline run --init-from defect-cls:N`` does, measured with the same functions:

1. the original line: ``edgeinspect data synth`` defaults (1200 frames 640x232, 20% defective,
   seed 0; 360 in ``test/``), and the ``default`` profile classifier trained on it from scratch
   (the parent; ``--parent RUN`` reuses a trained one);
2. a new line the parent never saw: 40 grey levels darker and a defect kind the original line never
   makes (blisters), ``--new-frames`` (30) labelled frames in ``train/`` and the rest in ``test/``;
3. the fine-tune: :func:`~edgeinspect_cloud.training.config.finetune_config` from the parent's
   config and best checkpoint, trained on the 30 frames (validation: the new line's own frames, the
   threshold policy applied there), timed from start to exported, validated ONNX model.

Both models are evaluated the edge's way at their own shipped thresholds on the new line's other
frames and on the original test split (the regression the pipeline's gate checks). Run from the
repository root (``nice -n 10`` on a shared machine); the last line printed is one JSON object:

    .venv/bin/python -m bench.finetune --out /tmp/finetune-bench [--parent RUN] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from edgeinspect_cloud.data.synth import write_dataset
from edgeinspect_cloud.evaluation.package import evaluate_dataset
from edgeinspect_cloud.evaluation.spec import ModelSpec
from edgeinspect_cloud.training.config import default_config, finetune_config

SHOWN = ("image_ap", "image_auroc", "operating_recall", "operating_false_reject_rate", "operating_precision")
NEW_LINE: dict[str, Any] = {"brightness_shift": -40.0, "defect_kinds": ("blister",)}


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="working folder (datasets, runs)")
    parser.add_argument("--parent", type=Path, help="a trained classifier run folder to start from")
    parser.add_argument("--count", type=int, default=1200, help="original line frames (default 1200)")
    parser.add_argument("--new-count", type=int, default=300, help="new line frames in all (default 300)")
    parser.add_argument("--new-frames", type=int, default=30, help="labelled new-line frames (default 30)")
    parser.add_argument("--threads", type=int, default=2, help="training threads (default 2)")
    parser.add_argument("--epochs", type=int, help="override the parent's epochs (default profile: 30)")
    parser.add_argument(
        "--profile", default="default", choices=["default", "demo"], help="the parent's training profile"
    )
    parser.add_argument("--policy", default="best-f1", help="threshold policy (default best-f1)")
    parser.add_argument("--max-train", type=int, help="cap the parent's training frames (a smaller run)")
    parser.add_argument("--finetune-epochs", type=int, help="override the fine-tune's epochs (default 30)")
    return parser.parse_args(argv)


def _datasets(args: argparse.Namespace) -> tuple[Path, Path]:
    original, new = args.out / "line-original", args.out / "line-new"
    if not (original / "test").is_dir():
        write_dataset(original, count=args.count, defect_ratio=0.2, seed=0)
    if not (new / "test").is_dir():
        share = 1.0 - args.new_frames / args.new_count
        write_dataset(new, count=args.new_count, defect_ratio=0.2, seed=11, test_fraction=share, **NEW_LINE)
    return original, new


def _figures(run: Path, dataset: Path, threads: int) -> dict[str, float]:
    spec = ModelSpec.read(run / "model_spec.json")
    evaluation = evaluate_dataset(run / "model.onnx", spec, dataset, split="test", threads=threads)
    return {k: float(evaluation.metrics[k]) for k in SHOWN if k in evaluation.metrics}


def main(argv: list[str] | None = None) -> int:
    from edgeinspect_cloud.training.classifier import train_classifier

    args = _args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    original, new = _datasets(args)
    data_seconds = time.perf_counter() - started
    parent_run = args.parent or args.out / "parent"
    parent_seconds = None
    if not (parent_run / "result.json").is_file():
        config = default_config("classification", profile=args.profile).with_overrides(
            threads=args.threads,
            progress=False,
            epochs=args.epochs,
            threshold_policy=args.policy,
            max_train_images=args.max_train,
        )
        started = time.perf_counter()
        train_classifier(original, parent_run, config)
        parent_seconds = time.perf_counter() - started
    parent = json.loads((parent_run / "result.json").read_text())
    checkpoint = parent_run / "checkpoints" / Path(parent["checkpoint_path"]).name
    tuned_config = finetune_config(
        parent["config"],
        checkpoint,
        threads=args.threads,
        progress=False,
        threshold_policy=args.policy,
        epochs=args.finetune_epochs,
    )
    started = time.perf_counter()
    tuned = train_classifier(new, args.out / "finetuned", tuned_config)
    tune_seconds = time.perf_counter() - started
    rows = {
        ("parent", "new line"): _figures(parent_run, new, args.threads),
        ("fine-tuned", "new line"): _figures(args.out / "finetuned", new, args.threads),
        ("parent", "original"): _figures(parent_run, original, args.threads),
        ("fine-tuned", "original"): _figures(args.out / "finetuned", original, args.threads),
    }
    _print_table(rows)
    drop = rows[("parent", "original")]["image_ap"] - rows[("fine-tuned", "original")]["image_ap"]
    result = {
        "figures": {f"{model}/{line}": figures for (model, line), figures in rows.items()},
        "original_line_ap_drop": round(drop, 4),
        "finetune_seconds": round(tune_seconds, 1),
        "finetune_epochs_run": tuned.epochs_run,
        "finetune_best_epoch": tuned.best_epoch,
        "initial_loss": tuned.initial_loss,
        "parent_train_seconds": None if parent_seconds is None else round(parent_seconds, 1),
        "data_seconds": round(data_seconds, 1),
        "new_line_train_frames": args.new_frames,
        "threads": args.threads,
        "load_average": os.getloadavg()[0],
        "policy": args.policy,
        "parent_profile": parent["config"].get("height")
        and f"{parent['config']['height']}x{parent['config']['img_width']} width {parent['config']['width']}",
        "original_line_frames": args.count,
    }
    print(f"fine-tune: {tune_seconds:.0f} s ({tuned.epochs_run} epochs, best {tuned.best_epoch}); "
          f"original-line AP drop {drop:+.4f}; parent trained in {parent_seconds or 0:.0f} s")  # fmt: skip
    print(json.dumps(result, sort_keys=True))
    return 0


def _print_table(rows: dict[tuple[str, str], dict[str, float]]) -> None:
    names = {"operating_recall": "recall@shipped", "operating_false_reject_rate": "FRR@shipped",
             "operating_precision": "precision@shipped"}  # fmt: skip
    print(f"{'model':<12}{'line':<10}" + "".join(f"{names.get(k, k):>20}" for k in SHOWN))
    for (model, line), figures in rows.items():
        print(f"{model:<12}{line:<10}" + "".join(f"{figures.get(k, float('nan')):>20.4f}" for k in SHOWN))


if __name__ == "__main__":
    raise SystemExit(main())
