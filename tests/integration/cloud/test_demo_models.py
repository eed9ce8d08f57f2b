"""The demo's shipped models see defects on the demo's own line.

The first wave's demo deployed a classifier with test AUROC 0.34; nothing stopped it. These tests run
the pipeline's own steps (data, evaluate, gate) the way ``edgeinspect demo`` does, on the synthetic
line the demo replays (its seed; no shipped model trained on it), from a run folder seeded with the
shipped train output, and hold the result to the default quality gate and to the demo's goal.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from edgeinspect_cloud.pipeline import PipelineOptions, run_pipeline
from edgeinspect_cloud.pipeline.layout import Task
from edgeinspect_cloud.stack.demo_models import DEMO_LINE_SEED, TRAINING_LINES, seed_run, shipped_available

pytestmark = pytest.mark.slow
DEMO_GOAL_AP = 0.95
LINE_IMAGES = 400  # what `edgeinspect demo` generates by default
CLI = [sys.executable, "-m", "edgeinspect_cloud.cli"]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert shipped_available(), "the demo models are missing: run `make demo-models`"
    root = tmp_path_factory.mktemp("demo-line")
    data, run = root / "data", root / "run"
    argv = ["synth", "--out", str(data), "--count", str(LINE_IMAGES), "--seed", str(DEMO_LINE_SEED)]
    done = subprocess.run([*CLI, "data", *argv], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    seed_run(run)
    tasks: list[Task] = ["classification", "segmentation"]
    options = PipelineOptions(run_dir=run, tasks=tasks, datasets=[data], progress=False)
    run_pipeline(options, ["data", "evaluate", "gate"], out=io.StringIO())
    return run


def test_the_demo_replays_a_line_no_shipped_model_trained_on() -> None:
    assert DEMO_LINE_SEED not in {seed for seed, _images in TRAINING_LINES.values()}


@pytest.mark.parametrize("task", ["classification", "segmentation"])
def test_shipped_models_pass_the_default_gate_and_the_demo_goal_on_the_demo_line(
    demo_run: Path, task: str
) -> None:
    gate = json.loads((demo_run / "gate" / f"{task}.json").read_text())
    metrics = json.loads((demo_run / "evaluate" / task / "metrics.json").read_text())["metrics"]
    assert gate["passed"], f"{task} fails the default gate on the demo line: {gate}"
    assert metrics["image_ap"] >= DEMO_GOAL_AP, f"{task} image AP {metrics['image_ap']:.3f} < {DEMO_GOAL_AP}"
