"""One graph for every runner: the local runner's jobs and the engines' nodes come from the same steps,
and a step run in a container keeps its run folder in object storage (here a folder store)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from edgeinspect_cloud.cli import main
from edgeinspect_cloud.data.synth import write_dataset
from edgeinspect_cloud.pipeline import STEPS, TASKS, RunLayout
from edgeinspect_cloud.pipeline.graph import (
    KEY_DIR,
    Output,
    Param,
    cli_args,
    graph_spec,
    local_jobs,
    parameters,
    pipeline_steps,
)
from edgeinspect_cloud.pipeline.remote import push
from edgeinspect_cloud.training.multitask_arch import DEFAULT_PRESET

from tests.unit.cloud.test_quality_gate import HEIGHT, WIDTH, constant_classifier, constant_spec


def test_every_local_step_is_a_node_and_the_local_runner_follows_the_graph() -> None:
    nodes = pipeline_steps()
    trains = ["train-classification", "train-segmentation"]
    release = ["compile", "package", "agent-check", "register"]
    assert [n.name for n in nodes] == ["data", *trains, "evaluate", "gate", *release]
    assert {n.step for n in nodes} == set(STEPS)
    assert [n.name for n in nodes if n.gated] == release
    check = next(n for n in nodes if n.name == "agent-check")  # register only after the agent took it
    assert check.after == ("package",) and next(n for n in nodes if n.name == "register").after == (
        "agent-check",
    )
    assert [n.gpu_param for n in nodes if n.kind == "training"] == [
        "train_classification_gpus",
        "train_segmentation_gpus",
    ]
    assert local_jobs(STEPS, list(TASKS))[:4] == [
        ("data", None), ("train", "classification"), ("train", "segmentation"), ("evaluate", "classification")
    ]  # fmt: skip
    assert next(n for n in nodes if n.name == "evaluate").after == (
        "train-classification",
        "train-segmentation",
    )


def test_the_graph_of_the_anomaly_task_trains_it_alone_with_its_own_gpu_parameter() -> None:
    spec = graph_spec("img", tasks=["anomaly"])
    names = [step["name"] for step in spec["steps"]]
    assert names[:3] == ["data", "train-anomaly", "evaluate"]
    train = next(step for step in spec["steps"] if step["name"] == "train-anomaly")
    assert train["gpu_param"] == "train_anomaly_gpus" and "anomaly" in train["args"]
    gpus = sorted(name for name in spec["parameters"] if name.endswith("_gpus"))
    assert gpus == ["train_anomaly_gpus"]
    default = graph_spec("img")["parameters"]
    assert sorted(n for n in default if n.endswith("_gpus")) == [
        "train_classification_gpus",
        "train_segmentation_gpus",
    ]


def test_a_nodes_arguments_are_the_local_cli_with_the_run_in_storage_and_no_secret_values() -> None:
    gate = next(n for n in pipeline_steps() if n.step == "gate")
    args = cli_args(gate, quick=True)
    assert args[:6] == ["pipeline", "run", "--steps", "gate", "--task", "both"]
    assert Param("run_url") in args and Param("gate_min_ap") in args and Output("passed") in args
    package = next(n for n in pipeline_steps() if n.step == "package")
    assert f"{KEY_DIR}/edgeinspect.key" in cli_args(package) and "signing_key" in package.secrets
    check = next(n for n in pipeline_steps() if n.step == "agent-check")  # trusts the key's public half
    assert f"{KEY_DIR}/edgeinspect.key" in cli_args(check) and "--registry" not in cli_args(check)
    train = next(n for n in pipeline_steps() if n.step == "train")
    assert cli_args(train)[-4:] == [
        "--threshold-policy",
        Param("threshold_policy"),
        "--augment",
        Param("augment"),
    ]
    multitask = next(n for n in pipeline_steps(["multitask"]) if n.step == "train")
    assert cli_args(multitask)[-2:] == ["--arch", Param("arch")]  # the recipe is a run-time parameter
    assert parameters(["multitask"])["arch"] == ("str", DEFAULT_PRESET) and "arch" not in parameters()
    assert Param("threshold_policy") not in cli_args(package)
    spec = graph_spec("img:1", quick=True)
    assert not any(name in spec["parameters"] for name in ("key", "signing_key", "aws_secret_access_key"))
    assert all(step["args"][0] == "pipeline" and "--quick" in step["args"] for step in spec["steps"])


def test_the_training_crop_is_a_parameter_of_graphs_whose_models_crop() -> None:
    """A GPU run trains on whole frames (``crop_height`` 0) without exporting the pipeline again."""
    assert parameters()["crop_height"] == ("int", 96)  # the default profile's, for the U-Net
    assert parameters(["multitask"], quick=True)["crop_height"] == ("int", 0)  # quick: whole frames
    assert "crop_height" not in parameters(["classification"]) and "crop_height" not in parameters(
        ["anomaly"]
    )
    steps = {step["name"]: step["args"] for step in graph_spec("img")["steps"]}
    assert {"param": "crop_height"} in steps["train-segmentation"]
    assert "--crop-height" not in steps["train-classification"]


def test_a_step_in_a_fresh_container_pulls_the_run_and_writes_the_gate_verdict_for_the_engine(
    tmp_path: Path,
) -> None:
    dataset = tmp_path / "dataset"
    write_dataset(dataset, count=20, defect_ratio=0.4, seed=5, height=HEIGHT, width=WIDTH)
    store, run = tmp_path / "store", tmp_path / "run"
    remote = ["--run-url", store.as_uri(), "--dataset", dataset.as_uri(), "--out", str(run), "--no-progress"]
    assert main(["pipeline", "run", "--steps", "data", "--task", "classification", *remote]) == 0
    assert (store / "data" / "data.json").is_file() and not (store / ".datasets").exists()
    train = RunLayout(run).train_dir("classification")  # what a train container would have pushed
    train.mkdir(parents=True)
    constant_spec().write(train / "model_spec.json")
    constant_classifier(train / "model.onnx", 0.3)
    push(run, store.as_uri())

    shutil.rmtree(run)  # the next container starts empty
    verdict, report = tmp_path / "out" / "passed", tmp_path / "out" / "gate.json"
    engine = ["--gate-passed-out", str(verdict), "--gate-report-out", str(report)]
    steps = ["--steps", "evaluate", "gate", "--task", "classification"]
    assert main(["pipeline", "run", *steps, *remote, *engine]) == 0  # the engine's condition decides
    assert verdict.read_text() == "false"
    body = json.loads(report.read_text())
    assert body["passed"] is False and not body["tasks"]["classification"]["passed"]
    assert json.loads((store / "gate" / "classification.json").read_text())["passed"] is False
    assert main(["pipeline", "run", *steps, *remote]) == 1  # without engine outputs a failed gate fails
