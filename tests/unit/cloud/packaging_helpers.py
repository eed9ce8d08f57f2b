"""Test helpers for registry/packaging tests: a tiny signed package builder with a chosen name and version."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from edgeinspect.core.package import Manifest, build_package

from tests.helpers.manifests import manifest
from tests.unit.core.package.helpers import tiny_onnx_bytes


def tiny_manifest(name: str, version: str) -> Manifest:
    """A valid classification manifest for an 8x8 model."""
    return manifest(
        name=name,
        version=version,
        output="score",
        mean=[0.5],
        std=[0.25],
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
