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


def test_init_from_a_multitask_version_gives_the_anomaly_model_that_encoder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgeinspect_cloud.pipeline import RunLayout
    from edgeinspect_cloud.pipeline.finetune import registration_lineage
    from edgeinspect_cloud.registry import ModelRegistry
    from edgeinspect_cloud.registry.registry import TrainingWeights
    from edgeinspect_cloud.training.config import default_config
    from edgeinspect_cloud.training.multitask import train_multitask

    from tests.helpers.trained import package_result

    old_line, new_line = tmp_path / "old-line", tmp_path / "new-line"
    write_dataset(old_line, count=24, defect_ratio=0.5, seed=5, height=96, width=48, test_fraction=0.0)
    write_dataset(new_line, count=20, defect_ratio=0.0, seed=6, height=64, width=48, test_fraction=0.0)
    config = default_config("multitask", quick=True).with_overrides(
        height=96, img_width=48, epochs=1, progress=False
    )
    trained = train_multitask(old_line, tmp_path / "mt", config)
    keys = make_keys(tmp_path / "keys")
    registry_url = (tmp_path / "registry").as_uri()
    config_json = json.loads(json.dumps(trained.config.to_dict(), default=list))
    weights = TrainingWeights(trained.checkpoint_path, "pytorch", config_json)
    ModelRegistry.open(registry_url).register(
        "defect-mt",
        lambda n: package_result(trained, "defect-mt", tmp_path, keys.private_key),
        weights=weights,
    )
    run = tmp_path / "run"
    args = ["pipeline", "run", "--dataset", str(new_line), "--task", "anomaly", "--quick", "--no-progress"]
    args += ["--registry", registry_url, "--out", str(run), "--steps", "data,train"]
    assert main([*args, "--init-from", "defect-mt:1"]) == 0
    capsys.readouterr()
    summary = json.loads((run / "train" / "anomaly" / "result.json").read_text())
    assert summary["init_weights"].endswith(".pt")
    assert summary["config"]["height"] == 96  # the backbone's input size, not the quick profile's
    assert not list(run.glob("**/init.json"))  # not a fine-tune: evaluate and gate judge it on its own
    assert registration_lineage(RunLayout(run), "anomaly")["backbone"] == "defect-mt:1"

    assert main([*args, "--init-from", "defect-anomaly:1"]) == 1
    assert "defect-mt:VERSION gives it that model's encoder" in capsys.readouterr().err
