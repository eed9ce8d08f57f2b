"""Build -> unpack -> verify -> load golden: the happy path the cloud and the device share."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from edgeinspect.core.errors import PackageError
from edgeinspect.core.hashing import sha256_file
from edgeinspect.core.package import (
    OutputSpec,
    Thresholds,
    UnpackLimits,
    build_package,
    load_golden,
    read_manifest,
    unpack_package,
    verify_package_dir,
)

from tests.unit.core.package.conftest import make_manifest
from tests.unit.core.package.helpers import read_members

Keys = tuple[Ed25519PrivateKey, list[Ed25519PublicKey]]
Golden = tuple[np.ndarray, dict[str, np.ndarray]]


def test_round_trip_restores_manifest_model_and_golden(
    tmp_path: Path, package: Path, keys: Keys, model_file: Path, golden: Golden
) -> None:
    assert package.name == "defect-cls-7.tar.gz"
    dest, manifest = unpack_package(package, tmp_path / "models" / "defect-cls" / "7", keys[1])
    assert manifest == verify_package_dir(dest, keys[1]) == read_manifest(dest)
    assert manifest.files["model.onnx"] == sha256_file(model_file)
    assert (dest / "model.onnx").read_bytes() == model_file.read_bytes()
    assert manifest.baseline == {"mean_brightness": 117.5, "score_histogram": [1, 2, 3]}
    golden_input, outputs = load_golden(dest, manifest)
    np.testing.assert_array_equal(golden_input, golden[0])
    assert golden_input.dtype == np.uint8
    assert outputs.keys() == {"score"}
    np.testing.assert_array_equal(outputs["score"], golden[1]["score"])
    assert sorted(p.name for p in dest.parent.iterdir()) == ["7"], "no staging folder left behind"


def test_archive_holds_exactly_the_listed_files_manifest_first(package: Path) -> None:
    names = list(read_members(package))
    assert names[:2] == ["manifest.json", "manifest.sig"]
    assert sorted(names[2:]) == ["golden/input.npy", "golden/output-0.npy", "model.onnx"]


def test_same_inputs_build_byte_identical_packages(
    tmp_path: Path, package: Path, keys: Keys, model_file: Path, golden: Golden
) -> None:
    again = build_package(tmp_path / "again", make_manifest(), model_file, golden[0], golden[1], keys[0])
    assert again.read_bytes() == package.read_bytes()


def test_rebuild_replaces_atomically_without_temp_files(
    tmp_path: Path, package: Path, keys: Keys, model_file: Path, golden: Golden
) -> None:
    build_package(package.parent, make_manifest(), model_file, golden[0], golden[1], keys[0])
    assert os.listdir(package.parent) == [package.name]


def test_int8_model_and_segmentation_outputs_round_trip(
    tmp_path: Path, keys: Keys, model_file: Path, golden: Golden
) -> None:
    int8 = tmp_path / "src" / "model.int8.onnx"
    int8.write_bytes(b"int8-model")
    outputs = [
        OutputSpec(name="logits:0", meaning="defect_logit", shape=[1, 1]),
        OutputSpec(name="seg/mask", meaning="mask_probability", shape=[1, 1, 8, 8]),
    ]
    manifest = make_manifest(
        task="segmentation", outputs=outputs, thresholds=Thresholds(image=0.5, pixel=0.3), version="1.10"
    )
    mask = np.linspace(0, 1, 64, dtype=np.float32).reshape(1, 1, 8, 8)
    path = build_package(tmp_path / "out", manifest, model_file, golden[0], {"seg/mask": mask}, keys[0], int8)
    dest, unpacked = unpack_package(path, tmp_path / "dest", keys[1])
    assert unpacked.has_int8
    assert (dest / "model.int8.onnx").read_bytes() == b"int8-model"
    assert unpacked.golden is not None
    assert unpacked.golden.outputs == {"seg/mask": "golden/output-1.npy"}
    np.testing.assert_array_equal(load_golden(dest, unpacked)[1]["seg/mask"], mask)


@pytest.mark.parametrize(
    ("golden_input", "golden_outputs", "problem"),
    [
        (np.zeros((1, 3, 8, 8), np.float32), {"score": np.zeros(1)}, "dtype float32"),
        (np.zeros((1, 3, 4, 4), np.uint8), {"score": np.zeros(1)}, r"shape \[1, 3, 4, 4\]"),
        (np.zeros((1, 3, 8, 8), np.uint8), {}, "golden_outputs is empty"),
        (np.zeros((1, 3, 8, 8), np.uint8), {"nope": np.zeros(1)}, r"\['nope'\] are not model outputs"),
        (np.zeros((1, 3, 8, 8), np.uint8), {"score": np.array([None])}, "not Python objects"),
    ],
)
def test_builder_refuses_golden_data_that_cannot_match_the_model(
    tmp_path: Path,
    keys: Keys,
    model_file: Path,
    golden_input: np.ndarray,
    golden_outputs: dict[str, np.ndarray],
    problem: str,
) -> None:
    with pytest.raises(PackageError, match=problem):
        build_package(tmp_path / "out", make_manifest(), model_file, golden_input, golden_outputs, keys[0])
    assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []


def test_builder_refuses_a_missing_model(tmp_path: Path, keys: Keys, golden: Golden) -> None:
    with pytest.raises(PackageError, match=r"model file .* does not exist"):
        build_package(
            tmp_path / "out", make_manifest(), tmp_path / "nope.onnx", golden[0], golden[1], keys[0]
        )


def test_unpack_limits_apply(tmp_path: Path, package: Path, keys: Keys) -> None:
    with pytest.raises(PackageError, match="over the 10-byte limit"):
        unpack_package(package, tmp_path / "dest", keys[1], UnpackLimits(max_member_bytes=10))
    assert not (tmp_path / "dest").exists()
