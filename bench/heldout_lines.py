"""``bench.heldout``'s new-line stages: each held-out surface as a new line, fine-tuned and anomaly-fitted.

A real line has one surface. For each held-out surface (``data synth --families heldout --surface``)
this makes a line of 300 parts (30% defective; 30 labelled frames in ``train/``, 270 in ``test/``)
and measures, on its 270 held-out frames:

- the robust parent (``after``) as shipped, fp32 and int8;
- the parent fine-tuned the way ``pipeline run --init-from ... --rehearse DIR`` does (its network
  and checkpoint, the fine-tune schedule and blend; validation and threshold on the 30 new frames'
  split; a folder of earlier-line frames, ``--rehearse-train`` of the training line and
  ``--rehearse-classic`` of the classic line, in every training batch but never in validation),
  timed; and the same
  fine-tuned model on the earlier lines' test splits (the gate's check);
- the good-parts-only model fitted on 100 good frames of the surface (no labels at all).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from edgeinspect_cloud.data.dataset import SampleFiles, list_split
from edgeinspect_cloud.evaluation.spec import ModelSpec

SURFACES = ("knurled", "spangle", "twill", "perforated")


def _copy(samples: list[SampleFiles], folder: Path, prefix: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for files in samples:
        shutil.copy(files.image_path, folder / f"{prefix}{files.image_path.name}")
        shutil.copy(files.mask_path, folder / f"{prefix}{files.mask_path.name}")


def _sample(dataset: Path, count: int, seed: int) -> list[SampleFiles]:
    files = list_split(dataset, "train")
    picks = np.random.default_rng(seed).choice(len(files), min(count, len(files)), replace=False)
    return [files[i] for i in sorted(picks)]


def _lines(args: argparse.Namespace, surface: str, cli: Any) -> tuple[Path, Path, Path]:
    """(the surface's line, its rehearsal training folder, 100 good frames of it), made once."""
    line, good, rehearse = (args.out / f"{kind}-{surface}" for kind in ("line", "good", "rehearse"))
    frame = ["--height", str(args.frame[0]), "--width", str(args.frame[1])]
    common = ["--families", "heldout", "--surface", surface, *frame]
    count, good_count = (60, 30) if args.quick else (300, 100)
    if not (line / "synth.json").is_file():
        shutil.rmtree(line, ignore_errors=True)
        cli(["data", "synth", "--out", str(line), *common, "--count", str(count), "--defect-ratio", "0.3",
             "--test-fraction", str(1 - args.finetune_frames / count), "--seed", "2000"])  # fmt: skip
    if not (good / "synth.json").is_file():
        shutil.rmtree(good, ignore_errors=True)
        cli(["data", "synth", "--out", str(good), *common, "--count", str(good_count), "--defect-ratio", "0",
             "--test-fraction", "0", "--seed", "3000"])  # fmt: skip
    if not (rehearse / "train").is_dir():  # a folder of some earlier-line frames, as a user keeps one
        _copy(_sample(args.out / "data-train", args.rehearse_train, 5), rehearse / "train", "train-")
        _copy(_sample(args.out / "data-classic", args.rehearse_classic, 6), rehearse / "train", "classic-")
    return line, rehearse, good


def _finetuned(args: argparse.Namespace, line: Path, rehearse: Path, run: Path) -> float:
    """Fine-tune ``after`` into ``run`` (unless done); the wall seconds it took."""
    from edgeinspect_cloud.training.config import finetune_config
    from edgeinspect_cloud.training.multitask import train_multitask

    if not (run / "model.onnx").is_file():
        record, checkpoint = _parent(args)
        config = finetune_config(
            record["config"],
            checkpoint,
            progress=False,
            epochs=args.finetune_epochs,
            rehearse=(str(rehearse),),
        )
        shutil.rmtree(run, ignore_errors=True)
        started = time.perf_counter()
        train_multitask(line, run, config)
        (run / "finetune_seconds.txt").write_text(f"{time.perf_counter() - started:.1f}\n")
    return float((run / "finetune_seconds.txt").read_text())


def _anomaly(args: argparse.Namespace, good: Path, run: Path, backbone: Path | None) -> Path:
    """The good-parts-only model on ``good`` (unless done): on the parent's encoder, or random features."""
    from edgeinspect_cloud.training.anomaly import train_anomaly
    from edgeinspect_cloud.training.config import default_config

    wanted = None if backbone is None else str(backbone)
    done = run / "result.json"  # a run of another kind (an older cache's random features) is redone
    if not done.is_file() or json.loads(done.read_text())["config"].get("init_weights") != wanted:
        profile: Literal["quick", "default"] = "quick" if args.quick else "default"
        config = default_config("anomaly", profile=profile).with_overrides(progress=False)
        shutil.rmtree(run, ignore_errors=True)
        train_anomaly(good, run, config.with_overrides(init_weights=wanted))
    return run


def _parent(args: argparse.Namespace) -> tuple[dict[str, Any], Path]:
    """``after``'s run record and kept checkpoint: the fine-tunes start from it, the anomaly model
    reads its encoder."""
    parent = args.out / "run-after" / "multitask"
    record = json.loads((parent / "result.json").read_text())
    return record, parent / "checkpoints" / Path(record["checkpoint_path"]).name


def measure_surface(args: argparse.Namespace, surface: str, helpers: Any) -> dict[str, Any]:
    """Every new-line figure of one held-out surface (see the module doc)."""
    line, rehearse, good = _lines(args, surface, helpers.cli)
    helpers.say(f"{surface}: the parent, a fine-tune on {args.finetune_frames} frames, the anomaly model")
    parent_compiled = args.out / "pipe-after" / "compile" / "multitask"
    parent_spec = args.out / "run-after" / "multitask" / "model_spec.json"
    figures: dict[str, Any] = {"after": helpers.measure(parent_compiled, parent_spec, {"line": line})}
    run = args.out / f"run-finetuned-{surface}"
    seconds = _finetuned(args, line, rehearse, run)
    calibration = args.out / f"calibration-{surface}"  # the new and the rehearsed frames, as trained on
    if not (calibration / "train").is_dir():
        _copy(list_split(line, "train"), calibration / "train", "new-")
        _copy(list_split(rehearse, "train"), calibration / "train", "")
    compiled = helpers.compile(run, "multitask", calibration, args.out / f"pipe-finetuned-{surface}")
    earlier = {"line": line, "classic": args.out / "data-classic", "train": args.out / "data-train"}
    figures["fine-tuned"] = {
        **helpers.measure(compiled, run / "model_spec.json", earlier),
        "seconds": seconds,
    }
    for model, backbone in (("anomaly", _parent(args)[1]), ("anomaly-random", None)):
        anomaly = _anomaly(args, good, args.out / f"run-{model}-{surface}", backbone)
        spec = ModelSpec.read(anomaly / "model_spec.json")
        figures[model] = {
            "line": {"fp32": {**helpers.evaluate(anomaly / "model.onnx", spec, line), "shipped": True}}
        }
    rehearsed = len(list_split(rehearse, "train"))
    figures["frames"] = {
        "new": args.finetune_frames,
        "rehearsed": rehearsed,
        "good": len(list_split(good, "train")),
    }
    return figures


MODELS = ("after", "fine-tuned", "anomaly", "anomaly-random")
"""Per new line: as shipped, fine-tuned, good-parts-only on after's encoder, and on random features."""
SHOWN = ("image_ap", "operating_recall", "operating_false_reject_rate", "dice")


def _row(surface: str, model: str, precision: str, m: dict[str, Any]) -> str:
    cells = " | ".join("-" if m.get(k) is None else f"{m[k]:.3f}" for k in SHOWN)
    shown = precision if m.get("shipped", True) else f"{precision} (rejected)"
    return f"| {surface} ({int(m['images'])}) | {model} | {shown} | {cells} |"


def format_lines(lines: dict[str, Any], after: dict[str, Any]) -> str:
    """One row per surface, model and precision on the line's held-out frames; then the gate's check."""
    rows = ["| new line (test frames) | model | precision | image AP | recall | FRR | Dice |",
            "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    checks = ["| surface | fine-tune s | rehearsed | classic AP (after->tuned) | train AP (after->tuned) |",
              "| --- | --- | --- | --- | --- |"]  # fmt: skip
    for surface, figures in lines.items():
        for model in MODELS:
            for precision, m in figures[model]["line"].items():
                rows.append(_row(surface, model, precision, m))
        tuned = figures["fine-tuned"]
        cells = [
            f"{after[s]['fp32']['image_ap']:.3f} -> {tuned[s]['fp32']['image_ap']:.3f}"
            for s in ("classic", "train")
        ]
        rehearsed = figures["frames"]["rehearsed"]
        checks.append(f"| {surface} | {tuned['seconds']:.0f} | {rehearsed} | {cells[0]} | {cells[1]} |")
    return (
        "\n".join(rows)
        + "\n\nEarlier lines after each fine-tune (fp32, the gate's check):\n\n"
        + "\n".join(checks)
    )
