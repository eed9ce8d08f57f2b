"""Fine-tuning from a registered version: weights really load, bad references fail early and clearly,
and the gate refuses a version that got worse on an earlier line (passing one that did not).

The gate tests craft the evaluate step's per-line figures (``lines.json``) around a constant model;
the real pipeline writing them is tests/integration/cloud/test_finetune_pipeline.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from edgeinspect.core.package import build_package, write_keypair
from edgeinspect_cloud.cli import main
from edgeinspect_cloud.data.augment import AugmentConfig
from edgeinspect_cloud.data.synth import write_dataset
from edgeinspect_cloud.pipeline import PipelineOptions, RunLayout, run_pipeline
from edgeinspect_cloud.pipeline.finetune import evaluate_lines, old_line_figures
from edgeinspect_cloud.pipeline.steps_gate import GateFailedError
from edgeinspect_cloud.registry import ModelRegistry, RegistryError
from edgeinspect_cloud.registry.gate import GATE_KEY, QualityGate, failing_flags, judge, rejudge
from edgeinspect_cloud.registry.lineage import parse_model_ref
from edgeinspect_cloud.training.config import (
    FINETUNE_BLEND,
    FINETUNE_LR_FACTOR,
    TrainConfig,
    default_config,
    finetune_config,
)

from tests.helpers.manifests import manifest
from tests.unit.cloud.packaging_helpers import tiny_package
from tests.unit.cloud.test_quality_gate import HEIGHT, WIDTH, constant_classifier, constant_spec


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("finetune") / "line-a"
    write_dataset(folder, count=40, defect_ratio=0.4, seed=4, height=HEIGHT, width=WIDTH)
    return folder


def _trained_parent(dataset: Path, folder: Path, config: TrainConfig) -> Path:
    """A classifier checkpoint fitted hard to the first training batch (a cheap "trained" parent)."""
    import torch
    from edgeinspect_cloud.training.classifier import build_classifier, classifier_loss
    from edgeinspect_cloud.training.prepare import prepare_data

    torch.manual_seed(0)
    data = prepare_data(dataset, config)
    model = build_classifier(config, data)
    batch = slice(0, config.batch_size)
    images, masks = torch.from_numpy(data.train.images[batch]), torch.from_numpy(data.train.masks[batch])
    labels = torch.from_numpy(data.train.labels[batch].astype("float32"))[:, None]
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(40):
        loss = classifier_loss(model, images, labels, masks)
        optimiser.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimiser.step()
    folder.mkdir(parents=True)
    torch.save({"epoch": 40, "state_dict": model.state_dict(), "config": config.to_dict()}, folder / "p.pt")
    return folder / "p.pt"


def test_a_fine_tune_starts_from_the_parents_weights_not_from_scratch(dataset: Path, tmp_path: Path) -> None:
    import torch
    from edgeinspect_cloud.training import train_classifier
    from edgeinspect_cloud.training.classifier import build_classifier, classifier_loss
    from edgeinspect_cloud.training.prepare import prepare_data
    from edgeinspect_cloud.training.torchfit import initial_loss

    config = default_config("classification", quick=True).with_overrides(
        height=HEIGHT, img_width=WIDTH, batch_size=8, progress=False, augment=AugmentConfig.off()
    )
    checkpoint = _trained_parent(dataset, tmp_path / "parent", config)
    tuned_config = finetune_config(config.to_dict(), checkpoint, epochs=1, progress=False)
    assert tuned_config.learning_rate == pytest.approx(config.learning_rate * FINETUNE_LR_FACTOR)
    assert (tuned_config.height, tuned_config.width) == (config.height, config.width)  # the parent's net
    tuned = train_classifier(dataset, tmp_path / "tuned", tuned_config)
    torch.manual_seed(0)  # a fresh network, as a run without --init-from starts, on the same batch
    data = prepare_data(dataset, config)
    fresh = initial_loss(build_classifier(config, data), data, config, classifier_loss)
    assert tuned.initial_loss < 0.5 * fresh  # step 0 of the fine-tune: the parent's loss
    assert tuned.history[0]["epoch"] == 0 and tuned.epochs_run == 1  # epoch 0: the parent, measured
    assert tuned.summary()["init_weights"] == str(checkpoint)


def _distance(checkpoint: Path, tuned_checkpoint: Path) -> float:
    """Squared distance of the trainable weights (batch-norm statistics left out)."""
    import torch

    parent = torch.load(checkpoint, weights_only=False)["state_dict"]
    tuned = torch.load(tuned_checkpoint, weights_only=False)["state_dict"]
    weights = [k for k in parent if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    return sum(float(((tuned[k] - parent[k]) ** 2).sum()) for k in weights)


def test_the_anchor_keeps_a_fine_tune_near_its_parent(dataset: Path, tmp_path: Path) -> None:
    from edgeinspect_cloud.training import train_classifier

    config = default_config("classification", quick=True).with_overrides(
        height=HEIGHT, img_width=WIDTH, batch_size=8, progress=False, augment=AugmentConfig.off()
    )
    checkpoint = _trained_parent(dataset, tmp_path / "parent", config)
    distance, initial = {}, {}
    for name, anchor in (("free", 0.0), ("anchored", 1e5)):
        tuned = finetune_config(config.to_dict(), checkpoint, epochs=2, progress=False, anchor=anchor)
        result = train_classifier(dataset, tmp_path / name, tuned)
        distance[name] = _distance(checkpoint, tmp_path / name / "checkpoints/classifier-last.pt")
        initial[name] = result.initial_loss
    assert initial["anchored"] == pytest.approx(initial["free"])  # at the parent the anchor costs nothing
    assert distance["anchored"] < 0.5 * distance["free"]  # pulled back towards the parent (Adam: ~lr a step)


def test_the_shipped_fine_tune_lies_part_way_from_its_parent(dataset: Path, tmp_path: Path) -> None:
    """WiSE-FT: the kept checkpoint (what registers, ships and is fine-tuned next) is parent + share x
    (best epoch - parent), batch-norm statistics included; share 1 is the plain fine-tune."""
    import torch
    from edgeinspect_cloud.training import train_classifier

    config = default_config("classification", quick=True).with_overrides(
        height=HEIGHT, img_width=WIDTH, batch_size=8, progress=False, augment=AugmentConfig.off()
    )
    checkpoint = _trained_parent(dataset, tmp_path / "parent", config)
    tuned = finetune_config(config.to_dict(), checkpoint, epochs=2, progress=False)
    assert tuned.blend == FINETUNE_BLEND
    result = train_classifier(dataset, tmp_path / "half", tuned)
    assert (
        result.checkpoint_path.name == "classifier-blended.pt" and result.summary()["config"]["blend"] == 0.5
    )
    parent = torch.load(checkpoint, weights_only=False)["state_dict"]
    best = torch.load(tmp_path / "half/checkpoints/classifier-best.pt", weights_only=False)["state_dict"]
    shipped = torch.load(result.checkpoint_path, weights_only=False)["state_dict"]
    for key, value in shipped.items():
        expected = parent[key] + 0.5 * (best[key] - parent[key]) if value.is_floating_point() else best[key]
        assert torch.allclose(value, expected, atol=1e-6), key
    plain = train_classifier(dataset, tmp_path / "plain", tuned.with_overrides(blend=1.0))
    assert plain.checkpoint_path.name == "classifier-best.pt"
    # a registered fine-tune's config (init_weights dropped) is itself a parent a later fine-tune starts from
    recorded = {k: v for k, v in result.summary()["config"].items() if k != "init_weights"}
    again = finetune_config(recorded, result.checkpoint_path, anchor=10.0)
    assert (again.blend, again.anchor, again.init_weights) == (0.5, 10.0, str(result.checkpoint_path))


@pytest.mark.parametrize("share", [0.0, -0.5, 1.5])
def test_a_blend_outside_zero_to_one_is_refused_before_training(
    share: float, dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgeinspect_cloud.errors import TrainingError

    with pytest.raises(TrainingError, match="blend must be in") as caught:
        default_config("multitask", quick=True).with_overrides(init_weights="p.pt", blend=share)
    assert "0.5" in caught.value.hint
    with pytest.raises(TrainingError, match="needs init_weights"):
        default_config("multitask", quick=True).with_overrides(blend=0.5)
    out = str(tmp_path / "run")
    run = ["pipeline", "run", "--dataset", str(dataset), "--out", out, "--steps", "data", "train"]
    assert main([*run, "--task", "classification", "--finetune-blend", str(share)]) == 1
    assert f"--finetune-blend {share:g}: the fine-tune blend must be in (0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before the data step


def test_an_anchor_without_weights_to_anchor_to_is_refused() -> None:
    from edgeinspect_cloud.errors import TrainingError

    with pytest.raises(TrainingError, match="needs init_weights") as caught:
        default_config("multitask", quick=True).with_overrides(anchor=1.0)
    assert "--init-from" in caught.value.hint


def test_another_networks_weights_are_refused_with_what_to_do(dataset: Path, tmp_path: Path) -> None:
    from edgeinspect_cloud.errors import TrainingError
    from edgeinspect_cloud.training import train_classifier

    config = default_config("classification", quick=True).with_overrides(
        height=HEIGHT, img_width=WIDTH, epochs=1, progress=False
    )
    checkpoint = _trained_parent(dataset, tmp_path / "parent", config.with_overrides(batch_size=8))
    wider = finetune_config({**config.to_dict(), "width": 16}, checkpoint, progress=False)
    with pytest.raises(TrainingError, match="cannot start from") as caught:
        train_classifier(dataset, tmp_path / "tuned", wider)
    assert "same network" in caught.value.hint


def test_bad_init_from_references_fail_before_any_training(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(RegistryError, match="is not GROUP:VERSION"):
        parse_model_ref("defect-cls")
    assert parse_model_ref("defect-cls:approved") == ("defect-cls", "approved")
    assert parse_model_ref(" defect-seg:12 ") == ("defect-seg", 12)

    registry = (tmp_path / "registry").as_uri()
    run = tmp_path / "run"
    base = ["pipeline", "run", "--dataset", str(dataset), "--out", str(run), "--steps", "data", "train"]
    cls = [*base, "--task", "classification", "--registry", registry, "--quick", "--no-progress"]
    assert main([*cls, "--init-from", "defect-cls"]) == 1
    assert "is not GROUP:VERSION" in capsys.readouterr().err
    assert main([*base, "--task", "both", "--init-from", "defect-cls:1", "--registry", registry]) == 1
    err = capsys.readouterr().err
    assert "also trains defect-seg from scratch" in err and "--init-from defect-seg:VERSION" in err
    assert main([*base, "--task", "classification", "--init-from", "defect-cls:1"]) == 1
    assert "needs the registry that holds the parent" in capsys.readouterr().err
    assert main([*cls, "--init-from", "defect-x:1"]) == 1
    assert "not a model group of the pipeline" in capsys.readouterr().err
    assert main([*cls, "--finetune-anchor", "1e4"]) == 1  # an anchor with no parent to hold to
    assert "needs --init-from" in capsys.readouterr().err
    assert main([*cls, "--init-from", "defect-cls:1", "--finetune-anchor", "-1"]) == 1
    assert "must be >= 0" in capsys.readouterr().err

    assert main([*cls, "--init-from", "defect-cls:3"]) == 1  # an empty registry
    assert "defect-cls has no version 3" in capsys.readouterr().err
    assert main([*cls, "--init-from", "defect-cls:approved"]) == 1
    assert "has no approved version" in capsys.readouterr().err

    # a version registered before versions kept their weights: only ONNX, nothing to fine-tune
    ModelRegistry.open(registry).register(
        "defect-cls", lambda n: tiny_package(tmp_path / "p", Ed25519PrivateKey.generate(), "defect-cls", n)
    )
    assert main([*cls, "--init-from", "defect-cls:1"]) == 1
    err = capsys.readouterr().err
    assert "defect-cls version 1 has no stored training weights" in err
    assert "train from scratch without --init-from" in err
    assert not RunLayout(run).train_dir("classification").exists()


def _fine_tuned_run(root: Path, dataset: Path, parent_ap: float, child_ap: float) -> Path:
    """A run folder as if a fine-tune of defect-cls:1 had run up to evaluate: its line figures given."""
    run = root / "run"
    run_pipeline(PipelineOptions(run_dir=run, tasks=["classification"], datasets=[dataset]), ["data"])
    layout = RunLayout(run)
    train = layout.train_dir("classification")
    train.mkdir(parents=True)
    constant_spec().write(train / "model_spec.json")
    constant_classifier(train / "model.onnx", 0.9)  # flags every part: the new line's recall is 1
    old_line = {"name": "line-a", "source": "/data/line-a", "fingerprint": "f", "images": 100}
    layout.write(
        layout.init_json("classification"), {"group": "defect-cls", "version": 1, "lines": [old_line]}
    )
    rows = [
        {**old_line, "metrics": {"image_ap": child_ap}, "parent_metrics": {"image_ap": parent_ap}},
        {"name": "line-b", "source": str(dataset), "metrics": {"image_ap": 0.99}, "earlier_line": False},
    ]
    rows[0]["earlier_line"] = True
    layout.write(layout.lines_json("classification"), {"lines": rows})
    evaluate = layout.evaluate_dir("classification")
    (evaluate / "metrics.json").write_text(
        json.dumps({"metrics": {"image_ap": 0.99, "operating_recall": 1.0}})
    )
    return run


def test_the_gate_refuses_a_fine_tune_that_regressed_an_earlier_line(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _fine_tuned_run(tmp_path, dataset, parent_ap=0.980, child_ap=0.960)
    key, _ = write_keypair(tmp_path / "keys")
    args = ["pipeline", "run", "--out", str(run), "--task", "classification", "--no-progress"]
    assert main([*args, "--steps", "gate", "package", "--key", str(key)]) == 1
    captured = capsys.readouterr()
    assert "image_ap[line-a] 0.9600 vs parent 0.9800 (regressed beyond the allowed drop" in captured.err
    assert "--gate-max-ap-drop X" in captured.err and "nothing was compiled" in captured.err
    assert "REGRESSED" in captured.out
    record = json.loads(RunLayout(run).gate_json("classification").read_text())
    assert record["passed"] is False and record["gate"]["max_ap_drop"] == 0.005
    assert not rejudge(record).passed  # registry approve judges the same record the same way

    assert main([*args, "--steps", "gate", "--gate-max-ap-drop", "0.05"]) == 0  # a set tolerance
    assert "image_ap[line-a] 0.9600 vs parent 0.9800 ok" in capsys.readouterr().out


def test_the_gate_passes_a_fine_tune_within_the_tolerance_on_every_earlier_line(
    dataset: Path, tmp_path: Path
) -> None:
    run = _fine_tuned_run(tmp_path, dataset, parent_ap=0.980, child_ap=0.975)  # exactly the allowed drop
    summary = run_pipeline(PipelineOptions(run_dir=run, tasks=["classification"]), ["gate"])
    assert summary["steps"]["gate"]["classification"]["passed"] is True
    record = json.loads(RunLayout(run).gate_json("classification").read_text())
    assert [f["name"] for f in record["regression"]] == ["image_ap[line-a]"]

    RunLayout(run).lines_json("classification").unlink()  # a fine-tune's gate needs evaluate's lines
    with pytest.raises(Exception, match="the evaluate step has not run"):
        run_pipeline(PipelineOptions(run_dir=run, tasks=["classification"]), ["gate"])
    with pytest.raises(GateFailedError):  # and a missing figure is no pass either
        run_pipeline(
            PipelineOptions(
                run_dir=_fine_tuned_run(tmp_path / "b", dataset, 0.98, float("nan")), tasks=["classification"]
            ),
            ["gate"],
        )


def test_approve_refuses_a_version_whose_recorded_regression_fails(tmp_path: Path) -> None:
    gate = QualityGate(min_image_ap=0.5, min_recall=0.0, max_ap_drop=0.01)
    regressed = judge("classification", {"image_ap": 0.97}, gate, old_lines={"line-a": (0.90, 0.95)})
    assert not regressed.passed and failing_flags(regressed) == ["--gate-max-ap-drop"]
    registry = ModelRegistry.open((tmp_path / "registry").as_uri())
    key = Ed25519PrivateKey.generate()
    registry.register(
        "defect-cls",
        lambda n: tiny_package(tmp_path / "a", key, "defect-cls", n),
        extra={GATE_KEY: regressed.to_json()},
    )
    with pytest.raises(RegistryError, match=r"below its quality gate \(image_ap\[line-a\] 0.9000 vs parent"):
        registry.approve("defect-cls", 1)


def test_evaluate_measures_the_new_model_and_the_parent_on_every_earlier_line(
    dataset: Path, tmp_path: Path
) -> None:
    """The run trains on line a again beside line b; the parent was evaluated on a and on an old line:
    a and the old line are earlier lines (both models measured there), b is the new one."""

    old, new = tmp_path / "line-old", tmp_path / "line-b"
    write_dataset(old, count=16, defect_ratio=0.5, seed=6, height=HEIGHT, width=WIDTH)
    write_dataset(new, count=16, defect_ratio=0.5, seed=7, height=HEIGHT, width=WIDTH)
    run = tmp_path / "run"
    run_pipeline(PipelineOptions(run_dir=run, tasks=["classification"], datasets=[dataset, new]), ["data"])
    layout = RunLayout(run)
    parent_model = constant_classifier(tmp_path / "parent.onnx", 0.7)
    parent_manifest = manifest(
        name="defect-cls",
        height=HEIGHT,
        width=WIDTH,
        batch=-1,
        output="score",
        image=0.5,
        mean=[0.5],
        std=[0.25],
    )
    golden = np.zeros((1, 3, HEIGHT, WIDTH), np.uint8)
    package = build_package(
        tmp_path / "pkg",
        parent_manifest,
        parent_model,
        golden,
        {"score": np.full((1, 1), 0.7, np.float32)},
        Ed25519PrivateKey.generate(),
    )
    lines = [{"name": p.name, "source": str(p.resolve())} for p in (dataset, old)]
    layout.write(
        layout.init_json("classification"),
        {"group": "defect-cls", "version": 1, "lines": lines, "package": str(package)},
    )
    model = constant_classifier(tmp_path / "child.onnx", 0.3)

    rows = evaluate_lines(
        PipelineOptions(run_dir=run, tasks=["classification"]),
        layout,
        "classification",
        model,
        constant_spec(),
    )
    assert [(row["name"], row["earlier_line"]) for row in rows] == [
        ("line-a", True),
        ("line-b", False),
        ("line-old", True),
    ]
    assert all("parent_metrics" in row for row in rows if row["earlier_line"])
    assert rows[0]["images"] == len(list((dataset / "test").glob("*[0-9].png")))
    assert set(old_line_figures(layout, "classification")) == {"line-a", "line-old"}

    (old / "test").rename(tmp_path / "moved")  # an earlier line without a test split is skipped
    rows = evaluate_lines(
        PipelineOptions(run_dir=run, tasks=["classification"]),
        layout,
        "classification",
        model,
        constant_spec(),
    )
    assert [row["name"] for row in rows] == ["line-a", "line-b"]
    shutil.rmtree(old)  # an earlier line that is gone stops the run: the gate must see every line
    with pytest.raises(Exception, match=r"line-old .* is not reachable here"):
        evaluate_lines(
            PipelineOptions(run_dir=run, tasks=["classification"]),
            layout,
            "classification",
            model,
            constant_spec(),
        )
