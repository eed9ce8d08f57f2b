"""The run folder: where every pipeline step reads its inputs and writes its outputs.

Steps talk to each other only through this folder (never through memory alone), so any step can run
by itself - again, later, on another machine, or as one container of a Kubeflow/SageMaker pipeline -
given the folder the previous steps left::

    RUN_DIR/run.json                  the options of the last invocation
    RUN_DIR/data/data.json            datasets, the root trained on, fingerprint, counts
    RUN_DIR/data/union/               several --dataset folders joined (links), when more than one
    RUN_DIR/init/{task}.json          --init-from: the parent version, its weights, config and lines
    RUN_DIR/init/{task}/              the parent's training checkpoint and package
    RUN_DIR/train/{task}/             the trainer's run: model.onnx, model_spec.json, result.json, report/
    RUN_DIR/evaluate/{task}/          held-out evaluation report (metrics.json, report.html, plots),
                                      lines.json (every line's test split; with a parent, its figures)
    RUN_DIR/gate/{task}.json          the quality gate's verdict: thresholds, figures, passed
    RUN_DIR/compile/{task}/           model.onnx, model.int8.onnx, compile.json, golden-input.npy,
                                      baseline.json (drift baseline)
    RUN_DIR/package/{task}/           draft/ and the signed {group}-{n}.tar.gz, check.json
    RUN_DIR/agent-check/{task}.json   the package loaded by the real edge agent: variants, golden diffs
    RUN_DIR/agent-check/{task}.log    that agent's own log
    RUN_DIR/register/{task}.json      the registered version (as ``registry show --json`` prints it)
    RUN_DIR/summary.json              what every step reported
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from edgeinspect.core.errors import EdgeInspectError
from edgeinspect.core.package import load_private_key

from edgeinspect_cloud.compile import CompileOptions
from edgeinspect_cloud.registry.gate import QualityGate, default_gate
from edgeinspect_cloud.training.config import FINETUNE_BLEND, Profile

Task = Literal["classification", "segmentation", "multitask", "anomaly"]
TASKS: tuple[Task, ...] = ("classification", "segmentation")
"""The two-model layout (``--task both``); ``multitask`` is the one-pass alternative to both, and
``anomaly`` the good-parts-only model for a line without labelled defects."""
ALL_TASKS: tuple[Task, ...] = (*TASKS, "multitask", "anomaly")
STEPS = ("data", "train", "evaluate", "gate", "compile", "package", "agent-check", "register")
GROUPS: dict[Task, str] = {
    "classification": "defect-cls",
    "segmentation": "defect-seg",
    "multitask": "defect-mt",
    "anomaly": "defect-anomaly",
}
"""Registry group (= package name) per task; the edge worker's aliases use the same names."""


class PipelineError(EdgeInspectError):
    """A pipeline step cannot run: bad options, or what an earlier step should have left is missing."""


@dataclass
class PipelineOptions:
    """Everything ``edgeinspect pipeline run`` was given (``datasets`` are only needed by ``data``)."""

    run_dir: Path
    tasks: list[Task]
    datasets: list[Path] = field(default_factory=list)
    quick: bool = False
    profile: Profile | None = None
    seed: int = 0
    epochs: int | None = None
    registry_url: str | None = None
    endpoint_url: str | None = None
    key_path: Path | None = None
    created_by: str | None = None
    progress: bool = True
    compile: CompileOptions = field(default_factory=CompileOptions)
    gate: QualityGate = field(default_factory=default_gate)
    threshold_policy: str = "best-f1"
    """How training chooses the shipped image threshold on validation (``ThresholdPolicy``)."""
    shift_data: Path | None = None
    """A held-out family of frames (dataset folder) for compile's int8 shift gate; ``None``: synthetic."""
    augment: str | None = None
    """Training augmentation (``standard``, ``robust``, ``off``); ``None``: the profile's."""
    run_url: str | None = None
    """Object-storage home of the run folder (engine containers): pulled before, pushed after each step."""
    dataset_urls: list[str] = field(default_factory=list)
    """``s3://``/``file://`` datasets, fetched into the run folder's ``.datasets/`` before the steps."""
    arch: str | None = None
    """The multi-task network's recipe (``--arch``: preset[,key=value...]); ``None``: the default preset."""
    device: str = "cpu"
    """Where the multi-task model trains (``--device``: cpu, cuda, cuda:N)."""
    crop_height: int | None = None
    """Training crop rows of the segmenter and the multi-task model (``--crop-height``; 0: whole
    frames; ``None``: the profile's)."""
    rehearse: list[str] = field(default_factory=list)
    """Earlier lines' datasets (``--rehearse``: folders or URLs) whose training frames join every
    training batch, never validation: a fine-tune keeps seeing them while early stopping and
    thresholds see the new line."""
    tiling_hint: bool = True
    """Write the manifest's tiling block (tiles of the training frame size) when training shrank frames."""
    init_from: list[str] = field(default_factory=list)
    """``GROUP:VERSION`` per fine-tuned task (``--init-from``): train starts from that version's weights."""
    finetune_anchor: float = 0.0
    """``--finetune-anchor``: a fine-tune's L2-SP weight (``TrainConfig.anchor``; 0: off)."""
    finetune_blend: float = FINETUNE_BLEND
    """``--finetune-blend``: the share of a fine-tune's weight change that ships (``TrainConfig.blend``)."""

    def init_for(self, task: Task) -> str | None:
        """The ``--init-from`` reference for ``task``'s group, or None (train from scratch).

        The anomaly model also takes a multi-task version: its encoder becomes the features.
        """
        groups = (GROUPS[task], GROUPS["multitask"]) if task == "anomaly" else (GROUPS[task],)
        for ref in self.init_from:
            if ref.split(":", 1)[0] in groups:
                return ref
        return None

    def signing_key(self) -> Ed25519PrivateKey:
        """The ``--key`` private key: package and register sign with it; agent-check trusts its public key."""
        if self.key_path is None:
            raise PipelineError(
                "packaging needs a signing key",
                hint="pass --key PRIVATE_KEY (make one with `edgeinspect keys generate`)",
            )
        return load_private_key(self.key_path)


class RunLayout:
    """Paths inside one run folder, and JSON helpers that say which step to run when a file is missing."""

    def __init__(self, run_dir: str | Path) -> None:
        self.root = Path(run_dir)

    @property
    def data_json(self) -> Path:
        return self.root / "data" / "data.json"

    @property
    def union_dir(self) -> Path:
        return self.root / "data" / "union"

    @property
    def summary_json(self) -> Path:
        return self.root / "summary.json"

    def train_dir(self, task: Task) -> Path:
        return self.root / "train" / task

    def evaluate_dir(self, task: Task) -> Path:
        return self.root / "evaluate" / task

    def init_dir(self, task: Task) -> Path:
        return self.root / "init" / task

    def init_json(self, task: Task) -> Path:
        return self.root / "init" / f"{task}.json"

    def lines_json(self, task: Task) -> Path:
        return self.evaluate_dir(task) / "lines.json"

    def gate_json(self, task: Task) -> Path:
        return self.root / "gate" / f"{task}.json"

    def compile_dir(self, task: Task) -> Path:
        return self.root / "compile" / task

    def package_dir(self, task: Task) -> Path:
        return self.root / "package" / task

    def agent_check_json(self, task: Task) -> Path:
        return self.root / "agent-check" / f"{task}.json"

    def agent_check_log(self, task: Task) -> Path:
        return self.root / "agent-check" / f"{task}.log"

    def register_json(self, task: Task) -> Path:
        return self.root / "register" / f"{task}.json"

    def dataset_root(self) -> Path:
        """The dataset folder the data step chose (one dataset, or the union of several)."""
        return Path(self.read(self.data_json, "data")["root"])

    def read(self, path: Path, step: str) -> dict[str, Any]:
        """Read a JSON file an earlier ``step`` wrote; ``PipelineError`` saying to run it if missing."""
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise PipelineError(
                f"{path} is missing: the {step} step has not run in {self.root}",
                hint=f"run it first: edgeinspect pipeline run --out {self.root} --steps {step} ...",
            ) from exc
        except (OSError, json.JSONDecodeError) as exc:
            raise PipelineError(f"cannot read {path}: {exc}", hint=f"re-run the {step} step") from exc
        return data

    def require(self, path: Path, step: str) -> Path:
        """Return ``path`` if it exists, else the same error as :meth:`read`."""
        if not path.exists():
            raise PipelineError(
                f"{path} is missing: the {step} step has not run in {self.root}",
                hint=f"run it first: edgeinspect pipeline run --out {self.root} --steps {step} ...",
            )
        return path

    @staticmethod
    def write(path: Path, data: Any) -> Path:
        """Write JSON (sorted, NaN as null) atomically enough for one writer: temp file, then rename."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(finite(data), indent=2, sort_keys=True, default=str) + "\n")
        tmp.replace(path)
        return path


def finite(value: Any) -> Any:
    """A copy with NaN/infinity replaced by None, recursively (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value
