"""``edgeinspect monitor``: compare field telemetry and captured frames with the package baseline.

    edgeinspect monitor --baseline defect-cls-3.tar.gz --baseline defect-seg-2.tar.gz \\
        --captures s3://factory-captures/edge --out reports/2026-03-04 \\
        --mqtt-url mqtt://broker:1883 --webhook https://ops.example/hooks/drift

Telemetry is read from ``--telemetry`` (store URLs, JSON Lines files or folders; repeatable), or when
none is given from the capture store's ``_telemetry/`` parts. Captured frames add an image-feature
check per line. The report folder gets ``metrics.json``, ``report.md``, ``report.html`` and plots.

Exit status (for cron): 0 no drift, 3 drift found (alerts sent), 1 an error (message and hint on
stderr), 2 bad arguments. The last line on stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from edgeinspect.core.errors import EdgeInspectError
from edgeinspect.core.topics import EDGEINSPECT_ROOT

from edgeinspect_cloud.commands.cli_errors import reports_errors
from edgeinspect_cloud.monitor.alerts import drift_alerts, send_mqtt, send_webhook
from edgeinspect_cloud.monitor.analysis import Thresholds, analyse
from edgeinspect_cloud.monitor.baseline import combine_baselines, load_baseline
from edgeinspect_cloud.monitor.errors import MonitorError
from edgeinspect_cloud.monitor.field import capture_groups, group_windows, read_telemetry
from edgeinspect_cloud.monitor.report import write_report
from edgeinspect_cloud.review.captures import CaptureStore

DRIFT_EXIT = 3


def register(subparsers: Any) -> None:
    """Add ``monitor``."""
    parser = subparsers.add_parser("monitor", help="drift report: field telemetry and captures vs baseline")
    parser.add_argument(
        "--baseline", action="append", required=True, help="package (.tar.gz), package folder, manifest.json "
        "or baseline JSON; repeat for the classifier and the segmenter",
    )  # fmt: skip
    parser.add_argument("--captures", help="capture store URL (s3://bucket/prefix or file:///folder)")
    parser.add_argument(
        "--telemetry", action="append", default=[],
        help="telemetry: store URL, JSON Lines file or folder (default: the capture store's _telemetry/)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, required=True, help="report folder (created)")
    parser.add_argument("--line", action="append", default=[], help="only these lines (repeatable)")
    parser.add_argument("--since", type=date.fromisoformat, help="first UTC day (YYYY-MM-DD)")
    parser.add_argument("--until", type=date.fromisoformat, help="last UTC day (YYYY-MM-DD)")
    parser.add_argument(
        "--capture-reasons", nargs="+", default=["sample_good"],
        help="captures used for the image check, by capture reason (default sample_good: the unbiased "
        "random sample; 'all' for every capture, biased towards defects and doubtful frames)",
    )  # fmt: skip
    parser.add_argument("--psi-threshold", type=float, default=0.2, help="PSI from which a feature drifts")
    parser.add_argument("--p-threshold", type=float, default=0.01, help="p-value below which a move is real")
    parser.add_argument("--min-frames", type=int, default=30, help="fewer field frames never count as drift")
    parser.add_argument("--mqtt-url", help="broker for drift alerts (mqtt://host:1883)")
    parser.add_argument("--alert-topic", help="one topic for every alert (default: {root}/{line}/alerts)")
    parser.add_argument("--topic-root", default=EDGEINSPECT_ROOT, help="root of the per-line alert topics")
    parser.add_argument("--webhook", help="URL that receives a JSON POST per drifted group")
    parser.add_argument("--endpoint-url", help="S3-compatible endpoint for s3:// URLs")
    parser.set_defaults(handler=_monitor)


@reports_errors
def _monitor(args: argparse.Namespace) -> int:
    limits = Thresholds(psi=args.psi_threshold, p_value=args.p_threshold, min_frames=args.min_frames)
    options: dict[str, Any] = {"endpoint_url": args.endpoint_url} if args.endpoint_url else {}
    baseline = combine_baselines([load_baseline(path) for path in args.baseline])
    sources = list(args.telemetry) or ([args.captures] if args.captures else [])
    if not sources:
        raise MonitorError("no field data", hint="pass --captures URL and/or --telemetry FILE_OR_URL")
    groups = group_windows(read_telemetry(sources, args.line, args.since, args.until, **options))
    if args.captures:
        store = CaptureStore.open(args.captures, **options)
        reasons = [] if "all" in args.capture_reasons else args.capture_reasons
        groups += capture_groups(store, store.days(args.line, args.since, args.until), reasons)
    if not groups:
        raise MonitorError(
            f"no telemetry or captures found in {', '.join(sources)}",
            hint="check the URLs, --line and the dates; is the uploader running with telemetry on?",
        )
    reports = analyse(baseline, groups, limits)
    context = {"baseline": list(args.baseline), "telemetry": sources, "captures": args.captures}
    body = write_report(args.out, baseline, groups, reports, limits, context)
    alerts = drift_alerts(body, str(args.out.resolve()))
    failures = _send(args, alerts)
    drifted = {f"{r.line}/{r.device}": r.drifted for r in reports if r.drifted}
    for key, features in drifted.items():
        print(f"DRIFT {key}: {', '.join(features)}", file=sys.stderr)
    summary = {"drifted": bool(drifted), "groups": drifted, "report": str(args.out), "alerts": len(alerts)}
    print(json.dumps({**summary, "alert_failures": failures}, sort_keys=True))
    return DRIFT_EXIT if drifted else 0


def _send(args: argparse.Namespace, alerts: list[dict[str, Any]]) -> list[str]:
    """Deliver alerts to every target asked for; failures are returned (and printed), not raised."""
    failures: list[str] = []
    if not alerts:
        return failures
    targets: list[Callable[[], None]] = []
    if args.mqtt_url:
        targets.append(lambda: send_mqtt(alerts, args.mqtt_url, topic=args.alert_topic, root=args.topic_root))
    if args.webhook:
        targets.append(lambda: send_webhook(alerts, args.webhook))
    for send in targets:
        try:
            send()
        except EdgeInspectError as exc:
            failures.append(exc.message)
            print(f"error: alert not delivered: {exc.message}", file=sys.stderr)
    return failures
