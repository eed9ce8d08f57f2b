"""``edgeinspect data synth|info``: make a synthetic dataset, or check and fingerprint any dataset folder.

Both print one JSON object as their last line (what was written, or what was found), so scripts and
pipeline steps read the result without parsing prose.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from edgeinspect_cloud.commands.cli_errors import reports_errors


def register(subparsers: Any) -> None:
    """Add ``data synth`` and ``data info``."""
    parser = subparsers.add_parser("data", help="synthetic data and dataset checks")
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    synth = sub.add_parser("synth", help="write a seeded KolektorSDD2-style dataset (train/ and test/)")
    synth.add_argument("--out", type=Path, required=True, help="dataset folder to create (must be empty)")
    synth.add_argument("--count", type=int, default=1200, help="images in all (default 1200)")
    synth.add_argument(
        "--defect-ratio", type=float, default=0.2, help="share of defective images (default 0.2)"
    )
    synth.add_argument("--seed", type=int, default=0, help="seed: same seed, same bytes")
    synth.add_argument("--height", type=int, default=640, help="image height (default 640, as KolektorSDD2)")
    synth.add_argument("--width", type=int, default=232, help="image width (default 232, as KolektorSDD2)")
    synth.add_argument(
        "--test-fraction", type=float, default=0.3, help="share written to test/ (default 0.3)"
    )
    synth.add_argument(
        "--brightness-shift",
        type=float,
        default=0.0,
        help="grey levels added to every pixel (-40: darker line)",
    )
    synth.add_argument(
        "--defect-kinds",
        nargs="+",
        help="draw only these defect kinds (e.g. blister, a kind the default line lacks)",
    )
    synth.add_argument(
        "--families",
        choices=["classic", "train", "heldout"],
        default="classic",
        help="surface family set: classic (the original line, default), train (broad domain "
        "randomisation) or heldout (evaluation only: surfaces, lights and defects training never sees)",
    )
    synth.add_argument(
        "--surface",
        help="train/heldout: every part on this one family of the set (a one-surface line), e.g. spangle",
    )
    synth.set_defaults(handler=_synth)
    info = sub.add_parser("info", help="check a dataset folder; print counts and its fingerprint")
    info.add_argument("dataset", type=Path, help="folder holding train/ (and test/)")
    info.set_defaults(handler=_info)


@reports_errors
def _synth(args: argparse.Namespace) -> int:
    from edgeinspect_cloud.data.synth import write_dataset

    summary = write_dataset(
        args.out,
        count=args.count,
        defect_ratio=args.defect_ratio,
        seed=args.seed,
        height=args.height,
        width=args.width,
        test_fraction=args.test_fraction,
        brightness_shift=args.brightness_shift,
        defect_kinds=tuple(args.defect_kinds) if args.defect_kinds else None,
        families=args.families,
        surface=args.surface,
    )
    print(summary.to_json(per_image=False))
    return 0


@reports_errors
def _info(args: argparse.Namespace) -> int:
    from edgeinspect_cloud.data.dataset import SPLITS, list_split, read_labels
    from edgeinspect_cloud.data.fingerprint import dataset_fingerprint

    counts: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        if (args.dataset / split).is_dir():
            labels = read_labels(list_split(args.dataset, split))
            counts[split] = {"images": int(labels.size), "defective": int(labels.sum())}
    fingerprint = dataset_fingerprint(args.dataset)
    print(
        json.dumps(
            {"dataset": str(args.dataset), "splits": counts, "fingerprint": fingerprint}, sort_keys=True
        )
    )
    return 0
