"""``edgeinspect train``: train the classifier and/or the segmenter on a dataset folder.

Each task gets its own folder in the run folder (``<out>/<task>/``: ``model.onnx``, ``model_spec.json``,
``checkpoints/``, ``report/`` on validation, ``report-test/`` on the held-out ``test`` split when the
dataset has one, ``result.json``). The last output line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgeinspect_cloud.commands.cli_errors import reports_errors


def register(subparsers: Any) -> None:
    """Add ``train``."""
    parser = subparsers.add_parser("train", help="train the defect classifier and/or segmenter")
    parser.add_argument("--dataset", type=Path, required=True, help="dataset folder (train/, optional test/)")
    parser.add_argument(
        "--task",
        choices=["classification", "segmentation", "multitask", "anomaly", "both"],
        default="both",
        help="default: both (the two-model layout); multitask: one model, both outputs; anomaly: "
        "good frames only (defect labels ignored), a score and an anomaly map",
    )
    parser.add_argument("--out", type=Path, help="run folder (default: runs/train-<UTC time>)")
    parser.add_argument("--quick", action="store_true", help="tiny, fast settings (demo and tests, < 1 min)")
    parser.add_argument("--epochs", type=int, help="maximum epochs")
    parser.add_argument("--height", type=int, help="model input height")
    parser.add_argument("--width", type=int, help="model input width")
    parser.add_argument(
        "--resize-mode", choices=["stretch", "letterbox", "pad"], help="frame -> input policy"
    )
    parser.add_argument("--base-width", type=int, help="network width (ResNet18 stage 1 / U-Net level 1)")
    parser.add_argument(
        "--arch",
        metavar="RECIPE",
        help="multitask: preset[,key=value...] (cloud/README.md); its width/input replace the defaults",
    )
    parser.add_argument("--device", help="multitask: train on cpu (default), cuda or cuda:N")
    parser.add_argument(
        "--crop-height",
        type=int,
        metavar="ROWS",
        help="segmentation/multitask: train on full-width crops of ROWS rows (a multiple of 16; "
        "default 96 at 320x112), 0 = whole frames; inference always sees the whole frame",
    )
    parser.add_argument("--batch-size", type=int, help="training batch size")
    parser.add_argument("--learning-rate", type=float, help="peak learning rate")
    parser.add_argument("--patience", type=int, help="epochs without validation progress before stopping")
    parser.add_argument("--val-fraction", type=float, help="share of train/ held out for validation")
    parser.add_argument("--max-train-images", type=int, help="cap the training images (stratified)")
    parser.add_argument("--seed", type=int, help="seed of split, initialisation and augmentation")
    parser.add_argument("--threads", type=int, help="CPU threads for the framework (default 2)")
    parser.add_argument(
        "--threshold-policy",
        metavar="POLICY",
        help="how the image threshold is chosen on validation: best-f1 (default), target-recall:R "
        "(recall >= R) or max-false-reject:F (false rejects <= F)",
    )
    parser.add_argument("--no-augment", action="store_true", help="train without augmentation")
    parser.add_argument(
        "--augment",
        choices=["standard", "robust", "off"],
        help="augmentation: standard (default), robust (colour, gamma, blur, texture mixing) or off",
    )
    parser.add_argument(
        "--rehearse",
        action="append",
        default=[],
        metavar="DIR",
        help="a dataset whose train/ frames join the training batches but never validation (repeatable)",
    )
    parser.add_argument(
        "--backbone",
        type=Path,
        metavar="CHECKPOINT",
        help="anomaly: a multi-task checkpoint (or its run folder) whose encoder supplies the features "
        "(its input size replaces --height/--width)",
    )
    parser.add_argument("--no-test", action="store_true", help="skip the evaluation on test/")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(handler=_train)


def config_from_args(args: argparse.Namespace, task: str) -> Any:
    """The task's default (or quick) config with the command line's overrides."""
    from edgeinspect_cloud.data.augment import AugmentConfig
    from edgeinspect_cloud.training.config import TrainConfig, default_config, with_arch, with_crop

    config: TrainConfig = default_config(task, quick=args.quick)  # type: ignore[arg-type]
    if task == "multitask":
        config = with_arch(config, args.arch).with_overrides(device=args.device)
    config = config.with_overrides(
        epochs=args.epochs,
        height=args.height,
        img_width=args.width,
        resize_mode=args.resize_mode,
        width=args.base_width,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        patience=args.patience,
        val_fraction=args.val_fraction,
        max_train_images=args.max_train_images,
        seed=args.seed,
        threads=args.threads,
        threshold_policy=args.threshold_policy,
        augment=AugmentConfig.off()
        if args.no_augment
        else (AugmentConfig.named(args.augment) if args.augment else None),
        progress=False if args.no_progress else None,
        rehearse=tuple(args.rehearse) or None,
        init_weights=backbone_checkpoint(args.backbone, task),
    )
    return with_crop(config, args.crop_height)


def backbone_checkpoint(path: Path | None, task: str) -> str | None:
    """``--backbone`` as a checkpoint file: a multi-task run folder means its best checkpoint."""
    from edgeinspect_cloud.errors import TrainingError

    if path is None:
        return None
    if task != "anomaly":
        raise TrainingError(
            f"--backbone is for the good-parts-only model, not {task}",
            hint="train --task anomaly --backbone RUN/multitask, or drop --backbone",
        )
    for candidate in (
        path,
        path / "checkpoints/multitask-best.pt",
        path / "multitask/checkpoints/multitask-best.pt",
    ):
        if candidate.is_file():
            return str(candidate)
    raise TrainingError(
        f"--backbone {path}: no multi-task checkpoint there",
        hint="name a checkpoint file or a multi-task run folder (it holds checkpoints/multitask-best.pt)",
    )


@reports_errors
def _train(args: argparse.Namespace) -> int:
    from edgeinspect.core.observability import configure_logging

    from edgeinspect_cloud.evaluation.evaluate import json_ready
    from edgeinspect_cloud.evaluation.package import evaluate_dataset
    from edgeinspect_cloud.evaluation.spec import ModelSpec
    from edgeinspect_cloud.training import train
    from edgeinspect_cloud.training.finish import SPEC_FILE

    configure_logging("INFO", service="train")  # one JSON line per epoch on stderr; figures on stdout
    run_dir = args.out or Path("runs") / f"train-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    tasks = ["classification", "segmentation"] if args.task == "both" else [args.task]
    summary: dict[str, Any] = {"run_dir": str(run_dir), "dataset": str(args.dataset), "tasks": {}}
    for task in tasks:
        result = train(task, args.dataset, run_dir / task, config_from_args(args, task))  # type: ignore[arg-type]
        entry: dict[str, Any] = {
            "onnx_path": str(result.onnx_path),
            "onnx_bytes": result.onnx_path.stat().st_size,
            "thresholds": result.thresholds.model_dump(),
            "operating_point": result.operating_point.model_dump() if result.operating_point else None,
            "train_seconds": round(result.train_seconds, 1),
            "epochs_run": result.epochs_run,
            "best_epoch": result.best_epoch,
            "val": json_ready(result.metrics),
        }
        if not args.no_test and (args.dataset / "test").is_dir():
            spec = ModelSpec.read(result.run_dir / SPEC_FILE)
            test = evaluate_dataset(
                result.onnx_path,
                spec,
                args.dataset,
                split="test",
                out_dir=result.run_dir / "report-test",
                progress=not args.no_progress,
            )
            entry["test"] = json_ready(test.metrics)
        summary["tasks"][task] = entry
        print(f"{task}: {json.dumps(entry['val'], sort_keys=True)}", flush=True)
    print(json.dumps(summary, sort_keys=True))
    return 0
