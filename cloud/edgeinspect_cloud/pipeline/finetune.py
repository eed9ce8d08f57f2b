"""Fine-tuning a registered version on a new line, and keeping every earlier line as good as it was.

``pipeline run --init-from GROUP:VERSION`` (``GROUP:approved`` for the latest approved one):

- **train** downloads the parent's stored training checkpoint and package into ``init/{task}/`` and
  fine-tunes the parent's own network on this run's datasets (the new line's frames) with a short
  schedule (:func:`~edgeinspect_cloud.training.config.finetune_config`). Early stopping and the
  threshold policy see only this run's validation split, i.e. the new line's frames;
- **evaluate** measures the fine-tuned model on each of this run's datasets' test split and on every
  line the parent was evaluated on (``registration.extra["lines"]``), and measures the parent's own
  package on those earlier lines too (also on one this run trains on again), so both are compared
  on the same frames by the same code;
- **gate** refuses the version when its image AP on any earlier line falls more than
  ``max_ap_drop`` below the parent's (:func:`~edgeinspect_cloud.registry.gate.judge`);
- **register** stores the new checkpoint and the lines (its own and the inherited ones), so the
  next fine-tune of this version knows every line to protect.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeinspect.core.observability import get_logger
from pydantic import JsonValue

from edgeinspect_cloud.data.dataset import list_split
from edgeinspect_cloud.data.fingerprint import dataset_fingerprint
from edgeinspect_cloud.evaluation.evaluate import json_ready
from edgeinspect_cloud.evaluation.package import evaluate_dataset, evaluate_package
from edgeinspect_cloud.evaluation.spec import ModelSpec
from edgeinspect_cloud.pipeline.layout import GROUPS, PipelineError, PipelineOptions, RunLayout, Task
from edgeinspect_cloud.pipeline.remote import DATASETS_DIR, fetch_dataset, is_url
from edgeinspect_cloud.registry import ModelRegistry
from edgeinspect_cloud.registry.lineage import LineRecord, fetch_weights, lines_of, resolve_version
from edgeinspect_cloud.registry.registry import TrainingWeights
from edgeinspect_cloud.training.config import TrainConfig, finetune_config

log = get_logger(__name__)

PACKAGE_FILE = "parent.tar.gz"
BACKBONE_FILE = "backbone.json"
"""In ``init/anomaly/``: the multi-task version whose encoder the anomaly model reads (registered as
``extra["backbone"]``)."""
FINE_TUNABLE = ("classification", "segmentation", "multitask")
"""Tasks whose trainers start from ``init_weights`` (the good-parts-only model is fitted in one pass)."""


def open_registry(options: PipelineOptions) -> ModelRegistry:
    """The ``--registry`` of the run; fine-tuning reads its parent from there."""
    if not options.registry_url:
        raise PipelineError(
            "--init-from needs the registry that holds the parent version",
            hint="pass --registry s3://bucket/prefix or file:///dir",
        )
    extra = {"endpoint_url": options.endpoint_url} if options.endpoint_url else {}
    return ModelRegistry.open(options.registry_url, **extra)


def prepare_init(options: PipelineOptions, layout: RunLayout, task: Task) -> TrainConfig | None:
    """The fine-tune config of ``task`` (parent weights downloaded), or None without ``--init-from``."""
    ref = options.init_for(task)
    if ref is None or _backbone_ref(options, task):
        return None  # from scratch, or a backbone (anomaly_backbone), not a fine-tune
    if task not in FINE_TUNABLE:
        raise PipelineError(
            f"--init-from {ref}: a {task} model is fitted, not fine-tuned",
            hint=f"fine-tune one of {', '.join(FINE_TUNABLE)}; fit the {task} model on the new line's frames"
            + (
                f" (--init-from {GROUPS['multitask']}:VERSION gives it that model's encoder)"
                if task == "anomaly"
                else ""
            ),
        )
    registry = open_registry(options)
    mv = resolve_version(registry, ref)
    if mv.registration.task != task:
        raise PipelineError(
            f"--init-from {ref} is a {mv.registration.task} model, not {task}",
            hint=f"name a version of {GROUPS[task]}",
        )
    folder = layout.init_dir(task)
    weights = fetch_weights(registry, mv, folder)
    package = folder / PACKAGE_FILE
    registry.store.download(
        mv.registration.package.key, package, expected_sha256=mv.registration.package.sha256
    )
    assert mv.registration.weights is not None  # fetch_weights raised otherwise
    parent_config = dict(mv.registration.weights.config)
    layout.write(
        layout.init_json(task),
        {
            "ref": ref,
            "group": mv.group,
            "version": mv.version,
            "weights": str(weights),
            "package": str(package),
            "config": parent_config,
            "lines": [line.to_json() for line in lines_of(mv)],
        },
    )
    log.info("finetune_from", task=task, group=mv.group, version=mv.version, lines=len(lines_of(mv)))
    return finetune_config(
        parent_config,
        weights,
        seed=options.seed,
        epochs=options.epochs,
        progress=options.progress,
        threshold_policy=options.threshold_policy,
        anchor=options.finetune_anchor,
        blend=options.finetune_blend,
    )


def anomaly_backbone(options: PipelineOptions, layout: RunLayout, task: Task) -> str | None:
    """The multi-task checkpoint the good-parts-only model reads (``--init-from defect-mt:VERSION``).

    Not a fine-tune: nothing is written to ``init.json``, so evaluate and gate judge the anomaly
    model on its own, not against the multi-task parent's figures on earlier lines.
    """
    ref = _backbone_ref(options, task)
    if ref is None:
        return None
    registry = open_registry(options)
    mv = resolve_version(registry, ref)
    if mv.registration.task != "multitask":
        raise PipelineError(
            f"--init-from {ref} is a {mv.registration.task} model; the anomaly model's backbone is a "
            "multi-task one",
            hint=f"name a version of {GROUPS['multitask']}",
        )
    folder = layout.init_dir("anomaly")
    weights = fetch_weights(registry, mv, folder)
    layout.write(folder / BACKBONE_FILE, {"ref": ref, "group": mv.group, "version": mv.version})
    log.info("anomaly_backbone_from", group=mv.group, version=mv.version)
    return str(weights)


def rehearsal_folders(options: PipelineOptions, layout: RunLayout) -> list[str]:
    """``--rehearse`` as local folders: a URL is fetched once into the run's datasets folder (which
    is never pushed with the run), so an engine's train node rehearses ``s3://`` lines too."""
    folders = []
    for index, source in enumerate(options.rehearse):
        if is_url(source):
            target = layout.root / DATASETS_DIR / f"rehearse{index}"
            if not (target / "train").is_dir():
                fetch_dataset(source, target, options.endpoint_url)
            log.info("rehearse_fetched", source=source, folder=str(target))
            folders.append(str(target))
        else:
            folders.append(source)
    return folders


def _backbone_ref(options: PipelineOptions, task: Task) -> str | None:
    """The ``--init-from`` reference that lends ``task`` a backbone: a multi-task version, for anomaly."""
    ref = options.init_for(task)
    if task == "anomaly" and ref is not None and ref.split(":", 1)[0] == GROUPS["multitask"]:
        return ref
    return None


def parent_of(layout: RunLayout, task: Task) -> dict[str, Any] | None:
    """What the train step recorded about the parent (None: this run did not fine-tune ``task``)."""
    path = layout.init_json(task)
    return layout.read(path, "train") if path.is_file() else None


def dataset_sources(options: PipelineOptions, layout: RunLayout) -> list[str]:
    """Where each ``--dataset`` really lives: its URL when fetched, else its absolute folder."""
    fetched = (layout.root / DATASETS_DIR).resolve()
    sources = []
    for path in options.datasets:
        resolved = path.resolve()
        if resolved.parent == fetched and resolved.name.startswith("d") and resolved.name[1:].isdigit():
            sources.append(options.dataset_urls[int(resolved.name[1:])])
        else:
            sources.append(str(resolved))
    return sources


def line_name(source: str) -> str:
    """A line's short name: the dataset folder's (or URL's) last part."""
    return source.rstrip("/").rsplit("/", 1)[-1] or source


def evaluate_lines(
    options: PipelineOptions, layout: RunLayout, task: Task, model_path: Path, spec: ModelSpec
) -> list[dict[str, Any]]:
    """This model on each of this run's datasets and, fine-tuned, on every earlier line (with the
    parent's figures on the same frames); written to ``evaluate/{task}/lines.json``."""
    data = layout.read(layout.data_json, "data")
    own = [
        (Path(path), source) for path, source in zip(data["datasets"], data.get("sources", []), strict=False)
    ]
    parent = parent_of(layout, task)
    earlier = [LineRecord.model_validate(item) for item in parent["lines"]] if parent else []
    package = Path(parent["package"]) if parent else None
    known = {line.source for line in earlier}  # a line trained on again is still an earlier line
    rows = [
        _line_row(model_path, spec, folder, source, package if source in known else None)
        for folder, source in own
        if _has_test(folder)
    ]
    if parent is not None:
        seen = {source for _, source in own}
        for index, line in enumerate(earlier):
            if line.source in seen:
                continue
            folder = _reachable(options, layout, line, index, parent)
            if not _has_test(folder):
                log.warning("old_line_without_test_split", line=line.name, source=line.source)
                continue
            rows.append(_line_row(model_path, spec, folder, line.source, Path(parent["package"])))
    layout.write(layout.lines_json(task), {"lines": rows})
    return rows


def _line_row(
    model_path: Path, spec: ModelSpec, folder: Path, source: str, parent_package: Path | None
) -> dict[str, Any]:
    evaluation = evaluate_dataset(model_path, spec, folder, split="test")
    row: dict[str, Any] = {
        "name": line_name(source),
        "source": source,
        "fingerprint": dataset_fingerprint(folder),
        "split": "test",
        "images": len(list_split(folder, "test")),
        "metrics": _numbers(json_ready(evaluation.metrics)),
        "earlier_line": parent_package is not None,
    }
    if parent_package is not None:
        _, before = evaluate_package(parent_package, folder, split="test")
        row["parent_metrics"] = _numbers(json_ready(before.metrics))
    return row


def _reachable(
    options: PipelineOptions, layout: RunLayout, line: LineRecord, index: int, parent: dict[str, Any]
) -> Path:
    """The earlier line's dataset folder here (fetched when it is a URL), or a clear error."""
    if is_url(line.source):
        return fetch_dataset(line.source, layout.root / DATASETS_DIR / f"line{index}", options.endpoint_url)
    folder = Path(line.source)
    if not folder.is_dir():
        raise PipelineError(
            f"line {line.name} ({line.source}), on which {parent['group']} version {parent['version']} "
            "was evaluated, is not reachable here: the gate must re-check every earlier line",
            hint="make that dataset available at the same path (or register lines from s3:// datasets, "
            "which any machine can fetch)",
        )
    return folder


def _has_test(folder: Path) -> bool:
    return (folder / "test").is_dir()


def _numbers(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def old_line_figures(layout: RunLayout, task: Task) -> dict[str, tuple[float | None, float]]:
    """For the gate: earlier line -> (this model's image AP there, the parent's), from ``lines.json``."""
    if parent_of(layout, task) is None:
        return {}
    figures: dict[str, tuple[float | None, float]] = {}
    for row in layout.read(layout.lines_json(task), "evaluate")["lines"]:  # a fine-tune needs evaluate
        baseline = row.get("parent_metrics", {}).get("image_ap")
        if row.get("earlier_line") and isinstance(baseline, float):
            name = row["name"] if row["name"] not in figures else f"{row['name']}#{len(figures)}"
            figures[name] = (row["metrics"].get("image_ap"), baseline)
    return figures


def registration_lineage(layout: RunLayout, task: Task) -> dict[str, JsonValue]:
    """``extra`` entries of the registration: the lines evaluated on, the parent if fine-tuned, and the
    backbone of an anomaly model that reads a multi-task version's encoder."""
    extra: dict[str, JsonValue] = {}
    path = layout.lines_json(task)
    if path.is_file():
        rows = layout.read(path, "evaluate")["lines"]
        extra["lines"] = [
            LineRecord.model_validate({k: row[k] for k in LineRecord.model_fields if k in row}).to_json()
            for row in rows
        ]
    parent = parent_of(layout, task)
    if parent is not None:
        extra["init_from"] = f"{parent['group']}:{parent['version']}"
    backbone = layout.init_dir(task) / BACKBONE_FILE
    if backbone.is_file():
        record = layout.read(backbone, "train")
        extra["backbone"] = f"{record['group']}:{record['version']}"
    return extra


def training_weights(layout: RunLayout, task: Task, trained: dict[str, Any]) -> TrainingWeights | None:
    """The checkpoint the train step kept (``result.json``), to store with the registered version."""
    name = Path(str(trained.get("checkpoint_path", ""))).name
    path = layout.train_dir(task) / "checkpoints" / name
    if not name or not path.is_file():
        return None
    framework = str(trained.get("framework", {}).get("name", ""))
    config = {
        k: v for k, v in dict(trained.get("config", {})).items() if k not in ("init_weights", "progress")
    }
    return TrainingWeights(path=path, format="keras" if framework == "keras" else "pytorch", config=config)
