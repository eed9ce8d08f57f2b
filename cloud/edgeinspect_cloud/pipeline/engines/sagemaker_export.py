"""Build the pipeline graph as a SageMaker Pipelines definition (sagemaker SDK 2.x), in the tool environment.

Run by ``edgeinspect pipeline export --engine sagemaker`` as ``.venv-pipelines/bin/python sagemaker_export.py
OUT ROLE_ARN`` with the graph JSON on standard input; it imports only the standard library and the
sagemaker SDK, and makes no AWS call (the definition is built, not upserted).

Training nodes are TrainingSteps (an Estimator on our image, entry point ``edgeinspect``, instance type
a parameter: that is how SageMaker asks for a GPU); every other node is a ProcessingStep on our image.
The gate's processing step writes its report as a ProcessingOutput read through a PropertyFile; a
ConditionStep on ``JsonGet(passed)`` holds compile, package, our registry step and, per task, a
RegisterModel into the model package group (``PendingManualApproval``); otherwise a FailStep. S3
access comes from the execution role; the signing key is a ProcessingInput from a (KMS-encrypted)
S3 object whose URI is a parameter: a reference, never the key itself.
"""

from __future__ import annotations

import json
import sys
from typing import Any

GROUPS = {"classification": "defect-cls", "segmentation": "defect-seg"}
REPORT_DIR = "/opt/ml/processing/gate"
CPU_INSTANCE = "ml.m5.xlarge"
NO_TELEMETRY = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}


def build_pipeline(spec: dict[str, Any], role: str) -> Any:
    """The ``sagemaker.workflow.pipeline.Pipeline`` of the graph (no AWS call is made)."""
    import boto3
    from sagemaker.workflow.condition_step import ConditionStep
    from sagemaker.workflow.conditions import ConditionEquals
    from sagemaker.workflow.fail_step import FailStep
    from sagemaker.workflow.functions import JsonGet
    from sagemaker.workflow.pipeline import Pipeline
    from sagemaker.workflow.pipeline_context import PipelineSession
    from sagemaker.workflow.properties import PropertyFile

    session = PipelineSession(
        boto_session=boto3.Session(region_name="us-east-1"),
        default_bucket="edgeinspect",
        sagemaker_config=NO_TELEMETRY,  # building a definition must not phone home
    )
    params = _parameters(spec)
    report = PropertyFile(name="GateReport", output_name="gate", path="gate.json")
    steps: dict[str, Any] = {}
    gated: list[Any] = []
    for node in spec["steps"]:
        step = _step(node, spec, params, session, role, report)
        step.add_depends_on([steps[name] for name in node["after"] if name in steps])
        steps[node["name"]] = step
        (gated if node["gated"] else []).append(step)
    gated += _register_models(spec, steps, params, session, role, report)
    top = [steps[n["name"]] for n in spec["steps"] if not n["gated"]]
    gate = next(steps[n["name"]] for n in spec["steps"] if n["step"] == "gate")
    condition = ConditionStep(
        name="quality-gate",
        depends_on=[gate],
        conditions=[
            ConditionEquals(
                left=JsonGet(step_name=gate.name, property_file=report, json_path="passed"), right=True
            )
        ],
        if_steps=gated,
        else_steps=[
            FailStep(
                name="gate-failed",
                error_message="a model is below its quality gate; see the gate step's report",
            )
        ],
    )
    for step in gated:  # inside the condition they depend on each other only
        step.depends_on = [d for d in (step.depends_on or []) if d not in top]
    return Pipeline(
        name=spec["name"],
        parameters=list(params.values()),
        steps=[*top, condition],
        sagemaker_session=session,
    )


def _parameters(spec: dict[str, Any]) -> dict[str, Any]:
    """Every parameter as a ParameterString (the CLI reads text); GPU counts become instance types."""
    from sagemaker.workflow.parameters import ParameterString

    params: dict[str, Any] = {}
    for name, meta in spec["parameters"].items():
        if name.endswith("_gpus"):
            task = name.removeprefix("train_").removesuffix("_gpus")
            params[name] = ParameterString(
                name=f"Train{_camel(task)}InstanceType", default_value=CPU_INSTANCE
            )
        else:
            params[name] = ParameterString(name=_camel(name), default_value=str(meta["default"]))
    params["signing_key_url"] = ParameterString(
        name="SigningKeyUrl", default_value="s3://edgeinspect-secrets/keys/edgeinspect.key"
    )
    return params


def _args(node: dict[str, Any], params: dict[str, Any], outputs: dict[str, str]) -> list[Any]:
    args: list[Any] = []
    for arg in node["args"]:
        if isinstance(arg, dict) and "param" in arg:
            args.append(params[arg["param"]])
        elif isinstance(arg, dict):
            args.append(outputs[arg["output"]])
        else:
            args.append(arg)
    return args


def _step(
    node: dict[str, Any], spec: dict[str, Any], params: dict[str, Any], session: Any, role: str, report: Any
) -> Any:
    from sagemaker.estimator import Estimator
    from sagemaker.processing import ProcessingInput, ProcessingOutput, Processor
    from sagemaker.workflow.functions import Join
    from sagemaker.workflow.steps import ProcessingStep, TrainingStep

    outputs = {"passed": f"{REPORT_DIR}/passed", "report": f"{REPORT_DIR}/gate.json"}
    args = _args(node, params, outputs)
    if node["kind"] == "training":
        estimator = Estimator(
            image_uri=spec["image"],
            role=role,
            instance_count=1,
            instance_type=params[node["gpu_param"]],
            output_path=params["run_url"],
            container_entry_point=node["command"],
            container_arguments=args,
            sagemaker_session=session,
            disable_profiler=True,
        )
        return TrainingStep(name=node["name"], step_args=estimator.fit())
    processor = Processor(
        image_uri=spec["image"],
        role=role,
        instance_count=1,
        instance_type=CPU_INSTANCE,
        entrypoint=node["command"],
        sagemaker_session=session,
    )
    inputs = []
    if "signing_key" in node["secrets"]:
        inputs.append(
            ProcessingInput(
                source=params["signing_key_url"], destination=spec["key_dir"], input_name="signing-key"
            )
        )
    destination = Join(on="/", values=[params["run_url"], "gate-report"])  # explicit: no default bucket
    outs = [ProcessingOutput(output_name="gate", source=REPORT_DIR, destination=destination)]
    outs = outs if node["step"] == "gate" else []
    step_args = processor.run(inputs=inputs, outputs=outs, arguments=args)
    return ProcessingStep(
        name=node["name"], step_args=step_args, property_files=[report] if node["step"] == "gate" else None
    )


def _register_models(
    spec: dict[str, Any], steps: dict[str, Any], params: dict[str, Any], session: Any, role: str, report: Any
) -> list[Any]:
    """Per task, a RegisterModel into its model package group (PendingManualApproval) with the gate report."""
    from sagemaker.estimator import Estimator
    from sagemaker.model_metrics import MetricsSource, ModelMetrics
    from sagemaker.workflow.functions import Join
    from sagemaker.workflow.step_collections import RegisterModel

    gate = next(steps[n["name"]] for n in spec["steps"] if n["step"] == "gate")
    register = next(steps[n["name"]] for n in spec["steps"] if n["step"] == "register")
    report_uri = Join(
        on="/", values=[gate.properties.ProcessingOutputConfig.Outputs["gate"].S3Output.S3Uri, "gate.json"]
    )
    collections = []
    for node in spec["steps"]:
        if node["kind"] != "training":
            continue
        task = node["tasks"][0]
        estimator = Estimator(
            image_uri=spec["image"],
            role=role,
            instance_count=1,
            instance_type=CPU_INSTANCE,
            sagemaker_session=session,
        )
        collections.append(
            RegisterModel(
                name=f"register-{GROUPS[task]}-model-package",
                estimator=estimator,
                model_data=steps[node["name"]].properties.ModelArtifacts.S3ModelArtifacts,
                content_types=["image/png"],
                response_types=["application/json"],
                inference_instances=[CPU_INSTANCE],
                transform_instances=[CPU_INSTANCE],
                model_package_group_name=GROUPS[task],
                approval_status="PendingManualApproval",
                model_metrics=ModelMetrics(
                    model_statistics=MetricsSource(s3_uri=report_uri, content_type="application/json")
                ),
                depends_on=[register],
            )
        )
    return collections


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def main(argv: list[str]) -> int:
    """``sagemaker_export.py OUT ROLE_ARN``: write the pipeline definition JSON to OUT."""
    spec = json.load(sys.stdin)
    pipeline = build_pipeline(spec, argv[1])
    definition = json.loads(pipeline.definition())
    with open(argv[0], "w", encoding="utf-8") as handle:
        json.dump(definition, handle, indent=2, sort_keys=True)
        handle.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
