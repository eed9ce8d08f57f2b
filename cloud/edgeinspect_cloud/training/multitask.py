"""Train the multi-task network (one pass: verdict and mask) in PyTorch with mixed supervision.

``train_multitask(dataset_dir, run_dir, config)`` returns a
:class:`~edgeinspect_cloud.training.config.TrainResult` whose ``model.onnx`` has two outputs,
``defect_probability`` and ``mask_probability``. The loss is the image label's cross-entropy plus
the mask's (positive-weighted cross-entropy and soft Dice over the batch, as the U-Net's): every
image teaches the classifier, every mask the segmentation head, and both share the encoder.

Training may use full-width crops (``config.crop_height``) for speed; a crop's image label is then
whether it holds a defect pixel (mask supervision makes that exact). After each epoch the
validation image AP plus Dice picks the best weights (``checkpoints/multitask-best.pt``) and stops
training early.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from edgeinspect.core.observability import get_logger
from edgeinspect.core.package import Framework
from tqdm import tqdm

from edgeinspect_cloud.data.arrays import ArraySet
from edgeinspect_cloud.data.augment import augment_batch, balanced_order, crop_rows
from edgeinspect_cloud.evaluation.metrics import average_precision, dice_iou
from edgeinspect_cloud.training.classifier import configure_torch
from edgeinspect_cloud.training.config import TrainConfig, TrainResult, default_config
from edgeinspect_cloud.training.finish import FitOutcome, finish_run
from edgeinspect_cloud.training.multitask_net import ContractMultiTask, MultiTaskNet
from edgeinspect_cloud.training.prepare import PreparedData, prepare_data

log = get_logger("edgeinspect.cloud.train.multitask")

MASK_WEIGHT = 1.0
"""Weight of the mask loss beside the image loss."""
MASK_POS_WEIGHT = 10.0
"""Weight of a defect pixel against a good one in the mask's cross-entropy (defects are < 1%)."""


def build_multitask(config: TrainConfig, data: PreparedData) -> ContractMultiTask:
    """The network of ``config.width`` wrapped with the input's normalisation (uint8 in)."""
    norm = data.spec.normalisation
    return ContractMultiTask(MultiTaskNet(config.width), norm.mean, norm.std, norm.scale)


def predict_both(
    model: ContractMultiTask, images: np.ndarray, batch_size: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """(defect probabilities ``[N]``, mask probabilities ``[N, H, W]``) of uint8 NCHW images."""
    model.eval()
    scores, masks = [], []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            score, mask = model(torch.from_numpy(images[start : start + batch_size]))
            scores.append(score.numpy()[:, 0])
            masks.append(mask.numpy()[:, 0])
    if not scores:
        return np.zeros(0, np.float32), np.zeros((0, *images.shape[2:]), np.float32)
    return np.concatenate(scores), np.concatenate(masks)


def train_multitask(
    dataset_dir: str | Path,
    run_dir: str | Path,
    config: TrainConfig | None = None,
    *,
    data: PreparedData | None = None,
) -> TrainResult:
    """Train, export (two outputs) and validate the multi-task model; artefacts go to ``run_dir``."""
    cfg = config or default_config("multitask")
    folder = Path(run_dir)
    (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(
        json.dumps(cfg.to_dict(), indent=2, sort_keys=True, default=str) + "\n"
    )
    configure_torch(cfg.seed, cfg.threads)
    prepared = data or prepare_data(dataset_dir, cfg)
    log.info(
        "train_start", task=cfg.task, train=len(prepared.train), val=len(prepared.val), run_dir=str(folder)
    )
    fit = _fit(cfg, prepared, folder)
    result = finish_run(folder, cfg, prepared, fit)
    result.write_summary()
    log.info("train_done", task=cfg.task, seconds=round(fit.train_seconds, 1), **result.metrics)
    return result


def _fit(cfg: TrainConfig, data: PreparedData, folder: Path) -> FitOutcome:
    model = build_multitask(cfg, data)
    steps = (
        len(balanced_order(data.train.labels, np.random.default_rng(0), cfg.defect_share)) // cfg.batch_size
    )
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=cfg.learning_rate, total_steps=max(1, steps * cfg.epochs), pct_start=0.15
    )
    best_path, last_path = folder / "checkpoints/multitask-best.pt", folder / "checkpoints/multitask-last.pt"
    history: list[dict[str, float]] = []
    best, best_epoch, stale, started = -np.inf, 0, 0, time.perf_counter()
    epochs = tqdm(range(1, cfg.epochs + 1), desc="multitask", unit="epoch", disable=not cfg.progress)
    for epoch in epochs:
        loss = _train_epoch(model, optimiser, schedule, data.train, cfg, epoch)
        history.append({"epoch": epoch, "loss": loss, **_validate(model, data.val)})
        epochs.set_postfix(loss=f"{loss:.4f}", val_ap=f"{history[-1]['val_ap']:.4f}")
        log.info("epoch_done", task=cfg.task, **history[-1])
        state = {"epoch": epoch, "state_dict": model.state_dict(), "config": cfg.to_dict()}
        torch.save(state, last_path)
        score = history[-1]["val_ap"] + history[-1]["val_dice"]
        if score > best:
            best, best_epoch, stale = score, epoch, 0
            torch.save(state, best_path)
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    seconds = time.perf_counter() - started
    model.load_state_dict(torch.load(best_path, weights_only=False)["state_dict"])
    model.eval()
    framework = Framework(name="pytorch", version=torch.__version__)
    return FitOutcome(model, framework, best_path, history, best_epoch, len(history), seconds)


def _validate(model: ContractMultiTask, val: ArraySet) -> dict[str, float]:
    """Image AP of the classification output and micro Dice at 0.5 of the mask (defective images)."""
    scores, masks = predict_both(model, val.images)
    defective = val.labels.astype(bool)
    dice = (
        dice_iou(val.masks[defective] > 0.5, masks[defective] >= 0.5)[0] if defective.any() else float("nan")
    )
    ap = average_precision(val.labels, scores)
    return {"val_ap": float(ap), "val_dice": float(0.0 if np.isnan(dice) else dice)}


def _train_epoch(
    model: ContractMultiTask,
    optimiser: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    train: ArraySet,
    cfg: TrainConfig,
    epoch: int,
) -> float:
    """One pass over a balanced, shuffled, augmented (and optionally cropped) epoch; the mean loss."""
    rng = np.random.default_rng([cfg.seed, epoch])
    order = balanced_order(train.labels, rng, cfg.defect_share)
    model.train()
    losses: list[float] = []
    batches = range(0, len(order) - cfg.batch_size + 1, cfg.batch_size)
    bar = tqdm(batches, desc=f"epoch {epoch}", unit="batch", leave=False, disable=not cfg.progress)
    for start in bar:
        index = order[start : start + cfg.batch_size]
        images, masks = augment_batch(train.images[index], train.masks[index], rng, cfg.augment)
        assert masks is not None
        labels = train.labels[index].astype(np.float32)
        if cfg.crop_height:
            images, masks = crop_rows(images, masks, rng, cfg.crop_height)
            labels = (masks.reshape(len(masks), -1).max(axis=1) > 0.5).astype(np.float32)
        loss = multitask_loss(
            model, torch.from_numpy(images), torch.from_numpy(labels)[:, None], torch.from_numpy(masks)
        )
        optimiser.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimiser.step()
        if schedule.last_epoch + 1 < schedule.total_steps:  # type: ignore[attr-defined]
            schedule.step()
        losses.append(float(loss.item()))
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    return float(np.mean(losses)) if losses else float("nan")


def multitask_loss(
    model: ContractMultiTask, pixels: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor
) -> torch.Tensor:
    """Image BCE + :data:`MASK_WEIGHT` x (positive-weighted pixel BCE + soft Dice over the batch)."""
    logit, mask_logits = model.logits(pixels)
    truth = (masks[:, None] > 0.5).to(torch.float32)
    image_loss = F.binary_cross_entropy_with_logits(logit, labels)
    pixel_loss = F.binary_cross_entropy_with_logits(
        mask_logits, truth, pos_weight=torch.tensor(MASK_POS_WEIGHT)
    )
    probabilities = torch.sigmoid(mask_logits)
    dice = (2.0 * (probabilities * truth).sum() + 1.0) / (probabilities.sum() + truth.sum() + 1.0)
    total: torch.Tensor = image_loss + MASK_WEIGHT * (pixel_loss + 1.0 - dice)
    return total
