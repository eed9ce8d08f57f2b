"""Training settings and results shared by the classifier (PyTorch) and the segmenter (Keras).

:func:`default_config` gives the settings for a task; ``quick=True`` gives the demo/test settings
that train in well under a minute on two cores (small images, narrow networks, three epochs). Both
trainers return a :class:`TrainResult`, the hand-over to compile and package: the exported ONNX
path, the framework model itself, the manifest pieces (input, outputs, thresholds), validation
predictions and metrics measured THROUGH ONNX RUNTIME, and the dataset fingerprint.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from dataclasses import replace as replace_arch
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from edgeinspect.core.package import Framework, InputSpec, OperatingPoint, OutputSpec, Thresholds
from edgeinspect.core.preprocess import ResizeMode

from edgeinspect_cloud.data.augment import AugmentConfig
from edgeinspect_cloud.errors import EvaluationError, TrainingError
from edgeinspect_cloud.evaluation.metrics import ThresholdPolicy
from edgeinspect_cloud.training.blend import check_share
from edgeinspect_cloud.training.multitask_arch import DEFAULT_PRESET, parse_arch

Task = Literal["classification", "segmentation", "multitask", "anomaly"]
Profile = Literal["default", "quick", "demo"]
PROFILES: tuple[Profile, ...] = ("default", "quick", "demo")
TASKS: tuple[Task, ...] = ("classification", "segmentation", "multitask", "anomaly")
ANOMALY_POLICY = "max-false-reject:0.01"
"""The anomaly model's default policy: it knows good parts only, so it limits their rejects."""
ONNX_OPSET = 17
"""The ONNX opset every export is pinned to (ONNX Runtime >= 1.14 and every edge build run it)."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run; with the dataset and the seed, it decides the weights.

    ``width`` is the network's base width: ResNet18's first stage channels, or the U-Net's first
    level filters. ``height``/``img_width`` are the model input size; ``resize_mode`` is how frames
    are brought to it (the manifest's ``resize.mode``). ``patience`` epochs without a better
    validation score stop training early; ``defect_share`` is the share of defective images per epoch
    after oversampling. ``crop_height`` (segmenter and multi-task) trains on full-width crops of that
    many rows (a multiple of 16), about ``height / crop_height`` times cheaper; inference takes the
    full input. ``threshold_policy`` is how the shipped image threshold is chosen on validation
    (:class:`~edgeinspect_cloud.evaluation.metrics.ThresholdPolicy`: ``best-f1``,
    ``target-recall:0.99``, ``max-false-reject:0.01``). ``arch`` (multi-task only) is the network's
    recipe in :func:`~edgeinspect_cloud.training.multitask_arch.parse_arch`'s text form; set it with
    :func:`with_arch`, which also applies the recipe's width and input size. ``device`` is where
    PyTorch trains (``cpu``, or ``cuda``/``cuda:N`` where there is one); the export is on the CPU.
    ``init_weights`` is a checkpoint of the same
    network to start from instead of a random initialisation (a fine-tune, :func:`finetune_config`);
    its validation before any update is recorded as "epoch 0". For the anomaly task it is instead a
    multi-task checkpoint whose frozen encoder supplies the features. ``rehearse`` names datasets of
    earlier lines whose ``train/`` frames join the training batches but never the validation split,
    so a fine-tune keeps seeing the old lines while early stopping and the threshold see only the
    new one. ``anchor`` (a fine-tune only) adds ``anchor`` times the mean squared distance of the
    weights from ``init_weights``' to the loss (L2-SP): the new line may move the weights only as far
    as it pays (``pipeline run --finetune-anchor``, when the gate refuses a fine-tune for what it
    cost an earlier line). ``blend`` (a fine-tune only) is the share of the fine-tune's change to the
    weights that ships: ``parent + blend x (tuned - parent)`` (:mod:`~edgeinspect_cloud.training.blend`;
    1: the plain fine-tune; :func:`finetune_config` sets :data:`FINETUNE_BLEND`).
    """

    task: Task
    height: int
    img_width: int
    width: int
    epochs: int
    batch_size: int = 16
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 5
    val_fraction: float = 0.2
    defect_share: float = 0.35
    seed: int = 0
    threads: int = 2
    resize_mode: ResizeMode = "stretch"
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    progress: bool = True
    max_train_images: int | None = None
    crop_height: int | None = None
    threshold_policy: str = "best-f1"
    arch: str | None = None
    device: str = "cpu"
    init_weights: str | None = None
    rehearse: tuple[str, ...] = ()
    anchor: float = 0.0
    blend: float = 1.0

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise TrainingError(f"unknown task {self.task!r}", hint=f"use one of {', '.join(TASKS)}")
        for name in ("height", "img_width", "width", "epochs", "batch_size", "threads"):
            if getattr(self, name) <= 0:
                raise TrainingError(f"{name} must be positive, got {getattr(self, name)}")
        if self.crop_height is not None:
            check_crop_height(self.crop_height)
        try:
            policy = ThresholdPolicy.parse(self.threshold_policy)
        except EvaluationError as exc:
            raise TrainingError(exc.message, hint=exc.hint) from exc
        if self.arch is not None:
            if self.task != "multitask":
                raise TrainingError(
                    f"an architecture recipe ({self.arch!r}) is for the multitask task, not {self.task}",
                    hint="drop --arch, or train --task multitask",
                )
            parse_arch(self.arch)
        if self.device != "cpu" and not self.device.startswith("cuda"):
            raise TrainingError(f"unknown training device {self.device!r}", hint="use cpu, cuda or cuda:N")
        if self.device != "cpu" and self.task != "multitask":
            raise TrainingError(
                f"training on {self.device} is supported for the multitask task only, not {self.task}",
                hint="drop --device (train on the CPU)",
            )
        if self.task == "anomaly":
            self._check_anomaly_policy(policy)
        if self.anchor < 0 or (self.anchor > 0 and self.init_weights is None):
            raise TrainingError(
                f"anchor must be >= 0 and needs init_weights (the weights it anchors to), got {self.anchor}",
                hint="anchor is a fine-tune's setting: pipeline run --init-from GROUP:VERSION sets it",
            )
        check_share(self.blend)
        if self.blend < 1.0 and self.init_weights is None:
            raise TrainingError(
                f"blend {self.blend:g} needs init_weights (the parent weights it blends with)",
                hint="blend is a fine-tune's setting: pipeline run --init-from GROUP:VERSION sets it",
            )
        if self.height < 16 or self.img_width < 16:
            raise TrainingError(
                f"input {self.height}x{self.img_width} is too small", hint="use at least 16x16 pixels"
            )

    def _check_anomaly_policy(self, policy: ThresholdPolicy) -> None:
        """Good frames only: ``best-f1`` (everyone's default) reads as :data:`ANOMALY_POLICY`; a recall
        target needs labelled defects, which this model never sees."""
        if policy.kind == "best-f1":
            object.__setattr__(self, "threshold_policy", ANOMALY_POLICY)
        elif policy.kind != "max-false-reject":
            raise TrainingError(
                f"the anomaly model is calibrated on good frames only; {self.threshold_policy!r} needs "
                "labelled defects",
                hint="use --threshold-policy max-false-reject:F (e.g. max-false-reject:0.01)",
            )

    def with_overrides(self, **changes: Any) -> TrainConfig:
        """A copy with the given fields changed (``None`` values are ignored: "keep the default")."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings, for the run folder (so a run says how it was made)."""
        return asdict(self)


CROPPING_TASKS = ("segmentation", "multitask")
"""The tasks that may train on crops: a crop's label is whether it holds defect pixels. The classifier
and the good-parts-only model always see whole frames."""


def check_crop_height(rows: int) -> None:
    """Refuse a crop the networks cannot take: their strides need whole multiples of 16 rows."""
    if rows < 16 or rows % 16:
        raise TrainingError(
            f"crop height must be a multiple of 16 (at least 16), got {rows}",
            hint="e.g. 96 or 160 for a 320-high input, or 0 for whole frames",
        )


def with_crop(config: TrainConfig, rows: int | None) -> TrainConfig:
    """``config`` training on full-width crops of ``rows`` rows (``0``: whole frames; ``None``: the
    profile's crop); a task that never crops keeps its whole frames."""
    if rows is None or config.task not in CROPPING_TASKS:
        return config
    return replace(config, crop_height=rows or None)


def with_arch(config: TrainConfig, text: str | None) -> TrainConfig:
    """``config`` training the multi-task recipe ``text`` (preset[,key=value...]; ``None``: keep).

    The recipe's ``width`` and ``input`` (when it names them) replace the profile's; a crop taller
    than the new input is dropped (whole frames). ``arch`` keeps the recipe's full text, so the run
    folder's ``config.json`` says exactly what was built.
    """
    if text is None:
        return config
    recipe = parse_arch(text)
    recipe = replace_arch(recipe, width=recipe.width or config.width)
    changes: dict[str, Any] = {"arch": recipe.text(), "width": recipe.width}
    if recipe.input is not None:
        changes.update(height=recipe.input[0], img_width=recipe.input[1])
        if config.crop_height is not None and config.crop_height >= recipe.input[0]:
            changes["crop_height"] = None
    return replace(config, **{k: v for k, v in changes.items() if v is not None or k == "crop_height"})


def default_config(task: Task, *, quick: bool = False, profile: Profile | None = None) -> TrainConfig:
    """The settings of a task for a profile (``quick=True`` is the ``quick`` profile).

    - ``default`` trains at half the KolektorSDD2 resolution (320x112 of 640x232), which keeps 2-5 px
      defects visible while a run of both models stays near a quarter of an hour on two cores;
    - ``demo`` is what ``make demo-models`` trains the demo's models with: 256x96 input (defects stay
      1-2 px wide), narrow networks, 8 (classifier) and 14 (U-Net, on 64-row crops) epochs; fast to
      run on a small box, image AP >= 0.95 on a synthetic line it never saw;
    - ``quick`` is for tests: tiny input, three epochs; it learns the plumbing, not the defects.
    """
    chosen = profile or ("quick" if quick else "default")
    if task == "multitask":
        return _multitask_config(chosen)
    if task == "anomaly":
        return _anomaly_config(chosen)
    if chosen == "quick":
        common = {"height": 128, "img_width": 48, "epochs": 3, "batch_size": 16, "patience": 3}
        width = 8 if task == "classification" else 4
        return TrainConfig(task=task, width=width, learning_rate=3e-3, **common)  # type: ignore[arg-type]
    if chosen == "demo":
        demo = TrainConfig(
            task=task, height=256, img_width=96, width=8, epochs=14, patience=8, learning_rate=3e-3
        )
        return demo if task == "classification" else demo.with_overrides(crop_height=64)
    if task == "classification":
        return TrainConfig(
            task=task, height=320, img_width=112, width=16, epochs=30, patience=12, learning_rate=2e-3
        )
    full = TrainConfig(
        task=task, height=320, img_width=112, width=8, epochs=30, patience=10, learning_rate=2e-3
    )
    return full.with_overrides(crop_height=96)


FINETUNE_EPOCHS = 60
"""Fine-tuning epochs: a few new-line frames make epochs of a few steps, and 30 of them (the first
schedule) stopped before a held-out surface was learnt (``bench.heldout``: spangle AP 0.878 vs 0.920)."""
FINETUNE_PATIENCE = 20
FINETUNE_LR_FACTOR = 0.5
"""A fine-tune's peak learning rate, as a share of the parent's: it adapts the weights, not replaces
them (0.2 barely moved them on a new surface; rehearsal of earlier lines keeps them from forgetting)."""
FINETUNE_BATCH = 8
"""At most this batch size: 24 training frames would otherwise make one or two steps per epoch."""
FINETUNE_BLEND = 0.5
"""The share of a fine-tune's change to the weights that ships: half way, for the measurement in
:mod:`~edgeinspect_cloud.training.blend`'s docstring (docs/fine-tuning.md has the sweep)."""


def finetune_config(parent: dict[str, Any], init_weights: str | Path, **overrides: Any) -> TrainConfig:
    """The short schedule that fine-tunes a parent's network: its architecture, a lower learning rate.

    The network must be the parent's (input size, width, crops, resize mode all come from
    ``parent``, the config its checkpoint was trained with); the schedule is a fine-tune's:
    :data:`FINETUNE_LR_FACTOR` of the parent's learning rate, :data:`FINETUNE_EPOCHS` epochs with
    patience :data:`FINETUNE_PATIENCE`, batches of at most :data:`FINETUNE_BATCH`. ``overrides``
    (``None`` values ignored) set seed, epochs, progress, threshold policy and the like.
    """
    known = {f.name for f in fields(TrainConfig)}
    values = {k: v for k, v in parent.items() if k in known}
    augment = values.get("augment")
    if isinstance(augment, dict):
        augment_fields = {f.name for f in fields(AugmentConfig)}
        values["augment"] = AugmentConfig(**{k: v for k, v in augment.items() if k in augment_fields})
    try:
        # the parent's rehearsal folders, anchor and blend were its own fine-tune's, not this run's
        base = TrainConfig(**{**values, "rehearse": (), "anchor": 0.0, "blend": 1.0})
    except TypeError as exc:
        raise TrainingError(
            f"the parent's training config is incomplete: {exc}",
            hint="fine-tune from a version registered by this edgeinspect (its weights carry their config)",
        ) from exc
    tuned = base.with_overrides(
        learning_rate=base.learning_rate * FINETUNE_LR_FACTOR,
        epochs=FINETUNE_EPOCHS,
        patience=FINETUNE_PATIENCE,
        batch_size=min(base.batch_size, FINETUNE_BATCH),
        max_train_images=None,
        blend=FINETUNE_BLEND,
        init_weights=str(init_weights),
    )
    return replace(tuned, max_train_images=None).with_overrides(**overrides)


def _multitask_config(profile: Profile) -> TrainConfig:
    """The multi-task network's settings: one network, so one width; crops for speed except ``quick``.

    ``demo`` trains 8 epochs on 64-row crops of the 256x96 input (the crop's label is whether it
    holds a defect pixel), as the demo's U-Net does; ``default`` 24 epochs on 96-row crops of 320x112.
    Both build :data:`~edgeinspect_cloud.training.multitask_arch.DEFAULT_PRESET` (its width and input
    size, where it names them, replace the profile's); ``quick`` the baseline at width 4.
    """
    if profile == "quick":
        quick = TrainConfig(
            task="multitask", height=128, img_width=48, width=4, epochs=3, patience=3, learning_rate=3e-3
        )
        return with_arch(quick, "baseline")  # tests: the cheapest recipe at the profile's width
    if profile == "demo":
        demo = TrainConfig(
            task="multitask", height=256, img_width=96, width=8, epochs=8, patience=6,
            learning_rate=3e-3, crop_height=64,
        )  # fmt: skip
        return with_arch(demo, DEFAULT_PRESET)
    full = TrainConfig(
        task="multitask", height=320, img_width=112, width=12, epochs=24, patience=10,
        learning_rate=2e-3, crop_height=96,
    )  # fmt: skip
    return with_arch(full, DEFAULT_PRESET)


def _anomaly_config(profile: Profile) -> TrainConfig:
    """The anomaly model's settings: one fitting pass (``epochs=1``), ``width`` filters per stage.

    ``default`` and ``demo`` read 256x96 input with 64 filters (192 features per patch). Fitted on
    all good training frames of the synthetic line (seed 5), its test split read image AP 0.917 at
    32 filters, 0.926 at 48, 0.939 at 64 (0.936 with validation held out, ``bench/anomaly.py``), a
    fit of about a minute on two cores; ``quick`` 128x48 with 4. No crops, no augmentation: the Gaussian
    describes the good frames as they are.
    """
    if profile == "quick":
        return TrainConfig(task="anomaly", height=128, img_width=48, width=4, epochs=1, patience=1,
                           threshold_policy=ANOMALY_POLICY)  # fmt: skip
    return TrainConfig(task="anomaly", height=256, img_width=96, width=64, epochs=1, patience=1,
                       threshold_policy=ANOMALY_POLICY)  # fmt: skip


@dataclass
class ValPredictions:
    """What the exported ONNX model said about each validation image (through ONNX Runtime).

    ``images`` are the model-ready uint8 inputs (``NxCxHxW``), handy as calibration data for
    quantisation and for parity checks; ``masks`` are per-pixel probabilities at the model's input
    resolution (segmentation and multitask only).
    """

    ids: list[str]
    images: npt.NDArray[np.uint8]
    labels: npt.NDArray[np.bool_]
    scores: npt.NDArray[np.float64]
    masks: npt.NDArray[np.float32] | None = None


@dataclass
class TrainResult:
    """The outcome of a training run: everything compile, package and register need.

    ``model`` is the framework model in its exported form (a ``ContractClassifier`` ``torch.nn.Module``
    in eval mode, or a ``keras.Model``): uint8 NCHW in, probability out, so compile may re-export it
    or take ``onnx_path`` as is. ``metrics`` are validation figures (``image_ap``, ``image_auroc``,
    ``f1``, ``threshold`` and for segmentation ``pixel_ap``, ``dice``, ``iou``).
    """

    task: Task
    run_dir: Path
    onnx_path: Path
    checkpoint_path: Path
    model: Any
    framework: Framework
    input: InputSpec
    outputs: list[OutputSpec]
    thresholds: Thresholds
    metrics: dict[str, float]
    dataset_fingerprint: str
    validation: ValPredictions
    train_seconds: float
    epochs_run: int
    best_epoch: int
    config: TrainConfig
    history: list[dict[str, float]] = field(default_factory=list)
    report_dir: Path | None = None
    operating_point: OperatingPoint | None = None
    initial_loss: float = float("nan")

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary (no arrays, no model): what ``train`` prints and writes as ``result.json``."""
        return {
            "task": self.task,
            "run_dir": str(self.run_dir),
            "onnx_path": str(self.onnx_path),
            "onnx_bytes": self.onnx_path.stat().st_size if self.onnx_path.exists() else None,
            "checkpoint_path": str(self.checkpoint_path),
            "framework": self.framework.model_dump(),
            "thresholds": self.thresholds.model_dump(),
            "operating_point": None if self.operating_point is None else self.operating_point.model_dump(),
            "metrics": self.metrics,
            "dataset_fingerprint": self.dataset_fingerprint,
            "train_seconds": round(self.train_seconds, 2),
            "epochs_run": self.epochs_run,
            "best_epoch": self.best_epoch,
            "config": self.config.to_dict(),
            "report_dir": None if self.report_dir is None else str(self.report_dir),
            "initial_loss": self.initial_loss if np.isfinite(self.initial_loss) else None,
            "init_weights": self.config.init_weights,
            "history": self.history,
        }

    def write_summary(self) -> Path:
        """Write ``result.json`` into the run folder and return its path."""
        path = self.run_dir / "result.json"
        path.write_text(json.dumps(self.summary(), indent=2, sort_keys=True, default=str) + "\n")
        return path
