"""The quality gate: a model below it is never registered, never approved without --force, never deployed.

The bad model is a constant-output classifier (it scores every image 0.3, below its 0.5 threshold):
its figures come from the real evaluation step on a real synthetic test split, not from a table.
"""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from edgeinspect.core.package import write_keypair
from edgeinspect_cloud.cli import main
from edgeinspect_cloud.data.synth import write_dataset
from edgeinspect_cloud.evaluation.spec import ModelSpec
from edgeinspect_cloud.pipeline import PipelineOptions, RunLayout, run_pipeline
from edgeinspect_cloud.pipeline.steps_gate import GateFailedError
from edgeinspect_cloud.registry import APPROVED, ModelRegistry
from edgeinspect_cloud.registry.gate import GATE_KEY, QualityGate, judge
from onnx import TensorProto, helper

from tests.helpers.manifests import manifest
from tests.unit.cloud.packaging_helpers import tiny_package

HEIGHT, WIDTH = 64, 32


def constant_classifier(path: Path, score: float) -> Path:
    """An ONNX classifier that ignores its image: ``score`` for every input, batch kept."""
    image = helper.make_tensor_value_info("image", TensorProto.UINT8, [None, 3, HEIGHT, WIDTH])
    out = helper.make_tensor_value_info("score", TensorProto.FLOAT, [None, 1])
    nodes = [
        helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["f"], ["m"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Flatten", ["m"], ["flat"], axis=1),
        helper.make_node("Mul", ["flat", "zero"], ["nothing"]),
        helper.make_node("Add", ["nothing", "constant"], ["score"]),
    ]
    initial = [
        helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
        helper.make_tensor("constant", TensorProto.FLOAT, [], [score]),
    ]
    graph = helper.make_graph(nodes, "constant", [image], [out], initializer=initial)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def constant_spec() -> ModelSpec:
    """The spec of :func:`constant_classifier`: image threshold 0.5, so it never says 'defective'."""
    return ModelSpec.from_manifest(
        manifest(height=HEIGHT, width=WIDTH, batch=-1, output="score", image=0.5, mean=[0.5], std=[0.25])
    )


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A run folder whose data step ran and whose 'trained' classifier outputs a constant."""
    root = tmp_path_factory.mktemp("gate")
    dataset = root / "data"
    write_dataset(dataset, count=24, defect_ratio=0.4, seed=3, height=HEIGHT, width=WIDTH)
    run = root / "run"
    run_pipeline(PipelineOptions(run_dir=run, tasks=["classification"], datasets=[dataset]), ["data"])
    train = RunLayout(run).train_dir("classification")
    train.mkdir(parents=True)
    constant_spec().write(train / "model_spec.json")
    constant_classifier(train / "model.onnx", 0.3)
    return dataset, run


def test_the_gate_refuses_a_constant_model_and_names_the_failed_figures(
    bad_run: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, run = bad_run
    key, _ = write_keypair(tmp_path / "keys")
    registry = (tmp_path / "registry").as_uri()
    args = ["pipeline", "run", "--out", str(run), "--task", "classification", "--no-progress"]
    args += ["--key", str(key), "--registry", registry, "--steps", "evaluate", "gate", "compile", "package"]
    assert main([*args, "register"]) == 1
    captured = capsys.readouterr()
    assert "quality gate failed (classification: image_ap 0.4" in captured.err  # prevalence: chance AP
    assert "operating_recall 0.000 < 0.800" in captured.err
    assert "nothing was compiled, packaged or registered" in captured.err
    assert "--gate-min-ap X --gate-min-recall X" in captured.err
    assert "gate classification done" in captured.out and "FAILED" in captured.out
    layout = RunLayout(run)
    record = json.loads(layout.gate_json("classification").read_text())
    assert record["passed"] is False and record["source"] == "test"
    assert not layout.compile_dir("classification").exists()
    assert ModelRegistry.open(registry).groups() == []

    # per-run flags are the thresholds the gate applies (and a stricter AP alone still fails)
    assert main([*args[:-4], "gate", "--gate-min-recall", "0", "--gate-min-ap", "0.99"]) == 1
    assert "image_ap" in capsys.readouterr().err
    assert main([*args[:-4], "gate", "--gate-min-recall", "0", "--gate-min-ap", "0.3"]) == 0
    assert json.loads(layout.gate_json("classification").read_text())["gate"]["min_image_ap"] == 0.3
    with pytest.raises(SystemExit):  # argparse: not a fraction
        main([*args[:-4], "gate", "--gate-min-ap", "1.5"])
    assert "not between 0 and 1" in capsys.readouterr().err


def test_register_refuses_a_run_whose_gate_failed(bad_run: tuple[Path, Path], tmp_path: Path) -> None:
    _, run = bad_run
    key, _ = write_keypair(tmp_path / "keys")
    options = PipelineOptions(
        run_dir=run, tasks=["classification"], key_path=key, registry_url=(tmp_path / "r").as_uri()
    )
    with pytest.raises(GateFailedError, match="quality gate failed"):
        run_pipeline(options, ["gate"])
    with pytest.raises(GateFailedError, match="below its quality gate"):
        run_pipeline(options, ["register"])


def test_approve_refuses_a_version_below_its_gate_unless_forced_with_a_reason(
    bad_run: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A version registered by another route with its failed gate record (the pipeline never would)."""
    _, run = bad_run
    metrics = json.loads((RunLayout(run).evaluate_dir("classification") / "metrics.json").read_text())
    failed = judge("classification", metrics["metrics"], QualityGate())
    assert not failed.passed
    key = Ed25519PrivateKey.generate()
    url = (tmp_path / "registry").as_uri()
    registry = ModelRegistry.open(url)
    extra = {GATE_KEY: failed.to_json()}
    registry.register(
        "defect-cls", lambda n: tiny_package(tmp_path / f"p{n}", key, "defect-cls", n), extra=extra
    )

    approve = ["registry", "approve", "defect-cls", "1", "--registry", url]
    assert main(approve) == 1
    err = capsys.readouterr().err
    assert "defect-cls version 1 is below its quality gate (image_ap 0.4" in err
    assert "--force --comment" in err
    assert main([*approve, "--force"]) == 1
    assert "needs a reason" in capsys.readouterr().err
    assert registry.get("defect-cls", 1).status != APPROVED

    deploy = ["deploy", "--model", "defect-cls", "--version", "1", "--target", "line-1", "--registry", url]
    deploy += ["--fleet-db", f"sqlite:///{tmp_path / 'fleet.sqlite3'}"]
    assert main(deploy) == 1
    assert "is PendingManualApproval, not Approved: it cannot be deployed" in capsys.readouterr().err

    monkeypatch.setenv("USER", "carol")
    monkeypatch.setenv("LOGNAME", "carol")
    assert main([*approve, "--force", "--comment", "trial on line 1 only, agreed with QA"]) == 0
    assert "past its quality gate (image_ap 0.4" in capsys.readouterr().out
    decision = registry.get("defect-cls", 1).history[-1]
    assert (decision.status, decision.by, decision.comment) == (
        APPROVED,
        "carol",
        "trial on line 1 only, agreed with QA",
    )
    assert any(item.startswith("operating_recall 0.000 < 0.800") for item in decision.overrode)
    assert main(["registry", "show", "defect-cls", "1", "--registry", url]) == 0
    shown = capsys.readouterr().out
    assert "quality gate  FAILED (image_ap 0.4" in shown and "forced past the gate" in shown


def test_a_version_at_or_above_its_gate_or_without_one_is_approved_plainly(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    registry = ModelRegistry.open((tmp_path / "registry").as_uri())
    good = judge("segmentation", {"image_ap": 0.97, "operating_recall": 0.9, "dice": 0.7}, QualityGate())
    assert good.passed and [f.name for f in good.figures] == ["image_ap", "operating_recall", "dice"]
    registry.register(
        "defect-seg",
        lambda n: tiny_package(tmp_path / "a", key, "defect-seg", n),
        extra={GATE_KEY: good.to_json()},
    )
    registry.register("defect-seg", lambda n: tiny_package(tmp_path / "b", key, "defect-seg", n))
    for version in (1, 2):
        decision = registry.approve("defect-seg", version).history[-1]
        assert decision.status == APPROVED and decision.overrode == []


def test_the_gate_judges_missing_figures_as_failed_unless_switched_off() -> None:
    gate = QualityGate(min_image_ap=0.9, min_recall=0.0, min_dice=0.5)
    record = judge("segmentation", {"image_ap": 0.95, "dice": float("nan")}, gate, "validation")
    assert [f.describe() for f in record.failures] == ["dice missing < 0.500"]
    assert judge("classification", {"image_ap": 0.95}, gate).passed  # recall off, Dice not a classifier's


def test_configured_defaults_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from edgeinspect.core.errors import EdgeInspectError
    from edgeinspect_cloud.registry.gate import default_gate

    monkeypatch.setenv("EI_GATE_MIN_AP", "0.95")
    assert default_gate() == QualityGate(min_image_ap=0.95)
    assert default_gate().with_overrides(min_image_ap=None, min_dice=0.7).min_dice == 0.7
    monkeypatch.setenv("EI_GATE_MIN_DICE", "2")
    with pytest.raises(EdgeInspectError, match="EI_GATE_MIN_DICE"):
        default_gate()
