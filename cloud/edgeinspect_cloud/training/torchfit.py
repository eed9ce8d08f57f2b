"""The PyTorch training loop the classifier and the multi-task network share.

Seeded, balanced, augmented epochs (optionally on full-width row crops, whose image label is then
whether the crop holds a defect pixel), AdamW with a one-cycle schedule, a checkpoint after every
epoch, the best one kept by a task-given ranking of the validation figures, early stopping after
``config.patience`` epochs without a better one. Each network brings only its loss, its validation
and its ranking.

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
    model.cpu()
    model.eval()
    framework = Framework(name="pytorch", version=torch.__version__)
    return FitOutcome(model, framework, best_path, history, best_epoch, len(history), seconds)


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
