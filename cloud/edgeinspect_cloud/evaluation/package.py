"""Evaluate a bare ONNX model (with its spec) or a whole model package on any dataset folder.

:func:`evaluate_package` opens a ``{name}-{version}.tar.gz`` as the device would (safe extraction;
with ``public_keys``, full signature and hash verification), then evaluates its ``model.onnx`` (or
``model.int8.onnx``) with the manifest's own preprocessing and thresholds. :func:`evaluate_dataset`
does the same for an ONNX file and a :class:`~edgeinspect_cloud.evaluation.spec.ModelSpec`, so a
freshly trained model is measured by the same code before it is ever packaged.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from edgeinspect.core.package import (
    INT8_MODEL_FILE,
    MODEL_FILE,
    Manifest,
    UnpackLimits,
    read_manifest,
    safe_extract,
    unpack_package,
)

from edgeinspect_cloud.data.dataset import list_split
from edgeinspect_cloud.errors import EvaluationError
from edgeinspect_cloud.evaluation.evaluate import Evaluation, evaluate_samples
from edgeinspect_cloud.evaluation.report import write_report
from edgeinspect_cloud.evaluation.runner import OnnxModel
from edgeinspect_cloud.evaluation.spec import ModelSpec


def evaluate_dataset(
    model_path: str | Path,
    spec: ModelSpec,
    dataset_dir: str | Path,
    *,
    split: str = "test",
    out_dir: str | Path | None = None,
    threads: int = 2,
    progress: bool = False,
    context: dict[str, Any] | None = None,
) -> Evaluation:
    """Evaluate ``model_path`` on ``dataset_dir/split``; with ``out_dir``, write the report folder there."""
    samples = list_split(dataset_dir, split)
    model = OnnxModel(model_path, spec, threads=threads)
    evaluation = evaluate_samples(model, samples, thresholds=spec.thresholds, progress=progress)
    if out_dir is not None:
        details = {"model": str(model_path), "dataset": str(dataset_dir), "split": split, **(context or {})}
        write_report(
            evaluation, out_dir, title=f"{spec.task} - {Path(dataset_dir).name}/{split}", context=details
        )
    return evaluation


def evaluate_package(
    package_path: str | Path,
    dataset_dir: str | Path,
    *,
    split: str = "test",
    out_dir: str | Path | None = None,
    public_keys: Sequence[Ed25519PublicKey] | None = None,
    int8: bool = False,
    threads: int = 2,
    progress: bool = False,
) -> tuple[Manifest, Evaluation]:
    """Open the package (verified when ``public_keys`` are given) and evaluate its model on the dataset.

    Returns the manifest with the evaluation. Raises ``PackageError`` for a malformed, tampered or
    (with keys) unsigned package, and ``EvaluationError`` when ``int8`` is asked of a package without one.
    """
    source = Path(package_path)
    with tempfile.TemporaryDirectory(prefix="edgeinspect-eval-") as scratch:
        target = Path(scratch) / "package"
        if public_keys:
            folder, manifest = unpack_package(source, target, public_keys)
        else:
            limits = UnpackLimits()
            folder = safe_extract(
                source, target, limits.max_member_bytes, limits.max_total_bytes, limits.max_members
            )
            manifest = read_manifest(folder)
        model_file = folder / (INT8_MODEL_FILE if int8 else MODEL_FILE)
        if not model_file.is_file():
            raise EvaluationError(
                f"package {source.name} has no {model_file.name}",
                hint="evaluate the fp32 model, or compile the package with int8 quantisation",
            )
        context = {
            "package": source.name,
            "model_name": manifest.name,
            "model_version": manifest.version,
            "model_file": model_file.name,
            "verified": bool(public_keys),
            "trained_on": manifest.dataset_fingerprint,
        }
        evaluation = evaluate_dataset(
            model_file,
            ModelSpec.from_manifest(manifest),
            dataset_dir,
            split=split,
            out_dir=out_dir,
            threads=threads,
            progress=progress,
            context=context,
        )
    return manifest, evaluation
