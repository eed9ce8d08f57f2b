"""Train the multi-task network (one pass: verdict and mask) in PyTorch with mixed supervision.

``train_multitask(dataset_dir, run_dir, config)`` returns a
:class:`~edgeinspect_cloud.training.config.TrainResult` whose ``model.onnx`` has two outputs,
``defect_probability`` and ``mask_probability``. The loss is the image label's cross-entropy plus
the mask's (positive-weighted cross-entropy and soft Dice over the batch, as the U-Net's): every
image teaches the classifier, every mask the segmentation head, and both share the encoder.

Training may use full-width crops (``config.crop_height``) for speed; a crop's image label is then
whether it holds a defect pixel (mask supervision makes that exact). After each epoch the
validation image AP plus Dice (a fine-tune's: its validation loss, as a few new-line frames rank
perfectly from the start) picks the best weights (``checkpoints/multitask-best.pt``) and stops
training early.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from edgeinspect.core.observability import get_logger

from edgeinspect_cloud.data.arrays import ArraySet
from edgeinspect_cloud.evaluation.metrics import average_precision, dice_iou
from edgeinspect_cloud.training.config import TrainConfig, TrainResult, default_config
from edgeinspect_cloud.training.finish import FitOutcome, run_training
from edgeinspect_cloud.training.multitask_arch import parse_arch
from edgeinspect_cloud.training.multitask_net import ContractMultiTask, MultiTaskNet
from edgeinspect_cloud.training.prepare import PreparedData
from edgeinspect_cloud.training.torchfit import configure_torch, fit_torch

log = get_logger("edgeinspect.cloud.train.multitask")

MASK_WEIGHT = 1.0
"""Default weight of the mask loss beside the image loss (a recipe's ``mask_weight`` replaces it)."""
MASK_POS_WEIGHT = 10.0
"""Weight of a defect pixel against a good one in the mask's cross-entropy (defects are < 1%)."""


def build_multitask(config: TrainConfig, data: PreparedData) -> ContractMultiTask:
    """The network of ``config.arch`` at ``config.width``, with the input's normalisation (uint8 in)."""
    norm = data.spec.normalisation
    arch = replace(parse_arch(config.arch), width=config.width)
    return ContractMultiTask(MultiTaskNet(arch), norm.mean, norm.std, norm.scale)


def predict_both(
    model: ContractMultiTask, images: np.ndarray, batch_size: int = 16, *, views: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(defect probabilities ``[N]``, mask probabilities ``[N, H, W]``) of uint8 NCHW images.

    ``views=False`` answers from the frames alone, whatever mirrored views the recipe ships.
    """
    model.eval()
    answer = model if views else model.single_view
    device = next(model.parameters()).device
    scores, masks = [], []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            score, mask = answer(torch.from_numpy(images[start : start + batch_size]).to(device))
            scores.append(score.cpu().numpy()[:, 0])
            masks.append(mask.cpu().numpy()[:, 0])
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
    return run_training(dataset_dir, run_dir, cfg, data, configure=configure_torch, fit=_fit, log=log)


def _fit(cfg: TrainConfig, data: PreparedData, folder: Path) -> FitOutcome:
    recipe = parse_arch(cfg.arch)
    weights = {"image": 1.0}

    def epoch_start(epoch: int) -> None:
        """The recipe's warm-up: masks alone for ``seg_warmup`` epochs, then both answers."""
        weights["image"] = 0.0 if epoch <= recipe.seg_warmup else 1.0

    def loss(
        model: ContractMultiTask, pixels: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor
    ) -> torch.Tensor:
        return multitask_loss(
            model, pixels, labels, masks, mask_weight=recipe.mask_weight, image_weight=weights["image"]
        )

    return fit_torch(
        build_multitask(cfg, data), cfg, data, folder, name="multitask", loss=loss,
        validate=_validate, rank=_finetune_rank if cfg.init_weights else _rank, log=log,
        epoch_start=epoch_start,
    )  # fmt: skip


def _rank(figures: dict[str, float]) -> tuple[float, ...]:
    """From scratch: validation image AP plus Dice (both answers count)."""
    return (figures["val_ap"] + figures["val_dice"],)


def _finetune_rank(figures: dict[str, float]) -> tuple[float, ...]:
    """A fine-tune: the validation loss. A new line's few validation frames (6 of 30) rank perfectly
    (AP 1.0) from the first epoch, so AP would keep the parent's weights; the loss keeps moving."""
    return (-figures["val_loss"],)


def _validate(model: ContractMultiTask, val: ArraySet) -> dict[str, float]:
    """Image AP of the classification output and micro Dice at 0.5 of the mask (defective images).

    The single view, not the recipe's mirrored views: validation costs one pass per frame, not one
    per view, and a recipe with views trains (and picks the epoch of) exactly the weights it would
    without them; the shipped threshold is chosen on the exported graph, views and all.
    """
    scores, masks = predict_both(model, val.images, views=False)
    defective = val.labels.astype(bool)
    dice = (
        dice_iou(val.masks[defective] > 0.5, masks[defective] >= 0.5)[0] if defective.any() else float("nan")
    )
    ap = average_precision(val.labels, scores)
    return {
        "val_ap": float(ap),
        "val_dice": float(0.0 if np.isnan(dice) else dice),
        "val_loss": _validation_loss(val, scores, masks),
    }


def _validation_loss(val: ArraySet, scores: np.ndarray, masks: np.ndarray) -> float:
    """Image cross-entropy plus positive-weighted pixel cross-entropy of the predicted probabilities."""
    eps = 1e-6
    p = np.clip(scores.astype(np.float64), eps, 1 - eps)
    y = val.labels.astype(np.float64)
    image = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)) if len(y) else 0.0
    q = np.clip(masks.astype(np.float64), eps, 1 - eps)
    truth = (val.masks > 0.5).astype(np.float64)
    pixel = -np.mean(MASK_POS_WEIGHT * truth * np.log(q) + (1 - truth) * np.log(1 - q)) if q.size else 0.0
    return float(image + pixel)


def multitask_loss(
    model: ContractMultiTask,
    pixels: torch.Tensor,
    labels: torch.Tensor,
    masks: torch.Tensor,
    *,
    mask_weight: float = MASK_WEIGHT,
    image_weight: float = 1.0,
) -> torch.Tensor:
    """``image_weight`` x image BCE + ``mask_weight`` x (positive-weighted pixel BCE + soft Dice)."""
    logit, mask_logits = model.logits(pixels)
    truth = (masks[:, None] > 0.5).to(torch.float32)
    image_loss = F.binary_cross_entropy_with_logits(logit, labels)
    pixel_loss = F.binary_cross_entropy_with_logits(
        mask_logits, truth, pos_weight=torch.tensor(MASK_POS_WEIGHT, device=mask_logits.device)
    )
    probabilities = torch.sigmoid(mask_logits)
    dice = (2.0 * (probabilities * truth).sum() + 1.0) / (probabilities.sum() + truth.sum() + 1.0)
    total: torch.Tensor = image_weight * image_loss + mask_weight * (pixel_loss + 1.0 - dice)
    return total
