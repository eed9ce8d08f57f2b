"""``edgeinspect compile``: a trained model (ONNX, Keras or PyTorch file) -> optimised fp32 + static int8.

Images come from a dataset folder through the model's own preprocessing (its ``model_spec.json``, or
a package ``manifest.json``): calibration from ``train/``, parity and accuracy on ``test/`` (or the
rest of ``train/`` when there is no test split); the int8 shift gate on ``--shift-data``'s ``test/`` (or
``train/``) split, else on the validation frames under deterministic shifts. Writes ``model.onnx``,
``model.int8.onnx`` (when int8 passed its gates; else ``model.int8.rejected.onnx``), ``compile.json``
(``precision``: the default precision and why) and ``golden-input.npy`` into ``--out``; the last output
line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from edgeinspect_cloud.commands.cli_errors import reports_errors
from edgeinspect_cloud.compile import CompileData, CompileError, CompileOptions, compile_model, load_source

SPEC_FILE = "model_spec.json"


def register(subparsers: Any) -> None:
    """Add ``compile``."""
    parser = subparsers.add_parser(
        "compile", help="optimise a model and quantise it to int8, with parity checks"
    )
    parser.add_argument("--model", type=Path, required=True, help="model file: .onnx, .keras/.h5, .pt/.pth")
    parser.add_argument("--task", choices=["classification", "segmentation"], required=True)
    parser.add_argument(
        "--dataset", type=Path, required=True, help="dataset folder for calibration and parity"
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--spec", type=Path, help=f"model spec or manifest (default: {SPEC_FILE} beside the model)"
    )
    parser.add_argument("--layout", choices=["NCHW", "NHWC"], help="input layout of a float-input ONNX model")
    parser.add_argument("--sigmoid", action="store_true", help="the model outputs logits: add a sigmoid")
    parser.add_argument("--no-int8", action="store_true", help="optimise only, no int8 model")
    parser.add_argument("--calibration", choices=["minmax", "entropy", "percentile"], default="minmax")
    parser.add_argument("--calibration-images", type=int, default=64, help="calibration images (default 64)")
    parser.add_argument("--int8-max-diff", type=float, default=CompileOptions.int8_max_diff)
    parser.add_argument("--int8-min-agreement", type=float, default=CompileOptions.int8_min_agreement)
    parser.add_argument(
        "--int8-min-pixel-agreement", type=float, default=CompileOptions.int8_min_pixel_agreement
    )
    parser.add_argument(
        "--shift-data",
        type=Path,
        metavar="DIR",
        help="dataset folder of frames the model was not tuned on, for the int8 shift gate (default: "
        "the validation frames under deterministic brightness/contrast/gamma/colour/blur/noise shifts)",
    )
    parser.add_argument(
        "--int8-min-shift-agreement",
        type=float,
        default=CompileOptions.int8_min_shift_agreement,
        help="share of shifted-set verdicts int8 must keep at the shipped threshold (default 0.99)",
    )
    parser.add_argument("--no-shift-gate", action="store_true", help="judge int8 on validation only")
    parser.add_argument(
        "--strict-int8",
        action="store_true",
        help="fail when int8 fails a gate (default: fp32 becomes default)",
    )
    parser.add_argument(
        "--full-range",
        action="store_true",
        help="8-bit weights, not 7-bit: only for targets with VNNI or ARM dot product (see compile docs)",
    )
    parser.add_argument("--seed", type=int, default=0, help="which training images calibrate")
    parser.set_defaults(handler=_compile)


@reports_errors
def _compile(args: argparse.Namespace) -> int:
    from edgeinspect_cloud.evaluation.spec import ModelSpec

    spec = ModelSpec.read(args.spec or args.model.with_name(SPEC_FILE))
    source = load_source(
        args.model,
        task=args.task,
        normalisation=spec.input.normalisation,
        sigmoid=args.sigmoid,
        layout=args.layout,
        height=spec.input.resize.height,
        width=spec.input.resize.width,
    )
    data = _images(args.dataset, spec, args.calibration_images, args.seed)
    options = CompileOptions(
        quantize=not args.no_int8,
        calibration_method=args.calibration,
        max_calibration_images=args.calibration_images,
        int8_max_diff=args.int8_max_diff,
        int8_min_agreement=args.int8_min_agreement,
        int8_min_pixel_agreement=args.int8_min_pixel_agreement,
        int8_min_shift_agreement=args.int8_min_shift_agreement,
        shift_gate=not args.no_shift_gate,
        strict_int8=args.strict_int8,
        reduce_range=not args.full_range,
    )
    if args.shift_data is not None:
        data = _with_shift_data(data, args.shift_data, spec)
    result = compile_model(source, data, args.out, options)
    defective = np.flatnonzero(data.labels) if data.labels is not None else np.zeros(0, int)
    index = int(defective[0]) if defective.size else 0
    np.save(args.out / "golden-input.npy", data.validation[index : index + 1], allow_pickle=False)
    keys = ("export_parity", "int8_parity", "fp32", "int8", "precision")
    print(json.dumps({"out": str(args.out), **{k: result.report[k] for k in keys if k in result.report}}))
    return 0


def _with_shift_data(data: CompileData, root: Path, spec: Any) -> CompileData:
    """``data`` plus the shifted family: ``root``'s ``test/`` split, else its ``train/``."""
    from dataclasses import replace

    from edgeinspect_cloud.data.arrays import load_arrays
    from edgeinspect_cloud.data.dataset import list_split

    files = list_split(root, "test" if (root / "test").is_dir() else "train")
    if not files:
        raise CompileError(f"--shift-data {root} holds no images", hint="give a dataset folder")
    shifted = load_arrays(files, spec.input)
    return replace(
        data, shifted=shifted.images, shifted_labels=shifted.labels, shift_source=f"--shift-data {root.name}"
    )


def _images(root: Path, spec: Any, calibration: int, seed: int) -> CompileData:
    """Calibration images from ``train/``; validation from ``test/`` (else the rest of ``train/``)."""
    from edgeinspect_cloud.data.arrays import load_arrays
    from edgeinspect_cloud.data.dataset import list_split

    train = list_split(root, "train")
    order = np.random.default_rng(seed).permutation(len(train))
    calib_files = [train[i] for i in np.sort(order[:calibration])]
    if (root / "test").is_dir():
        val_files = list_split(root, "test")
    else:
        val_files = [train[i] for i in np.sort(order[calibration:])]
    if not val_files:
        raise CompileError(
            f"{root} leaves no validation images", hint="add a test/ split or use fewer --calibration-images"
        )
    calib = load_arrays(calib_files, spec.input)
    val = load_arrays(val_files, spec.input)
    thresholds = spec.thresholds
    return CompileData(
        calibration=calib.images,
        validation=val.images,
        labels=val.labels,
        masks=val.masks >= 0.5 if spec.task == "segmentation" else None,
        image_threshold=thresholds.image if thresholds else 0.5,
        pixel_threshold=(thresholds.pixel if thresholds else None)
        or (0.5 if spec.task == "segmentation" else None),
    )
