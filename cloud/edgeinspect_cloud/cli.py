"""The umbrella ``edgeinspect`` command. Each subcommand lives in its own module under
``edgeinspect_cloud.commands`` and is imported only when used, so ``edgeinspect up`` never pays for
importing torch or tensorflow.

A command module exposes ``register(subparsers) -> None``, adding its parser(s) with
``parser.set_defaults(handler=fn)`` where ``fn(args) -> int`` is the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence

# subcommand name -> module under edgeinspect_cloud.commands that registers it
COMMANDS: dict[str, str] = {
    "data": "data",
    "train": "train",
    "evaluate": "evaluate",
    "registry": "registry",
    "compile": "compile",
    "package": "package",
    "keys": "keys",
    "pipeline": "pipeline",
    "fleet": "fleet",
    "deploy": "fleet",
    "jobs": "fleet",
    "devices": "fleet",
    "up": "stack",
    "demo": "stack",
    "monitor": "monitor",
    "review": "review",
}


def _available(name: str) -> bool:
    return importlib.util.find_spec(f"edgeinspect_cloud.commands.{name}") is not None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``only`` set, just that subcommand's module is imported."""
    parser = argparse.ArgumentParser(
        prog="edgeinspect", description="edgeinspect: visual inspection at the edge"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = {COMMANDS[only]} if only in COMMANDS else set(COMMANDS.values())
    for module in sorted(modules):
        if _available(module):
            importlib.import_module(f"edgeinspect_cloud.commands.{module}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in args_list if not a.startswith("-")), None)
    parser = build_parser(first)
    args = parser.parse_args(args_list)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    return int(handler(args))


if __name__ == "__main__":
    raise SystemExit(main())
