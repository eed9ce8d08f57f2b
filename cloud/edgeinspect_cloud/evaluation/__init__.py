"""Evaluation: metrics, the edge-exact ONNX runner, and the report folder.

Public API (numpy, onnxruntime and matplotlib only)::

    ModelSpec.read(path) / ModelSpec.from_manifest(manifest)   # task, input, outputs, thresholds
    OnnxModel(model_path, spec).predict(frames) -> list[FramePrediction]
    evaluate_samples(model, samples, thresholds=None) -> Evaluation
    evaluate_dataset(model_path, spec, dataset_dir, split="test", out_dir=None) -> Evaluation
    evaluate_package(package_path, dataset_dir, split="test", out_dir=None, public_keys=None)
        -> (Manifest, Evaluation)
    write_report(evaluation, out_dir, title=..., context=...) -> Path
    metrics: average_precision, roc_auc, best_f1, confusion, pixel_scores, pr_curve, roc_curve
"""

from edgeinspect_cloud.evaluation.evaluate import Evaluation, choose_pixel_threshold, evaluate_samples
from edgeinspect_cloud.evaluation.package import evaluate_dataset, evaluate_package
from edgeinspect_cloud.evaluation.report import write_report
from edgeinspect_cloud.evaluation.runner import FramePrediction, OnnxModel
from edgeinspect_cloud.evaluation.spec import ModelSpec

__all__ = [
    "Evaluation",
    "FramePrediction",
    "ModelSpec",
    "OnnxModel",
    "choose_pixel_threshold",
    "evaluate_dataset",
    "evaluate_package",
    "evaluate_samples",
    "write_report",
]
