"""The pipeline graph: one list of named steps that the local runner and both engine exports are built from.

Each :class:`StepDef` is one node: which local step it runs (``STEPS``), for which tasks, after which
nodes, whether it trains (a GPU step on an engine), whether the quality gate guards it, and which
secrets it needs. :func:`cli_args` turns a node into the ``edgeinspect pipeline run`` arguments a
container runs, with :class:`Param` placeholders an engine maps to its own run-time parameters. The
local runner orders its jobs by :func:`local_jobs`; the exports (``pipeline export``) serialise
:func:`graph_spec` to JSON for the engine SDK in its own tool environment. A step added to ``STEPS``
therefore appears everywhere, and the tests fail if an export drops one.

This module imports nothing heavy: the export command runs it in the main environment only to write
the JSON the SDK scripts read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from edgeinspect_cloud.pipeline.layout import STEPS, TASKS, Task
from edgeinspect_cloud.training.config import CROPPING_TASKS, FINETUNE_BLEND, default_config
from edgeinspect_cloud.training.multitask_arch import DEFAULT_PRESET

Kind = Literal["processing", "training"]
Secret = Literal["s3", "signing_key"]

RUN_DIR = "/tmp/edgeinspect-run"
"""The run folder inside every container; the run's real home is ``run_url`` (object storage)."""
KEY_DIR = "/var/run/secrets/edgeinspect"
KEY_FILE = "edgeinspect.key"
"""The signing key is mounted from a secret as ``KEY_DIR/KEY_FILE``, never passed as a parameter."""
KEYED_STEPS = ("package", "agent-check", "register")
"""Steps that read the signing key: package and register sign; agent-check trusts only its public half."""
GATE_PASSED_FILE = "passed"
GATE_REPORT_FILE = "gate.json"


@dataclass(frozen=True)
class Param:
    """A run-time parameter of the exported pipeline (an engine substitutes its own placeholder)."""

    name: str


@dataclass(frozen=True)
class Output:
    """A file a step writes for the engine: the gate's verdict (``passed``) or its report (``report``)."""

    name: Literal["passed", "report"]


Arg = str | Param | Output

PARAMETERS: dict[str, tuple[str, Any]] = {
    "dataset_url": ("str", "s3://edgeinspect-data/datasets/line-3"),
    "run_url": ("str", "s3://edgeinspect-data/runs/line-3"),
    "registry_url": ("str", "s3://edgeinspect-models/registry"),
    "s3_endpoint_url": ("str", ""),
    "seed": ("int", 0),
    "threshold_policy": ("str", "best-f1"),
    "augment": ("str", "standard"),
    "gate_min_ap": ("float", 0.9),
    "gate_min_recall": ("float", 0.8),
    "gate_min_dice": ("float", 0.6),
    "gate_max_ap_drop": ("float", 0.005),
    "init_from": ("str", ""),
    "finetune_anchor": ("float", 0.0),
    "finetune_blend": ("float", FINETUNE_BLEND),
    "rehearse": ("str", ""),
    "train_classification_gpus": ("int", 0),
    "train_segmentation_gpus": ("int", 0),
}
"""Name -> (type, default) of every run-time parameter of the default graph (the two-model layout).
Secrets are never among them; a graph of other tasks has a ``train_{task}_gpus`` per task instead
(:func:`parameters`)."""


def parameters(tasks: Sequence[Task] = TASKS, *, quick: bool = False) -> dict[str, tuple[str, Any]]:
    """The run-time parameters of the graph of ``tasks``: the common ones and one GPU count per task.

    A graph that trains a model able to crop has ``crop_height``, defaulting to its profile's crop
    (0: whole frames), so a GPU run can train on whole frames without a new export.
    """
    common = {name: value for name, value in PARAMETERS.items() if not name.endswith("_gpus")}
    if "multitask" in tasks:  # the multi-task network's recipe (--arch)
        common["arch"] = ("str", DEFAULT_PRESET)
    cropping = [task for task in tasks if task in CROPPING_TASKS]
    if cropping:
        common["crop_height"] = ("int", default_config(cropping[0], quick=quick).crop_height or 0)
    return {**common, **{f"train_{task}_gpus": ("int", 0) for task in tasks}}


@dataclass(frozen=True)
class StepDef:
    """One node of the graph."""

    name: str
    step: str
    tasks: tuple[Task, ...]
    after: tuple[str, ...]
    kind: Kind = "processing"
    gated: bool = False
    secrets: tuple[Secret, ...] = ("s3",)

    @property
    def gpu_param(self) -> str | None:
        """The parameter holding this training step's GPU request (None for other steps)."""
        return f"train_{self.tasks[0]}_gpus" if self.kind == "training" else None


def pipeline_steps(tasks: Sequence[Task] = TASKS) -> list[StepDef]:
    """Every node, in run order: ``data``, then each local step once (``train`` once per task).

    Each node runs after the node(s) of the previous step; steps after ``gate`` are gated.
    """
    nodes: list[StepDef] = []
    previous: tuple[str, ...] = ()
    gated = False
    for step in STEPS:
        if step == "train":
            group = [StepDef(f"train-{task}", step, (task,), previous, kind="training") for task in tasks]
        else:
            secrets: tuple[Secret, ...] = ("s3", "signing_key") if step in KEYED_STEPS else ("s3",)
            group = [StepDef(step, step, tuple(tasks), previous, gated=gated, secrets=secrets)]
        nodes += group
        previous = tuple(node.name for node in group)
        gated = gated or step == "gate"
    return nodes


def local_jobs(steps: Sequence[str], tasks: Sequence[Task]) -> list[tuple[str, Task | None]]:
    """The local runner's jobs: the graph's nodes in order, one job per (step, task); data has none."""
    jobs: list[tuple[str, Task | None]] = []
    for node in pipeline_steps(tasks):
        if node.step not in steps:
            continue
        if node.step == "data":
            jobs.append((node.step, None))
        else:
            jobs += [(node.step, task) for task in node.tasks]
    return jobs


def cli_args(node: StepDef, *, quick: bool = False, epochs: int | None = None) -> list[Arg]:
    """The ``edgeinspect`` arguments of ``node``: the local runner's own CLI, one step, the run in S3."""
    task = node.tasks[0] if len(node.tasks) == 1 else "both"
    args: list[Arg] = ["pipeline", "run", "--steps", node.step, "--task", task, "--out", RUN_DIR]
    args += ["--run-url", Param("run_url"), "--dataset", Param("dataset_url")]
    args += ["--endpoint-url", Param("s3_endpoint_url"), "--seed", Param("seed"), "--no-progress"]
    if quick:
        args.append("--quick")
    if epochs is not None:
        args += ["--epochs", str(epochs)]
    if node.step == "train":  # fine-tune from a registered version ("" = from scratch)
        args += ["--init-from", Param("init_from"), "--registry", Param("registry_url")]
        args += ["--finetune-anchor", Param("finetune_anchor"), "--finetune-blend", Param("finetune_blend")]
        args += ["--rehearse", Param("rehearse")]
    if node.step == "train":  # the policy picks the shipped threshold on validation, in training
        args += ["--threshold-policy", Param("threshold_policy"), "--augment", Param("augment")]
    if node.step == "train" and task in CROPPING_TASKS:
        args += ["--crop-height", Param("crop_height")]
    if node.step == "train" and task == "multitask":
        args += ["--arch", Param("arch")]
    if node.step == "gate":
        args += ["--gate-min-ap", Param("gate_min_ap"), "--gate-min-recall", Param("gate_min_recall")]
        args += ["--gate-min-dice", Param("gate_min_dice"), "--gate-max-ap-drop", Param("gate_max_ap_drop")]
        args += ["--gate-passed-out", Output("passed"), "--gate-report-out", Output("report")]
    if "signing_key" in node.secrets:
        args += ["--key", f"{KEY_DIR}/{KEY_FILE}"]
    if node.step in ("package", "register"):
        args += ["--registry", Param("registry_url")]
    return args


def graph_spec(
    image: str, *, quick: bool = False, epochs: int | None = None, tasks: Sequence[Task] = TASKS
) -> dict[str, Any]:
    """The whole graph as JSON for the engine scripts (placeholders as ``{"param": name}`` objects)."""
    return {
        "name": "edgeinspect-training",
        "image": image,
        "run_dir": RUN_DIR,
        "key_dir": KEY_DIR,
        "key_file": KEY_FILE,
        "parameters": {
            name: {"type": t, "default": d} for name, (t, d) in parameters(tasks, quick=quick).items()
        },
        "steps": [
            {
                "name": node.name,
                "step": node.step,
                "tasks": list(node.tasks),
                "after": list(node.after),
                "kind": node.kind,
                "gated": node.gated,
                "secrets": list(node.secrets),
                "gpu_param": node.gpu_param,
                "command": ["edgeinspect"],
                "args": [_json_arg(arg) for arg in cli_args(node, quick=quick, epochs=epochs)],
            }
            for node in pipeline_steps(tasks)
        ],
    }


def _json_arg(arg: Arg) -> Any:
    if isinstance(arg, Param):
        return {"param": arg.name}
    if isinstance(arg, Output):
        return {"output": arg.name}
    return arg
