"""The quality gate step: judge the held-out figures before anything is compiled, signed or registered.

It reads what ``evaluate`` wrote (or, without a test split, the validation figures of training) and
writes ``gate/{task}.json``; the runner stops the run when a task fails, and ``register`` refuses a
run folder whose gate did not pass. The thresholds and figures go into the registered version, where
``registry approve`` judges them again.
"""

from __future__ import annotations

import json
from typing import Any

from edgeinspect_cloud.pipeline.finetune import old_line_figures
from edgeinspect_cloud.pipeline.layout import PipelineError, PipelineOptions, RunLayout, Task
from edgeinspect_cloud.registry.gate import GateRecord, failing_flags, judge


class GateFailedError(PipelineError):
    """A model is below the quality gate: nothing of it is compiled, packaged or registered."""


def step_gate(options: PipelineOptions, layout: RunLayout, task: Task) -> dict[str, Any]:
    """Judge ``task``'s evaluation against ``options.gate``; the report says which figures failed."""
    metrics, source = _figures(layout, task)
    record = judge(task, metrics, options.gate, source, old_line_figures(layout, task))
    layout.write(layout.gate_json(task), record.to_json())
    report: dict[str, Any] = record.to_json()
    if not record.passed:
        report["failed"] = record.describe_failures()
    return report


def _figures(layout: RunLayout, task: Task) -> tuple[dict[str, Any], str]:
    """Held-out test metrics if evaluate produced them, else training's validation metrics."""
    evaluated = layout.evaluate_dir(task) / "metrics.json"
    if evaluated.is_file():
        return dict(json.loads(evaluated.read_text())["metrics"]), "test"
    trained = layout.read(layout.train_dir(task) / "result.json", "train")
    return dict(trained.get("metrics", {})), "validation"


def gate_error(records: list[GateRecord]) -> GateFailedError:
    """One error naming every failed figure of every task, and the flags that would lower them."""
    failed = "; ".join(f"{r.task}: {r.describe_failures()}" for r in records)
    flags = " ".join(f"{flag} X" for flag in dict.fromkeys(f for r in records for f in failing_flags(r)))
    return GateFailedError(
        f"quality gate failed ({failed}); nothing was compiled, packaged or registered",
        hint="train a better model (more data or epochs, no --quick; a fine-tune that forgets an "
        "earlier line needs some of that line's frames beside the new ones, or fewer epochs); if the "
        f"thresholds are wrong for this line, set them per run ({flags}) or in EI_GATE_* "
        "(docs/pipelines.md)",
    )


def passed_gate(layout: RunLayout, task: Task) -> dict[str, Any]:
    """The gate record of ``task`` for the register step; ``PipelineError`` if it is missing or failed."""
    record = GateRecord.model_validate(layout.read(layout.gate_json(task), "gate"))
    if not record.passed:
        raise GateFailedError(
            f"{task} is below its quality gate ({record.describe_failures()}): it will not be registered",
            hint=f"see {layout.gate_json(task)}; train a better model or re-run the gate step",
        )
    return record.to_json()
