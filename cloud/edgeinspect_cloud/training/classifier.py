"""Train the ResNet18 defect classifier in PyTorch: seeded, balanced, augmented, early-stopped.

``train_classifier(dataset_dir, run_dir, config)`` returns a
:class:`~edgeinspect_cloud.training.config.TrainResult` with the exported ``model.onnx``. Each epoch
oversamples defective images to ``config.defect_share`` and augments every training batch (never the
validation images); the loss adds the masks' supervision of the network's coarse defect map to the
image label's; after each epoch the validation AP decides whether the weights are the best so
far (saved to ``checkpoints/classifier-best.pt``) and whether to stop early.
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
from edgeinspect_cloud.data.augment import augment_batch, balanced_order
from edgeinspect_cloud.evaluation.metrics import average_precision
from edgeinspect_cloud.training.config import TrainConfig, TrainResult, default_config
from edgeinspect_cloud.training.finish import FitOutcome, finish_run
from edgeinspect_cloud.training.prepare import PreparedData, prepare_data
from edgeinspect_cloud.training.resnet import ContractClassifier, ResNet18

log = get_logger("edgeinspect.cloud.train.classifier")

MAP_WEIGHT = 1.0
"""Weight of the defect-map loss (deep supervision from the masks) beside the image loss."""
MAP_POS_WEIGHT = 10.0
"""Weight of a defect cell against a good one in the defect-map loss."""


def configure_torch(seed: int, threads: int) -> None:
    """Same seed, same threads, deterministic kernels: the same weights on every run of a config."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def build_classifier(config: TrainConfig, data: PreparedData) -> ContractClassifier:
    """ResNet18 of ``config.width`` wrapped with the input's normalisation (uint8 in, probability out)."""
    norm = data.spec.normalisation
    return ContractClassifier(ResNet18(config.width), norm.mean, norm.std, norm.scale)


def predict_probabilities(model: ContractClassifier, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Defect probabilities of uint8 NCHW images (eval mode, no gradients)."""
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            out.append(model(torch.from_numpy(images[start : start + batch_size])).numpy()[:, 0])
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def train_classifier(
    dataset_dir: str | Path,
    run_dir: str | Path,
    config: TrainConfig | None = None,
    *,
    data: PreparedData | None = None,
) -> TrainResult:
    """Train, export and validate the classifier on ``dataset_dir/train``; artefacts go to ``run_dir``.

    ``data`` lets a caller reuse arrays already prepared with the same config (e.g. in tests).
    """
    cfg = config or default_config("classification")
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
    model = build_classifier(cfg, data)
    steps = (
        len(balanced_order(data.train.labels, np.random.default_rng(0), cfg.defect_share)) // cfg.batch_size
    )
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=cfg.learning_rate, total_steps=max(1, steps * cfg.epochs), pct_start=0.15
    )
    best_path, last_path = (
        folder / "checkpoints/classifier-best.pt",
        folder / "checkpoints/classifier-last.pt",
    )
    history: list[dict[str, float]] = []
    best: tuple[float, float] = (-1.0, -np.inf)
    best_epoch, stale, started = 0, 0, time.perf_counter()
    epochs = tqdm(range(1, cfg.epochs + 1), desc="classifier", unit="epoch", disable=not cfg.progress)
    for epoch in epochs:
        loss = _train_epoch(model, optimiser, schedule, data.train, cfg, epoch)
        val_probs = predict_probabilities(model, data.val.images)
        val_ap = average_precision(data.val.labels, val_probs)
        val_loss = _bce(data.val.labels, val_probs)
        history.append({"epoch": epoch, "loss": loss, "val_ap": val_ap, "val_loss": val_loss})
        epochs.set_postfix(loss=f"{loss:.4f}", val_ap=f"{val_ap:.4f}", val_loss=f"{val_loss:.4f}")
        log.info("epoch_done", task=cfg.task, **history[-1])
        torch.save({"epoch": epoch, "state_dict": model.state_dict(), "config": cfg.to_dict()}, last_path)
        if (val_ap, -val_loss) > best:
            best, best_epoch, stale = (val_ap, -val_loss), epoch, 0
            torch.save({"epoch": epoch, "state_dict": model.state_dict(), "config": cfg.to_dict()}, best_path)
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    seconds = time.perf_counter() - started
    model.load_state_dict(torch.load(best_path, weights_only=False)["state_dict"])
    model.eval()
    framework = Framework(name="pytorch", version=torch.__version__)
    return FitOutcome(model, framework, best_path, history, best_epoch, len(history), seconds)


def _train_epoch(
    model: ContractClassifier,
    optimiser: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    train: ArraySet,
    cfg: TrainConfig,
    epoch: int,
) -> float:
    """One pass over a balanced, shuffled, augmented epoch; returns the mean training loss."""
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
        targets = torch.from_numpy(train.labels[index].astype(np.float32))[:, None]
        loss = classifier_loss(model, torch.from_numpy(images), targets, torch.from_numpy(masks))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimiser.step()
        if schedule.last_epoch + 1 < schedule.total_steps:  # type: ignore[attr-defined]
            schedule.step()
        losses.append(float(loss.item()))
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    return float(np.mean(losses)) if losses else float("nan")


def classifier_loss(
    model: ContractClassifier, pixels: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor
) -> torch.Tensor:
    """Image BCE plus the defect map's BCE against the masks (max-pooled to the map's cells).

    A map cell is a defect when a quarter of any of its pixels' area is defect; positives are
    weighted up (:data:`MAP_POS_WEIGHT`) since under 2% of cells hold a defect.
    """
    logits, defect_map = model.training_outputs(pixels)
    loss = F.binary_cross_entropy_with_logits(logits, labels)
    if defect_map is None:
        return loss
    cells = (F.adaptive_max_pool2d(masks[:, None], defect_map.shape[-2:]) > 0.25).to(torch.float32)
    weight = torch.tensor(MAP_POS_WEIGHT)
    map_loss = F.binary_cross_entropy_with_logits(defect_map, cells, pos_weight=weight)
    total: torch.Tensor = loss + MAP_WEIGHT * map_loss
    return total


def _bce(labels: np.ndarray, probabilities: np.ndarray) -> float:
    p = np.clip(probabilities.astype(np.float64), 1e-7, 1 - 1e-7)
    y = labels.astype(np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))) if y.size else float("nan")
