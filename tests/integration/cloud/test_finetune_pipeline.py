"""``pipeline run --init-from``: a registered, approved version fine-tuned on a new line's frames.

Version 1 is trained from scratch on line a and approved; version 2 fine-tunes "the approved one"
(the retraining flow from reviewed captures) on a darker line b with a new defect kind. The test
checks the plumbing end to end with quick models: weights stored with every version, the parent's
weights loaded, threshold chosen on line b's validation frames, line a re-checked by the gate against
version 1 on the same frames, and both lines recorded for the next fine-tune.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from edgeinspect.core.package import write_keypair
from edgeinspect_cloud.cli import main
from edgeinspect_cloud.data.dataset import list_split, read_labels
from edgeinspect_cloud.data.split import stratified_split
from edgeinspect_cloud.data.synth import write_dataset
from edgeinspect_cloud.evaluation.spec import ModelSpec
from edgeinspect_cloud.pipeline import RunLayout
from edgeinspect_cloud.registry import ModelRegistry
from edgeinspect_cloud.registry.lineage import lines_of

pytestmark = pytest.mark.slow

HEIGHT, WIDTH = 128, 48  # the quick classifier's own input size


def test_a_fine_tune_of_the_approved_version_is_gated_on_both_lines_and_records_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line_a, line_b = tmp_path / "a", tmp_path / "b"
    write_dataset(line_a, count=40, defect_ratio=0.4, seed=0, height=HEIGHT, width=WIDTH, test_fraction=0.25)
    write_dataset(line_b, count=40, defect_ratio=0.5, seed=9, height=HEIGHT, width=WIDTH, test_fraction=0.5,
                  brightness_shift=-40.0, defect_kinds=("blister",))  # fmt: skip
    key, _ = write_keypair(tmp_path / "keys")
    registry_url = (tmp_path / "registry").as_uri()
    common = ["--task", "classification", "--quick", "--epochs", "3", "--no-int8", "--no-progress",
              "--gate-min-ap", "0", "--gate-min-recall", "0", "--gate-max-ap-drop", "1",  # plumbing only
              "--registry", registry_url, "--key", str(key), "--by", "ci"]  # fmt: skip
    assert main(["pipeline", "run", "--dataset", str(line_a), "--out", str(tmp_path / "v1"), *common]) == 0
    registry = ModelRegistry.open(registry_url)
    v1 = registry.get("defect-cls", 1).registration
    assert v1.weights is not None and v1.weights.format == "pytorch" and v1.weights.config["width"] == 8
    assert [line.name for line in lines_of(registry.get("defect-cls", 1))] == ["a"]
    registry.approve("defect-cls", 1, by="qa")

    run = tmp_path / "v2"
    finetune = ["pipeline", "run", "--dataset", str(line_b), "--out", str(run), *common]
    assert (
        main([*finetune, "--init-from", "defect-cls:approved", "--threshold-policy", "target-recall:0.9"])
        == 0
    )
    out = capsys.readouterr().out
    assert "image_ap[a]" in out and "vs parent" in out  # the gate re-checked line a

    layout = RunLayout(run)
    trained = json.loads((layout.train_dir("classification") / "result.json").read_text())
    assert trained["history"][0]["epoch"] == 0 and trained["init_weights"]
    assert trained["config"]["learning_rate"] < 3e-3  # the fine-tune's lower rate, the parent's network
    # the threshold was chosen on line b's own validation frames (the trainer's split of b's train/)
    labels = read_labels(list_split(line_b, "train"))
    validation = stratified_split(labels, 0.2, 0).val
    spec = ModelSpec.read(layout.train_dir("classification") / "model_spec.json")
    assert spec.operating_point is not None and spec.operating_point.policy == "target-recall:0.9"
    assert spec.operating_point.images == validation.size
    gate = json.loads(layout.gate_json("classification").read_text())
    assert [figure["name"] for figure in gate["regression"]] == ["image_ap[a]"]
    assert gate["regression"][0]["baseline"] is not None

    v2 = registry.get("defect-cls", 2)
    assert v2.registration.extra["init_from"] == "defect-cls:1"
    assert [line.name for line in lines_of(v2)] == ["b", "a"]  # the next fine-tune protects both
    assert v2.registration.weights is not None and v2.registration.weights.sha256 != v1.weights.sha256
