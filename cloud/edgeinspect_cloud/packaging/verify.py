"""Check a built package the way a device will: verify the signature and hashes, then smoke-test it.

:func:`check_package` unpacks with :func:`edgeinspect.core.package.unpack_package` (signature, every
file's sha256, nothing extra, safe paths), loads ``model.onnx`` (and ``model.int8.onnx``) in ONNX
Runtime and compares their answers on the golden input with the golden output. The fp32 model must
match within float rounding, element by element; the int8 model is judged as compile's int8 gate
judges it: its *image score* (each output's maximum per image: the probability, or a mask's peak)
within the quantisation tolerance, because the golden output is fp32's and one steep mask-edge pixel
may move further than the verdict ever does.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from edgeinspect.core.errors import PackageError
from edgeinspect.core.package import (
    INT8_MODEL_FILE,
    INT8_SMOKE_ATOL,
    MODEL_FILE,
    Manifest,
    load_golden,
    max_abs_diff,
    unpack_package,
)

from edgeinspect_cloud.compile.runtime import open_session

FP32_TOLERANCE = 1e-4
INT8_TOLERANCE = INT8_SMOKE_ATOL


@dataclass(frozen=True)
class PackageCheck:
    """The outcome of :func:`check_package`: the trusted manifest and how far each model was from golden."""

    path: str
    name: str
    version: str
    task: str
    sha256_files: int
    fp32_max_abs_diff: float
    int8_max_abs_diff: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_package(
    tar_path: str | Path,
    public_keys: Sequence[Ed25519PublicKey],
    *,
    fp32_tolerance: float = FP32_TOLERANCE,
    int8_tolerance: float = INT8_TOLERANCE,
) -> PackageCheck:
    """Verify and smoke-test a package; ``PackageError`` says what failed (signature, hash, golden)."""
    with tempfile.TemporaryDirectory(prefix="ei-check-") as work:
        folder, manifest = unpack_package(tar_path, Path(work) / "package", public_keys)
        golden_in, golden_out = load_golden(folder, manifest)
        fp32 = _max_diff(folder / MODEL_FILE, golden_in, golden_out, manifest)
        int8 = (
            _max_diff(folder / INT8_MODEL_FILE, golden_in, golden_out, manifest, per_image_score=True)
            if manifest.has_int8
            else None
        )
    _require(fp32, fp32_tolerance, "model.onnx", tar_path)
    if int8 is not None:
        _require(int8, int8_tolerance, "model.int8.onnx", tar_path)
    return PackageCheck(
        path=str(tar_path),
        name=manifest.name,
        version=manifest.version,
        task=manifest.task,
        sha256_files=len(manifest.files),
        fp32_max_abs_diff=fp32,
        int8_max_abs_diff=int8,
    )


def _max_diff(
    model: Path,
    golden_in: np.ndarray,
    golden_out: dict[str, np.ndarray],
    manifest: Manifest,
    per_image_score: bool = False,
) -> float:
    session = open_session(model)
    names = list(golden_out)
    actual = session.run(names, {manifest.input.name: golden_in})
    worst = 0.0
    for name, value in zip(names, actual, strict=True):
        expected = golden_out[name]
        if np.shape(value) != expected.shape:
            raise PackageError(
                f"{model.name} output {name!r} has shape {list(np.shape(value))}, "
                f"golden has {list(expected.shape)}",
                hint="the package's model and golden data disagree; rebuild it",
            )
        worst = max(worst, max_abs_diff(np.asarray(value), expected, per_image_score=per_image_score))
    return worst


def _require(diff: float, tolerance: float, model: str, tar_path: str | Path) -> None:
    if diff > tolerance:
        raise PackageError(
            f"{model} in {Path(tar_path).name} answers the golden input {diff:.3g} away from the golden "
            f"output (allowed {tolerance:.3g}): the smoke test would fail on a device",
            hint="rebuild the package where the model was compiled, or check the ONNX Runtime version",
        )
