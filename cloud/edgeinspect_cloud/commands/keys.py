"""``edgeinspect keys generate --out DIR``: make the ed25519 key pair that signs model packages.

The private key (``{name}.key``, mode 0600) stays with the pipeline that builds packages; the public
key (``{name}.pub``) goes to every device's trusted-keys folder (``EI_TRUSTED_KEYS_DIR``).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from edgeinspect.core.package import key_id, load_public_keys, write_keypair

from edgeinspect_cloud.commands.cli_errors import reports_errors


def register(subparsers: Any) -> None:
    """Add ``keys generate``."""
    parser = subparsers.add_parser("keys", help="package signing keys")
    sub = parser.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    generate = sub.add_parser("generate", help="write a new ed25519 key pair ({name}.key and {name}.pub)")
    generate.add_argument("--out", required=True, help="folder to write the pair into (created if missing)")
    generate.add_argument("--name", default="edgeinspect", help="file name stem (default: edgeinspect)")
    generate.set_defaults(handler=_generate)


@reports_errors
def _generate(args: argparse.Namespace) -> int:
    private_path, public_path = write_keypair(args.out, args.name)
    fingerprint = key_id(load_public_keys(public_path)[0])
    print(f"private key {private_path} (keep it secret; it signs packages)")
    print(f"public key  {public_path} (install on devices, in EI_TRUSTED_KEYS_DIR)")
    print(
        json.dumps({"private_key": str(private_path), "public_key": str(public_path), "key_id": fingerprint})
    )
    return 0
