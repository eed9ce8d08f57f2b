"""The end of every training run: export, check parity, evaluate on validation through ONNX Runtime.

Thresholds are chosen here, on the validation split and through the exported ONNX model run the
edge's way (core preprocess -> ONNX Runtime -> core postprocess): the image threshold by the run's
threshold policy (best F1 unless the quality engineer set a recall target or a false-reject limit),
the pixel threshold maximises Dice. They are written with the input, the outputs and the operating
point (policy and validation figures) to ``model_spec.json`` beside ``model.onnx``, which
``evaluate --model`` and the packaging step read; the package's manifest carries them to the edge.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from edgeinspect.core.observability import StructLogger
from edgeinspect.core.package import TWO_OUTPUT_TASKS, Framework, OperatingPoint, OutputSpec, Thresholds
from edgeinspect.core.postprocess import classification_score, segmentation_score_and_mask

from edgeinspect_cloud.evaluation.evaluate import evaluate_samples
from edgeinspect_cloud.evaluation.metrics import ThresholdPolicy, choose_operating_point, confusion
from edgeinspect_cloud.evaluation.report import write_report
from edgeinspect_cloud.evaluation.runner import OnnxModel
from edgeinspect_cloud.evaluation.spec import ModelSpec
from edgeinspect_cloud.training.config import TrainConfig, TrainResult, ValPredictions
from edgeinspect_cloud.training.export import export_onnx, parity
from edgeinspect_cloud.training.prepare import PreparedData, prepare_data

MODEL_FILE = "model.onnx"
SPEC_FILE = "model_spec.json"
OUTPUT_NAMES = {"classification": "defect_probability", "segmentation": "mask_probability"}
PARITY_BATCH = 8
ANOMALY_THRESHOLD = 0.5
"""Both thresholds of an anomaly model: its outputs are calibrated so that 0.5 is the chosen point."""


@dataclass
class FitOutcome:
    """What a framework's training loop hands to :func:`finish_run`."""

    model: Any
    framework: Framework
    checkpoint_path: Path
    history: list[dict[str, float]]
    best_epoch: int
    epochs_run: int
    train_seconds: float
    initial_loss: float = float("nan")
    """Loss on the first training batch before any update (low when the run started from weights)."""


def run_training(
    dataset_dir: str | Path,
    run_dir: str | Path,
    cfg: TrainConfig,
    data: PreparedData | None,
    *,
    configure: Callable[[int, int], None],
    fit: Callable[[TrainConfig, PreparedData, Path], FitOutcome],
    log: StructLogger,
) -> TrainResult:
    """Every trainer's frame: run folder and ``config.json``, seeded framework, data, fit, finish.

    ``data`` lets a caller reuse arrays already prepared with the same config (e.g. in tests).
    """
    folder = Path(run_dir)
    (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(
        json.dumps(cfg.to_dict(), indent=2, sort_keys=True, default=str) + "\n"
    )
    configure(cfg.seed, cfg.threads)
    prepared = data or prepare_data(dataset_dir, cfg)
    log.info(
        "train_start", task=cfg.task, train=len(prepared.train), val=len(prepared.val), run_dir=str(folder)
    )
    outcome = fit(cfg, prepared, folder)
    result = finish_run(folder, cfg, prepared, outcome)
    result.write_summary()
    log.info("train_done", task=cfg.task, seconds=round(outcome.train_seconds, 1), **result.metrics)
    return result


def output_spec(task: str, height: int, width: int) -> OutputSpec:
    """The contract's output: ``defect_probability [N, 1]`` or ``mask_probability [N, 1, H, W]``."""
    name = OUTPUT_NAMES[task]
    shape = [-1, 1] if task == "classification" else [-1, 1, height, width]
    return OutputSpec(name=name, meaning=name, shape=shape)  # type: ignore[arg-type]


def output_specs(task: str, height: int, width: int) -> list[OutputSpec]:
    """A task's outputs in model order: a multi-task model has both, the image score first."""
    if task in TWO_OUTPUT_TASKS:
        return [output_spec(t, height, width) for t in ("classification", "segmentation")]
    return [output_spec(task, height, width)]


def finish_run(run_dir: Path, config: TrainConfig, data: PreparedData, fit: FitOutcome) -> TrainResult:
    """Export ``fit.model``, measure parity and validation metrics, write the spec and the report."""
    outputs = output_specs(config.task, data.spec.resize.height, data.spec.resize.width)
    names = [output.name for output in outputs]
    onnx_path = export_onnx(fit.model, run_dir / MODEL_FILE, data.spec, names)
    max_diff = parity(fit.model, onnx_path, data.val.images[:PARITY_BATCH], input_name=data.spec.name)
    spec = ModelSpec(task=config.task, input=data.spec, outputs=outputs)
    runner = OnnxModel(onnx_path, spec, threads=config.threads)
    fixed = Thresholds(image=ANOMALY_THRESHOLD, pixel=ANOMALY_THRESHOLD) if config.task == "anomaly" else None
    evaluation = evaluate_samples(runner, data.val_files, thresholds=fixed, progress=config.progress)
    if config.task == "anomaly":  # calibrated in the graph on good frames: 0.5 is the policy's point
        point = calibrated_point(
            evaluation.labels, evaluation.scores, ThresholdPolicy.parse(config.threshold_policy)
        )
        thresholds = Thresholds(image=ANOMALY_THRESHOLD, pixel=ANOMALY_THRESHOLD)
    else:
        point = choose_operating_point(
            evaluation.labels, evaluation.scores, ThresholdPolicy.parse(config.threshold_policy)
        )
        thresholds = Thresholds(image=point.threshold, pixel=evaluation.pixel_threshold)
    spec.model_copy(update={"thresholds": thresholds, "operating_point": point}).write(run_dir / SPEC_FILE)
    metrics = {**evaluation.metrics, **operating_metrics(point), "onnx_parity_max_abs_diff": max_diff}
    evaluation.metrics = metrics
    report_dir = write_report(
        evaluation,
        run_dir / "report",
        title=f"{config.task} - validation split",
        context={
            "model": str(onnx_path),
            "split": "validation (from train)",
            "fingerprint": data.fingerprint,
        },
    )
    return TrainResult(
        task=config.task,
        run_dir=run_dir,
        onnx_path=onnx_path,
        checkpoint_path=fit.checkpoint_path,
        model=fit.model,
        framework=fit.framework,
        input=data.spec,
        outputs=outputs,
        thresholds=thresholds,
        metrics=metrics,
        dataset_fingerprint=data.fingerprint,
        validation=_val_predictions(runner, data),
        train_seconds=fit.train_seconds,
        epochs_run=fit.epochs_run,
        best_epoch=fit.best_epoch,
        config=config,
        history=fit.history,
        report_dir=report_dir,
        operating_point=point,
        initial_loss=fit.initial_loss,
    )


def calibrated_point(
    labels: np.ndarray, scores: np.ndarray, policy: ThresholdPolicy, split: str = "validation"
) -> OperatingPoint:
    """An anomaly model's operating point: fixed at :data:`ANOMALY_THRESHOLD` (the calibration put the
    policy's raw threshold there, from good frames alone); ``met`` judges the false-reject limit on
    the good frames, and recall/precision come from the split's defects when it has any (report only)."""
    table = confusion(labels, scores, ANOMALY_THRESHOLD)
    positives = int(np.sum(labels))
    frr = table.false_reject_rate
    return OperatingPoint(
        policy=str(policy),
        threshold=ANOMALY_THRESHOLD,
        split=split,
        met=bool(policy.target is not None and np.isfinite(frr) and frr <= policy.target + 1e-9),
        precision=table.precision if positives else None,
        recall=table.recall if positives else None,
        false_reject_rate=float(frr) if np.isfinite(frr) else None,
        f1=table.f1 if positives else None,
        images=int(np.size(labels)),
        defective=positives,
        false_rejects=table.fp,
        escapes=table.fn,
    )


def operating_metrics(point: OperatingPoint) -> dict[str, float]:
    """The ``operating_*`` figures at the chosen threshold, named as ``evaluate`` names them on a
    packaged model, so the quality gate reads validation and test figures alike."""
    figures = {
        "operating_threshold": point.threshold,
        "operating_precision": point.precision,
        "operating_recall": point.recall,
        "operating_false_reject_rate": point.false_reject_rate,
        "operating_f1": point.f1,
        "operating_false_rejects": float(point.false_rejects),
    }
    return {key: float(value) for key, value in figures.items() if value is not None}


def _val_predictions(runner: OnnxModel, data: PreparedData, batch_size: int = 16) -> ValPredictions:
    """ONNX Runtime's answers on the model-ready validation arrays (scores, and model-size masks)."""
    images = data.val.images
    scores = np.zeros(len(images))
    masks = (
        None
        if runner.spec.task == "classification"
        else np.zeros((len(images), *images.shape[2:]), np.float32)
    )
    meaning = runner.answer.meaning
    for start in range(0, len(images), batch_size):
        output, mask_out = runner.run_both(images[start : start + batch_size])
        for offset in range(output.shape[0]):
            one = output[offset : offset + 1]
            if masks is None:
                scores[start + offset] = classification_score(one, meaning)
            elif mask_out is not None:  # multi-task: the classifier's score, the mask beside it
                scores[start + offset] = classification_score(one, meaning)
                masks[start + offset] = mask_out[offset].reshape(images.shape[2:])
            else:
                scores[start + offset], _ = segmentation_score_and_mask(one, meaning, 0.5)
                masks[start + offset] = one.reshape(images.shape[2:])
    return ValPredictions(list(data.val.ids), images, data.val.labels.copy(), scores, masks)
