"""``edgeinspect review``: a web page over captured frames; decisions become a training dataset.

    edgeinspect review --captures s3://factory-captures/edge --out datasets/reviewed-2026-03 \\
        --line line-1 --since 2026-03-01 --port 8090

Open http://127.0.0.1:8090/ : filter by line, verdict, score band and shadow disagreement, confirm
or correct each frame's label, paint or erase its mask, save. ``--out`` then holds ``train/NNNNN.png``
+ ``NNNNN_GT.png`` and ``provenance.jsonl``, ready for ``edgeinspect pipeline run --dataset BASE
--dataset OUT``. The page listens on loopback unless ``--host`` says otherwise. Reviewers sign in:
``EI_REVIEW_USERS=ana:TOKEN,bob:TOKEN`` names them; without it a token for ``reviewer`` is generated
into ``EI_REVIEW_STATE_DIR`` and printed on the first start. ``EI_REVIEW_ALLOWED_HOSTS`` adds the
host names the page is opened by (besides localhost, 127.0.0.1 and [::1]); see docs/security.md.
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path
from typing import Any

from edgeinspect_cloud.commands.cli_errors import reports_errors


def register(subparsers: Any) -> None:
    """Add ``review``."""
    parser = subparsers.add_parser("review", help="review captured frames; write corrections as a dataset")
    parser.add_argument(
        "--captures", required=True, help="capture store URL (s3://bucket/prefix or file:///dir)"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="dataset folder to write (created, or resumed)"
    )
    parser.add_argument("--line", action="append", default=[], help="only these lines (repeatable)")
    parser.add_argument("--since", type=date.fromisoformat, help="first UTC day (YYYY-MM-DD)")
    parser.add_argument("--until", type=date.fromisoformat, help="last UTC day (YYYY-MM-DD)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback)")
    parser.add_argument("--port", type=int, default=8090, help="port (default 8090; 0 picks a free one)")
    parser.add_argument("--endpoint-url", help="S3-compatible endpoint for s3:// URLs")
    parser.set_defaults(handler=_review)


@reports_errors
def _review(args: argparse.Namespace) -> int:
    import uvicorn
    from edgeinspect.core.webguard import allowed_hosts

    from edgeinspect_cloud.review.access import Reviewers, ReviewSettings
    from edgeinspect_cloud.review.app import create_app
    from edgeinspect_cloud.review.captures import CaptureStore
    from edgeinspect_cloud.review.export import ReviewExport

    options: dict[str, Any] = {"endpoint_url": args.endpoint_url} if args.endpoint_url else {}
    store = CaptureStore.open(args.captures, **options)
    days = store.days(args.line, args.since, args.until) if (args.line or args.since or args.until) else None
    settings = ReviewSettings.load()
    reviewers = Reviewers.from_settings(settings)
    hosts = allowed_hosts(settings.review_allowed_hosts)
    app = create_app(store, ReviewExport(args.out), days, reviewers=reviewers, hosts=hosts)
    print(f"review: {store.url} -> {args.out}; open http://{args.host}:{args.port}/", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
