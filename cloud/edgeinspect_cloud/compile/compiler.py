"""The compile step: source model -> contract ONNX -> optimised fp32 -> static int8, with parity gates.

Outputs in ``out_dir``: ``model.onnx`` (fp32, optimised), ``model.int8.onnx`` (when int8 passed its
gates) and ``compile.json`` (what was done, parity figures, fp32 vs int8 accuracy, latency and sizes,
and ``precision``: the package's default precision and the int8 gate figures behind it).

The int8 gate judges verdicts at the shipped image threshold on two sets: the validation split, and a
shifted set (``CompileData.shifted``: a held-out family of frames, else the validation frames under
deterministic photometric shifts, see :mod:`.shift`), because int8 that agrees on validation can
still disagree on a new surface. int8 that fails either is not shipped: ``model.onnx`` becomes the
package's default, the rejected file is kept as ``model.int8.rejected.onnx`` for inspection, and
``precision.reason`` says which set failed by how much (``CompileOptions.strict_int8`` raises instead).

``compile.json`` is written even when a parity gate fails, so the figures behind the failure can be
read; an export parity failure (a wrong graph, never shippable) raises
:class:`~edgeinspect_cloud.compile.errors.ParityError`.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from edgeinspect.core.observability import get_logger
from edgeinspect.core.package import Int8Gate, Precision

from edgeinspect_cloud.compile.contract import (
    MULTITASK_OUTPUTS,
    OUTPUT_NAMES,
    Task,
    adapt_to_contract,
    check_contract,
    check_multitask_contract,
)
from edgeinspect_cloud.compile.errors import CompileError, ParityError
from edgeinspect_cloud.compile.optimize import CalibrationName, OptimisationLevel, optimize, quantize_int8
from edgeinspect_cloud.compile.parity import (
    Bounded,
    ParityReport,
    accuracy,
    agreement,
    compare,
    image_scores,
    require_parity,
)
from edgeinspect_cloud.compile.runtime import (
    cpu_int8_features,
    latency_ms,
    open_session,
    ort_version,
    predict,
    predict_all,
)
from edgeinspect_cloud.compile.shift import SHIFT_SOURCE, shifted_set
from edgeinspect_cloud.compile.sources import OPSET, SourceModel

log = get_logger(__name__)

FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
REJECTED_INT8_FILE = "model.int8.rejected.onnx"
REPORT_FILE = "compile.json"
INT8_HINT = (
    "calibrate on more representative images (same preprocessing, both classes, the shifted family "
    "too), try --calibration percentile, or ship fp32 only (--no-int8)"
)


@dataclass(frozen=True)
class CompileOptions:
    """Knobs of the compile step; the defaults are what the pipeline uses.

    ``export_max_diff``: allowed |framework - fp32 ONNX| (float rounding is ~1e-6).
    ``int8_max_diff`` / ``int8_min_agreement``: allowed |fp32 - int8| on image scores (the probability,
    or a mask's maximum) and the share of validation images that must keep their verdict; quantisation
    error on a probability is typically a few hundredths, a bad calibration gives tenths and flipped
    verdicts. ``int8_min_pixel_agreement``: the share of mask pixels that must stay on the same side of
    the pixel threshold (segmentation). Images and pixels whose fp32 score lies within
    ``verdict_margin`` of their threshold are not judged (see ``ParityReport``).

    ``shift_gate``: also judge int8 on the shifted set (``CompileData.shifted``, else the first
    ``shift_max_images`` validation frames under every shift of :mod:`.shift`); it passes when the
    share of verdicts at the image threshold that int8 keeps is at least ``int8_min_shift_agreement``,
    judging every image whose fp32 score is at least ``shift_margin`` from the threshold. ``strict_int8``:
    a failed int8 gate raises ``ParityError`` instead of shipping fp32 as the default.
    """

    optimisation: OptimisationLevel = "basic"
    quantize: bool = True
    calibration_method: CalibrationName = "minmax"
    reduce_range: bool = True
    max_calibration_images: int = 64
    export_max_diff: float = 1e-3
    int8_max_diff: float = 0.25
    int8_min_agreement: float = 0.9
    int8_min_pixel_agreement: float = 0.99
    verdict_margin: float = 0.02
    shift_gate: bool = True
    int8_min_shift_agreement: float = 0.99
    shift_margin: float = 0.0
    shift_max_images: int = 48
    strict_int8: bool = False
    latency_runs: int = 20
    latency_threads: int = 1


@dataclass(frozen=True)
class CompileData:
    """Images for the compile step, uint8 NCHW at the model's input size, preprocessed like the edge does.

    ``calibration`` should come from the training split; ``validation`` (with optional ``labels`` and,
    for segmentation, ``masks`` at model resolution) from the held-out split. ``shifted`` (optional,
    with ``shifted_labels``) is a family of frames the model was not tuned on, for the int8 shift gate;
    ``shift_source`` names it in the manifest. Without it compile builds one (see :mod:`.shift`).
    """

    calibration: npt.NDArray[np.uint8]
    validation: npt.NDArray[np.uint8]
    labels: npt.NDArray[np.bool_] | None = None
    masks: npt.NDArray[np.bool_] | None = None
    image_threshold: float = 0.5
    pixel_threshold: float | None = None
    shifted: npt.NDArray[np.uint8] | None = None
    shifted_labels: npt.NDArray[np.bool_] | None = None
    shift_source: str = ""


@dataclass
class CompileResult:
    """Where the compiled models are and what was measured (also written to ``compile.json``)."""

    out_dir: Path
    model_path: Path
    int8_model_path: Path | None
    report: dict[str, Any] = field(default_factory=dict)


def compile_model(
    source: SourceModel, data: CompileData, out_dir: str | Path, options: CompileOptions | None = None
) -> CompileResult:
    """Adapt, optimise, check export parity, quantise, check int8 parity, measure; see the module doc."""
    opts = options or CompileOptions()
    task = source.adaptation.task
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "task": task,
        "framework": source.framework.model_dump(),
        "opset": _opset(source.model),
        "options": asdict(opts),
        "input": {"name": "image", "shape": [-1, *data.validation.shape[1:]], "dtype": "uint8"},
        "output": OUTPUT_NAMES[task],
        "thresholds": {"image": data.image_threshold, "pixel": data.pixel_threshold},
        "measured_on": {**cpu_int8_features(), "onnxruntime": ort_version()},
    }
    _check_images(data)
    _clear_int8(out)
    with tempfile.TemporaryDirectory(prefix="ei-compile-") as work:
        contract_path = Path(work) / "contract.onnx"
        contract = adapt_to_contract(source.model, source.adaptation)
        check_contract(contract, task)
        onnx.save(contract, str(contract_path))
        fp32_path = optimize(contract_path, out / FP32_FILE, opts.optimisation)
        fp32 = _outputs(fp32_path, data.validation)
        reference = (
            source.reference(data.validation)
            if source.reference
            else _outputs(contract_path, data.validation)
        )
    ref_name = f"{source.framework.name} model" if source.reference else "unoptimised ONNX"
    export = _compare(
        reference, fp32, data, task, (ref_name, "fp32 ONNX"), opts.export_max_diff, 1.0, opts.export_max_diff
    )
    report["export_parity"] = export.as_dict()
    report["fp32"] = _measure(fp32_path, fp32, data, task, opts)
    int8_path: Path | None = None
    report["precision"] = _no_int8(opts)
    try:
        require_parity(
            export, hint="the exported graph does not compute what the framework does; check the export"
        )
        if opts.quantize:
            int8_path = _quantize(fp32_path, out, data, opts)
            int8 = _outputs(int8_path, data.validation)
            parity = _int8_parity(fp32, int8, data, task, opts)
            report["int8_parity"] = parity.as_dict()
            report["int8"] = _measure(int8_path, int8, data, task, opts)
            gates = [_validation_gate(parity, fp32, int8, data, task)]
            if opts.shift_gate:
                gates.append(_shift_gate(fp32_path, int8_path, data, task, opts))
            int8_path = _decide(report, out, int8_path, gates, [parity], opts)
    finally:
        (out / REPORT_FILE).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    log.info("model_compiled", task=task, out=str(out), int8=int8_path is not None)
    return CompileResult(out_dir=out, model_path=fp32_path, int8_model_path=int8_path, report=report)


def _clear_int8(out: Path) -> None:
    """Drop int8 files of an earlier compile here: a package must never pick up a stale, unjudged one."""
    for stale in (INT8_FILE, REJECTED_INT8_FILE):
        (out / stale).unlink(missing_ok=True)


def _no_int8(opts: CompileOptions) -> dict[str, Any]:
    """The precision record before (or without) an int8 model: fp32 by default, and why."""
    reason = "no int8 model was built (--no-int8)" if not opts.quantize else "int8 was not judged"
    return Precision(default="fp32", reason=reason).model_dump(mode="json")


def _validation_gate(
    parity: ParityReport,
    fp32: npt.NDArray[np.float32],
    int8: npt.NDArray[np.float32],
    data: CompileData,
    task: Any,
) -> Int8Gate:
    """The validation gate's figures in manifest form (its verdict is the parity report's)."""
    fp32_fr, int8_fr, good = _false_rejects(fp32, int8, data.labels, data.image_threshold, task)
    return Int8Gate(
        set="validation",
        source="held-out validation split",
        images=parity.images,
        threshold=data.image_threshold,
        margin=parity.margin,
        borderline=parity.borderline,
        verdict_agreement=parity.verdict_agreement,
        min_agreement=parity.min_agreement,
        passed=parity.passed,
        good=good,
        false_rejects_fp32=fp32_fr,
        false_rejects_int8=int8_fr,
    )


def _shift_images(
    data: CompileData, opts: CompileOptions
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.bool_] | None, str]:
    """The given shifted family, else the first ``shift_max_images`` validation frames shifted."""
    if data.shifted is not None:
        return data.shifted, data.shifted_labels, data.shift_source or "given shifted set"
    count = max(1, opts.shift_max_images)
    labels = data.labels[:count] if data.labels is not None else None
    images, shifted_labels = shifted_set(data.validation[:count], labels)
    return images, shifted_labels, SHIFT_SOURCE


def _shift_gate(
    fp32_path: Path, int8_path: Path, data: CompileData, task: Any, opts: CompileOptions
) -> Int8Gate:
    """int8 vs fp32 verdicts at the image threshold on the shifted set (first output: the image score)."""
    images, labels, source = _shift_images(data, opts)
    fp32 = predict_all(open_session(fp32_path), images)[0]
    int8 = predict_all(open_session(int8_path), images)[0]
    scored_task: Task = "classification" if task == "multitask" else task
    ref, cand = image_scores(fp32, scored_task), image_scores(int8, scored_task)
    share, borderline = agreement(ref, cand, data.image_threshold, opts.shift_margin)
    fp32_fr, int8_fr, good = _false_rejects(fp32, int8, labels, data.image_threshold, scored_task)
    return Int8Gate(
        set="shifted",
        source=source[:200],
        images=len(images),
        threshold=data.image_threshold,
        margin=opts.shift_margin,
        borderline=borderline,
        verdict_agreement=share,
        min_agreement=opts.int8_min_shift_agreement,
        passed=share >= opts.int8_min_shift_agreement,
        good=good,
        false_rejects_fp32=fp32_fr,
        false_rejects_int8=int8_fr,
    )


def _false_rejects(
    fp32: npt.NDArray[np.float32],
    int8: npt.NDArray[np.float32],
    labels: npt.NDArray[np.bool_] | None,
    threshold: float,
    task: Any,
) -> tuple[int | None, int | None, int | None]:
    """Good parts (label 0) each model calls defective at ``threshold``, and how many good parts."""
    if labels is None:
        return None, None, None
    good = ~np.asarray(labels, bool)
    rejects = [int(np.sum((image_scores(out, task) >= threshold) & good)) for out in (fp32, int8)]
    return rejects[0], rejects[1], int(good.sum())


def _decide(
    report: dict[str, Any],
    out: Path,
    int8_path: Path,
    gates: list[Int8Gate],
    parities: list[ParityReport],
    opts: CompileOptions,
) -> Path | None:
    """int8 the default when every gate passed; else fp32, the int8 file set aside, and the reason."""
    failed = [gate for gate in gates if not gate.passed]
    if not failed:
        report["precision"] = Precision(default="int8", gates=gates).model_dump(mode="json")
        return int8_path
    reason = _reason(failed[0], parities)
    report["precision"] = Precision(default="fp32", reason=reason, gates=gates).model_dump(mode="json")
    rejected = int8_path.replace(out / REJECTED_INT8_FILE)
    log.warning("int8_rejected", reason=reason, kept_as=str(rejected))
    if opts.strict_int8:
        raise ParityError(reason, hint=INT8_HINT, report={"verdict_agreement": failed[0].verdict_agreement})
    return None


def _reason(gate: Int8Gate, parities: list[ParityReport]) -> str:
    """Why int8 is not the default, in one line: the set, the agreement and the tolerance."""
    if gate.set == "validation":
        for parity in parities:
            try:
                require_parity(parity, hint=INT8_HINT)
            except ParityError as exc:
                return f"int8 failed the validation gate: {exc.message}"[:500]
    rejects = ""
    if gate.false_rejects_int8 is not None:
        rejects = (
            f"; false rejects of {gate.good} good parts: fp32 {gate.false_rejects_fp32}, "
            f"int8 {gate.false_rejects_int8}"
        )
    return (
        f"int8 failed the {gate.set} gate: verdict agreement {gate.verdict_agreement:.2%} at threshold "
        f"{gate.threshold:.4g} on {gate.images - gate.borderline} images (required "
        f"{gate.min_agreement:.2%}){rejects}"
    )[:500]


MultiReference = Callable[[npt.NDArray[np.uint8]], list[npt.NDArray[np.float32]]]
"""The framework model of a multi-task graph: uint8 images -> its outputs, in the graph's order."""


def compile_multitask(
    model: onnx.ModelProto,
    framework: Any,
    data: CompileData,
    out_dir: str | Path,
    options: CompileOptions | None = None,
    reference: MultiReference | None = None,
    task: str = "multitask",
) -> CompileResult:
    """Compile a multi-task graph (image score + mask): optimise, int8, parity gates on BOTH outputs.

    ``task`` names what the report says: ``anomaly`` models have the same two outputs.

    The same gates as :func:`compile_model`, applied per output with that output's task rule (image
    score: probability; mask: its maximum and its pixels). The report keeps the single-task keys for
    the image score (``export_parity``, ``int8_parity``, ``fp32``/``int8``) and adds ``mask_*``
    parity for the mask; ``fp32``/``int8`` metrics hold both (the mask's image figures as ``mask_*``).
    """
    opts = options or CompileOptions()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "task": task,
        "framework": framework.model_dump(),
        "opset": _opset(model),
        "options": asdict(opts),
        "input": {"name": "image", "shape": [-1, *data.validation.shape[1:]], "dtype": "uint8"},
        "outputs": [OUTPUT_NAMES[task] for task in MULTITASK_OUTPUTS],
        "thresholds": {"image": data.image_threshold, "pixel": data.pixel_threshold},
        "measured_on": {**cpu_int8_features(), "onnxruntime": ort_version()},
    }
    _check_images(data)
    _clear_int8(out)
    check_multitask_contract(model)
    with tempfile.TemporaryDirectory(prefix="ei-compile-") as work:
        contract_path = Path(work) / "contract.onnx"
        onnx.save(model, str(contract_path))
        fp32_path = optimize(contract_path, out / FP32_FILE, opts.optimisation)
        fp32 = predict_all(open_session(fp32_path), data.validation)
        ref = (
            reference(data.validation)
            if reference
            else predict_all(open_session(contract_path), data.validation)
        )
    ref_name = f"{framework.name} model" if reference else "unoptimised ONNX"
    exports = [
        _compare(
            r,
            c,
            _output_data(data, task),
            task,
            (ref_name, "fp32 ONNX"),
            opts.export_max_diff,
            1.0,
            opts.export_max_diff,
        )
        for r, c, task in zip(ref, fp32, MULTITASK_OUTPUTS, strict=True)
    ]
    report["export_parity"], report["mask_export_parity"] = (e.as_dict() for e in exports)
    report["fp32"] = _measure_multitask(fp32_path, fp32, data, opts)
    int8_path: Path | None = None
    report["precision"] = _no_int8(opts)
    try:
        for export in exports:
            require_parity(export, hint="the exported graph does not compute what the framework does")
        if opts.quantize:
            int8_path = _quantize(fp32_path, out, data, opts)
            int8 = predict_all(open_session(int8_path), data.validation)
            parities = [
                _int8_parity(f, q, _output_data(data, task), task, opts)
                for f, q, task in zip(fp32, int8, MULTITASK_OUTPUTS, strict=True)
            ]
            report["int8_parity"], report["mask_int8_parity"] = (p.as_dict() for p in parities)
            report["int8"] = _measure_multitask(int8_path, int8, data, opts)
            validation = _validation_gate(parities[0], fp32[0], int8[0], data, "classification")
            if not all(parity.passed for parity in parities):
                validation = validation.model_copy(update={"passed": False})
            gates = [validation]
            if opts.shift_gate:
                gates.append(_shift_gate(fp32_path, int8_path, data, "multitask", opts))
            int8_path = _decide(report, out, int8_path, gates, parities, opts)
    finally:
        (out / REPORT_FILE).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    log.info("model_compiled", task=task, out=str(out), int8=int8_path is not None)
    return CompileResult(out_dir=out, model_path=fp32_path, int8_model_path=int8_path, report=report)


def _output_data(data: CompileData, task: str) -> CompileData:
    """The data as one output's gate sees it: the mask's verdict is "not empty" (max >= pixel threshold)."""
    if task == "classification":
        return data
    pixel = data.pixel_threshold if data.pixel_threshold is not None else 0.5
    return replace(data, image_threshold=pixel)


def _measure_multitask(
    path: Path, outputs: list[npt.NDArray[np.float32]], data: CompileData, opts: CompileOptions
) -> dict[str, Any]:
    """One pass's size and latency; the image score's metrics, and the mask's beside them (``mask_*``)."""
    figures = _measure(path, outputs[0], data, "classification", opts)
    if data.labels is not None:
        mask = accuracy(
            outputs[1],
            task="segmentation",
            labels=data.labels,
            masks=data.masks,
            image_threshold=data.pixel_threshold if data.pixel_threshold is not None else 0.5,
            pixel_threshold=data.pixel_threshold,
        )
        figures["metrics"] |= {
            (key if key in ("pixel_ap", "dice", "iou") else f"mask_{key}"): value
            for key, value in mask.items()
        }
    return figures


def _quantize(fp32_path: Path, out: Path, data: CompileData, opts: CompileOptions) -> Path:
    """``model.int8.onnx`` in ``out``, calibrated on the first calibration images."""
    calibration = data.calibration[: opts.max_calibration_images]
    return quantize_int8(fp32_path, out / INT8_FILE, calibration, method=opts.calibration_method)


def _check_images(data: CompileData) -> None:
    for name, images in (("calibration", data.calibration), ("validation", data.validation)):
        if images.ndim != 4 or images.shape[1] != 3 or images.dtype != np.uint8 or len(images) == 0:
            raise CompileError(
                f"{name} images must be a non-empty uint8 [N, 3, H, W] array, "
                f"got {images.dtype} {list(images.shape)}",
                hint="preprocess images with edgeinspect.core.preprocess and the model's input spec",
            )
    if data.labels is not None and len(data.labels) != len(data.validation):
        raise CompileError(
            f"{len(data.labels)} labels for {len(data.validation)} validation images",
            hint="pass one label per image",
        )


def _outputs(path: Path, images: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    return predict(open_session(path), images)


def _compare(
    reference: npt.NDArray[np.float32],
    candidate: npt.NDArray[np.float32],
    data: CompileData,
    task: Any,
    names: tuple[str, str],
    max_allowed: float,
    min_agreement: float,
    margin: float,
    *,
    bounded: Bounded = "outputs",
    min_pixel_agreement: float | None = None,
) -> ParityReport:
    return compare(
        reference,
        candidate,
        task=task,
        names=names,
        image_threshold=data.image_threshold,
        pixel_threshold=data.pixel_threshold,
        max_allowed=max_allowed,
        min_agreement=min_agreement,
        margin=margin,
        bounded=bounded,
        min_pixel_agreement=min_pixel_agreement,
    )


def _int8_parity(
    fp32: npt.NDArray[np.float32],
    int8: npt.NDArray[np.float32],
    data: CompileData,
    task: Any,
    opts: CompileOptions,
) -> ParityReport:
    """The int8 gate's comparison: image scores bounded, verdicts and mask pixels must agree."""
    return _compare(
        fp32,
        int8,
        data,
        task,
        ("fp32 ONNX", "int8 ONNX"),
        opts.int8_max_diff,
        opts.int8_min_agreement,
        opts.verdict_margin,
        bounded="scores",
        min_pixel_agreement=opts.int8_min_pixel_agreement,
    )


def _measure(
    path: Path, outputs: npt.NDArray[np.float32], data: CompileData, task: Any, opts: CompileOptions
) -> dict[str, Any]:
    """Size, batch-1 latency and (with labels) accuracy of one compiled model."""
    session = open_session(path, threads=opts.latency_threads)
    figures: dict[str, Any] = {
        "file": path.name,
        "size_bytes": path.stat().st_size,
        "latency_ms": round(latency_ms(session, data.validation, runs=opts.latency_runs), 3),
        "latency_threads": opts.latency_threads,
    }
    if data.labels is not None:
        figures["metrics"] = accuracy(
            outputs,
            task=task,
            labels=data.labels,
            masks=data.masks,
            image_threshold=data.image_threshold,
            pixel_threshold=data.pixel_threshold,
        )
    return figures


def _opset(model: onnx.ModelProto) -> int:
    return next((op.version for op in model.opset_import if op.domain in ("", "ai.onnx")), OPSET)


def load_report(out_dir: str | Path) -> dict[str, Any]:
    """Read ``compile.json`` of a compile output folder."""
    path = Path(out_dir) / REPORT_FILE
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CompileError(f"cannot read {path}: {exc}", hint="run `edgeinspect compile` first") from exc
    return data
