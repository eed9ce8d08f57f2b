"""``edgeinspect evaluate``: measure a package (or a bare ONNX model + spec) on any dataset folder.

The model runs exactly as on the edge (core preprocessing, ONNX Runtime, core postprocessing) with
the manifest's thresholds. The report folder gets ``metrics.json``, the plots and ``report.html``/
``report.md``; the LAST output line is one JSON object of the metrics (``image_ap``, ``image_auroc``,
``f1``, ``threshold``, and for a segmenter ``pixel_ap``, ``dice``, ``iou``).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgeinspect_cloud.commands.cli_errors import reports_errors
from edgeinspect_cloud.errors import EvaluationError


def register(subparsers: Any) -> None:
    """Add ``evaluate``."""
    parser = subparsers.add_parser("evaluate", help="evaluate a model package on a dataset folder")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--package", type=Path, help="model package {name}-{version}.tar.gz")
    source.add_argument("--model", type=Path, help="a bare ONNX model (needs --spec)")
    parser.add_argument("--spec", type=Path, help="model_spec.json or manifest.json for --model")
    parser.add_argument(
        "--dataset", type=Path, required=True, help="dataset folder in the KolektorSDD2 layout"
    )
    parser.add_argument("--split", default="test", help="which split folder to evaluate (default: test)")
    parser.add_argument("--out", type=Path, help="report folder (default: reports/<model>-<UTC time>)")
    parser.add_argument("--public-key", type=Path, action="append", default=[], help="verify with this key")
    parser.add_argument("--int8", action="store_true", help="evaluate the package's model.int8.onnx")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads (default 2)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_evaluate)


def _default_out(name: str) -> Path:
    return Path("reports") / f"{name}-{datetime.now(UTC):%Y%m%d-%H%M%S}"


@reports_errors
def _evaluate(args: argparse.Namespace) -> int:
    from edgeinspect_cloud.evaluation.evaluate import json_ready
    from edgeinspect_cloud.evaluation.package import evaluate_dataset, evaluate_package
    from edgeinspect_cloud.evaluation.spec import ModelSpec

    progress = not args.no_progress
    if args.package is not None:
        from edgeinspect.core.package import load_public_keys

        keys = load_public_keys(args.public_key) if args.public_key else None
        out = args.out or _default_out(args.package.name.removesuffix(".tar.gz"))
        _, evaluation = evaluate_package(
            args.package,
            args.dataset,
            split=args.split,
            out_dir=out,
            public_keys=keys,
            int8=args.int8,
            threads=args.threads,
            progress=progress,
        )
    else:
        if args.spec is None:
            raise EvaluationError("--model needs --spec", hint="pass the model_spec.json written beside it")
        out = args.out or _default_out(args.model.stem)
        evaluation = evaluate_dataset(
            args.model,
            ModelSpec.read(args.spec),
            args.dataset,
            split=args.split,
            out_dir=out,
            threads=args.threads,
            progress=progress,
        )
    print(f"report: {out}")
    print(json.dumps(json_ready(evaluation.metrics), sort_keys=True))
    return 0
