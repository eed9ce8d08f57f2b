"""Package a model a real trainer made, the way the pipeline's package step does (draft, then build)."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from edgeinspect_cloud.packaging import PackageDraft
from edgeinspect_cloud.training.config import TrainResult


def package_result(result: TrainResult, name: str, work: Path, private_key: Ed25519PrivateKey) -> Path:
    """``work/out/{name}-1.tar.gz``, signed with ``private_key``; golden input: one validation image."""
    draft = PackageDraft.create(
        work / "draft",
        name=name,
        task=result.task,
        framework=result.framework,
        input_spec=result.input,
        outputs=result.outputs,
        thresholds=result.thresholds,
        metrics=result.metrics,
        dataset_fingerprint=result.dataset_fingerprint,
        model_path=result.onnx_path,
        golden_input=result.validation.images[:1],
        operating_point=result.operating_point,
    )
    return draft.build(1, private_key, work / "out")
