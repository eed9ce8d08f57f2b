"""``edgeinspect registry list|show|approve|reject``: look at and decide on registered model versions.

The registry URL comes from ``--registry`` or ``EI_REGISTRY_URL``; an S3-compatible endpoint other
than AWS from ``--endpoint-url`` or ``EI_S3_ENDPOINT_URL``. Output is a table, or JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from typing import Any

from edgeinspect.core.errors import EdgeInspectError

from edgeinspect_cloud.commands.cli_errors import reports_errors
from edgeinspect_cloud.registry import ModelRegistry, ModelVersion
from edgeinspect_cloud.registry.gate import GATE_KEY, rejudge
from edgeinspect_cloud.registry.lineage import INIT_FROM_KEY, lines_of

REGISTRY_ENV = "EI_REGISTRY_URL"
ENDPOINT_ENV = "EI_S3_ENDPOINT_URL"


def add_registry_arguments(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    """``--registry`` and ``--endpoint-url``, shared with ``pipeline run``."""
    default = os.environ.get(REGISTRY_ENV)
    parser.add_argument(
        "--registry",
        default=default,
        required=required and default is None,
        help=f"registry URL: s3://bucket/prefix or file:///folder (default ${REGISTRY_ENV})",
    )
    parser.add_argument(
        "--endpoint-url",
        default=os.environ.get(ENDPOINT_ENV),
        help=f"S3-compatible endpoint for s3:// URLs, e.g. http://127.0.0.1:9000 (default ${ENDPOINT_ENV})",
    )


def open_registry(args: argparse.Namespace) -> ModelRegistry:
    """The registry named by ``--registry``/``--endpoint-url``; an error says how to name one."""
    if not args.registry:
        raise EdgeInspectError(
            "no registry given",
            hint=f"pass --registry s3://bucket/prefix or file:///folder, or set {REGISTRY_ENV}",
        )
    options: dict[str, Any] = {"endpoint_url": args.endpoint_url} if args.endpoint_url else {}
    return ModelRegistry.open(args.registry, **options)


def register(subparsers: Any) -> None:
    """Add ``registry`` and its subcommands."""
    parser = subparsers.add_parser("registry", help="list, show, approve or reject registered models")
    sub = parser.add_subparsers(dest="registry_command", metavar="ACTION", required=True)

    listing = sub.add_parser("list", help="versions of every group (or one), newest last")
    listing.add_argument("--group", help="only this model group (e.g. defect-cls)")
    listing.add_argument("--status", choices=["PendingManualApproval", "Approved", "Rejected"])
    _common(listing)
    listing.set_defaults(handler=_list)

    show = sub.add_parser("show", help="one version with its metrics, package and status history")
    _version_args(show)
    show.set_defaults(handler=_show)

    for action, verb in (("approve", "Approved"), ("reject", "Rejected")):
        decide = sub.add_parser(action, help=f"mark a version {verb}")
        _version_args(decide)
        decide.add_argument("--by", help="who decides (default: the login name)")
        decide.add_argument("--comment", default="", help="why (kept in the history)")
        if action == "approve":
            decide.add_argument(
                "--force",
                action="store_true",
                help="approve a version below its quality gate (needs --comment; who, when, why are kept)",
            )
        decide.set_defaults(handler=_approve if action == "approve" else _reject)
    # `registry compare` lives with the retraining tools and evaluates packages (onnxruntime, plots): it
    # is loaded by name, as cli.py loads every command module, so fleet's image never needs it.
    importlib.import_module("edgeinspect_cloud.retrain.cli").add_compare(sub, _common)


def _common(parser: argparse.ArgumentParser) -> None:
    add_registry_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _version_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("group", help="model group, e.g. defect-cls")
    parser.add_argument("version", type=int, help="version number")
    _common(parser)


@reports_errors
def _list(args: argparse.Namespace) -> int:
    registry = open_registry(args)
    groups = [args.group] if args.group else registry.groups()
    versions = [mv for group in groups for mv in registry.versions(group)]
    if args.status:
        versions = [mv for mv in versions if mv.status == args.status]
    if args.json:
        print(json.dumps([mv.to_json() for mv in versions], indent=2, sort_keys=True))
        return 0
    if not versions:
        print(f"no model versions in {registry.url}", file=sys.stderr)
        return 0
    print(format_table(versions))
    return 0


@reports_errors
def _show(args: argparse.Namespace) -> int:
    mv = open_registry(args).get(args.group, args.version)
    print(json.dumps(mv.to_json(), indent=2, sort_keys=True) if args.json else format_details(mv))
    return 0


@reports_errors
def _approve(args: argparse.Namespace) -> int:
    mv = open_registry(args).approve(
        args.group, args.version, by=args.by, comment=args.comment, force=args.force
    )
    return _print_decision(args, mv)


@reports_errors
def _reject(args: argparse.Namespace) -> int:
    mv = open_registry(args).reject(args.group, args.version, by=args.by, comment=args.comment)
    return _print_decision(args, mv)


def _print_decision(args: argparse.Namespace, mv: ModelVersion) -> int:
    if args.json:
        print(json.dumps(mv.to_json(), indent=2, sort_keys=True))
    else:
        last = mv.history[-1]
        print(f"{mv.group} version {mv.version} is now {mv.status} (by {last.by} at {last.at.isoformat()})")
        if last.overrode:
            print(f"  past its quality gate ({', '.join(last.overrode)}): {last.comment}")
    return 0


def format_table(versions: list[ModelVersion]) -> str:
    """One line per version: group, version, status, task, created, key metrics, package size."""
    header = ("GROUP", "VERSION", "STATUS", "TASK", "CREATED", "METRICS", "SIZE")
    rows = [header] + [
        (
            mv.group,
            str(mv.version),
            mv.status,
            mv.registration.task,
            mv.registration.created_at.strftime("%Y-%m-%d %H:%M"),
            _metrics_text(mv.registration.metrics),
            _size_text(mv.registration.package.size),
        )
        for mv in versions
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def format_details(mv: ModelVersion) -> str:
    """A readable block: provenance, metrics, package, then the status history."""
    reg = mv.registration
    lines = [
        f"{mv.group} version {mv.version}: {mv.status}",
        f"  task          {reg.task}",
        f"  framework     {reg.framework.name} {reg.framework.version}",
        f"  created       {reg.created_at.isoformat()} by {reg.created_by}",
        f"  dataset       {reg.dataset_fingerprint}",
        f"  thresholds    {_metrics_text({k: v for k, v in reg.thresholds.items() if v is not None})}",
        f"  metrics       {_metrics_text(reg.metrics, limit=None)}",
        f"  package       {reg.package.url}",
        f"  sha256        {reg.package.sha256}",
        f"  size          {_size_text(reg.package.size)}{' (with int8 model)' * reg.package.has_int8}",
    ]
    if reg.description:
        lines.append(f"  description   {reg.description}")
    lines += _lineage_text(mv)
    gate = reg.extra.get(GATE_KEY)
    if isinstance(gate, dict):
        lines.append(f"  quality gate  {_gate_text(gate)}")
    lines.append("  history")
    for change in mv.history:
        comment = f": {change.comment}" if change.comment else ""
        forced = f" (forced past the gate: {', '.join(change.overrode)})" if change.overrode else ""
        lines.append(f"    {change.at.isoformat()}  {change.status:<22} by {change.by}{forced}{comment}")
    return "\n".join(lines)


def _lineage_text(mv: ModelVersion) -> list[str]:
    """Weights (fine-tunable or not), the parent it was fine-tuned from, and the lines it was checked on."""
    reg = mv.registration
    shown = [f"  weights       {reg.weights.url if reg.weights else 'none stored (cannot be fine-tuned)'}"]
    parent = reg.extra.get(INIT_FROM_KEY)
    if isinstance(parent, str):
        shown.append(f"  fine-tuned    from {parent}")
    for line in lines_of(mv):
        ap = line.metrics.get("image_ap")
        figure = f"image_ap={ap:.3f}" if ap is not None else "-"
        shown.append(
            f"  line          {line.name}: {figure} on {line.split} ({line.images} images, {line.source})"
        )
    return shown


def _gate_text(record: dict[str, Any]) -> str:
    """``passed (image_ap 0.98 >= 0.90, ...)`` judged again from the stored figures; damaged: say so."""
    try:
        judged = rejudge(record)
    except ValueError:
        return "damaged record"
    verdict = "passed" if judged.passed else "FAILED"
    figures = [figure.describe() for figure in [*judged.figures, *judged.regression]]
    return f"{verdict} ({', '.join(figures)}; on {judged.source})"


_TABLE_METRICS = ("image_ap", "image_auroc", "f1", "dice", "iou")


def _metrics_text(metrics: dict[str, float], limit: int | None = 3) -> str:
    keys = [k for k in _TABLE_METRICS if k in metrics] + sorted(k for k in metrics if k not in _TABLE_METRICS)
    shown = keys if limit is None else keys[:limit]
    return " ".join(f"{key}={metrics[key]:.3f}" for key in shown) or "-"


def _size_text(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.1f} kB"
