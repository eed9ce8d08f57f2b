"""``edgeinspect registry compare``: the parser, added to the ``registry`` command (heavy imports lazily)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeinspect_cloud.commands.cli_errors import reports_errors


def add_compare(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``registry compare GROUP V1 V2 [...] --dataset A [--dataset B ...]``."""
    compare = sub.add_parser(
        "compare", help="evaluate versions side by side on datasets (e.g. the original and the reviewed)"
    )
    compare.add_argument("group", help="model group, e.g. defect-cls")
    compare.add_argument("versions", type=int, nargs="+", help="versions to compare (the current one first)")
    compare.add_argument(
        "--dataset", action="append", type=Path, required=True, help="dataset folder (repeat)"
    )
    compare.add_argument("--split", choices=["train", "test"], help="default: test when present, else train")
    compare.add_argument("--trusted-keys", type=Path, help="verify each package's signature with these keys")
    common(compare)
    compare.set_defaults(handler=_compare)


@reports_errors
def _compare(args: argparse.Namespace) -> int:
    from edgeinspect.core.package import load_public_keys

    from edgeinspect_cloud.commands.registry import open_registry
    from edgeinspect_cloud.retrain.compare import compare_versions, format_comparison

    keys = load_public_keys(args.trusted_keys) if args.trusted_keys else None
    results = compare_versions(
        open_registry(args), args.group, args.versions, args.dataset, split=args.split, public_keys=keys
    )
    if args.json:
        body = {"group": args.group, "versions": args.versions, "datasets": [r.to_json() for r in results]}
        print(json.dumps(body, indent=2, sort_keys=True))
    else:
        print(format_comparison(args.group, args.versions, results), end="")
    return 0
