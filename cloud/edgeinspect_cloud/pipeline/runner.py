"""Run the named pipeline steps in order, print progress, keep ``summary.json`` current.

``data`` runs once; every other step runs once per task. A step that fails stops the run with its
error (the summary keeps what the steps before it reported), so a rerun with ``--steps`` can resume
from the failed step. In one process the trained framework model is handed to compile as its parity
reference; a compile run on its own uses the ONNX export instead (see ``steps_release``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, TextIO

from edgeinspect.core.observability import get_logger

from edgeinspect_cloud.pipeline.graph import local_jobs
from edgeinspect_cloud.pipeline.layout import GROUPS, STEPS, PipelineError, PipelineOptions, RunLayout, Task
from edgeinspect_cloud.pipeline.remote import DATASETS_DIR, fetch_dataset, pull, push
from edgeinspect_cloud.pipeline.steps_agent import step_agent_check
from edgeinspect_cloud.pipeline.steps_gate import gate_error, step_gate
from edgeinspect_cloud.pipeline.steps_model import join_datasets, step_data, step_evaluate, step_train
from edgeinspect_cloud.pipeline.steps_release import step_compile, step_package, step_register
from edgeinspect_cloud.registry.gate import GateRecord

log = get_logger(__name__)


def run_pipeline(
    options: PipelineOptions, steps: Sequence[str] = STEPS, *, out: TextIO | None = None
) -> dict[str, Any]:
    """Run ``steps`` (in pipeline order, whatever order given) and return the run summary.

    Progress lines go to ``out`` (default: standard output at call time).
    """
    out = out or sys.stdout
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        raise PipelineError(f"unknown step(s) {unknown}", hint=f"steps are {', '.join(STEPS)}")
    ordered = [step for step in STEPS if step in steps]
    layout = RunLayout(options.run_dir)
    layout.root.mkdir(parents=True, exist_ok=True)
    options = _prepare_remote(options, layout)
    layout.write(
        layout.root / "run.json", {**vars(options), "gate": options.gate.model_dump(), "steps": ordered}
    )
    summary = _load_summary(layout)
    framework_models: dict[Task, Any] = {}
    jobs = local_jobs(ordered, options.tasks)  # the same graph the engine exports are built from
    failed_gates: list[GateRecord] = []
    for index, (step, task) in enumerate(jobs, start=1):
        if failed_gates and step != "gate":
            break
        label = f"[{index}/{len(jobs)}] {step}" + (f" {task}" if task else "")
        print(f"{label} ...", file=out, flush=True)
        started = time.monotonic()
        report = _run_step(step, task, options, layout, framework_models)
        seconds = round(time.monotonic() - started, 2)
        report = {**report, "seconds": seconds}
        summary.setdefault("steps", {}).setdefault(step, {})[task or "all"] = report
        layout.write(layout.summary_json, summary)
        if options.run_url:
            push(layout.root, options.run_url, options.endpoint_url)
        print(f"{label} done in {seconds:.1f}s{_headline(step, report)}", file=out, flush=True)
        log.info("pipeline_step", step=step, task=task, seconds=seconds)
        if step == "gate" and task is not None and not report["passed"]:
            failed_gates.append(GateRecord.model_validate(layout.read(layout.gate_json(task), "gate")))
    summary["result"] = _result(layout, options, summary)
    layout.write(layout.summary_json, summary)
    if failed_gates:
        log.warning("quality_gate_failed", tasks=[r.task for r in failed_gates])
        raise gate_error(failed_gates)
    return summary


def _prepare_remote(options: PipelineOptions, layout: RunLayout) -> PipelineOptions:
    """Pull the run folder from ``run_url``, fetch URL datasets, re-make the union a new container lacks."""
    if options.run_url:
        pull(options.run_url, layout.root, options.endpoint_url)
    if not options.dataset_urls:
        return options
    fetched = [
        fetch_dataset(url, layout.root / DATASETS_DIR / f"d{index}", options.endpoint_url)
        for index, url in enumerate(options.dataset_urls)
    ]
    options = replace(options, datasets=[*options.datasets, *fetched])
    if layout.data_json.is_file() and not layout.dataset_root().exists() and len(options.datasets) > 1:
        join_datasets(options.datasets, layout.union_dir)
    return options


def _run_step(
    step: str, task: Task | None, options: PipelineOptions, layout: RunLayout, models: dict[Task, Any]
) -> dict[str, Any]:
    if step == "data":
        return step_data(options, layout)
    assert task is not None
    if step == "train":
        report, result = step_train(options, layout, task)
        models[task] = result.model
        return report
    runners: dict[str, Callable[[PipelineOptions, RunLayout, Task], dict[str, Any]]] = {
        "evaluate": step_evaluate,
        "gate": step_gate,
        "package": step_package,
        "agent-check": step_agent_check,
        "register": step_register,
    }
    if step == "compile":
        return step_compile(options, layout, task, models.get(task))
    return runners[step](options, layout, task)


def _load_summary(layout: RunLayout) -> dict[str, Any]:
    """The summary of earlier invocations on this run folder, so step-by-step runs accumulate."""
    if layout.summary_json.is_file():
        return layout.read(layout.summary_json, "any")
    return {"run_dir": str(layout.root.resolve())}


def _headline(step: str, report: dict[str, Any]) -> str:
    """A few figures worth seeing at a glance in the progress line."""
    if step == "data":
        train = report.get("total", {}).get("train", {})
        return f": {train.get('images')} training images ({train.get('defective')} defective)"
    if step in ("train", "evaluate"):
        metrics = report.get("metrics") or {}
        shown = {
            k: metrics[k]
            for k in ("image_ap", "image_auroc", "f1", "dice")
            if isinstance(metrics.get(k), float)
        }
        return ": " + ", ".join(f"{k} {v:.3f}" for k, v in shown.items()) if shown else ""
    if step == "compile" and "int8_parity" in report:
        parity = report["int8_parity"]
        fp32, int8 = report.get("fp32", {}), report.get("int8", {})
        pixels = parity.get("pixel_agreement")
        return (
            f": int8 score max diff {parity['score_max_abs_diff']:.3f}, "
            f"verdicts {parity['verdict_agreement']:.0%} agree, "
            + (f"pixels {pixels:.3%} agree, " if isinstance(pixels, float) else "")
            + f"latency fp32 {fp32.get('latency_ms')} ms / int8 {int8.get('latency_ms')} ms"
        )
    if step == "gate":
        verdict = "passed" if report["passed"] else "FAILED"
        figures = [_figure(f) for f in report["figures"]] + [
            _regression(f) for f in report.get("regression", [])
        ]
        return f": {verdict} ({', '.join(figures)})"
    if step == "package":
        return f": {report['package']} ({report['size_bytes'] / 1e6:.2f} MB), verified"
    if step == "agent-check":
        diffs = ", ".join(
            f"{variant} diff {row['max_abs_diff']:.2g}" for variant, row in report.get("variants", {}).items()
        )
        return f": {report['name']}:{report['version']} loaded by the edge agent ({diffs})"
    if step == "register":
        return f": {report['group']} version {report['version']} ({report['status']})"
    return ""


def _figure(figure: dict[str, Any]) -> str:
    value = "missing" if figure["value"] is None else f"{figure['value']:.3f}"
    return f"{figure['name']} {value} {'>=' if figure['passed'] else '<'} {figure['minimum']:.2f}"


def _regression(figure: dict[str, Any]) -> str:
    value = "missing" if figure["value"] is None else f"{figure['value']:.4f}"
    verdict = "ok" if figure["passed"] else "REGRESSED"
    return f"{figure['name']} {value} vs parent {figure['baseline']:.4f} {verdict}"


def _result(layout: RunLayout, options: PipelineOptions, summary: dict[str, Any]) -> dict[str, Any]:
    """The one-line result: versions registered, package URLs, headline metrics per group."""
    steps = summary.get("steps", {})
    versions, packages, metrics, gates = {}, {}, {}, {}
    for task in options.tasks:
        group = GROUPS[task]
        registered = steps.get("register", {}).get(task)
        if registered:
            versions[group] = registered["version"]
            packages[group] = registered["package_url"]
        elif steps.get("package", {}).get(task):
            packages[group] = steps["package"][task]["package"]
        gate = steps.get("gate", {}).get(task)
        if gate:
            gates[group] = "passed" if gate["passed"] else f"failed: {gate.get('failed')}"
        evaluated = steps.get("evaluate", {}).get(task, {}).get("metrics")
        trained = steps.get("train", {}).get(task, {}).get("metrics")
        figures = dict(evaluated or trained or {})
        int8 = steps.get("compile", {}).get(task, {}).get("int8", {}).get("metrics")
        if int8:
            figures |= {f"int8_val_{k}": v for k, v in int8.items()}
        numbers = {k: v for k, v in figures.items() if isinstance(v, int | float)}
        if numbers:
            metrics[group] = numbers
    return {
        "run_dir": str(layout.root.resolve()),
        "versions": versions,
        "packages": packages,
        "metrics": metrics,
        "gate": gates,
    }
