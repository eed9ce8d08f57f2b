"""The demo's trained models: made ahead by the project's own pipeline, shipped in the repository.

Training both networks well enough to see 2-px scratches takes minutes of two cores' time; a demo that
trains from scratch in under a minute deploys models that cannot see defects (the first wave's demo:
test AUROC 0.34, every score within 0.03 of its threshold). So ``make demo-models`` runs the real
pipeline once, with the ``demo`` training profile, on a synthetic line of another seed than the one
the demo replays, and keeps the *train step's output* of each task (ONNX export, model spec,
``result.json``) in ``demo_models/``. The demo seeds a run folder with them and runs every later step
itself on its own line: evaluation on its held-out split, the quality gate, compile (fp32 + int8),
packaging signed with its own key, registration, approval and the MQTT deployment.
``edgeinspect demo --train`` trains from scratch instead (same profile, several minutes).

Run ``python -m edgeinspect_cloud.stack.demo_models`` (what ``make demo-models`` does) to regenerate.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

SHIPPED = Path(__file__).with_name("demo_models")
TASKS = ("classification", "segmentation")
TRAIN_FILES = ("model.onnx", "model_spec.json", "result.json")
TRAINING_LINES: dict[str, tuple[int, int]] = {"classification": (1, 1000), "segmentation": (1, 1000)}
"""Per task, the seed and size of the synthetic line it learns from (700 training frames, 300 held
out). The demo replays another seed (``DEMO_LINE_SEED``), so its scoreboard scores frames no model
has seen."""
DEMO_LINE_SEED = 11


def shipped_available(folder: Path = SHIPPED) -> bool:
    return all((folder / task / name).is_file() for task in TASKS for name in TRAIN_FILES)


def seed_run(run_dir: Path, folder: Path = SHIPPED) -> None:
    """Put the shipped train-step output into ``run_dir`` as if its train step had just run."""
    if not shipped_available(folder):
        raise FileNotFoundError(
            f"no demo models in {folder}; run `make demo-models` (or `edgeinspect demo --train`)"
        )
    for task in TASKS:
        target = run_dir / "train" / task
        target.mkdir(parents=True, exist_ok=True)
        for name in TRAIN_FILES:
            shutil.copy2(folder / task / name, target / name)
        result = json.loads((target / "result.json").read_text())
        result.update(run_dir=str(run_dir), onnx_path=str(target / "model.onnx"))
        (target / "result.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")


def _edgeinspect(*argv: str) -> None:
    cmd = [sys.executable, "-m", "edgeinspect_cloud.cli", *argv]
    print(f"$ edgeinspect {' '.join(argv)}", flush=True)
    subprocess.run(cmd, check=True)


def _portable(result: dict[str, Any]) -> dict[str, Any]:
    """``result.json`` without the paths of the machine that trained it."""
    drop = ("run_dir", "onnx_path", "checkpoint_path", "report_dir")
    return {key: value for key, value in result.items() if key not in drop}


def build(out: Path, work: Path) -> dict[str, Any]:
    """Per task: synthesise its training line, run the pipeline's data/train/evaluate steps with the
    ``demo`` profile, and copy the train output (and its held-out figures) into ``out``."""
    figures: dict[str, Any] = {"profile": "demo"}
    for task in TASKS:
        seed, images = TRAINING_LINES[task]
        data, run = work / f"data-{seed}-{images}", work / f"run-{task}"
        if not data.is_dir():
            _edgeinspect("data", "synth", "--out", str(data), "--count", str(images), "--seed", str(seed))
        steps = ("--steps", "data", "train", "evaluate")
        _edgeinspect(
            "pipeline", "run", "--dataset", str(data), "--task", task, "--profile", "demo", *steps,
            "--out", str(run), "--no-progress",
        )  # fmt: skip
        figures[task] = copy_train_output(run, task, out / task)
        figures[task].update(train_seed=seed, train_images=images)
    (out / "provenance.json").write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    return figures


def copy_train_output(run: Path, task: str, target: Path) -> dict[str, Any]:
    """Copy one task's train output from a pipeline run folder; returns its held-out figures."""
    target.mkdir(parents=True, exist_ok=True)
    source = run / "train" / task
    shutil.copy2(source / "model.onnx", target / "model.onnx")
    shutil.copy2(source / "model_spec.json", target / "model_spec.json")
    result = _portable(json.loads((source / "result.json").read_text()))
    (target / "result.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    held_out = json.loads((run / "evaluate" / task / "metrics.json").read_text())["metrics"]
    return {
        "test": held_out,
        "train_seconds": result.get("train_seconds"),
        "epochs_run": result.get("epochs_run"),
        "best_epoch": result.get("best_epoch"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=SHIPPED, help=f"where the models go (default {SHIPPED})")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ei-demo-models-") as work:
        figures = build(args.out, Path(work))
    print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
