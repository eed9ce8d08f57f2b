"""Packages built from a compiled model verify, unpack, and answer their golden input in ONNX Runtime."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from edgeinspect.core.errors import PackageError
from edgeinspect.core.package import (
    Framework,
    Manifest,
    OutputSpec,
    Thresholds,
    build_package,
    load_golden,
    load_private_key,
    load_public_keys,
    unpack_package,
    verify_package_dir,
    write_keypair,
)
from edgeinspect_cloud.compile import CompileData, CompileOptions, CompileResult, compile_model, from_torch
from edgeinspect_cloud.compile.runtime import open_session, predict
from edgeinspect_cloud.packaging import PackageDraft, check_package

from tests.unit.cloud.compile_helpers import NORMALISATION, SIZE, input_spec, torch_classifier, toy_images
from tests.unit.core.package.helpers import read_members, write_members

Keys = tuple[Ed25519PrivateKey, list[Ed25519PublicKey]]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> tuple[CompileResult, CompileData]:
    images, labels, _ = toy_images(24)
    data = CompileData(calibration=images[:12], validation=images[12:], labels=labels[12:])
    source = from_torch(
        torch_classifier(),
        task="classification",
        height=SIZE,
        width=SIZE,
        normalisation=NORMALISATION,
        sigmoid=True,
    )
    return compile_model(
        source, data, tmp_path_factory.mktemp("compiled"), CompileOptions(latency_runs=1)
    ), data


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    private_path, public_path = write_keypair(tmp_path / "keys")
    return load_private_key(private_path), load_public_keys(public_path)


def _draft(folder: Path, compiled: tuple[CompileResult, CompileData]) -> PackageDraft:
    result, data = compiled
    spec = input_spec()
    return PackageDraft.create(
        folder,
        name="defect-cls",
        task="classification",
        framework=Framework(name="torch", version="2.13.0"),
        input_spec=spec,
        outputs=[OutputSpec(name="defect_probability", meaning="defect_probability", shape=[-1, 1])],
        thresholds=Thresholds(image=0.4),
        metrics={"image_ap": 0.91, "int8_image_ap": 0.9, "bad": float("nan")},
        dataset_fingerprint="ab" * 32,
        model_path=result.model_path,
        int8_model_path=result.int8_model_path,
        golden_input=data.validation[:1],
        baseline={"mean_brightness": 80.0},
    )


def test_a_built_package_verifies_and_its_models_match_the_golden_output(
    compiled: tuple[CompileResult, CompileData], keys: Keys, tmp_path: Path
) -> None:
    draft = _draft(tmp_path / "draft", compiled)
    path = draft.build(7, keys[0], tmp_path / "out")
    assert path.name == "defect-cls-7.tar.gz"

    folder, manifest = unpack_package(path, tmp_path / "unpacked", keys[1])
    assert verify_package_dir(folder, keys[1]) == manifest
    assert (manifest.name, manifest.version, manifest.task, manifest.has_int8) == (
        "defect-cls",
        "7",
        "classification",
        True,
    )
    assert manifest.metrics == {"image_ap": 0.91, "int8_image_ap": 0.9}  # NaN never reaches a manifest
    assert manifest.thresholds.image == 0.4 and manifest.baseline == {"mean_brightness": 80.0}

    golden_in, golden_out = load_golden(folder, manifest)
    np.testing.assert_array_equal(golden_in, compiled[1].validation[:1])
    fp32 = predict(open_session(folder / "model.onnx"), golden_in)
    int8 = predict(open_session(folder / "model.int8.onnx"), golden_in)
    np.testing.assert_allclose(fp32, golden_out["defect_probability"], atol=1e-6)
    np.testing.assert_allclose(int8, golden_out["defect_probability"], atol=0.05)
    with torch.no_grad():
        x = torch.from_numpy((golden_in.astype(np.float32) / 255.0 - 0.5) / 0.25)
        framework = torch.sigmoid(torch_classifier()(x)).numpy()
    np.testing.assert_allclose(golden_out["defect_probability"], framework, atol=1e-5)

    check = check_package(path, keys[1])
    assert check.version == "7" and check.fp32_max_abs_diff < 1e-5
    assert check.int8_max_abs_diff is not None and check.int8_max_abs_diff < 0.05


def test_one_draft_builds_any_version_after_a_reload(
    compiled: tuple[CompileResult, CompileData], keys: Keys, tmp_path: Path
) -> None:
    _draft(tmp_path / "draft", compiled)
    draft = PackageDraft.load(tmp_path / "draft")
    first = draft.build(1, keys[0], tmp_path / "out")
    second = draft.build(2, keys[0], tmp_path / "out")
    versions = [check_package(p, keys[1]).version for p in (first, second)]
    assert versions == ["1", "2"]
    with pytest.raises(PackageError, match="cannot read package draft"):
        PackageDraft.load(tmp_path / "missing")


def test_a_tampered_model_or_wrong_golden_output_is_caught(
    compiled: tuple[CompileResult, CompileData], keys: Keys, tmp_path: Path
) -> None:
    draft = _draft(tmp_path / "draft", compiled)
    path = draft.build(3, keys[0], tmp_path / "out")
    members = read_members(path)
    members["model.onnx"] = Path(compiled[0].int8_model_path or "").read_bytes()
    tampered = write_members(tmp_path / "tampered.tar.gz", members)
    with pytest.raises(PackageError, match="sha256"):
        check_package(tampered, keys[1])

    manifest = Manifest.model_validate({**draft.manifest.model_dump(), "version": "4"})
    wrong = build_package(
        tmp_path / "wrong",
        manifest,
        draft.model_path,
        draft.golden_input,
        {"defect_probability": np.full((1, 1), 2.0, np.float32)},
        keys[0],
    )
    with pytest.raises(PackageError, match="the smoke test would fail on a device"):
        check_package(wrong, keys[1])
    with tarfile.open(path) as archive:
        assert sorted(archive.getnames())[:3] == ["golden/input.npy", "golden/output-0.npy", "manifest.json"]
