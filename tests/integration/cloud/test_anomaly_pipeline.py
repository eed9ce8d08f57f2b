"""The good-parts-only model through the whole pipeline: ``pipeline run --task anomaly`` on a tiny line.

Quick profile, tiny synthetic data (the figures are not the point): data -> train (good frames only)
-> evaluate -> gate -> compile (fp32 only) -> package (``task: anomaly``) -> agent-check (a private
edge agent loads the signed package and answers its golden input).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from edgeinspect.core.package import unpack_package
from edgeinspect_cloud.cli import main
from edgeinspect_cloud.data.synth import write_dataset

from tests.helpers.models import make_keys

pytestmark = pytest.mark.slow


def test_pipeline_run_task_anomaly_packages_a_fp32_anomaly_model_the_agent_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = tmp_path / "line"
    write_dataset(dataset, count=30, defect_ratio=0.3, seed=5, height=128, width=48)
    keys = make_keys(tmp_path / "keys")
    key = tmp_path / "keys" / "private" / "test.key"
    run = tmp_path / "run"
    args = ["pipeline", "run", "--dataset", str(dataset), "--task", "anomaly", "--quick", "--no-progress"]
    args += ["--gate-min-ap", "0", "--gate-min-recall", "0", "--key", str(key), "--out", str(run)]
    args += ["--steps", "data,train,evaluate,gate,compile,package,agent-check"]
    assert main(args) == 0
    capsys.readouterr()

    evaluated = json.loads((run / "evaluate" / "anomaly" / "metrics.json").read_text())["metrics"]
    assert {"image_ap", "image_auroc", "operating_false_reject_rate", "dice", "pixel_ap"} <= set(evaluated)
    assert evaluated["operating_threshold"] == 0.5
    gate = json.loads((run / "gate" / "anomaly.json").read_text())
    assert [f["name"] for f in gate["figures"]] == ["image_ap", "operating_recall"]  # no Dice
    compiled = json.loads((run / "compile" / "anomaly" / "compile.json").read_text())
    assert compiled["task"] == "anomaly" and compiled["outputs"] == ["defect_probability", "mask_probability"]
    assert compiled["export_parity"]["passed"] and compiled["mask_export_parity"]["passed"]
    assert "int8" not in compiled or not compiled["int8"]  # fp32 only

    (tar,) = sorted((run / "package" / "anomaly").glob("defect-anomaly-*.tar.gz"))
    _folder, manifest = unpack_package(tar, tmp_path / "unpacked", keys.public_keys())
    assert manifest.task == "anomaly" and not manifest.has_int8
    assert (manifest.thresholds.image, manifest.thresholds.pixel) == (0.5, 0.5)
    assert manifest.operating_point is not None and manifest.operating_point.policy == "max-false-reject:0.01"
    checked = json.loads((run / "agent-check" / "anomaly.json").read_text())
    assert checked["passed"], checked
