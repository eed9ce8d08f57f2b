"""Train the U-Net defect segmenter in Keras 3 (TensorFlow backend): seeded, balanced, early-stopped.

``train_segmenter(dataset_dir, run_dir, config)`` returns a
:class:`~edgeinspect_cloud.training.config.TrainResult` with the exported ``model.onnx`` (tf2onnx).
The loss is binary cross-entropy plus soft Dice over the batch: cross-entropy alone lets a net that
predicts "no defect" everywhere look good, since defect pixels are well under 1% of all pixels.
Validation micro-Dice picks the best epoch (``checkpoints/segmenter-best.weights.h5``) and stops early.
With ``config.init_weights`` (a fine-tune) the U-Net starts from that checkpoint, validated first as
"epoch 0" (recorded, not a candidate for the best epoch; see ``torchfit``), and the best epoch's weights
are blended with the parent's (``config.blend``) into ``checkpoints/segmenter-blended.weights.h5``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from edgeinspect.core.observability import get_logger
from edgeinspect.core.package import Framework

from edgeinspect_cloud.data.arrays import ArraySet
from edgeinspect_cloud.data.augment import balanced_order
from edgeinspect_cloud.errors import TrainingError
from edgeinspect_cloud.evaluation.metrics import average_precision, dice_iou
from edgeinspect_cloud.training.blend import blended
from edgeinspect_cloud.training.config import TrainConfig, TrainResult, default_config
from edgeinspect_cloud.training.epochs import run_epoch
from edgeinspect_cloud.training.finish import FitOutcome, run_training
from edgeinspect_cloud.training.prepare import PreparedData

log = get_logger("edgeinspect.cloud.train.segmenter")


def configure_tensorflow(seed: int, threads: int) -> None:
    """Seed Python, numpy and TF; deterministic ops; ``threads`` intra/inter-op threads.

    Thread counts can only be set before TensorFlow's runtime starts; in a process that already used
    TF they are left as they were (the run is still deterministic, only its speed differs).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        log.debug("tf_threads_already_set", threads=threads)
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def dice_bce_loss(y_true: Any, y_pred: Any) -> Any:
    """Binary cross-entropy plus (1 - soft Dice) computed over the whole batch."""
    from keras import ops

    y_true = ops.cast(y_true, "float32")
    eps = 1e-6
    clipped = ops.clip(y_pred, eps, 1.0 - eps)
    bce = -ops.mean(y_true * ops.log(clipped) + (1.0 - y_true) * ops.log(1.0 - clipped))
    inter = ops.sum(y_true * y_pred)
    dice = (2.0 * inter + 1.0) / (ops.sum(y_true) + ops.sum(y_pred) + 1.0)
    return bce + (1.0 - dice)


def build_segmenter(config: TrainConfig, data: PreparedData, steps: int, height: int | None = None) -> Any:
    """The compiled U-Net (Adam with cosine decay over ``steps`` batches) for ``height`` rows of input."""
    import keras

    from edgeinspect_cloud.training.unet import build_unet

    norm = data.spec.normalisation
    model = build_unet(
        height or config.height,
        config.img_width,
        base_filters=config.width,
        mean=norm.mean,
        std=norm.std,
        scale=norm.scale,
    )
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.learning_rate, decay_steps=max(1, steps), alpha=0.05
    )
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=dice_bce_loss, jit_compile=False)
    return model


def predict_masks(model: Any, images: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """Per-pixel probabilities ``NxHxW`` of uint8 NCHW images (inference mode)."""
    out = [
        np.asarray(model(images[start : start + batch_size], training=False))[:, 0]
        for start in range(0, len(images), batch_size)
    ]
    return np.concatenate(out) if out else np.zeros((0, *images.shape[2:]), np.float32)


def train_segmenter(
    dataset_dir: str | Path,
    run_dir: str | Path,
    config: TrainConfig | None = None,
    *,
    data: PreparedData | None = None,
) -> TrainResult:
    """Train, export and validate the U-Net on ``dataset_dir/train``; artefacts go to ``run_dir``."""
    cfg = config or default_config("segmentation")
    return run_training(dataset_dir, run_dir, cfg, data, configure=configure_tensorflow, fit=_fit, log=log)


def _fit(cfg: TrainConfig, data: PreparedData, folder: Path) -> FitOutcome:
    import keras
    import tensorflow as tf
    from tqdm import tqdm

    steps = (
        len(balanced_order(data.train.labels, np.random.default_rng(0), cfg.defect_share)) // cfg.batch_size
    )
    crop = cfg.crop_height if cfg.crop_height and cfg.crop_height < cfg.height else None
    model = build_segmenter(cfg, data, steps * cfg.epochs)
    trainee = build_segmenter(cfg, data, steps * cfg.epochs, height=crop) if crop else model
    best_path = folder / "checkpoints/segmenter-best.weights.h5"
    last_path = folder / "checkpoints/segmenter-last.weights.h5"
    history: list[dict[str, float]] = []
    best: tuple[float, float] = (-1.0, -1.0)
    best_epoch, stale, started = 0, 0, time.perf_counter()
    if cfg.init_weights:
        _load_weights(model, cfg.init_weights)
        if trainee is not model:
            trainee.set_weights(model.get_weights())
    parent = [w.copy() for w in model.get_weights()] if cfg.blend < 1 else None
    initial = _initial_loss(model, data, cfg)
    if cfg.init_weights:  # where the parent stands on the new data, before any update: epoch 0
        history.append({"epoch": 0, "loss": initial, **_validate(model, data.val)})
    epochs = tqdm(range(1, cfg.epochs + 1), desc="segmenter", unit="epoch", disable=not cfg.progress)
    for epoch in epochs:
        loss = _train_epoch(trainee, data.train, cfg, epoch, crop)
        if trainee is not model:  # same layers, any input height: the weights carry over as they are
            model.set_weights(trainee.get_weights())
        scores = _validate(model, data.val)
        history.append({"epoch": epoch, "loss": loss, **scores})
        epochs.set_postfix(
            loss=f"{loss:.4f}", val_dice=f"{scores['val_dice']:.4f}", val_ap=f"{scores['val_ap']:.4f}"
        )
        log.info("epoch_done", task=cfg.task, **history[-1])
        model.save_weights(last_path)
        if (scores["val_dice"], scores["val_ap"]) > best:
            best, best_epoch, stale = (scores["val_dice"], scores["val_ap"]), epoch, 0
            model.save_weights(best_path)
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    seconds = time.perf_counter() - started
    model.load_weights(best_path)
    if parent is not None:  # ship part of the way from the parent to the fine-tune (training/blend.py)
        tuned = model.get_weights()
        model.set_weights([blended(p, t, cfg.blend) for p, t in zip(parent, tuned, strict=True)])
        best_path = folder / "checkpoints/segmenter-blended.weights.h5"
        model.save_weights(best_path)
        log.info("fine_tune_blended", task=cfg.task, share=cfg.blend, best_epoch=best_epoch)
    framework = Framework(name="keras", version=f"{keras.__version__} (tensorflow {tf.__version__})")
    epochs_run = sum(1 for row in history if row["epoch"] > 0)
    return FitOutcome(model, framework, best_path, history, best_epoch, epochs_run, seconds, initial)


def _load_weights(model: Any, path: str) -> None:
    """Start from a stored U-Net checkpoint; another network's weights are a clear error."""
    try:
        model.load_weights(path)
    except (OSError, ValueError) as exc:
        raise TrainingError(
            f"cannot start the U-Net from {path}: {str(exc).splitlines()[0]}",
            hint="the checkpoint must come from the same network and settings (fine-tune with the "
            "parent version's own config, as pipeline run --init-from does)",
        ) from exc


def _initial_loss(model: Any, data: PreparedData, cfg: TrainConfig) -> float:
    """The loss on the first training batch (as stored, no augmentation) before any update."""
    count = min(cfg.batch_size, len(data.train))
    if count == 0:
        return float("nan")
    predicted = model(data.train.images[:count], training=False)
    return float(np.asarray(dice_bce_loss(data.train.masks[:count, None], predicted)))


def _train_epoch(model: Any, train: ArraySet, cfg: TrainConfig, epoch: int, crop: int | None) -> float:
    """One pass over a balanced, shuffled, augmented, cropped epoch; returns the mean training loss."""

    def step(images: np.ndarray, masks: np.ndarray, labels: np.ndarray) -> float:
        return float(np.asarray(model.train_on_batch(images, masks[:, None])).ravel()[0])

    return run_epoch(train, cfg, epoch, step, crop=crop)


def _validate(model: Any, val: ArraySet) -> dict[str, float]:
    """Micro Dice at 0.5 over defective validation images, and image AP of the max-pixel score."""
    probs = predict_masks(model, val.images)
    defective = val.labels
    truth = val.masks[defective] >= 0.5
    dice = dice_iou(truth, probs[defective] >= 0.5)[0] if defective.any() else float("nan")
    scores = probs.reshape(len(probs), -1).max(axis=1) if len(probs) else np.zeros(0)
    return {"val_dice": float(dice), "val_ap": average_precision(val.labels, scores)}
