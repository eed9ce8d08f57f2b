"""The held-out surface families end to end: generate them from the CLI, train elsewhere, evaluate there.

A tiny multi-task model (quick profile, one epoch; the figures are not the point) is trained on the
training families, the held-out set is written by ``edgeinspect data synth --families heldout``, the
trainer refuses it, and ``edgeinspect evaluate`` reports on it the figures the issue asks for: image
AP and AUROC, recall and false-reject rate at the shipped threshold, and Dice.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from edgeinspect_cloud.cli import main
from edgeinspect_cloud.data.synth import write_dataset

pytestmark = pytest.mark.slow


def test_a_model_trained_on_training_families_is_evaluated_on_the_heldout_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train = tmp_path / "train-families"
    write_dataset(train, count=24, defect_ratio=0.4, seed=3, height=128, width=48, families="train")
    heldout = tmp_path / "heldout"
    synth = ["data", "synth", "--out", str(heldout), "--families", "heldout", "--count", "20"]
    assert main([*synth, "--defect-ratio", "0.4", "--seed", "99", "--height", "128", "--width", "48"]) == 0
    written = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert written["families"] == "heldout" and written["test_images"] == 6

    run = tmp_path / "run"
    common = ["--task", "multitask", "--quick", "--epochs", "1", "--no-progress", "--no-test"]
    assert main(["train", "--dataset", str(heldout), *common, "--out", str(tmp_path / "refused")]) != 0
    assert "held-out" in capsys.readouterr().err
    assert main(["train", "--dataset", str(train), *common, "--augment", "robust", "--out", str(run)]) == 0
    capsys.readouterr()

    model = run / "multitask"
    args = ["evaluate", "--model", str(model / "model.onnx"), "--spec", str(model / "model_spec.json")]
    assert main([*args, "--dataset", str(heldout), "--out", str(tmp_path / "report"), "--no-progress"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    wanted = {"image_ap", "image_auroc", "operating_recall", "operating_false_reject_rate", "dice"}
    assert wanted <= set(metrics)
    assert metrics["images"] == 6
    assert (tmp_path / "report" / "report.md").is_file()
