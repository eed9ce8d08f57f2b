"""``edgeinspect up`` (the local stack) and ``edgeinspect demo`` (the whole product, end to end)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def _parse_line(text: str) -> tuple[str, str]:
    name, sep, source = text.partition("=")
    if not sep or not name or not source:
        raise argparse.ArgumentTypeError(
            f"--line wants NAME=SOURCE (e.g. line-1=folder:///data/test), got {text!r}"
        )
    return name, source


def _add_stack_args(parser: argparse.ArgumentParser, state_default: str) -> None:
    parser.add_argument(
        "--state-dir", type=Path, default=Path(state_default), help="where the stack keeps its data"
    )
    parser.add_argument("--ui-port", type=int, default=8080, help="port of the web UI")
    parser.add_argument("--thing", default="edge-1", help="this device's thing name")
    parser.add_argument("--fps", type=float, default=4.0, help="camera replay rate per line")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument(
        "--bucket-max-mb",
        type=int,
        default=1024,
        help="keep the local object-store folder under this size, oldest objects first (default 1024)",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="stream every service's log lines to the console too"
    )


def register(sub: Any) -> None:
    up = sub.add_parser("up", help="run the whole stack as local processes (Ctrl-C stops it)")
    _add_stack_args(up, ".edgeinspect/stack")
    up.add_argument(
        "--line",
        action="append",
        type=_parse_line,
        default=[],
        metavar="NAME=SOURCE",
        help="a line and its camera source (repeatable); default line-1 replaying the state dir's data",
    )
    up.add_argument("--group", action="append", default=[], help="thing group(s) this device belongs to")
    up.set_defaults(handler=_up)

    demo = sub.add_parser("demo", help="synthetic line, quick training, MQTT deployment, live UI")
    _add_stack_args(demo, ".edgeinspect/demo")
    demo.add_argument("--images", type=int, default=400, help="synthetic images of the replayed line")
    demo.add_argument(
        "--train",
        action="store_true",
        help="train both models from scratch (minutes) instead of `make demo-models`",
    )
    demo.add_argument(
        "--scoreboard-every", type=float, default=60.0, help="seconds between scoreboard lines (default 60)"
    )
    demo.add_argument("--no-wait", action="store_true", help="stop after the first verdicts (for tests)")
    demo.set_defaults(handler=_demo)


def _config(args: argparse.Namespace, lines: list[tuple[str, str]], groups: list[str]) -> Any:
    from edgeinspect_cloud.stack.topology import LineConfig, StackConfig

    state = args.state_dir.resolve()
    if not lines:
        lines = [("line-1", f"folder://{state / 'data' / 'test'}")]
    return StackConfig(
        state_dir=state,
        lines=[LineConfig(name, source, fps=args.fps) for name, source in lines],
        thing=args.thing,
        thing_groups=groups,
        ui_port=args.ui_port,
        log_level=args.log_level,
        verbose=args.verbose,
        bucket_max_mb=args.bucket_max_mb,
    )


def _up(args: argparse.Namespace) -> int:
    from edgeinspect_cloud.stack.runner import run_stack

    return run_stack(_config(args, args.line, args.group))


def _demo(args: argparse.Namespace) -> int:
    from edgeinspect_cloud.stack.demo import run_demo

    return run_demo(args, _config(args, [], ["line-1"]))
