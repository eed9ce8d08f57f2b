"""``edgeinspect pipeline run``: data, train, evaluate, gate, compile, package, agent-check, register.

Every step reads and writes the run folder (``--out``), so ``--steps`` can run any of them alone or
resume after a failure. Progress goes to stdout one line per step; the last line is one JSON object
(versions registered, package URLs, metrics). Options are checked before anything slow starts.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from edgeinspect_cloud.commands.cli_errors import reports_errors
from edgeinspect_cloud.commands.registry import add_registry_arguments
from edgeinspect_cloud.compile import CompileOptions
from edgeinspect_cloud.errors import TrainingError
from edgeinspect_cloud.evaluation.metrics import POLICY_HELP, ThresholdPolicy
from edgeinspect_cloud.pipeline import (
    ALL_TASKS,
    GROUPS,
    STEPS,
    TASKS,
    PipelineError,
    PipelineOptions,
    RunLayout,
    run_pipeline,
)
from edgeinspect_cloud.pipeline.graph import KEYED_STEPS
from edgeinspect_cloud.pipeline.remote import is_url
from edgeinspect_cloud.pipeline.steps_gate import GateFailedError
from edgeinspect_cloud.registry.gate import default_gate
from edgeinspect_cloud.registry.lineage import parse_model_ref
from edgeinspect_cloud.training.blend import check_share
from edgeinspect_cloud.training.config import CROPPING_TASKS, FINETUNE_BLEND, check_crop_height
from edgeinspect_cloud.training.multitask_arch import parse_arch


def register(subparsers: Any) -> None:
    """Add ``pipeline run``."""
    parser = subparsers.add_parser("pipeline", help="train, evaluate, compile, package and register models")
    sub = parser.add_subparsers(dest="pipeline_command", metavar="ACTION", required=True)
    run = sub.add_parser("run", help="run the pipeline (or some of its steps) into a run folder")
    run.add_argument(
        "--dataset",
        action="append",
        default=[],
        help="dataset folder, or s3:// / file:// URL of one (repeat to train on several)",
    )
    run.add_argument(
        "--task",
        choices=[*ALL_TASKS, "both"],
        default="both",
        help="which model(s): both (the two-model layout, default), one of them, multitask (one "
        "model, one pass, both answers) or anomaly (good parts only: trained without defect labels)",
    )
    run.add_argument("--out", type=Path, required=True, help="the run folder (created; reused by --steps)")
    run.add_argument(
        "--key", type=Path, help="ed25519 private key that signs packages (edgeinspect keys generate)"
    )
    run.add_argument(
        "--steps",
        nargs="+",
        default=list(STEPS),
        help=f"steps to run, space or comma separated: {' '.join(STEPS)}",
    )
    run.add_argument(
        "--quick", action="store_true", help="small, fast settings for demos and tests (under a minute)"
    )
    run.add_argument(
        "--profile",
        choices=["default", "quick", "demo"],
        help="training settings: default, quick (tests; = --quick) or demo (`make demo-models`)",
    )
    run.add_argument("--seed", type=int, default=0, help="seed of split, initialisation and augmentation")
    run.add_argument("--epochs", type=int, help="override the number of training epochs")
    run.add_argument(
        "--arch",
        metavar="RECIPE",
        help="multitask only: the network's recipe, a preset (baseline, seg-first, wide16, sep16, deep4, "
        "stem4-w16, sep16-seg) optionally followed by ,key=value overrides (width, stages, stem, block, "
        "skips, input, mask_weight, seg_warmup); default: the default preset (cloud/README.md)",
    )
    run.add_argument("--device", default="cpu", help="multitask only: train on cpu (default), cuda or cuda:N")
    run.add_argument(
        "--crop-height",
        type=int,
        metavar="ROWS",
        help="segmentation/multitask: train on full-width crops of ROWS rows (a multiple of 16), 0 = "
        "whole frames; default: the profile's (96 rows of 320); inference always sees the whole frame",
    )
    run.add_argument(
        "--threshold-policy",
        default="best-f1",
        metavar="POLICY",
        help=f"how the shipped image threshold is chosen on validation: {POLICY_HELP}",
    )
    run.add_argument(
        "--augment",
        choices=["standard", "robust", "off"],
        help="training augmentation: standard (the profile's default), robust (colour, gamma, blur, "
        "texture mixing: for datasets of several surfaces) or off",
    )
    run.add_argument(
        "--rehearse",
        action="append",
        default=[],
        metavar="DIR|URL",
        help="an earlier line's dataset (a folder, s3:// or file:// URL) whose train/ frames join training "
        "(never validation): with --init-from, the fine-tune keeps seeing that line (repeatable or "
        "comma-separated)",
    )
    run.add_argument(
        "--no-tiling-hint",
        action="store_true",
        help="leave the manifest's tiling block out (by default a model trained on frames larger than "
        "its input tells devices to tile big camera frames at that training frame size)",
    )
    run.add_argument(
        "--init-from",
        action="append",
        default=[],
        metavar="GROUP:VERSION",
        help="fine-tune that registered version (e.g. defect-cls:3, defect-cls:approved) on the "
        "--dataset frames instead of training from scratch; one per task, repeated or comma-separated "
        "(needs --registry)",
    )
    run.add_argument(
        "--finetune-anchor",
        type=float,
        default=0.0,
        metavar="WEIGHT",
        help="with --init-from: pull the weights back towards the parent's (L2-SP, e.g. 10000) when the "
        "gate refuses a fine-tune for what it cost an earlier line (default 0: off)",
    )
    run.add_argument(
        "--finetune-blend",
        type=float,
        default=FINETUNE_BLEND,
        metavar="SHARE",
        help="with --init-from: the share of the fine-tune's change to the weights that ships, "
        f"parent + SHARE x (tuned - parent) (default {FINETUNE_BLEND:g}: half way, which lost the "
        "earlier lines far less than the plain fine-tune; 1: the plain fine-tune)",
    )
    run.add_argument("--by", help="who registers (default: the login name)")
    run.add_argument("--no-int8", action="store_true", help="ship fp32 only (no static int8 model)")
    run.add_argument(
        "--shift-data",
        type=Path,
        metavar="DIR",
        help="dataset folder of frames the model was not tuned on, for the int8 shift gate (default: "
        "the validation frames under deterministic brightness/contrast/gamma/colour/blur/noise shifts)",
    )
    run.add_argument(
        "--int8-min-shift-agreement",
        type=_fraction,
        default=CompileOptions.int8_min_shift_agreement,
        help="share of shifted-set verdicts int8 must keep at the shipped threshold to be the default "
        "(default 0.99; below it the package ships fp32 as default and says why)",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bars (logs and step lines stay)")
    gate = run.add_argument_group(
        "quality gate", "held-out minimums a model must reach to be registered (defaults: EI_GATE_*)"
    )
    gate.add_argument("--gate-min-ap", type=_fraction, help="minimum image AP (default 0.9)")
    gate.add_argument(
        "--gate-min-recall", type=_fraction, help="minimum recall at the shipped threshold (default 0.8)"
    )
    gate.add_argument("--gate-min-dice", type=_fraction, help="minimum pixel Dice, segmenters (default 0.6)")
    gate.add_argument(
        "--gate-max-ap-drop",
        type=_fraction,
        help="--init-from: how far image AP on any earlier line may fall below the parent's (default 0.005)",
    )
    gate.add_argument(
        "--gate-passed-out",
        type=Path,
        help="write true/false here and exit 0 on a failed gate (an engine's condition decides)",
    )
    gate.add_argument(
        "--gate-report-out", type=Path, help="write the gate verdict as JSON here (as --gate-passed-out)"
    )
    run.add_argument(
        "--run-url",
        help="object-storage home of the run folder (s3://bucket/runs/X): pulled first, pushed per step",
    )
    add_registry_arguments(run)
    run.set_defaults(handler=_run)
    _add_export(sub)


def _add_export(sub: Any) -> None:
    """``pipeline export``: the same steps as a Kubeflow (IR YAML) or SageMaker (JSON) pipeline."""
    from edgeinspect_cloud.pipeline.export import DEFAULT_IMAGE, DEFAULT_ROLE, ENGINES

    export = sub.add_parser(
        "export", help="compile the pipeline for Kubeflow Pipelines or SageMaker Pipelines"
    )
    export.add_argument("--engine", choices=ENGINES, required=True)
    export.add_argument("--out", type=Path, required=True, help="pipeline.yaml (kubeflow) or pipeline.json")
    export.add_argument("--image", default=DEFAULT_IMAGE, help=f"the cloud image (default {DEFAULT_IMAGE})")
    export.add_argument("--quick", action="store_true", help="quick training settings in every step")
    export.add_argument("--epochs", type=int, help="override the number of training epochs")
    export.add_argument("--role-arn", default=DEFAULT_ROLE, help="SageMaker execution role")
    export.add_argument(
        "--task",
        choices=[*ALL_TASKS, "both"],
        default="both",
        help="the models the pipeline trains: both (default), one of them, multitask or anomaly",
    )
    export.add_argument(
        "--tool-venv", type=Path, help="the SDK environment (default .venv-pipelines, made on first use)"
    )
    export.set_defaults(handler=_export)


def _fraction(text: str) -> float:
    """A gate minimum: a number from 0 (figure not checked) to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number between 0 and 1") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and 1 (0 switches the figure off)")
    return value


def parse_steps(values: list[str]) -> list[str]:
    """``["data,train", "evaluate"]`` -> ``["data", "train", "evaluate"]``; unknown names are an error."""
    steps = [name.strip() for value in values for name in value.split(",") if name.strip()]
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        raise PipelineError(f"unknown step(s) {unknown}", hint=f"steps are: {' '.join(STEPS)}")
    return steps


def options_from_args(args: argparse.Namespace, steps: list[str]) -> PipelineOptions:
    """Build and check the options before anything slow runs: a missing key must not cost a training."""
    tasks = list(TASKS) if args.task == "both" else [args.task]
    if "data" in steps and not args.dataset:
        raise PipelineError("the data step needs --dataset", hint="pass --dataset DIR (repeat for several)")
    folders = [Path(d) for d in args.dataset if not is_url(d)]
    for dataset in folders:
        if not dataset.is_dir():
            raise PipelineError(f"dataset folder {dataset} does not exist", hint="check --dataset")
    if set(KEYED_STEPS) & set(steps) and (args.key is None or not args.key.is_file()):
        raise PipelineError(
            f"packaging needs a signing key (for {', '.join(s for s in KEYED_STEPS if s in steps)}), "
            f"and {args.key or 'none'} is not a file",
            hint="pass --key PRIVATE_KEY (make one with `edgeinspect keys generate --out DIR`)",
        )
    if "register" in steps and not args.registry:
        raise PipelineError(
            "the register step needs a registry", hint="pass --registry s3://... or file:///..."
        )
    policy = ThresholdPolicy.parse(args.threshold_policy)  # a typo must not cost a training
    if (args.arch is not None or args.device != "cpu") and "multitask" not in tasks:
        raise PipelineError(
            "--arch and --device are for the multitask model", hint="add --task multitask, or drop them"
        )
    if args.arch is not None:
        parse_arch(args.arch)  # a typo must not cost a data step either
    check_crop(args.crop_height, tasks)
    init_from = check_init_from(args.init_from, tasks, steps, args.registry)
    if args.finetune_anchor < 0 or (args.finetune_anchor > 0 and not init_from):
        raise PipelineError(
            f"--finetune-anchor {args.finetune_anchor:g}: the anchor must be >= 0 and holds a fine-tune "
            "to its parent, so it needs --init-from",
            hint="add --init-from GROUP:VERSION, or drop --finetune-anchor",
        )
    check_finetune_blend(args.finetune_blend)
    return PipelineOptions(
        run_dir=args.out,
        tasks=tasks,  # type: ignore[arg-type]
        datasets=folders,
        dataset_urls=[d for d in args.dataset if is_url(d)],
        run_url=args.run_url,
        quick=args.quick,
        profile=args.profile,
        seed=args.seed,
        epochs=args.epochs,
        registry_url=args.registry,
        endpoint_url=args.endpoint_url,
        key_path=args.key,
        created_by=args.by,
        progress=not args.no_progress,
        compile=CompileOptions(
            quantize=not args.no_int8, int8_min_shift_agreement=args.int8_min_shift_agreement
        ),
        shift_data=args.shift_data,
        threshold_policy=str(policy),
        arch=args.arch,
        device=args.device,
        crop_height=args.crop_height,
        augment=args.augment,
        tiling_hint=not args.no_tiling_hint,
        rehearse=check_rehearse(args.rehearse),
        init_from=init_from,
        finetune_anchor=args.finetune_anchor,
        finetune_blend=args.finetune_blend,
        gate=default_gate().with_overrides(
            min_image_ap=args.gate_min_ap,
            min_recall=args.gate_min_recall,
            min_dice=args.gate_min_dice,
            max_ap_drop=args.gate_max_ap_drop,
        ),
    )


def _listed(values: list[str]) -> list[str]:
    """A repeatable option's values, each possibly comma-separated; empty entries dropped (an
    engine passes ``""`` for "none")."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def check_finetune_blend(share: float) -> None:
    """``--finetune-blend`` in (0, 1], refused before anything slow runs (a from-scratch run ignores it:
    the engines pass their parameter's value to every run)."""
    try:
        check_share(share)
    except TrainingError as exc:
        raise PipelineError(f"--finetune-blend {share:g}: {exc.message}", hint=exc.hint) from exc


def check_crop(rows: int | None, tasks: list[str]) -> None:
    """``--crop-height`` is refused before anything slow runs: with no task that crops it would be
    silently ignored, and a height the networks cannot take would fail only at the train step."""
    if rows is None:
        return
    if not set(tasks) & set(CROPPING_TASKS):
        raise PipelineError(
            f"--crop-height is for the {' and '.join(CROPPING_TASKS)} models, not {', '.join(tasks)}",
            hint="add --task segmentation, multitask or both, or drop --crop-height",
        )
    if rows:
        try:
            check_crop_height(rows)
        except TrainingError as exc:
            raise PipelineError(f"--crop-height {rows}: {exc.message}", hint=exc.hint) from exc


def check_rehearse(values: list[str]) -> list[str]:
    """``--rehearse`` sources (see :func:`_listed`); a local folder must exist before anything slow runs."""
    sources = _listed(values)
    for source in sources:
        if not is_url(source) and not (Path(source) / "train").is_dir():
            raise PipelineError(
                f"--rehearse {source}: no train/ folder there",
                hint="name an earlier line's dataset folder (it holds train/), or its s3:// URL",
            )
    return sources


def check_init_from(values: list[str], tasks: list[str], steps: list[str], registry: str | None) -> list[str]:
    """The ``--init-from`` references, checked before any training: one per trained task's group.

    Values may be comma-separated; an empty one means none (an engine's ``init_from`` parameter
    defaults to ``""``). A reference to a group this invocation does not train is left for the
    invocation that does (an engine runs one task per train node).
    """
    refs = _listed(values)
    if not refs:
        return []
    groups = {GROUPS[task]: task for task in tasks}  # type: ignore[index]
    named = [parse_model_ref(ref)[0] for ref in refs]
    for group in named:
        if group not in GROUPS.values():
            raise PipelineError(
                f"--init-from names {group}, which is not a model group of the pipeline",
                hint=f"fine-tune one of: {', '.join(GROUPS.values())}",
            )
    backbone = GROUPS["multitask"] in named  # the anomaly model reads that version's encoder
    missing = [g for g, task in groups.items() if g not in named and not (task == "anomaly" and backbone)]
    if missing:
        raise PipelineError(
            f"--init-from fine-tunes {', '.join(named)} but this run also trains {', '.join(missing)} "
            "from scratch",
            hint=f"add --init-from {missing[0]}:VERSION, or train only the fine-tuned task with --task",
        )
    if len(set(named)) != len(named):
        raise PipelineError("--init-from names a group twice", hint="give one GROUP:VERSION per group")
    if "train" in steps and not registry:
        raise PipelineError(
            "--init-from needs the registry that holds the parent version",
            hint="pass --registry s3://bucket/prefix or file:///dir",
        )
    return refs


@reports_errors
def _run(args: argparse.Namespace) -> int:
    from edgeinspect.core.observability import configure_logging

    configure_logging("INFO", service="pipeline")  # one JSON line per epoch on stderr; step lines stay
    steps = parse_steps(args.steps)
    options = options_from_args(args, steps)
    engine = args.gate_passed_out or args.gate_report_out
    try:
        summary = run_pipeline(options, steps)
    except GateFailedError as exc:
        if not engine or "gate" not in steps:
            raise
        print(f"error: {exc} (the engine's condition skips the gated steps)", file=sys.stderr)
        _write_gate_outputs(args, options)
        return 0
    if engine and "gate" in steps:
        _write_gate_outputs(args, options)
    print(json.dumps(summary["result"], sort_keys=True))
    return 0


@reports_errors
def _export(args: argparse.Namespace) -> int:
    from edgeinspect_cloud.pipeline.export import export

    path = export(
        args.engine,
        args.out,
        image=args.image,
        quick=args.quick,
        epochs=args.epochs,
        role_arn=args.role_arn,
        venv_dir=args.tool_venv,
        tasks=list(TASKS) if args.task == "both" else [args.task],
    )
    print(f"wrote the {args.engine} pipeline to {path}")
    return 0


def _write_gate_outputs(args: argparse.Namespace, options: PipelineOptions) -> None:
    """The gate verdict of every task, for an engine: ``true``/``false`` and the records as JSON."""
    layout = RunLayout(options.run_dir)
    records = {task: layout.read(layout.gate_json(task), "gate") for task in options.tasks}
    passed = all(record["passed"] for record in records.values())
    if args.gate_passed_out:
        args.gate_passed_out.parent.mkdir(parents=True, exist_ok=True)
        args.gate_passed_out.write_text("true" if passed else "false")
    if args.gate_report_out:
        RunLayout.write(args.gate_report_out, {"passed": passed, "tasks": records})
