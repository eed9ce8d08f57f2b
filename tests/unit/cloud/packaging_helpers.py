"""Test helpers for registry/packaging tests: a tiny signed package builder with a chosen name and version."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from edgeinspect.core.package import (
    Framework,
    InputSpec,
    Manifest,
    Normalisation,
    OutputSpec,
    Resize,
    Thresholds,
    build_package,
)

from tests.unit.core.package.helpers import tiny_onnx_bytes


def tiny_manifest(name: str, version: str) -> Manifest:
    """A valid classification manifest for an 8x8 model."""
    return Manifest(
        name=name,
        version=version,
        task="classification",
        framework=Framework(name="torch", version="2.13.0"),
        created_at=datetime(2024, 6, 1, 12, 0, tzinfo=UTC),
        input=InputSpec(
            name="image",
            shape=[1, 3, 8, 8],
            dtype="uint8",
            colour="RGB",
            resize=Resize(height=8, width=8, mode="stretch"),
            normalisation=Normalisation(mean=[0.5], std=[0.25]),
            normalisation_in_graph=True,
        ),
        outputs=[OutputSpec(name="score", meaning="defect_probability", shape=[1, 1])],
        thresholds=Thresholds(image=0.5),
        metrics={"image_ap": 0.9, "f1": 0.8},
        dataset_fingerprint="sha256:" + "cd" * 32,
    )


def tiny_package(out_dir: Path, key: Ed25519PrivateKey, name: str, version: int) -> Path:
    """Build a signed package ``{name}-{version}.tar.gz`` in ``out_dir`` (use a fresh folder per call)."""
    model = out_dir / f"model-{version}.onnx"
    out_dir.mkdir(parents=True, exist_ok=True)
    model.write_bytes(tiny_onnx_bytes())
    image = np.zeros((1, 3, 8, 8), np.uint8)
    return build_package(
        out_dir, tiny_manifest(name, str(version)), model, image, {"score": np.zeros((1, 1), np.float32)}, key
    )
