"""Train the ResNet18 defect classifier in PyTorch: seeded, balanced, augmented, early-stopped.

``train_classifier(dataset_dir, run_dir, config)`` returns a
:class:`~edgeinspect_cloud.training.config.TrainResult` with the exported ``model.onnx``. Each epoch
oversamples defective images to ``config.defect_share`` and augments every training batch (never the
validation images); the loss adds the masks' supervision of the network's coarse defect map to the
image label's; after each epoch the validation AP decides whether the weights are the best so
far (saved to ``checkpoints/classifier-best.pt``) and whether to stop early.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from edgeinspect.core.observability import get_logger

from edgeinspect_cloud.data.arrays import ArraySet
from edgeinspect_cloud.evaluation.metrics import average_precision
from edgeinspect_cloud.training.config import TrainConfig, TrainResult, default_config
from edgeinspect_cloud.training.finish import FitOutcome, run_training
from edgeinspect_cloud.training.prepare import PreparedData
from edgeinspect_cloud.training.resnet import ContractClassifier, ResNet18
from edgeinspect_cloud.training.torchfit import configure_torch, fit_torch

log = get_logger("edgeinspect.cloud.train.classifier")

MAP_WEIGHT = 1.0
"""Weight of the defect-map loss (deep supervision from the masks) beside the image loss."""
MAP_POS_WEIGHT = 10.0
"""Weight of a defect cell against a good one in the defect-map loss."""


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
    return run_training(dataset_dir, run_dir, cfg, data, configure=configure_torch, fit=_fit, log=log)


def _fit(cfg: TrainConfig, data: PreparedData, folder: Path) -> FitOutcome:
    return fit_torch(
        build_classifier(cfg, data), cfg, data, folder, name="classifier", loss=classifier_loss,
        validate=_validate, rank=lambda v: (v["val_ap"], -v["val_loss"]), log=log,
    )  # fmt: skip


def _validate(model: ContractClassifier, val: ArraySet) -> dict[str, float]:
    """Validation AP and cross-entropy (the best epoch: highest AP, then lowest loss)."""
    probabilities = predict_probabilities(model, val.images)
    return {
        "val_ap": average_precision(val.labels, probabilities),
        "val_loss": _bce(val.labels, probabilities),
    }


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
