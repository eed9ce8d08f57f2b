"""Fixtures for package tests: keys, a valid manifest, a tiny ONNX model and a built, signed package."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from edgeinspect.core.package import (
    Manifest,
    build_package,
    load_private_key,
    load_public_keys,
    write_keypair,
)

from tests.helpers.manifests import manifest
from tests.unit.core.package.helpers import tiny_onnx_bytes


def make_manifest(**overrides: object) -> Manifest:
    """A valid classification manifest (files left for the builder), with fields overridable."""
    fields: dict[str, object] = {
        "name": "defect-cls",
        "version": "7",
        "output": "score",
        "mode": "letterbox",
        "pixel": None,
        "metrics": {"auroc": 0.97, "f1": 0.91},
        "dataset_fingerprint": "sha256:" + "ab" * 32,
        "baseline": {"score_histogram": [1, 2, 3], "mean_brightness": 117.5},
    }
    fields.update(overrides)
    return manifest(**fields)  # type: ignore[arg-type]


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Ed25519PrivateKey, list[Ed25519PublicKey]]:
    """A signing key and the device's trusted list holding its public half."""
    private_path, public_path = write_keypair(tmp_path / "keys")
    return load_private_key(private_path), load_public_keys(public_path)


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "model.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tiny_onnx_bytes())
    return path


@pytest.fixture
def golden() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(1234)
    image = rng.integers(0, 256, size=(1, 3, 8, 8), dtype=np.uint8)
    return image, {"score": np.array([[0.25]], dtype=np.float32)}


@pytest.fixture
def package(
    tmp_path: Path,
    keys: tuple[Ed25519PrivateKey, list[Ed25519PublicKey]],
    model_file: Path,
    golden: tuple[np.ndarray, dict[str, np.ndarray]],
) -> Path:
    """A valid signed package file built from the fixtures above."""
    return build_package(tmp_path / "out", make_manifest(), model_file, golden[0], golden[1], keys[0])
