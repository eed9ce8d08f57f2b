"""The model-making steps: data (check, join, fingerprint), train, evaluate on the held-out split.

They call the dataset, training and evaluation packages' public functions; this module only decides
where things go in the run folder and what each step reports.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from edgeinspect_cloud.data.augment import AugmentConfig
from edgeinspect_cloud.data.dataset import SPLITS, list_split, read_mask
from edgeinspect_cloud.data.fingerprint import dataset_fingerprint
from edgeinspect_cloud.data.synth import refuse_heldout
from edgeinspect_cloud.evaluation.evaluate import evaluate_samples, json_ready
from edgeinspect_cloud.evaluation.report import write_report
from edgeinspect_cloud.evaluation.runner import OnnxModel
from edgeinspect_cloud.evaluation.spec import ModelSpec
from edgeinspect_cloud.pipeline.finetune import (
    anomaly_backbone,
    dataset_sources,
    evaluate_lines,
    prepare_init,
    rehearsal_folders,
)
from edgeinspect_cloud.pipeline.layout import PipelineError, PipelineOptions, RunLayout, Task
from edgeinspect_cloud.training.config import (
    TrainConfig,
    TrainResult,
    default_config,
    with_arch,
    with_crop,
)

SPEC_FILE = "model_spec.json"
MODEL_FILE = "model.onnx"


def step_data(options: PipelineOptions, layout: RunLayout) -> dict[str, Any]:
    """Check every dataset, join several into one folder of links, fingerprint what will be trained on."""
    if not options.datasets:
        raise PipelineError("the data step needs at least one --dataset", hint="pass --dataset DIR")
    new_line = bool(options.init_from) or list(options.tasks) == ["anomaly"]
    for path in options.datasets:  # the held-out family set is for evaluation, never training
        refuse_heldout(path, new_line=new_line)
    read = {str(path): _read_splits(path) for path in options.datasets}
    counts = {name: splits for name, (splits, _) in read.items()}
    sizes = {size for _, size in read.values()}
    root = (
        options.datasets[0]
        if len(options.datasets) == 1
        else join_datasets(options.datasets, layout.union_dir)
    )
    summary = {
        "datasets": [str(path) for path in options.datasets],
        "sources": dataset_sources(options, layout),
        "root": str(root),
        "fingerprint": dataset_fingerprint(root),
        "counts": counts,
        "total": _total(counts.values()),  # the union links every file of every dataset
        "frame_size": sizes.pop() if len(sizes) == 1 else None,
    }
    layout.write(layout.data_json, summary)
    return summary


def _read_splits(root: Path) -> tuple[dict[str, dict[str, int]], tuple[int, int] | None]:
    """Images and defective images per split (``train`` must exist; ``test`` is optional), and the
    size every training frame shares (``None``: sizes differ), from one read of each mask (a mask
    has its image's size)."""
    counts, size = {}, None
    for split in SPLITS:
        if split != "train" and not (root / split).is_dir():
            continue
        images, defective, sizes = 0, 0, set()
        for files in list_split(root, split):
            mask = read_mask(files)
            images, defective = images + 1, defective + int(mask.any())
            sizes.add((int(mask.shape[0]), int(mask.shape[1])))
        counts[split] = {"images": images, "defective": defective}
        if split == "train":
            size = sizes.pop() if len(sizes) == 1 else None
    return counts, size


def _total(counts: Iterable[dict[str, dict[str, int]]]) -> dict[str, dict[str, int]]:
    """Per-split sums over datasets: the counts of their union."""
    total: dict[str, dict[str, int]] = {}
    for splits in counts:
        for split, figures in splits.items():
            into = total.setdefault(split, {"images": 0, "defective": 0})
            into["images"] += figures["images"]
            into["defective"] += figures["defective"]
    return total


def join_datasets(datasets: list[Path], union: Path) -> Path:
    """Link every image and mask of every dataset into ``union/{split}/d{i}-{name}`` (names stay paired).

    Links keep the union cheap for big datasets; each dataset's files keep their own name behind a
    per-dataset prefix, so ``10000.png`` of two datasets never collide and masks stay beside images.
    """
    for index, dataset in enumerate(datasets):
        for split in SPLITS:
            if not (dataset / split).is_dir():
                continue
            target = union / split
            target.mkdir(parents=True, exist_ok=True)
            for files in list_split(dataset, split):
                for path in (files.image_path, files.mask_path):
                    _link(path.resolve(), target / f"d{index}-{path.name}")
    return union


def _link(source: Path, link: Path) -> None:
    if link.is_symlink() or link.exists():
        if link.resolve() == source:
            return
        link.unlink()
    try:
        os.symlink(source, link)
    except OSError:  # a filesystem without links: copy instead
        link.write_bytes(source.read_bytes())


def train_config(options: PipelineOptions, task: Task) -> TrainConfig:
    """The trainer's defaults for ``task`` (its profile), with this run's seed, epochs and progress.

    A multi-task run also takes ``--arch`` (the recipe, its width and input size) and ``--device``;
    the segmenter and the multi-task model take ``--crop-height``.
    """
    config = default_config(task, quick=options.quick, profile=options.profile).with_overrides(
        augment=None if options.augment is None else AugmentConfig.named(options.augment),
        seed=options.seed,
        epochs=options.epochs,
        progress=options.progress,
        threshold_policy=options.threshold_policy,
    )
    if task == "multitask":
        config = with_arch(config, options.arch).with_overrides(device=options.device)
    return with_crop(config, options.crop_height)


def step_train(options: PipelineOptions, layout: RunLayout, task: Task) -> tuple[dict[str, Any], TrainResult]:
    """Train ``task`` on the data step's dataset; the trainer exports ONNX and writes its spec."""
    root = layout.dataset_root()
    trainer = _trainer(task)
    config = prepare_init(options, layout, task) or train_config(options, task)
    config = config.with_overrides(
        rehearse=tuple(rehearsal_folders(options, layout)) or None,
        init_weights=anomaly_backbone(options, layout, task),
    )
    result = trainer(root, layout.train_dir(task), config)
    return result.summary(), result


def _trainer(task: Task) -> Callable[..., TrainResult]:
    """Imported on use: the classifier and the multi-task net pull in torch, the segmenter tensorflow."""
    if task == "classification":
        from edgeinspect_cloud.training.classifier import train_classifier

        return train_classifier
    if task == "multitask":
        from edgeinspect_cloud.training.multitask import train_multitask

        return train_multitask
    if task == "anomaly":
        from edgeinspect_cloud.training.anomaly import train_anomaly

        return train_anomaly
    from edgeinspect_cloud.training.segmenter import train_segmenter

    return train_segmenter


def trained_spec(layout: RunLayout, task: Task) -> ModelSpec:
    """The trained model's spec (input, outputs, thresholds chosen on validation)."""
    return ModelSpec.read(layout.require(layout.train_dir(task) / SPEC_FILE, "train"))


def step_evaluate(options: PipelineOptions, layout: RunLayout, task: Task) -> dict[str, Any]:
    """Evaluate the trained ONNX model on the held-out ``test`` split at its operating thresholds,
    and on each line separately (every dataset of the run; fine-tuned, every earlier line too)."""
    root = layout.dataset_root()
    spec = trained_spec(layout, task)
    model_path = layout.require(layout.train_dir(task) / MODEL_FILE, "train")
    lines = evaluate_lines(options, layout, task, model_path, spec)
    if not (root / "test").is_dir():
        return {
            "skipped": f"{root} has no test split; the validation figures of training stand",
            "lines": _line_summary(lines),
        }
    samples = list_split(root, "test")
    evaluation = evaluate_samples(
        OnnxModel(model_path, spec), samples, thresholds=spec.thresholds, progress=options.progress
    )
    folder = write_report(
        evaluation,
        layout.evaluate_dir(task),
        title=f"{task} - held-out test split",
        context={"model": str(model_path), "dataset": str(root), "split": "test"},
    )
    return {"report": str(folder), "metrics": json_ready(evaluation.metrics), "lines": _line_summary(lines)}


def _line_summary(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """Per line: image AP (and the parent's on an earlier line), for the summary and the step line."""
    summary: dict[str, Any] = {}
    for row in lines:
        entry = {"image_ap": row["metrics"].get("image_ap")}
        if "parent_metrics" in row:
            entry["parent_image_ap"] = row["parent_metrics"].get("image_ap")
        summary[row["name"]] = entry
    return summary
