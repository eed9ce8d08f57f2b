"""Generate the agent API's Python code from ``protos/`` (the generated files are never committed).

The ``.proto`` files are compiled under the virtual path ``edgeinspect/core/agentapi`` so the generated
modules import each other as ``edgeinspect.core.agentapi.*`` with no path hacks.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent / "agentapi"
PROTO_DIR = PACKAGE_DIR.parents[3] / "protos"
LIB_DIR = PACKAGE_DIR.parents[2]
VIRTUAL = "edgeinspect/core/agentapi"
PROTOS = ("sagemaker_edge_agent.proto", "edgeinspect_agent.proto")


def _outputs(proto: str) -> list[Path]:
    stem = proto.removesuffix(".proto")
    return [PACKAGE_DIR / f"{stem}_pb2.py", PACKAGE_DIR / f"{stem}_pb2_grpc.py"]


def is_stale() -> bool:
    """True when any generated module is missing or older than its ``.proto`` source."""
    for proto in PROTOS:
        source = PROTO_DIR / proto
        for out in _outputs(proto):
            if not out.exists() or out.stat().st_mtime < source.stat().st_mtime:
                return True
    return False


def build() -> None:
    """Run protoc (from grpcio-tools) over every proto; raise with protoc's exit code on failure."""
    import grpc_tools
    from grpc_tools import protoc  # build-time dependency only

    include = str(Path(grpc_tools.__file__).parent / "_proto")
    args = [
        "protoc",
        f"-I{VIRTUAL}={PROTO_DIR}",
        f"-I{include}",
        f"--python_out={LIB_DIR}",
        f"--pyi_out={LIB_DIR}",
        f"--grpc_python_out={LIB_DIR}",
        *(f"{VIRTUAL}/{proto}" for proto in PROTOS),
    ]
    code = protoc.main(args)
    if code != 0:
        raise SystemExit(f"protoc failed with exit code {code}: check the .proto files in {PROTO_DIR}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--if-stale", action="store_true", help="only rebuild when a .proto changed")
    args = parser.parse_args(argv)
    if args.if_stale and not is_stale():
        return 0
    build()
    print(f"generated agent API code in {PACKAGE_DIR}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
