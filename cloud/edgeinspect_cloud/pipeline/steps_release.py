"""The release steps: compile (optimise, int8, parity), package (draft, sign, check), register.

Compile calibrates on training images and checks parity on the validation images, both re-read from
the dataset with the trainer's split (same seed, same fraction) and the model's own preprocessing, so
the step needs nothing from memory. When the trained framework model is at hand (same process), it
is the parity reference; otherwise the unoptimised ONNX export is (training already compared the
framework with that export: ``onnx_parity_max_abs_diff`` in its metrics).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import onnx
from edgeinspect.core.package import INT8_MODEL_FILE, TWO_OUTPUT_TASKS, Framework, TilingHint
from pydantic import JsonValue

from edgeinspect_cloud.compile import (
    Adaptation,
    CompileData,
    CompileOptions,
    SourceModel,
    compile_model,
    compile_multitask,
)
from edgeinspect_cloud.compile.contract import Task as SingleTask
from edgeinspect_cloud.data.arrays import ArraySet, load_arrays
from edgeinspect_cloud.data.dataset import SampleFiles, list_split, read_labels
from edgeinspect_cloud.data.split import stratified_split
from edgeinspect_cloud.evaluation.spec import ModelSpec
from edgeinspect_cloud.monitor.baseline import baseline_for_samples
from edgeinspect_cloud.packaging import PackageDraft, check_package, precision_from_report
from edgeinspect_cloud.pipeline.finetune import registration_lineage, training_weights
from edgeinspect_cloud.pipeline.layout import GROUPS, PipelineError, PipelineOptions, RunLayout, Task
from edgeinspect_cloud.pipeline.steps_agent import passed_agent_check
from edgeinspect_cloud.pipeline.steps_gate import passed_gate
from edgeinspect_cloud.pipeline.steps_model import MODEL_FILE, trained_spec
from edgeinspect_cloud.registry import ModelRegistry, ModelVersion
from edgeinspect_cloud.registry.gate import GATE_KEY

AGENT_CHECK_KEY = "agent_check"
"""Where a registered version records the agent-check that preceded it (``extra.agent_check``)."""

GOLDEN_FILE = "golden-input.npy"
BASELINE_FILE = "baseline.json"
PARITY_BATCH = 16


def step_compile(
    options: PipelineOptions, layout: RunLayout, task: Task, framework_model: Any | None = None
) -> dict[str, Any]:
    """Compile the trained export; writes compile.json, the golden input and the drift baseline."""
    train_dir = layout.train_dir(task)
    spec = trained_spec(layout, task)
    trained = layout.read(train_dir / "result.json", "train")
    calibration, validation, validation_files = _compile_arrays(
        layout, spec, trained, options.compile.max_calibration_images
    )
    thresholds = spec.thresholds
    shifted = _shift_arrays(options.shift_data, spec) if options.shift_data else None
    data = CompileData(
        calibration=calibration.images,
        validation=validation.images,
        labels=validation.labels,
        masks=validation.masks >= 0.5 if task in ("segmentation", *TWO_OUTPUT_TASKS) else None,
        image_threshold=thresholds.image if thresholds else 0.5,
        pixel_threshold=thresholds.pixel if thresholds else None,
        shifted=shifted.images if shifted is not None else None,
        shifted_labels=shifted.labels if shifted is not None else None,
        shift_source=f"--shift-data {options.shift_data.name}" if options.shift_data else "",
    )
    model = onnx.load(str(layout.require(train_dir / MODEL_FILE, "train")))
    framework = Framework.model_validate(trained["framework"])
    out = layout.compile_dir(task)
    if task in TWO_OUTPUT_TASKS:
        reference = _multi_reference(framework_model) if framework_model is not None else None
        result = compile_multitask(
            model, framework, data, out, _compile_options(options, task), reference, task
        )
    else:
        source = SourceModel(
            model=model,
            framework=framework,
            adaptation=Adaptation(task=cast(SingleTask, task)),  # TWO_OUTPUT_TASKS took the others
            reference=_framework_reference(framework_model) if framework_model is not None else None,
        )
        result = compile_model(source, data, out, options.compile)
    np.save(out / GOLDEN_FILE, _golden(validation), allow_pickle=False)
    layout.write(out / BASELINE_FILE, _baseline(out / "model.onnx", spec, validation_files, result.report))
    report = dict(result.report)
    report["training_onnx_parity_max_abs_diff"] = trained.get("metrics", {}).get("onnx_parity_max_abs_diff")
    layout.write(out / "compile.json", report)
    keys = ("export_parity", "int8_parity", "fp32", "int8", "precision")
    return {key: report[key] for key in keys if key in report}


def _shift_arrays(root: Path, spec: ModelSpec) -> ArraySet:
    """A held-out family of frames for the int8 shift gate: its ``test/`` split, else ``train/``."""
    split = "test" if (root / "test").is_dir() else "train"
    files = list_split(root, split)
    if not files:
        raise PipelineError(f"--shift-data {root} holds no images", hint="give a dataset folder")
    return load_arrays(files, spec.input)


def _compile_options(options: PipelineOptions, task: Task) -> CompileOptions:
    """An anomaly model ships fp32 only: its whitened distances (squares summed over every feature)
    lose their precision at 8 bits and it has no learnt weights for int8 to make cheaper."""
    return replace(options.compile, quantize=False) if task == "anomaly" else options.compile


def _compile_arrays(
    layout: RunLayout, spec: ModelSpec, trained: dict[str, Any], max_calibration: int
) -> tuple[ArraySet, ArraySet, list[SampleFiles]]:
    """The trainer's split of ``train/`` again: calibration images from its training part, validation
    (arrays, and its files for the drift baseline)."""
    config = trained.get("config", {})
    files = list_split(layout.dataset_root(), "train")
    labels = read_labels(files)
    split = stratified_split(
        labels,
        float(config.get("val_fraction", 0.2)),
        int(config.get("seed", 0)),
        need_defects=config.get("task") != "anomaly",
    )
    rng = np.random.default_rng(int(config.get("seed", 0)))
    picked = np.sort(rng.permutation(split.train)[:max_calibration])
    calibration = load_arrays([files[i] for i in picked], spec.input)
    validation_files = [files[i] for i in split.val]
    validation = load_arrays(validation_files, spec.input)
    return calibration, validation, validation_files


def _framework_reference(model: Any) -> Any:
    from edgeinspect_cloud.training.export import framework_predict

    def reference(images: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        parts = [
            framework_predict(model, images[i : i + PARITY_BATCH])
            for i in range(0, len(images), PARITY_BATCH)
        ]
        return np.concatenate(parts).astype(np.float32)

    return reference


def _multi_reference(model: Any) -> Any:
    """The framework model's every output (a multi-task model: image score, mask), batch by batch."""
    from edgeinspect_cloud.training.export import framework_outputs

    def reference(images: npt.NDArray[np.uint8]) -> list[npt.NDArray[np.float32]]:
        parts = [
            framework_outputs(model, images[i : i + PARITY_BATCH])
            for i in range(0, len(images), PARITY_BATCH)
        ]
        return [np.concatenate([p[k] for p in parts]).astype(np.float32) for k in range(len(parts[0]))]

    return reference


def _golden(validation: ArraySet) -> npt.NDArray[np.uint8]:
    """The smoke-test input: the first defective validation image (a non-trivial answer), else the first."""
    defective = np.flatnonzero(validation.labels)
    index = int(defective[0]) if defective.size else 0
    return np.ascontiguousarray(validation.images[index : index + 1])


def _baseline(
    model_path: Any, spec: ModelSpec, validation: list[SampleFiles], report: dict[str, Any]
) -> dict[str, JsonValue]:
    """The drift baseline: the validation frames' telemetry statistics under the compiled model.

    The same features and bins the edge worker publishes (``edgeinspect.core.telemetry``), so the
    drift monitor compares like with like; see ``edgeinspect_cloud.monitor.baseline``.
    """
    baseline = baseline_for_samples(model_path, spec, validation)
    baseline["extra"] = {**baseline["extra"], "fp32_latency_ms": report.get("fp32", {}).get("latency_ms")}
    return baseline


def tiling_hint(options: PipelineOptions, layout: RunLayout, spec: ModelSpec) -> TilingHint | None:
    """Tiles of the training frames' size, for a model trained on whole frames shrunk to its input.

    Such a model learned defects at the scale training shrank them to; a device that tiles a larger
    camera frame must cut tiles of that training frame size so each tile is shrunk the same way (the
    worker's default tile is the input size: right only for models trained at camera resolution).
    ``None`` when the frames differ in size, are not larger than the input, or ``--no-tiling-hint``.
    """
    size = layout.read(layout.data_json, "data").get("frame_size") if options.tiling_hint else None
    if not size:
        return None
    height, width = int(size[0]), int(size[1])
    if height <= spec.input.resize.height and width <= spec.input.resize.width:
        return None
    return TilingHint(mode="auto", tile_height=height, tile_width=width)


def step_package(options: PipelineOptions, layout: RunLayout, task: Task) -> dict[str, Any]:
    """Make the version-free draft, build the package for the next registry version, check it."""
    key = options.signing_key()
    spec = trained_spec(layout, task)
    trained = layout.read(layout.train_dir(task) / "result.json", "train")
    compiled_dir = layout.compile_dir(task)
    compiled = layout.read(compiled_dir / "compile.json", "compile")
    if spec.thresholds is None:
        raise PipelineError(f"{task} model spec has no thresholds", hint="re-run the train step")
    draft = PackageDraft.create(
        layout.package_dir(task) / "draft",
        name=GROUPS[task],
        task=task,
        framework=Framework.model_validate(trained["framework"]),
        input_spec=spec.input,
        outputs=spec.outputs,
        thresholds=spec.thresholds,
        operating_point=spec.operating_point,
        precision=precision_from_report(compiled),
        tiling=tiling_hint(options, layout, spec),
        metrics=package_metrics(layout, task, trained, compiled),
        dataset_fingerprint=trained["dataset_fingerprint"],
        model_path=compiled_dir / "model.onnx",
        int8_model_path=compiled_dir / "model.int8.onnx"
        if (compiled_dir / "model.int8.onnx").is_file()
        else None,
        golden_input=np.load(layout.require(compiled_dir / GOLDEN_FILE, "compile"), allow_pickle=False),
        baseline=layout.read(compiled_dir / BASELINE_FILE, "compile"),
    )
    version = _registry(options).next_version(GROUPS[task]) if options.registry_url else 1
    path = draft.build(version, key, layout.package_dir(task))
    check = check_package(path, [key.public_key()]).as_dict()
    layout.write(layout.package_dir(task) / "check.json", check)
    return {"package": str(path), "size_bytes": path.stat().st_size, "check": check}


def package_metrics(
    layout: RunLayout, task: Task, trained: dict[str, Any], compiled: dict[str, Any]
) -> dict[str, float]:
    """Held-out test metrics when the evaluate step ran (else validation), plus int8's beside them."""
    evaluated = layout.evaluate_dir(task) / "metrics.json"
    source = (
        json.loads(evaluated.read_text())["metrics"] if evaluated.is_file() else trained.get("metrics", {})
    )
    metrics = {
        k: float(v) for k, v in source.items() if isinstance(v, int | float) and not isinstance(v, bool)
    }
    for key, value in compiled.get("int8", {}).get("metrics", {}).items():
        metrics[f"int8_val_{key}"] = float(value)
    for key, value in compiled.get("fp32", {}).get("metrics", {}).items():
        metrics[f"fp32_val_{key}"] = float(value)
    for report, prefix in (("int8_parity", "int8_parity"), ("mask_int8_parity", "mask_int8_parity")):
        parity = compiled.get(report, {})
        for key in ("max_abs_diff", "score_max_abs_diff", "verdict_agreement", "pixel_agreement"):
            if isinstance(parity.get(key), int | float):
                metrics[f"{prefix}_{key}"] = float(parity[key])
    return metrics


def step_register(options: PipelineOptions, layout: RunLayout, task: Task) -> dict[str, Any]:
    """Register the package (PendingManualApproval); rebuilt for another number if it was taken."""
    gate = passed_gate(layout, task)
    registry = _registry(options)
    key = options.signing_key()
    draft = PackageDraft.load(layout.require(layout.package_dir(task) / "draft", "package"))
    agent_check = passed_agent_check(layout, task, _draft_models(draft))
    group = GROUPS[task]

    def build(number: int) -> Any:
        prebuilt = layout.package_dir(task) / f"{group}-{number}.tar.gz"
        return (
            prebuilt
            if prebuilt.is_file() and _built_for(prebuilt, number)
            else draft.build(number, key, prebuilt.parent)
        )

    trained = layout.read(layout.train_dir(task) / "result.json", "train")
    mv: ModelVersion = registry.register(
        group,
        build,
        created_by=options.created_by,
        description=f"pipeline run {layout.root.resolve()}",
        extra={
            "run_dir": str(layout.root.resolve()),
            "quick": options.quick,
            "seed": options.seed,
            GATE_KEY: gate,
            AGENT_CHECK_KEY: agent_check,
            **registration_lineage(layout, task),
        },
        weights=training_weights(layout, task, trained),
    )
    layout.write(layout.register_json(task), mv.to_json())
    return {
        "group": group,
        "version": mv.version,
        "status": mv.status,
        "package_url": mv.registration.package.url,
        "weights_url": mv.registration.weights.url if mv.registration.weights else None,
    }


def _draft_models(draft: PackageDraft) -> dict[str, Path]:
    """The draft's model files by their name in a package (what agent-check recorded hashes of)."""
    models = {MODEL_FILE: draft.model_path}
    if draft.int8_model_path is not None:
        models[INT8_MODEL_FILE] = draft.int8_model_path
    return models


def _built_for(path: Any, number: int) -> bool:
    from edgeinspect_cloud.registry import manifest_from_tar

    return manifest_from_tar(path).version == str(number)


def _registry(options: PipelineOptions) -> ModelRegistry:
    if not options.registry_url:
        raise PipelineError(
            "the register step needs --registry", hint="pass --registry s3://bucket/prefix or file:///dir"
        )
    extra = {"endpoint_url": options.endpoint_url} if options.endpoint_url else {}
    return ModelRegistry.open(options.registry_url, **extra)
