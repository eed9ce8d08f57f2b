"""The PyTorch training loop the classifier and the multi-task network share.

Seeded, balanced, augmented epochs (optionally on full-width row crops, whose image label is then
whether the crop holds a defect pixel), AdamW with a one-cycle schedule, a checkpoint after every
epoch, the best one kept by a task-given ranking of the validation figures, early stopping after
``config.patience`` epochs without a better one. Each network brings only its loss, its validation
and its ranking.

With ``config.init_weights`` (a fine-tune) the network starts from that checkpoint, and those
weights are validated as "epoch 0" first (recorded, not a candidate: a few new-line validation frames
saturate AP, and a noisy tie must not silently turn the fine-tune into a copy of its parent; the
gate compares the two on held-out frames instead). The best epoch's weights are then blended with
the parent's (``config.blend``, :mod:`~edgeinspect_cloud.training.blend`) and kept as
``{name}-blended.pt``, the checkpoint that ships and that a later fine-tune starts from. Every run
records ``initial_loss``, the loss on its first training batch before any update, which shows
whether a start was a trained one.

Import this module only where torch is wanted: it imports torch at the top.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from edgeinspect.core.observability import StructLogger
from edgeinspect.core.package import Framework
from tqdm import tqdm

from edgeinspect_cloud.data.arrays import ArraySet
from edgeinspect_cloud.data.augment import balanced_order
from edgeinspect_cloud.errors import TrainingError
from edgeinspect_cloud.training.blend import blended
from edgeinspect_cloud.training.config import TrainConfig
from edgeinspect_cloud.training.epochs import run_epoch
from edgeinspect_cloud.training.finish import FitOutcome
from edgeinspect_cloud.training.prepare import PreparedData

BatchLoss = Callable[[Any, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""(model, uint8 pixels, image labels ``[N, 1]``, masks ``[N, H, W]``) -> the loss to minimise."""
Validate = Callable[[Any, ArraySet], dict[str, float]]
"""(model, validation arrays) -> validation figures (``val_*``), logged and ranked after each epoch."""
Rank = Callable[[dict[str, float]], tuple[float, ...]]
"""Validation figures -> a key; the epoch with the greatest key is the best."""


def configure_torch(seed: int, threads: int) -> None:
    """Same seed, same threads, deterministic kernels: the same weights on every run of a config."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def fit_torch(
    model: Any,
    cfg: TrainConfig,
    data: PreparedData,
    folder: Path,
    *,
    name: str,
    loss: BatchLoss,
    validate: Validate,
    rank: Rank,
    log: StructLogger,
    epoch_start: Callable[[int], None] | None = None,
) -> FitOutcome:
    """Train ``model`` (see the module doc); checkpoints go to ``folder/checkpoints/{name}-*.pt``.

    ``epoch_start(epoch)`` (1-based) runs before each epoch: a loss schedule (e.g. a warm-up) hooks
    in there. The model trains on ``cfg.device`` and comes back on the CPU, ready to export.
    """
    model.to(cfg.device)
    steps = (
        len(balanced_order(data.train.labels, np.random.default_rng(0), cfg.defect_share)) // cfg.batch_size
    )
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=cfg.learning_rate, total_steps=max(1, steps * cfg.epochs), pct_start=0.15
    )
    best_path, last_path = folder / f"checkpoints/{name}-best.pt", folder / f"checkpoints/{name}-last.pt"
    history: list[dict[str, float]] = []
    best: tuple[float, ...] | None = None
    best_epoch, stale, started = 0, 0, time.perf_counter()
    if cfg.init_weights:
        load_checkpoint(model, cfg.init_weights)
    parent = {k: v.detach().clone() for k, v in model.state_dict().items()} if cfg.blend < 1 else None
    if cfg.anchor > 0:
        loss = anchored(loss, model, cfg.anchor)
    initial = initial_loss(model, data, cfg, loss)
    if cfg.init_weights:  # where the parent stands on the new data, before any update: epoch 0
        history.append({"epoch": 0, "loss": initial, **validate(model, data.val)})
        log.info("epoch_done", task=cfg.task, **history[-1])
    epochs = tqdm(range(1, cfg.epochs + 1), desc=name, unit="epoch", disable=not cfg.progress)
    for epoch in epochs:
        if epoch_start is not None:
            epoch_start(epoch)
        mean_loss = train_epoch(model, optimiser, schedule, data.train, cfg, epoch, loss)
        history.append({"epoch": epoch, "loss": mean_loss, **validate(model, data.val)})
        epochs.set_postfix({k: f"{v:.4f}" for k, v in history[-1].items() if k != "epoch"})
        log.info("epoch_done", task=cfg.task, **history[-1])
        state = {"epoch": epoch, "state_dict": model.state_dict(), "config": cfg.to_dict()}
        torch.save(state, last_path)
        key = rank(history[-1])
        if best is None or key > best:
            best, best_epoch, stale = key, epoch, 0
            torch.save(state, best_path)
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    seconds = time.perf_counter() - started
    model.load_state_dict(torch.load(best_path, weights_only=False, map_location=cfg.device)["state_dict"])
    if parent is not None:  # ship part of the way from the parent to the fine-tune (training/blend.py)
        tuned = model.state_dict()
        model.load_state_dict({k: blended(parent[k], v, cfg.blend) for k, v in tuned.items()})
        best_path = best_path.with_name(f"{name}-blended.pt")
        state = {"epoch": best_epoch, "state_dict": model.state_dict(), "config": cfg.to_dict()}
        torch.save(state, best_path)
        log.info("fine_tune_blended", task=cfg.task, share=cfg.blend, best_epoch=best_epoch)
    model.cpu()
    model.eval()
    framework = Framework(name="pytorch", version=torch.__version__)
    epochs_run = sum(1 for row in history if row["epoch"] > 0)
    return FitOutcome(model, framework, best_path, history, best_epoch, epochs_run, seconds, initial)


def load_checkpoint(model: Any, path: str | Path) -> None:
    """Load a checkpoint's ``state_dict`` into ``model``; a different network is a clear error."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        model.load_state_dict(
            state["state_dict"] if isinstance(state, dict) and "state_dict" in state else state
        )
    except (OSError, RuntimeError, KeyError, EOFError) as exc:
        raise TrainingError(
            f"cannot start from {path}: {str(exc).splitlines()[0]}",
            hint="the checkpoint must come from the same network and settings (fine-tune with the "
            "parent version's own config, as pipeline run --init-from does)",
        ) from exc


def anchored(loss: BatchLoss, model: Any, weight: float) -> BatchLoss:
    """``loss`` plus ``weight`` x the mean squared distance of ``model``'s weights from their values now.

    L2-SP: the start (a parent's weights) is the prior, not zero. Weight decay would pull a
    fine-tune towards zero, i.e. away from what the earlier lines need; this pulls it back towards
    the parent, so the few new-line frames move the weights only where it pays.
    """
    reference = [p.detach().clone() for p in model.parameters() if p.requires_grad]
    count = sum(p.numel() for p in reference)

    def total(net: Any, pixels: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        params = [p for p in net.parameters() if p.requires_grad]
        distance = sum(((p - r) ** 2).sum() for p, r in zip(params, reference, strict=True))
        value: torch.Tensor = loss(net, pixels, labels, masks) + weight * distance / count
        return value

    return total


def initial_loss(model: Any, data: PreparedData, cfg: TrainConfig, loss: BatchLoss) -> float:
    """The loss on the first training batch (as stored, no augmentation) before any update."""
    count = min(cfg.batch_size, len(data.train))
    if count == 0:
        return float("nan")
    images, masks = data.train.images[:count], data.train.masks[:count]
    labels = data.train.labels[:count].astype(np.float32)
    if cfg.crop_height and cfg.crop_height < images.shape[2]:
        images, masks = images[:, :, : cfg.crop_height], masks[:, : cfg.crop_height]
        labels = (masks.reshape(count, -1).max(axis=1) > 0.5).astype(np.float32)
    model.eval()
    with torch.no_grad():
        value = loss(
            model,
            torch.from_numpy(np.ascontiguousarray(images)),
            torch.from_numpy(labels)[:, None],
            torch.from_numpy(np.ascontiguousarray(masks)),
        )
    return float(value.item())


def train_epoch(
    model: Any,
    optimiser: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    train: ArraySet,
    cfg: TrainConfig,
    epoch: int,
    loss: BatchLoss,
) -> float:
    """One pass over a balanced, shuffled, augmented (and, with ``crop_height``, cropped) epoch."""
    model.train()

    def step(images: np.ndarray, masks: np.ndarray, labels: np.ndarray) -> float:
        device = cfg.device
        value = loss(
            model,
            torch.from_numpy(images).to(device),
            torch.from_numpy(labels)[:, None].to(device),
            torch.from_numpy(masks).to(device),
        )
        optimiser.zero_grad(set_to_none=True)
        value.backward()  # type: ignore[no-untyped-call]
        optimiser.step()
        if schedule.last_epoch + 1 < schedule.total_steps:  # type: ignore[attr-defined]
            schedule.step()
        return float(value.item())

    return run_epoch(train, cfg, epoch, step, crop=cfg.crop_height)
