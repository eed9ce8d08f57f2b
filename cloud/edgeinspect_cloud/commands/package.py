"""``edgeinspect package build|verify|show``: make a signed package from a compile folder, check one.

``build`` takes what ``edgeinspect compile`` wrote (models, ``compile.json``, ``golden-input.npy``) and
the model spec with its thresholds; ``verify`` does what a device does before loading (signature,
hashes, golden smoke test in ONNX Runtime); ``show`` prints a manifest without trusting it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from edgeinspect.core.errors import PackageError
from edgeinspect.core.package import Framework, load_private_key, load_public_keys

from edgeinspect_cloud.commands.cli_errors import reports_errors
from edgeinspect_cloud.packaging import (
    FP32_TOLERANCE,
    INT8_TOLERANCE,
    PackageDraft,
    check_package,
    precision_from_report,
)
from edgeinspect_cloud.registry import manifest_from_tar


def register(subparsers: Any) -> None:
    """Add ``package build``, ``package verify`` and ``package show``."""
    parser = subparsers.add_parser("package", help="build, verify or show signed model packages")
    sub = parser.add_subparsers(dest="package_command", metavar="ACTION", required=True)

    build = sub.add_parser("build", help="sign a package from a compile output folder")
    build.add_argument("--compiled", type=Path, required=True, help="folder written by `edgeinspect compile`")
    build.add_argument(
        "--spec", type=Path, required=True, help="model_spec.json with thresholds (from training)"
    )
    build.add_argument("--name", required=True, help="package/model name, e.g. defect-cls")
    build.add_argument(
        "--version", required=True, help="version, e.g. 7 (the registry assigns it in a pipeline)"
    )
    build.add_argument("--key", type=Path, required=True, help="ed25519 private key")
    build.add_argument("--out", type=Path, required=True, help="folder for {name}-{version}.tar.gz")
    source = build.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", type=Path, help="dataset the model learned from (fingerprinted)")
    source.add_argument("--fingerprint", help="dataset fingerprint, if already known")
    build.add_argument("--metrics", type=Path, help="metrics.json from evaluate (default: compile's figures)")
    build.set_defaults(handler=_build)

    verify = sub.add_parser("verify", help="verify signature and hashes, smoke-test the golden input")
    verify.add_argument("package", type=Path, help="{name}-{version}.tar.gz")
    verify.add_argument("--trusted-keys", type=Path, required=True, help="public key file or folder of *.pub")
    verify.add_argument("--tolerance", type=float, default=FP32_TOLERANCE, help="fp32 golden tolerance")
    verify.add_argument("--int8-tolerance", type=float, default=INT8_TOLERANCE, help="int8 golden tolerance")
    verify.set_defaults(handler=_verify)

    show = sub.add_parser("show", help="print a package's manifest (NOT verified; use verify for trust)")
    show.add_argument("package", type=Path)
    show.set_defaults(handler=_show)


@reports_errors
def _build(args: argparse.Namespace) -> int:
    from edgeinspect_cloud.evaluation.spec import ModelSpec

    spec = ModelSpec.read(args.spec)
    if spec.thresholds is None:
        raise PackageError(
            f"{args.spec} has no thresholds", hint="use the model_spec.json written by training"
        )
    compiled = _read_json(args.compiled / "compile.json")
    fingerprint = args.fingerprint or _fingerprint(args.dataset)
    int8 = args.compiled / "model.int8.onnx"
    with tempfile.TemporaryDirectory(prefix="ei-draft-") as work:
        draft = PackageDraft.create(
            Path(work) / "draft",
            name=args.name,
            task=spec.task,
            framework=Framework.model_validate(compiled["framework"]),
            input_spec=spec.input,
            outputs=spec.outputs,
            thresholds=spec.thresholds,
            operating_point=spec.operating_point,
            precision=precision_from_report(compiled),
            metrics=_metrics(args.metrics, compiled),
            dataset_fingerprint=fingerprint,
            model_path=args.compiled / "model.onnx",
            int8_model_path=int8 if int8.is_file() else None,
            golden_input=np.load(args.compiled / "golden-input.npy", allow_pickle=False),
        )
        path = draft.build(args.version, load_private_key(args.key), args.out)
    check = check_package(path, [load_private_key(args.key).public_key()])
    print(json.dumps({"package": str(path), "size_bytes": path.stat().st_size, **check.as_dict()}))
    return 0


@reports_errors
def _verify(args: argparse.Namespace) -> int:
    check = check_package(
        args.package,
        load_public_keys(args.trusted_keys),
        fp32_tolerance=args.tolerance,
        int8_tolerance=args.int8_tolerance,
    )
    print(f"{args.package.name}: signature, hashes and golden smoke test OK", flush=True)
    print(json.dumps(check.as_dict()))
    return 0


@reports_errors
def _show(args: argparse.Namespace) -> int:
    print(manifest_from_tar(args.package).to_json_bytes().decode("utf-8"), end="")
    return 0


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PackageError(
            f"cannot read {path}: {exc}", hint="run `edgeinspect compile` into that folder"
        ) from exc
    return data


def _fingerprint(dataset: Path) -> str:
    from edgeinspect_cloud.data.fingerprint import dataset_fingerprint

    return dataset_fingerprint(dataset)


def _metrics(path: Path | None, compiled: dict[str, Any]) -> dict[str, float]:
    """Evaluate's ``metrics.json`` when given, else the fp32 and int8 figures compile measured."""
    if path is not None:
        raw = _read_json(path)
        values = raw.get("metrics", raw)
    else:
        values = {
            f"{p}_val_{k}": v
            for p in ("fp32", "int8")
            for k, v in compiled.get(p, {}).get("metrics", {}).items()
        }
    return {k: float(v) for k, v in values.items() if isinstance(v, int | float) and not isinstance(v, bool)}
