"""Train the good-parts-only (anomaly) model: fit on good frames, calibrate on good validation frames.

``train_anomaly(dataset_dir, run_dir, config)`` returns a
:class:`~edgeinspect_cloud.training.config.TrainResult` whose ``model.onnx`` has two outputs,
``defect_probability`` and ``mask_probability`` (:mod:`.anomaly_net`). Labelled defects in the
dataset are never used to fit or to calibrate: the training split's defective frames are dropped,
the Gaussian is fitted on the good ones' patch features, and the calibration reads only good frames:
the validation split's, and every good training frame scored by a fit that left it out (5-fold
cross-fitting; ``config.threshold_policy`` must be ``max-false-reject:F``: the raw score that
rejects at most ``F`` of them becomes probability 0.5). Validation defects, when a dataset has
them, only appear in the figures the run reports (AP, recall at the shipped threshold, Dice).

There is no gradient descent, so "training" is one pass over the good frames (seconds to a minute
on two cores); ``checkpoints/anomaly.pt`` keeps the fitted state.

``config.init_weights`` names a multi-task checkpoint (``train --task anomaly --backbone``,
``pipeline run --task anomaly --init-from defect-mt:VERSION``): its frozen encoder supplies the
features, and the model reads frames at that network's input size and resize mode, as it was
trained. Without one the features are random (:mod:`.anomaly_net`).
"""

from __future__ import annotations

import math
import pickle
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from edgeinspect.core.observability import get_logger
from edgeinspect.core.package import Framework

from edgeinspect_cloud.errors import TrainingError
from edgeinspect_cloud.evaluation.metrics import ThresholdPolicy
from edgeinspect_cloud.training.anomaly_net import AnomalyNet, ContractAnomaly
from edgeinspect_cloud.training.config import TrainConfig, TrainResult, default_config
from edgeinspect_cloud.training.finish import FitOutcome, run_training
from edgeinspect_cloud.training.multitask_arch import parse_arch
from edgeinspect_cloud.training.multitask_net import MultiTaskNet
from edgeinspect_cloud.training.prepare import PreparedData
from edgeinspect_cloud.training.torchfit import configure_torch

log = get_logger("edgeinspect.cloud.train.anomaly")

MAX_FEATURES = 200_000
"""Patch feature vectors the Gaussian is fitted on at most (a seeded sample beyond that)."""
BATCH = 16
CROSS_FIT_FOLDS = 5
"""Folds of the good training frames whose held-out scores join the calibration (see _cross_fitted_scores)."""


def train_anomaly(
    dataset_dir: str | Path,
    run_dir: str | Path,
    config: TrainConfig | None = None,
    *,
    data: PreparedData | None = None,
) -> TrainResult:
    """Fit, calibrate, export (two outputs) and validate the anomaly model; artefacts go to ``run_dir``."""
    cfg = config or default_config("anomaly")
    backbone = load_backbone(cfg.init_weights) if cfg.init_weights else None
    if backbone is not None:
        cfg = cfg.with_overrides(**backbone.input)
        log.info("anomaly_backbone", checkpoint=cfg.init_weights, **backbone.input)

    def fit(cfg: TrainConfig, data: PreparedData, folder: Path) -> FitOutcome:
        return _fit(cfg, data, folder, None if backbone is None else backbone.network)

    return run_training(dataset_dir, run_dir, cfg, data, configure=configure_torch, fit=fit, log=log)


@dataclass(frozen=True)
class Backbone:
    """A trained multi-task network whose encoder the anomaly model reads, and the input it expects."""

    network: MultiTaskNet
    input: dict[str, Any]
    """``height``, ``img_width`` and ``resize_mode`` of the checkpoint's training config."""


def load_backbone(path: str | Path) -> Backbone:
    """The multi-task network of a checkpoint this pipeline wrote; anything else is a clear error."""
    hint = "use a multi-task run's checkpoints/multitask-best.pt (or --init-from defect-mt:VERSION)"
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        raise TrainingError(
            f"cannot read the backbone {path}: {str(exc).splitlines()[0]}", hint=hint
        ) from exc
    config = state.get("config") if isinstance(state, dict) else None
    if not isinstance(config, dict) or config.get("task") != "multitask":
        task = config.get("task") if isinstance(config, dict) else "unknown"
        raise TrainingError(f"the backbone {path} is not a multi-task checkpoint (task: {task})", hint=hint)
    network = MultiTaskNet(replace(parse_arch(config.get("arch")), width=int(config["width"])))
    weights = {
        k.removeprefix("network."): v for k, v in state["state_dict"].items() if k.startswith("network.")
    }
    try:
        network.load_state_dict(weights)
    except RuntimeError as exc:
        raise TrainingError(f"the backbone {path} does not match its own recipe: {exc}", hint=hint) from exc
    network.eval()
    keys = ("height", "img_width", "resize_mode")
    return Backbone(network, {k: config[k] for k in keys if k in config})


def _fit(cfg: TrainConfig, data: PreparedData, folder: Path, backbone: MultiTaskNet | None) -> FitOutcome:
    started = time.perf_counter()
    good_train = data.train.images[~data.train.labels.astype(bool)]
    good_val = data.val.images[~data.val.labels.astype(bool)]
    if len(good_train) == 0 or len(good_val) == 0:
        raise TrainingError(
            f"the anomaly model needs good frames in training and validation, got {len(good_train)} "
            f"and {len(good_val)}",
            hint="add good frames to the dataset's train split (at least a few dozen)",
        )
    norm = data.spec.normalisation
    network = AnomalyNet(cfg.width, cfg.seed, backbone=backbone)
    model = ContractAnomaly(network, norm.mean, norm.std, norm.scale)
    model.eval()
    features = _features(model, good_train)
    held_out = _cross_fitted_scores(model, features, (good_train.shape[-2], good_train.shape[-1]), cfg.seed)
    model.network.fit_gaussian(_rows(features, cfg.seed))
    good_scores = np.concatenate([held_out, _raw_scores(model, good_val)])
    centre, spread = calibration(good_scores, cfg.threshold_policy)
    model.network.calibrate(centre, spread)
    path = folder / "checkpoints/anomaly.pt"
    torch.save({"state_dict": model.state_dict(), "config": cfg.to_dict()}, path)
    seconds = time.perf_counter() - started
    history = [{"epoch": 1, "good_train": float(len(good_train)), "good_val": float(len(good_val)),
                "calibration_frames": float(len(good_scores)), "raw_threshold": centre,
                "raw_spread": spread}]  # fmt: skip
    log.info(
        "anomaly_fitted",
        good_train=len(good_train),
        good_val=len(good_val),
        calibration_frames=len(good_scores),
        raw_threshold=centre,
    )
    framework = Framework(name="pytorch", version=torch.__version__)
    return FitOutcome(model, framework, path, history, 1, 1, seconds)


def _cross_fitted_scores(
    model: ContractAnomaly, features: np.ndarray, size: tuple[int, int], seed: int
) -> np.ndarray:
    """Each good training frame's raw score under a Gaussian fitted without it (k-fold).

    A new line's validation split holds a handful of good frames (20 of 100), too few to place a
    1% false-reject threshold: the highest of 20 scores says little about the 99th percentile.
    Scoring every training frame by a fit that never saw it multiplies the calibration frames by
    five, and the 80% fits score slightly higher than the full one would, so the threshold errs
    towards fewer false rejects. The frames are scored from their ``features`` (no second pass
    through the network); leaves ``model``'s Gaussian to be refitted on all frames.
    """
    folds = min(CROSS_FIT_FOLDS, len(features))
    if folds < 2:
        return np.empty(0)
    order = np.random.default_rng(seed).permutation(len(features))
    scores = np.empty(len(features))
    for fold, held in enumerate(np.array_split(order, folds)):
        kept = np.setdiff1d(order, held)
        model.network.fit_gaussian(_rows(features[kept], seed + fold))
        with torch.no_grad():
            maps = model.network.distance_map(torch.from_numpy(features[held]), size)
        scores[held] = torch.amax(maps, dim=(1, 2, 3)).numpy()
    return scores


def _features(model: ContractAnomaly, images: np.ndarray) -> np.ndarray:
    """The feature maps of ``images``: ``[N, C, h, w]``."""
    with torch.no_grad():
        parts = [
            model.features(torch.from_numpy(images[start : start + BATCH])).numpy()
            for start in range(0, len(images), BATCH)
        ]
    return np.concatenate(parts)


def _rows(features: np.ndarray, seed: int) -> np.ndarray:
    """The frames' feature vectors as rows ``[M, C]`` for the Gaussian (a seeded sample if too many)."""
    rows = features.transpose(0, 2, 3, 1).reshape(-1, features.shape[1])
    if len(rows) > MAX_FEATURES:
        rows = rows[np.random.default_rng(seed).choice(len(rows), MAX_FEATURES, replace=False)]
    return rows.astype(np.float64)


def _raw_scores(model: ContractAnomaly, images: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate(
            [
                model.raw_scores(torch.from_numpy(images[s : s + BATCH])).numpy()
                for s in range(0, len(images), BATCH)
            ]
        ).astype(np.float64)


def calibration(good_scores: np.ndarray, policy_text: str) -> tuple[float, float]:
    """(raw threshold, spread) from GOOD validation scores only, for a ``max-false-reject:F`` policy.

    The threshold lets at most ``floor(F * n)`` good frames score above it, halfway between the last
    flagged and the first unflagged score (as the other models' policies place it); with none to
    flag, it sits half a spread above the highest good score. The spread is the good scores'
    standard deviation: a score one spread above the threshold reads 0.73, two 0.88.
    """
    policy = ThresholdPolicy.parse(policy_text)
    if policy.kind != "max-false-reject" or policy.target is None:
        raise TrainingError(
            f"the anomaly model is calibrated on good frames only; threshold policy {policy_text!r} "
            "needs labelled defects",
            hint="use --threshold-policy max-false-reject:F (e.g. 0.01)",
        )
    ordered = np.sort(np.asarray(good_scores, dtype=np.float64))[::-1]
    spread = float(np.std(ordered)) if len(ordered) > 1 else 1.0
    spread = spread if spread > 1e-6 else 1.0
    flagged = math.floor(policy.target * len(ordered) + 1e-9)
    if flagged >= len(ordered):
        return float(ordered[-1]) - 0.5 * spread, spread
    if flagged == 0:
        return float(ordered[0]) + 0.5 * spread, spread
    return float((ordered[flagged - 1] + ordered[flagged]) / 2), spread
