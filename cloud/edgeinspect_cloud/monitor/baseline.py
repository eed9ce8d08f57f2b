"""Drift baselines: computed from a validation set, stored in the package manifest, read back.

:func:`baseline_for_samples` runs a model the edge's way (the evaluation runner: core preprocess,
ONNX Runtime, core postprocess) over dataset images at camera resolution and summarises images,
scores and masks with :func:`edgeinspect.core.telemetry.baseline_from_validation`, so the baseline and
the device's telemetry are the same statistics over the same bins. :func:`load_baseline` reads one
back from a package (``.tar.gz``), a package folder, a ``manifest.json`` or a bare summary JSON;
:func:`combine_baselines` joins the classifier's and the segmenter's into one.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from edgeinspect.core.errors import MessageError
from edgeinspect.core.package import MANIFEST_FILE
from edgeinspect.core.telemetry import IMAGE_FEATURES, TelemetrySummary, baseline_from_validation

from edgeinspect_cloud.data.dataset import SampleFiles, read_sample
from edgeinspect_cloud.evaluation.runner import OnnxModel
from edgeinspect_cloud.evaluation.spec import ModelSpec
from edgeinspect_cloud.monitor.errors import MonitorError

BATCH = 8


def baseline_for_samples(
    model_path: str | Path,
    spec: ModelSpec,
    samples: Sequence[SampleFiles],
    *,
    model_ref: str = "",
    threads: int = 2,
) -> dict[str, Any]:
    """The drift baseline of ``samples`` (usually the validation split) under this model.

    A multi-task model's baseline is its classification score's (and its masks' areas), the score
    its edge telemetry reports as ``cls_score``.
    """
    model = OnnxModel(model_path, spec, threads=threads)
    frames: list[npt.NDArray[np.uint8]] = []
    scores: list[float] = []
    masks: list[npt.NDArray[np.bool_]] | None = [] if spec.task != "classification" else None
    task = "classification" if spec.task in ("multitask", "anomaly") else spec.task
    pixel = spec.thresholds.pixel if spec.thresholds and spec.thresholds.pixel is not None else 0.5
    for start in range(0, len(samples), BATCH):
        batch = [read_sample(files).image for files in samples[start : start + BATCH]]
        for prediction in model.predict(batch, with_masks=masks is not None):
            scores.append(prediction.score)
            if masks is not None and prediction.probabilities is not None:
                masks.append(prediction.probabilities >= pixel)
        frames.extend(batch)
    return baseline_from_validation(
        frames,
        scores,
        masks,
        task=task,
        threshold=spec.thresholds.image if spec.thresholds else 0.5,
        models={task: model_ref} if model_ref else None,
    )


def load_baseline(source: str | Path) -> TelemetrySummary:
    """A baseline from a package, package folder, manifest.json or summary JSON (``MonitorError`` if none)."""
    path = Path(source)
    try:
        body = _read_json(path)
    except (OSError, json.JSONDecodeError, tarfile.TarError, KeyError) as exc:
        raise MonitorError(
            f"cannot read a baseline from {path}: {exc}", hint="pass a package or JSON"
        ) from exc
    raw = body.get("baseline", body) if isinstance(body, dict) else body
    if raw is None:
        raise MonitorError(
            f"{path} has no drift baseline",
            hint="package a model with a pipeline that stores one (edgeinspect pipeline run)",
        )
    try:
        baseline = TelemetrySummary.from_json(raw)
    except MessageError as exc:
        raise MonitorError(
            f"{path}: {exc.message}", hint=exc.hint or "pass a package with a baseline"
        ) from exc
    if isinstance(body, dict) and "name" in body and "version" in body and not baseline.models:
        baseline.models = {str(body.get("task", "")): f"{body['name']}:{body['version']}"}
    return baseline


def _read_json(path: Path) -> Any:
    if path.is_dir():
        path = path / MANIFEST_FILE
    if path.name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(path, "r:gz") as tar:
            member = tar.extractfile(MANIFEST_FILE)
            if member is None:
                raise KeyError(MANIFEST_FILE)
            return json.loads(member.read())
    return json.loads(path.read_text(encoding="utf-8"))


def combine_baselines(baselines: Sequence[TelemetrySummary]) -> TelemetrySummary:
    """One baseline: image features from the first that has them, each model feature from its own.

    The classifier's and the segmenter's baselines describe the same validation images, so adding
    their image histograms would count every image twice.
    """
    if not baselines:
        raise MonitorError("no baseline given", hint="pass --baseline PACKAGE (repeat for each model)")
    total = TelemetrySummary(kind="baseline")
    for baseline in baselines:
        has_images = any(name in total.features for name in IMAGE_FEATURES)
        for name, hist in baseline.features.items():
            if name in IMAGE_FEATURES and has_images:
                continue
            total.histogram(name).merge(hist)
        for name, rate in baseline.rates.items():
            total.rates[name] = total.rates.get(name, rate.__class__()) + rate
        total.models.update(baseline.models)
        total.frames = max(total.frames, baseline.frames)
    return total
