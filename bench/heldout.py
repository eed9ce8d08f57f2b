"""Unseen surfaces: before and after robustness, a 30-frame fine-tune, and a good-parts-only model.

One command measures everything issue 16 asks to show, on surfaces, lights and defect rules that no
training run ever saw (``data synth --families heldout``: knurled, spangle, twill, perforated):

- ``before``: the multi-task model as shipped before robustness work: the classic line's data
  (``--families classic``), the standard augmentation, the ``seg-first`` recipe;
- ``after``: the same epochs on the randomised training families (``--families train``: named and
  procedural surfaces, lights, colours, camera faults, irregular flaws; ``--train-count`` frames,
  4,800, four times the classic line's, because every procedural part is a surface never seen
  before), ``--augment robust`` and the default recipe (per-image input normalisation);
- ``two-model``: the two-model layout (classifier + U-Net) trained like ``after`` (issue 19's
  comparison; ``--no-two-model`` skips it);
- ``fine-tuned``: ``after`` fine-tuned on ``--finetune-frames`` (30) labelled frames of the held-out
  line (what ``pipeline run --init-from`` does: the parent's network and checkpoint, the fine-tune
  schedule and its default blend with the parent, validation and threshold on the new line's
  frames), timed; evaluated on the held-out
  line's other frames AND on both earlier lines' test splits (the regression the gate checks);
- ``anomaly``: the good-parts-only model fitted on the held-out line's good training frames only, on
  ``after``'s frozen encoder (``--init-from defect-mt:VERSION``); ``anomaly-random`` the same on
  random features (a line with no multi-task model to lend its encoder).

Each model is compiled the pipeline's way (fp32 + static int8) and evaluated the edge's way at its
shipped threshold: image AP and AUROC, recall and false-reject rate, pixel AP and Dice, and image AP
per held-out surface family. The held-out set is never a training set for ``before``/``after``
(``train`` refuses it); the fine-tune and the anomaly model are the new-line case, where a few of
the new surface's frames are the point. Not part of ``make bench`` (it trains up to five models and
four fine-tunes: an hour or more on two cores; ``--no-two-model`` skips the two-model arm's pair);
``--quick`` is a smoke run of the plumbing.

Output: a table, then as the last line one JSON object of the same figures; ``--out`` keeps the
datasets and runs (a rerun reuses the models it trained with the same settings and refuses a folder
trained with others) and ``heldout/`` there gets table.md and PNGs. ``--arch``, ``--crop-height``,
``--seed`` and ``--device cuda`` try another recipe for ``after`` (the search the accuracy goals
need is an hour a run on two cores: a GPU makes it minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from edgeinspect_cloud.cli import main as cli
from edgeinspect_cloud.evaluation.metrics import average_precision
from edgeinspect_cloud.evaluation.package import evaluate_dataset
from edgeinspect_cloud.evaluation.spec import ModelSpec

from bench.heldout_lines import SURFACES, format_lines, measure_surface
from bench.report import machine, write_report

TRAIN_COUNT = 4800
"""Frames of the randomised training line: each part is a new surface, so more frames are more
surfaces seen; held-out AP rose with every doubling measured (cloud/README.md, "How many frames")."""

COMMAND_FILE = "train_command.json"
"""Beside a trained arm: the ``edgeinspect train`` arguments that made it (a rerun reuses only its own)."""

FIGURES = ("image_ap", "image_auroc", "operating_recall", "operating_false_reject_rate", "pixel_ap", "dice")
HEADERS = ("image AP", "AUROC", "recall", "FRR", "pixel AP", "Dice")


@dataclass(frozen=True)
class Arm:
    """One way of training: which generated line, which augmentation, which task and recipe."""

    families: str
    augment: str
    task: str
    arch: str | None


ARMS = {
    "before": Arm("classic", "standard", "multitask", "seg-first"),
    "after": Arm("train", "robust", "multitask", None),
    "two-model": Arm("train", "robust", "both", None),
}


def _cli(args: list[str]) -> None:
    """Run one ``edgeinspect`` command quietly; stop with its output when it fails."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        code = cli(args)
    if code != 0:
        raise SystemExit(f"edgeinspect {' '.join(args)} failed ({code}):\n{buffer.getvalue()[-3000:]}")


def _say(text: str) -> None:
    print(f"[heldout {time.strftime('%H:%M:%S')}] {text}", flush=True)


def _datasets(args: argparse.Namespace) -> dict[str, Path]:
    """The held-out line, the classic line and the randomised training line (seeded, reused)."""
    frame = ["--height", str(args.frame[0]), "--width", str(args.frame[1])]
    plans = {
        "heldout": ["--families", "heldout", "--count", str(args.heldout_count), "--defect-ratio", "0.3",
                    "--test-fraction", "0.6", "--seed", "1000"],
        "classic": ["--families", "classic", "--count", str(args.count), "--seed", "0"],
        "train": ["--families", "train", "--count", str(args.train_count), "--seed", "0"],
    }  # fmt: skip
    folders = {}
    for label, plan in plans.items():
        folder = args.out / f"data-{label}"
        if not (folder / "synth.json").is_file():
            _say(f"generating the {label} line")
            shutil.rmtree(folder, ignore_errors=True)
            _cli(["data", "synth", "--out", str(folder), *frame, *plan])
        folders[label] = folder
    return folders


def _train_command(args: argparse.Namespace, arm: Arm, data: Path, run: Path) -> list[str]:
    """The ``edgeinspect train`` arguments that make ``arm`` with this run's settings."""
    settings = ["--epochs", str(args.epochs), "--patience", str(args.epochs)] if args.epochs else []
    if args.quick:
        settings += ["--quick"]
    after = arm is ARMS["after"]  # the recipe options try a candidate for after alone
    arch = args.arch if after and args.arch else arm.arch
    if arch:
        settings += ["--arch", arch]
    if args.crop_height is not None and after:
        settings += ["--crop-height", str(args.crop_height)]
    if args.seed is not None:
        settings += ["--seed", str(args.seed)]
    if args.device and arm.task == "multitask":
        settings += ["--device", args.device]
    return ["train", "--dataset", str(data), "--task", arm.task, "--augment", arm.augment, *settings,
            "--no-test", "--no-progress", "--out", str(run)]  # fmt: skip


def _train(args: argparse.Namespace, arm: Arm, data: Path, run: Path) -> None:
    """Train ``arm`` into ``run`` unless a run made by the same command is already there.

    A finished run made by another command (other epochs, recipe, seed) stops the bench: reusing it
    would report one model's figures under another's settings, and every fine-tune and good-parts-only
    model in ``--out`` was made from it, so the fix is another ``--out`` (or deleting this one). A
    run trained before the bench kept the record is reused as it always was.
    """
    command = _train_command(args, arm, data, run)
    last = "segmentation" if arm.task == "both" else arm.task
    record = run / COMMAND_FILE
    if (run / last / "model.onnx").is_file():
        made_by = json.loads(record.read_text()) if record.is_file() else None
        if made_by is None or made_by == command:
            return
        raise SystemExit(
            f"{run} holds a model trained by 'edgeinspect {' '.join(made_by)}', not by "
            f"'edgeinspect {' '.join(command)}': give another --out for these settings, or delete {run}"
        )
    shutil.rmtree(run, ignore_errors=True)
    started = time.perf_counter()
    _cli(command)
    (run / "train_seconds.txt").write_text(f"{time.perf_counter() - started:.1f}\n")
    record.write_text(json.dumps(command) + "\n")


def _compile(task_run: Path, task: str, data: Path, pipe: Path) -> Path:
    """The pipeline's compile step (fp32 + calibrated static int8) on a trained task folder."""
    compiled = pipe / "compile" / task
    if not (compiled / "model.onnx").is_file():
        shutil.rmtree(pipe, ignore_errors=True)
        shutil.copytree(task_run, pipe / "train" / task)
        _cli(["pipeline", "run", "--dataset", str(data), "--task", task, "--out", str(pipe),
              "--steps", "data", "compile", "--no-progress"])  # fmt: skip
    return compiled


def _families(dataset: Path) -> dict[str, str]:
    record = json.loads((dataset / "synth.json").read_text()) if (dataset / "synth.json").is_file() else {}
    return dict(record.get("image_families", {}))


def _variant(compiled: Path, precision: str) -> tuple[Path, bool]:
    """The model file of a precision and whether compile ships it (a rejected int8 is still measured)."""
    if precision == "fp32":
        return compiled / "model.onnx", True
    if (compiled / "model.int8.onnx").is_file():
        return compiled / "model.int8.onnx", True
    return compiled / "model.int8.rejected.onnx", False


def _evaluate(model: Path, spec: ModelSpec, dataset: Path) -> dict[str, Any]:
    """The edge's figures at the shipped threshold, plus image AP per surface family."""
    evaluation = evaluate_dataset(model, spec, dataset)
    figures: dict[str, Any] = {k: evaluation.metrics.get(k) for k in (*FIGURES, "images", "defective")}
    families = _families(dataset)
    names = np.array([families.get(Path(i).stem, "?") for i in evaluation.ids])
    labels, scores = evaluation.labels, evaluation.scores
    scored = [n for n in sorted(set(names)) if 0 < labels[names == n].sum() < (names == n).sum()]
    if families and scored:  # AP per family where the family has both good and defective parts
        figures["family_ap"] = {
            n: round(float(average_precision(labels[names == n], scores[names == n])), 4) for n in scored
        }
    return figures


def _measure(compiled: Path, spec_path: Path, sets: dict[str, Path]) -> dict[str, Any]:
    """fp32 and int8 figures on every test set; int8 says whether compile shipped it, and if not why."""
    spec = ModelSpec.read(spec_path)
    record = (
        json.loads((compiled / "compile.json").read_text()) if (compiled / "compile.json").is_file() else {}
    )
    figures: dict[str, Any] = {}
    for label, dataset in sets.items():
        figures[label] = {}
        for precision in ("fp32", "int8"):
            model, shipped = _variant(compiled, precision)
            figures[label][precision] = {**_evaluate(model, spec, dataset), "shipped": shipped}
    figures["int8_gate"] = record.get("precision", {}).get("reason") or "int8 shipped"
    return figures


def _two_model(cls: dict[str, Any], seg: dict[str, Any]) -> dict[str, Any]:
    """The two-model layout's row: image figures from the classifier, pixel figures from the U-Net."""
    merged: dict[str, Any] = {}
    for label in cls:
        if not isinstance(cls[label], dict):
            merged[label] = {"classifier": cls[label], "segmenter": seg[label]}
            continue
        merged[label] = {}
        for precision in cls[label]:
            row = dict(cls[label][precision])
            row.update({k: seg[label][precision].get(k) for k in ("pixel_ap", "dice")})
            merged[label][precision] = row
    return merged


def _arm(args: argparse.Namespace, name: str, data: dict[str, Path]) -> dict[str, Any]:
    arm = ARMS[name]
    run = args.out / f"run-{name}"
    _say(f"training {name} ({arm.task} on the {arm.families} line, {arm.augment} augmentation)")
    _train(args, arm, data[arm.families], run)
    sets = {"heldout": data["heldout"], "classic": data["classic"], "train": data["train"]}
    _say(f"compiling and evaluating {name}")
    if arm.task == "both":
        parts = {}
        for task in ("classification", "segmentation"):
            compiled = _compile(run / task, task, data[arm.families], args.out / f"pipe-{name}-{task}")
            parts[task] = _measure(compiled, run / task / "model_spec.json", sets)
        return _two_model(parts["classification"], parts["segmentation"])
    compiled = _compile(run / "multitask", "multitask", data[arm.families], args.out / f"pipe-{name}")
    return _measure(compiled, run / "multitask" / "model_spec.json", sets)


def _cell(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def format_table(results: dict[str, Any]) -> str:
    """The closing table: one row per model, test set and precision; then AP per held-out family."""
    lines = [
        "| model | test set | precision | " + " | ".join(HEADERS) + " |",
        "| --- " * (3 + len(HEADERS)) + "|",
    ]
    families: list[str] = []
    for model, sets in results.items():
        for label, precisions in sets.items():
            if not isinstance(precisions, dict):
                continue
            for precision, m in precisions.items():
                if not isinstance(m, dict) or "images" not in m:
                    continue
                cells = " | ".join(_cell(m.get(k)) for k in FIGURES)
                shown = precision if m.get("shipped", True) else f"{precision} (rejected)"
                lines.append(f"| {model} | {label} ({int(m['images'])}) | {shown} | {cells} |")
                families = families or sorted(m.get("family_ap", {}))
    lines += ["", "Image AP per held-out surface family (fp32):", "",
              "| model | " + " | ".join(families) + " |", "| --- " * (1 + len(families)) + "|"]  # fmt: skip
    for model, sets in results.items():
        per_family = sets.get("heldout", {}).get("fp32", {}).get("family_ap", {})
        lines.append(f"| {model} | " + " | ".join(_cell(per_family.get(f)) for f in families) + " |")
    return "\n".join(lines)


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench/out/heldout-runs"))
    parser.add_argument("--count", type=int, default=1200, help="frames of the classic line (640x232)")
    parser.add_argument(
        "--train-count", type=int, default=TRAIN_COUNT, help="frames of the randomised training line"
    )
    parser.add_argument("--heldout-count", type=int, default=500, help="held-out frames (60%% in test/)")
    parser.add_argument("--epochs", type=int, help="override the default profile's epochs (all arms)")
    parser.add_argument("--seed", type=int, help="training seed of every arm (default: the profile's)")
    parser.add_argument(
        "--arch", help="after's multi-task recipe (default: the default one), e.g. robust,width=16"
    )
    parser.add_argument(
        "--crop-height", type=int, help="after's training crop rows (default 96; 0: whole frames)"
    )
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), help="where the multi-task arms train (default: the CPU)"
    )
    parser.add_argument(
        "--surfaces", nargs="+", default=list(SURFACES), help="held-out surfaces as new lines"
    )
    parser.add_argument("--finetune-frames", type=int, default=30, help="labelled new-line frames")
    parser.add_argument("--rehearse-train", type=int, default=60, help="training-line frames rehearsed")
    parser.add_argument("--rehearse-classic", type=int, default=30, help="classic-line frames rehearsed")
    parser.add_argument("--finetune-epochs", type=int, help="override the fine-tune's epochs")
    parser.add_argument(
        "--no-two-model", dest="two_model", action="store_false", help="skip the two-model arm"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny data and models, one epoch")
    parser.add_argument("--report-dir", type=Path, default=Path("bench/out"))
    args = parser.parse_args(argv)
    args.frame = (640, 232)
    if args.quick:
        args.count, args.heldout_count, args.epochs, args.finetune_epochs = 60, 80, 1, 1
        args.train_count = args.count
        args.surfaces, args.finetune_frames, args.rehearse_train, args.rehearse_classic = (
            args.surfaces[:1],
            12,
            12,
            6,
        )
        args.frame = (256, 96)
    return args


def _summary(line: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """One surface's headline: AP as shipped, fine-tuned, good-parts-only; time; earlier lines' AP drop."""
    tuned = line["fine-tuned"]
    drop = {
        s: round(after[s]["fp32"]["image_ap"] - tuned[s]["fp32"]["image_ap"], 4) for s in ("classic", "train")
    }
    ap = [line[m]["line"]["fp32"]["image_ap"] for m in ("after", "fine-tuned", "anomaly", "anomaly-random")]
    return {
        "ap_after_finetuned_anomaly_random": ap,
        "finetune_seconds": tuned["seconds"],
        "earlier_line_ap_drop": drop,
    }


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    data = _datasets(args)
    arms = [name for name in ARMS if args.two_model or name != "two-model"]
    results: dict[str, Any] = {name: _arm(args, name, data) for name in arms}
    helpers = SimpleNamespace(cli=_cli, say=_say, measure=_measure, compile=_compile, evaluate=_evaluate)
    lines = {surface: measure_surface(args, surface, helpers) for surface in args.surfaces}
    text = f"{format_table(results)}\n\n{format_lines(lines, results['after'])}"
    print(text)
    summary = {surface: _summary(f, results["after"]) for surface, f in lines.items()}
    figures = {"models": results, "lines": lines, "summary": summary, **machine(load_before)}
    write_report("heldout", figures, args.report_dir, text)
    print(json.dumps(figures, sort_keys=True, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
