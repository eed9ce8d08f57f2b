"""Both engine exports compile offline from the one graph, and their structure is checked node by node.

The SDKs live in the export tool environment (``.venv-pipelines``: kfp needs protobuf < 7); making
it takes minutes, so without it these tests skip and say how to make it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from edgeinspect_cloud.cli import main
from edgeinspect_cloud.pipeline.export import tool_venv, venv_ready
from edgeinspect_cloud.pipeline.graph import KEY_DIR, graph_spec, pipeline_steps

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not venv_ready(tool_venv()),
        reason=f"no pipeline SDK environment at {tool_venv()}: make it with `make pipelines-venv` (~5 min)",
    ),
]

IMAGE = "registry.example/edgeinspect-cloud:1.2.3"
NODES = [node.name for node in pipeline_steps()]


@pytest.fixture(scope="module")
def exports(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(kfp pipeline spec, kfp kubernetes platform spec, SageMaker definition), compiled by the CLI."""
    out = tmp_path_factory.mktemp("exports")
    for engine, name in (("kubeflow", "pipeline.yaml"), ("sagemaker", "pipeline.json")):
        assert (
            main(["pipeline", "export", "--engine", engine, "--out", str(out / name), "--image", IMAGE]) == 0
        )
    pipeline, platform = yaml.safe_load_all((out / "pipeline.yaml").read_text())
    return pipeline, platform["platforms"]["kubernetes"], json.loads((out / "pipeline.json").read_text())


def _expected_args(name: str) -> list[Any]:
    spec = graph_spec(IMAGE)
    return next(step["args"] for step in spec["steps"] if step["name"] == name)


def _kfp_arg(arg: Any) -> str:
    if isinstance(arg, dict) and "param" in arg:
        return f"{{{{$.inputs.parameters['{arg['param']}']}}}}"
    if isinstance(arg, dict):
        return f"{{{{$.outputs.parameters['{arg['output']}'].output_file}}}}"
    return str(arg)


def test_kubeflow_has_every_step_as_a_container_of_our_image_running_the_local_cli(
    exports: tuple[dict[str, Any], dict[str, Any], dict[str, Any]],
) -> None:
    pipeline, _, _ = exports
    executors = pipeline["deploymentSpec"]["executors"]
    assert sorted(executors) == sorted(f"exec-{name}" for name in NODES)  # a local step missing fails here
    for name in NODES:
        container = executors[f"exec-{name}"]["container"]
        assert container["image"] == IMAGE and container["command"] == ["edgeinspect"]
        assert container["args"] == [_kfp_arg(arg) for arg in _expected_args(name)]
    top = pipeline["root"]["dag"]["tasks"]
    gated = pipeline["components"]["comp-condition-1"]["dag"]["tasks"]
    assert set(top) == {
        "data",
        "train-classification",
        "train-segmentation",
        "evaluate",
        "gate",
        "condition-1",
    }
    assert set(gated) == {"compile", "package", "agent-check", "register"}
    assert set(top["evaluate"]["dependentTasks"]) == {"train-classification", "train-segmentation"}
    assert gated["agent-check"]["dependentTasks"] == ["package"]
    assert gated["register"]["dependentTasks"] == ["agent-check"]


def test_kubeflow_gate_is_a_condition_on_the_gate_output_and_gpus_are_parameters(
    exports: tuple[dict[str, Any], dict[str, Any], dict[str, Any]],
) -> None:
    pipeline, _, _ = exports
    condition = pipeline["root"]["dag"]["tasks"]["condition-1"]
    assert (
        condition["triggerPolicy"]["condition"]
        == "inputs.parameter_values['pipelinechannel--gate-passed'] == 'true'"
    )
    wired = condition["inputs"]["parameters"]["pipelinechannel--gate-passed"]["taskOutputParameter"]
    assert wired == {"outputParameterKey": "passed", "producerTask": "gate"}
    for task in ("classification", "segmentation"):
        accelerator = pipeline["deploymentSpec"]["executors"][f"exec-train-{task}"]["container"]["resources"][
            "accelerator"
        ]
        assert accelerator["resourceType"] == "nvidia.com/gpu"
        assert (
            accelerator["resourceCount"]
            == f"{{{{$.inputs.parameters['pipelinechannel--train_{task}_gpus']}}}}"
        )
    assert "resources" not in pipeline["deploymentSpec"]["executors"]["exec-evaluate"]["container"]


def test_kubeflow_secrets_come_from_kubernetes_secrets_never_parameters(
    exports: tuple[dict[str, Any], dict[str, Any], dict[str, Any]],
) -> None:
    pipeline, platform, _ = exports
    parameters = pipeline["root"]["inputDefinitions"]["parameters"]
    assert not any("key" in name or "secret" in name or "password" in name for name in parameters)
    executors = platform["deploymentSpec"]["executors"]
    for name in NODES:
        env = executors[f"exec-{name}"]["secretAsEnv"][0]
        assert env["secretName"] == "edgeinspect-s3"
        assert {e["envVar"] for e in env["keyToEnv"]} == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
        volumes = executors[f"exec-{name}"].get("secretAsVolume", [])
        if name in ("package", "agent-check", "register"):
            assert (
                volumes[0]["secretName"] == "edgeinspect-signing-key" and volumes[0]["mountPath"] == KEY_DIR
            )
        else:
            assert volumes == []


def test_sagemaker_has_every_step_and_a_condition_on_the_gate_report(
    exports: tuple[dict[str, Any], dict[str, Any], dict[str, Any]],
) -> None:
    _, _, definition = exports
    steps = {step["Name"]: step for step in definition["Steps"]}
    condition = steps.pop("quality-gate")
    inner = {step["Name"]: step for step in condition["Arguments"]["IfSteps"]}
    every = {**steps, **inner}
    assert set(NODES) <= set(every)  # a local step missing fails here
    for name in NODES:
        step = every[name]
        if name.startswith("train-"):
            assert step["Type"] == "Training"
            algorithm = step["Arguments"]["AlgorithmSpecification"]
            image, command, args = (
                algorithm["TrainingImage"],
                algorithm["ContainerEntrypoint"],
                algorithm["ContainerArguments"],
            )
            instance = step["Arguments"]["ResourceConfig"]["InstanceType"]
            assert instance == {"Get": f"Parameters.Train{name.split('-')[1].capitalize()}InstanceType"}
        else:
            assert step["Type"] == "Processing"
            app = step["Arguments"]["AppSpecification"]
            image, command, args = app["ImageUri"], app["ContainerEntrypoint"], app["ContainerArguments"]
        assert (image, command) == (IMAGE, ["edgeinspect"])
        assert [a if isinstance(a, str) else a.get("Get") for a in args][:6] == _expected_args(name)[:6]
    assert set(inner) >= {"compile", "package", "agent-check", "register"} and "gate" in steps
    assert inner["register"]["DependsOn"] == ["agent-check"] and inner["agent-check"]["DependsOn"] == [
        "package"
    ]
    left = condition["Arguments"]["Conditions"][0]
    assert left["Type"] == "Equals" and left["RightValue"] is True
    assert left["LeftValue"]["Std:JsonGet"] == {
        "Path": "passed",
        "PropertyFile": {"Get": "Steps.gate.PropertyFiles.GateReport"},
    }
    assert steps["gate"]["PropertyFiles"][0]["OutputName"] == "gate"
    assert [s["Type"] for s in condition["Arguments"]["ElseSteps"]] == ["Fail"]


def test_sagemaker_registers_model_packages_pending_approval_and_takes_the_key_by_reference(
    exports: tuple[dict[str, Any], dict[str, Any], dict[str, Any]],
) -> None:
    _, _, definition = exports
    condition = next(step for step in definition["Steps"] if step["Type"] == "Condition")
    packages = [s for s in condition["Arguments"]["IfSteps"] if s["Type"] == "RegisterModel"]
    assert {p["Arguments"]["ModelPackageGroupName"] for p in packages} == {"defect-cls", "defect-seg"}
    assert {p["Arguments"]["ModelApprovalStatus"] for p in packages} == {"PendingManualApproval"}
    assert all(p["DependsOn"] == ["register"] for p in packages)
    names = {p["Name"] for p in definition["Parameters"]}
    assert "SigningKeyUrl" in names and not any("Secret" in n or "Password" in n for n in names)
    package = next(s for s in condition["Arguments"]["IfSteps"] if s["Name"] == "package")
    (key_input,) = package["Arguments"]["ProcessingInputs"]
    assert key_input["S3Input"]["S3Uri"] == {"Get": "Parameters.SigningKeyUrl"}
    assert key_input["S3Input"]["LocalPath"] == KEY_DIR
