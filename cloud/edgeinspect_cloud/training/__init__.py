"""Training: ResNet18 classifier (PyTorch), U-Net segmenter (Keras 3), multi-task net (PyTorch); ONNX out.

Public API::

    default_config(task, quick=False) -> TrainConfig
    train(task, dataset_dir, run_dir, config=None) -> TrainResult
    train_classifier(dataset_dir, run_dir, config=None) -> TrainResult    # imports torch
    train_segmenter(dataset_dir, run_dir, config=None) -> TrainResult     # imports tensorflow
    train_multitask(dataset_dir, run_dir, config=None) -> TrainResult     # imports torch
    train_anomaly(dataset_dir, run_dir, config=None) -> TrainResult       # good frames only; torch
    export_onnx(model, path, input_spec, output_name, opset=ONNX_OPSET) -> Path
    parity(model, onnx_path, uint8_batch) -> float                        # max |framework - ORT|

torch and tensorflow are imported only when a trainer runs, so importing this package is cheap.
"""

from __future__ import annotations

from pathlib import Path

from edgeinspect_cloud.training.config import (
    ONNX_OPSET,
    TASKS,
    Task,
    TrainConfig,
    TrainResult,
    ValPredictions,
    default_config,
)
from edgeinspect_cloud.training.export import export_onnx, framework_of, parity
from edgeinspect_cloud.training.prepare import PreparedData, prepare_data


def train_classifier(
    dataset_dir: str | Path, run_dir: str | Path, config: TrainConfig | None = None
) -> TrainResult:
    """Train the ResNet18 classifier (see :mod:`edgeinspect_cloud.training.classifier`)."""
    from edgeinspect_cloud.training.classifier import train_classifier as run

    return run(dataset_dir, run_dir, config)


def train_segmenter(
    dataset_dir: str | Path, run_dir: str | Path, config: TrainConfig | None = None
) -> TrainResult:
    """Train the U-Net segmenter (see :mod:`edgeinspect_cloud.training.segmenter`)."""
    from edgeinspect_cloud.training.segmenter import train_segmenter as run

    return run(dataset_dir, run_dir, config)


def train_multitask(
    dataset_dir: str | Path, run_dir: str | Path, config: TrainConfig | None = None
) -> TrainResult:
    """Train the one-pass multi-task network (see :mod:`edgeinspect_cloud.training.multitask`)."""
    from edgeinspect_cloud.training.multitask import train_multitask as run

    return run(dataset_dir, run_dir, config)


def train_anomaly(
    dataset_dir: str | Path, run_dir: str | Path, config: TrainConfig | None = None
) -> TrainResult:
    """Fit the good-parts-only anomaly model (see :mod:`edgeinspect_cloud.training.anomaly`)."""
    from edgeinspect_cloud.training.anomaly import train_anomaly as run

    return run(dataset_dir, run_dir, config)


def train(
    task: Task, dataset_dir: str | Path, run_dir: str | Path, config: TrainConfig | None = None
) -> TrainResult:
    """Train the model of ``task`` with ``config`` (default: :func:`default_config`)."""
    runners = {
        "classification": train_classifier,
        "segmentation": train_segmenter,
        "multitask": train_multitask,
        "anomaly": train_anomaly,
    }
    runner = runners[task]
    return runner(dataset_dir, run_dir, config or default_config(task))


__all__ = [
    "ONNX_OPSET",
    "TASKS",
    "PreparedData",
    "Task",
    "TrainConfig",
    "TrainResult",
    "ValPredictions",
    "default_config",
    "export_onnx",
    "framework_of",
    "parity",
    "prepare_data",
    "train",
    "train_anomaly",
    "train_classifier",
    "train_multitask",
    "train_segmenter",
]
