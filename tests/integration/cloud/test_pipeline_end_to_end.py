"""The whole pipeline on tiny synthetic data, both tasks, registering into a real S3 server.

Quick mode with one epoch (the figures are not the point here) on two small datasets trained as one:
data -> train -> evaluate -> gate -> compile -> package -> agent-check (the real edge agent loads each
signed package) -> register; then the registered packages are downloaded, verified and smoke-tested
as a device would, and one step is re-run alone from the run folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from edgeinspect.core.package import load_golden, load_public_keys, unpack_package, write_keypair
from edgeinspect_cloud.cli import main
from edgeinspect_cloud.compile.runtime import open_session
from edgeinspect_cloud.data.synth import write_dataset
from edgeinspect_cloud.registry import APPROVED, PENDING, ModelRegistry

pytestmark = pytest.mark.slow


def test_pipeline_trains_compiles_packages_and_registers_both_models(
    s3_bucket: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint, bucket = s3_bucket
    datasets = [tmp_path / "line-a", tmp_path / "line-b"]
    for seed, (folder, count) in enumerate(zip(datasets, (30, 24), strict=True)):
        write_dataset(folder, count=count, defect_ratio=0.35, seed=seed, height=256, width=96)
    private_key, public_key = write_keypair(tmp_path / "keys")
    registry_url = f"s3://{bucket}/registry"
    run_dir = tmp_path / "run"
    common = [
        "--quick",
        "--epochs",
        "1",
        "--no-progress",
        *("--gate-min-ap", "0", "--gate-min-recall", "0", "--gate-min-dice", "0"),  # one epoch: figures vary
        *("--int8-min-shift-agreement", "0"),  # one epoch leaves scores on the threshold: keep int8 shipped
        "--registry",
        registry_url,
        "--endpoint-url",
        endpoint,
    ]
    common += ["--key", str(private_key), "--out", str(run_dir), "--by", "ci"]

    args = ["pipeline", "run", "--dataset", str(datasets[0]), "--dataset", str(datasets[1]), "--task", "both"]
    assert main([*args, *common]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    result = json.loads(lines[-1])
    assert result["versions"] == {"defect-cls": 1, "defect-seg": 1}
    for step in ("data", "train", "evaluate", "gate", "compile", "package", "agent-check", "register"):
        assert any(f"] {step}" in line and " done in " in line for line in lines), step

    summary = json.loads((run_dir / "summary.json").read_text())
    data = summary["steps"]["data"]["all"]
    assert data["total"]["train"]["images"] == sum(v["train"]["images"] for v in data["counts"].values())

    registry = ModelRegistry.open(registry_url, endpoint_url=endpoint)
    keys = load_public_keys(public_key)
    for task, group in (("classification", "defect-cls"), ("segmentation", "defect-seg")):
        mv = registry.get(group, 1)
        assert (mv.status, mv.registration.created_by, mv.registration.task) == (PENDING, "ci", task)
        assert mv.registration.dataset_fingerprint == data["fingerprint"]
        assert {"image_ap", "int8_val_image_ap", "int8_parity_max_abs_diff"} <= set(mv.registration.metrics)
        assert result["packages"][group] == mv.registration.package.url
        checked = mv.registration.extra["agent_check"]  # the real agent loaded these very bytes
        assert checked["package_sha256"] == mv.registration.package.sha256  # type: ignore[index,call-overload]
        assert set(checked["variants"]) == {"fp32", "int8"}  # type: ignore[index,call-overload,arg-type]
        assert checked["default"]["variant"] == "int8"  # type: ignore[index,call-overload]
        gate = mv.registration.extra["gate"]
        expected = {"min_image_ap": 0.0, "min_recall": 0.0, "min_dice": 0.0, "max_ap_drop": 0.005}
        assert gate["passed"] and gate["gate"] == expected  # type: ignore[index,call-overload]
        weights = mv.registration.weights  # the checkpoint a later --init-from fine-tunes, in S3
        assert weights is not None and weights.format == ("keras" if task == "segmentation" else "pytorch")
        assert registry.store.head(weights.key) is not None

        compiled = json.loads((run_dir / "compile" / task / "compile.json").read_text())
        assert compiled["export_parity"]["passed"] and compiled["int8_parity"]["passed"]
        assert compiled["export_parity"]["reference"].endswith("model")  # the framework itself, in-process

        package = tmp_path / f"{group}.tar.gz"
        registry.store.download(
            mv.registration.package.key, package, expected_sha256=mv.registration.package.sha256
        )
        folder, manifest = unpack_package(package, tmp_path / f"{group}-unpacked", keys)
        assert (manifest.name, manifest.version, manifest.has_int8) == (group, "1", True)
        golden_in, golden_out = load_golden(folder, manifest)
        for model, tolerance in (("model.onnx", 1e-5), ("model.int8.onnx", 0.25)):
            session = open_session(folder / model)
            (output,) = session.run(list(golden_out), {manifest.input.name: golden_in})
            np.testing.assert_allclose(output, next(iter(golden_out.values())), atol=tolerance)

    # one step alone, from the run folder: registering again claims version 2 and rebuilds the package for it
    assert main(["pipeline", "run", "--task", "classification", "--steps", "register", *common]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["versions"] == {"defect-cls": 2}
    second = registry.get("defect-cls", 2).registration.package
    assert second.filename == "defect-cls-2.tar.gz" and registry.store.exists(second.key)

    assert (
        main(
            ["registry", "approve", "defect-cls", "1", "--registry", registry_url, "--endpoint-url", endpoint]
        )
        == 0
    )
    assert registry.latest("defect-cls").version == 1  # type: ignore[union-attr]
    assert registry.get("defect-cls", 1).status == APPROVED
